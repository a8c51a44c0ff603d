"""RecordedEdge: record an edge's answers once, replay them to the same pipeline in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from mvstylizer.bench.recorded_edge import CHILD, NotRecorded, RecordedEdge
from mvstylizer.bench.synthetic import write_test_clip
from mvstylizer.edge.service import EdgeService
from mvstylizer.video.media import package_media
from mvstylizer.video.reader import VideoReader


def _frames(path) -> list[np.ndarray]:
    with VideoReader(path) as reader:
        return [f.rgb8.copy() for f in reader.frames()]


# Each child logs every frame it hands to the encoder (its pts and a digest of its pixels). x264 is not
# reproducible from process to process inside the pipeline: the same YUV frames (hashed after the
# writer's conversion, padding included) with the same pts came out as three different bitstreams in
# six runs, up to 0.4 levels apart on average, even with x264 on one thread, while a bare script
# encoding the same frames gave one. So the frames are compared exactly before the encoder, and the
# videos only within that noise.
_HASHES = ("import atexit, hashlib, os, mvstylizer.video.writer as W; _h = []; _w = W.VideoWriter.write; "
           "W.VideoWriter.write = lambda self, rgb8, pts=None: (_h.append(f'{pts}:' + hashlib.md5(rgb8.tobytes()).hexdigest()), "
           "_w(self, rgb8, pts))[1]; atexit.register(lambda: open(os.environ['HASHES'], 'w').write(' '.join(_h))); ")


def test_a_replay_in_a_fresh_process_gives_the_recorded_video_without_the_edge(tmp_path):
    clip, answers = tmp_path / "pan.mp4", tmp_path / "answers.pkl"
    write_test_clip(clip, width=96, height=64, frames=12, fps=10.0)
    style = package_media("coffee.png")
    recording = (_HASHES + "import sys; from pathlib import Path; from mvstylizer.bench.recorded_edge import record; "
                 "record(*map(Path, sys.argv[1:3]), sys.argv[3], *map(Path, sys.argv[4:6]))")
    env = {**os.environ, "HASHES": str(tmp_path / "recorded.txt")}
    done = subprocess.run([sys.executable, "-c", recording, str(clip), str(style), "reinhard", str(answers),
                           str(tmp_path / "recorded.mp4")], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    # The timed child as bench footage runs it, then a check that it never loaded the edge or torch.
    check = "; assert not {'mvstylizer.edge.service', 'torch'} & set(sys.modules), sorted(sys.modules)"
    env["HASHES"] = str(tmp_path / "replayed.txt")
    done = subprocess.run([sys.executable, "-c", _HASHES + CHILD + check, str(clip), str(style), "reinhard",
                           str(answers), str(tmp_path / "replayed.mp4")], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    handed = [(tmp_path / f"{run}.txt").read_text().split() for run in ("recorded", "replayed")]
    assert len(handed[0]) == 12 and handed[0] == handed[1]
    recorded, replayed = _frames(tmp_path / "recorded.mp4"), _frames(tmp_path / "replayed.mp4")
    assert len(replayed) == len(recorded) == 12
    assert all(np.abs(a.astype(int) - b).mean() < 1.0 for a, b in zip(recorded, replayed, strict=True))


def test_recording_and_replay_run_what_stylize_runs_by_default():
    from mvstylizer.cli import build_parser
    from mvstylizer.cli.args import pipeline_config
    from mvstylizer.mobile.pipeline import StylizeConfig

    args = build_parser().parse_args(["stylize", "in.mp4", "--style", "s.png", "-o", "o.mp4", "-q", "--model", "mk"])
    assert pipeline_config(args, progress=False) == StylizeConfig(model="mk", progress=False)


def test_each_request_reaches_the_service_once_and_unseen_ones_fail_after_loading(tmp_path):
    edge = RecordedEdge(EdgeService())
    style_id = edge.register_style(np.full((64, 64, 3), 0.5, np.float32))
    key = np.random.default_rng(0).random((32, 48, 3)).astype(np.float32)
    first = edge.stylize(style_id, "reinhard", [key])[0]
    again = edge.stylize(style_id, "reinhard", [key])[0]
    assert np.array_equal(first, again) and edge.bytes_sent > 0 and edge.bytes_received > 0
    edge.save(tmp_path / "a.pkl")
    loaded = RecordedEdge.load(tmp_path / "a.pkl")
    assert loaded.models() == edge.models()
    assert loaded.register_style(np.full((64, 64, 3), 0.5, np.float32)) == style_id
    assert np.array_equal(loaded.stylize(style_id, "reinhard", [key])[0], first)
    with pytest.raises(NotRecorded):
        loaded.stylize(style_id, "reinhard", [1.0 - key])
    with pytest.raises(NotRecorded):
        loaded.stylize(style_id, "mk", [key])


def test_a_replay_with_model_time_answers_as_late_as_the_model_took(tmp_path, monkeypatch):
    import mvstylizer.bench.recorded_edge as recorded

    edge = RecordedEdge(EdgeService())
    style_id = edge.register_style(np.full((64, 64, 3), 0.5, np.float32))
    key = np.random.default_rng(1).random((32, 48, 3)).astype(np.float32)
    edge.stylize(style_id, "reinhard", [key])
    edge.save(tmp_path / "a.pkl")
    (took,) = edge._seconds.values()
    slept: list[float] = []
    monkeypatch.setattr(recorded.time, "sleep", slept.append)
    RecordedEdge.load(tmp_path / "a.pkl").stylize(style_id, "reinhard", [key])
    assert slept == []
    RecordedEdge.load(tmp_path / "a.pkl", model_time=True).stylize(style_id, "reinhard", [key])
    assert slept == [took] and took > 0
    slept.clear()
    RecordedEdge.load(tmp_path / "a.pkl", model_time=True, latency=0.2).stylize(style_id, "reinhard", [key])
    assert slept == [0.1, took, 0.1]


def test_keys_in_flight_overlap_their_network_time_but_not_the_model(tmp_path, monkeypatch):
    import mvstylizer.bench.recorded_edge as recorded

    edge = RecordedEdge(EdgeService())
    style_id = edge.register_style(np.full((64, 64, 3), 0.5, np.float32))
    keys = [np.random.default_rng(i).random((32, 48, 3)).astype(np.float32) for i in range(3)]
    for key in keys:
        edge.stylize(style_id, "reinhard", [key])
    edge._seconds = dict.fromkeys(edge._seconds, 0.05)  # the model; the network's half trip is 0.15
    edge.save(tmp_path / "a.pkl")
    replay = RecordedEdge.load(tmp_path / "a.pkl", model_time=True, latency=0.3, max_in_flight=3)
    lock, now, most = threading.Lock(), {0.05: 0, 0.15: 0}, {0.05: 0, 0.15: 0}
    real_sleep = time.sleep

    def sleep(seconds):
        with lock:
            now[seconds] += 1
            most[seconds] = max(most[seconds], now[seconds])
        real_sleep(seconds)
        with lock:
            now[seconds] -= 1

    monkeypatch.setattr(recorded.time, "sleep", sleep)
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda k: replay.stylize(style_id, "reinhard", [k]), keys))
    assert most[0.15] >= 2  # keys on the network at once
    assert most[0.05] == 1  # one key in the model at a time