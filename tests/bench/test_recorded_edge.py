"""RecordedEdge: record an edge's answers once, replay them to the same pipeline in a fresh process."""

from __future__ import annotations

import numpy as np
import pytest

from mvstylizer.bench.recorded_edge import NotRecorded, RecordedEdge, record, stylize_recorded
from mvstylizer.bench.synthetic import write_test_clip
from mvstylizer.edge.service import EdgeService
from mvstylizer.video.media import package_media
from mvstylizer.video.reader import VideoReader


def _frames(path) -> list[np.ndarray]:
    with VideoReader(path) as reader:
        return [f.rgb8.copy() for f in reader.frames()]


def test_a_replay_gives_the_recorded_run_s_video_without_the_model(tmp_path, monkeypatch):
    clip, answers = tmp_path / "pan.mp4", tmp_path / "answers.pkl"
    write_test_clip(clip, width=96, height=64, frames=12, fps=10.0)
    style = package_media("coffee.png")
    record(clip, style, "reinhard", answers, tmp_path / "recorded.mp4")

    def no_model(*_args):
        raise AssertionError("the replay ran the model")

    monkeypatch.setattr(EdgeService, "stylize", no_model)
    stylize_recorded(str(clip), str(style), "reinhard", str(answers), str(tmp_path / "replayed.mp4"))
    recorded, replayed = _frames(tmp_path / "recorded.mp4"), _frames(tmp_path / "replayed.mp4")
    assert len(replayed) == len(recorded) == 12
    assert all(np.array_equal(a, b) for a, b in zip(recorded, replayed, strict=True))


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
