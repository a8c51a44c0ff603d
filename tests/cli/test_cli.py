"""End to end: the `mvstylizer` command on tiny generated clips, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from helpers import texture, to8
from mvstylizer.cli import main
from mvstylizer.video.reader import VideoReader
from mvstylizer.bench.synthetic import write_test_clip


def probe(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        audio = [s for s in c.streams if s.type == "audio"]
        info = {"size": (v.width, v.height), "fps": float(v.average_rate), "codec": v.codec_context.name,
                "duration": c.duration / 1e6 if c.duration else None, "audio": bool(audio),
                "audio_duration": float(audio[0].duration * audio[0].time_base)
                if audio and audio[0].duration else None}
        info["frames"] = sum(1 for _ in c.decode(video=0))
    return info


def run(*args: str) -> int:
    return main([str(a) for a in args])


@pytest.mark.parametrize("audio", [False, True])
def test_video_keeps_frames_size_fps_and_audio(tmp_path, style, audio):
    src = tmp_path / "in.mp4"
    write_test_clip(src, width=96, height=64, frames=20, fps=12.0, audio=audio)
    out = tmp_path / "out.mp4"
    report = tmp_path / "report.json"
    assert run("stylize", src, "--style", style, "-o", out, "--report", report, "-q") == 0
    a, b = probe(src), probe(out)
    assert b["frames"] == a["frames"] == 20
    assert b["size"] == a["size"] and b["fps"] == pytest.approx(a["fps"])
    assert b["codec"] == "h264"
    assert b["audio"] == audio
    if audio:
        assert b["audio_duration"] == pytest.approx(a["audio_duration"], rel=0.05)
    assert b["duration"] == pytest.approx(a["duration"], abs=0.1)
    rep = json.loads(report.read_text())
    assert rep["frames"] == 20 and rep["key_frames"][0] == 0 and rep["key_frames"][-1] == 19
    assert rep["bytes_to_edge"] > 0 and rep["bytes_from_edge"] > 0
    assert set(rep["stage_seconds"]) >= {"decode", "select", "edge", "smoothing", "interpolation", "encode"}


def test_output_is_stylized_towards_the_style_colours(tmp_path, style):
    src = tmp_path / "in.mp4"
    write_test_clip(src, width=96, height=64, frames=8, fps=10.0)
    out = tmp_path / "out.mp4"
    assert run("stylize", src, "--style", style, "-o", out, "-q") == 0
    with VideoReader(src) as r:
        first_in = next(iter(r.frames())).rgb8.astype(np.float32)
    with VideoReader(out) as r:
        first_out = next(iter(r.frames())).rgb8.astype(np.float32)
    # The style is warm (red high, blue low): the output's red/blue balance moves that way.
    ratio_in = first_in[..., 0].mean() / first_in[..., 2].mean()
    ratio_out = first_out[..., 0].mean() / first_out[..., 2].mean()
    assert ratio_out > ratio_in * 1.3


@pytest.mark.parametrize("interp", ["transform", "warp"])
def test_every_keyframe_mode_and_both_interpolations(tmp_path, style, interp):
    src = tmp_path / "in.mkv"
    write_test_clip(src, width=64, height=48, frames=11, fps=10.0)
    out = tmp_path / "out.mkv"
    report = tmp_path / "r.json"
    assert run("stylize", src, "--style", style, "-o", out, "--keyframes", "every:5", "--interp", interp,
               "--report", report, "-q") == 0
    assert json.loads(report.read_text())["key_frames"] == [0, 5, 10]
    assert probe(out)["frames"] == 11


def test_memory_is_bounded_by_the_key_gap_not_the_video_length(tmp_path, style):
    src = tmp_path / "long.mp4"
    write_test_clip(src, width=64, height=48, frames=120, fps=30.0)
    report = tmp_path / "r.json"
    assert run("stylize", src, "--style", style, "-o", tmp_path / "out.mp4", "--max-gap", "8",
               "--report", report, "-q") == 0
    rep = json.loads(report.read_text())
    # One gap waits for its key while the next one decodes: two gaps at most.
    assert rep["frames"] == 120 and 1 <= rep["max_buffered_frames"] <= 2 * 8
    gaps = np.diff(rep["key_frames"])
    assert gaps.max() <= 8


def test_odd_frame_size_is_kept(tmp_path, style):
    src = tmp_path / "odd.mp4"
    write_test_clip(src, width=33, height=25, frames=6, fps=10.0)
    out = tmp_path / "out.mp4"
    assert run("stylize", src, "--style", style, "-o", out, "-q") == 0
    assert probe(out)["size"] == (33, 25) and probe(out)["frames"] == 6


def test_rotated_video_comes_out_upright(tmp_path, style):
    src = tmp_path / "rot.mp4"
    write_test_clip(src, width=64, height=48, frames=6, fps=10.0, rotation=90)
    out = tmp_path / "out.mp4"
    assert run("stylize", src, "--style", style, "-o", out, "-q") == 0
    with VideoReader(src) as r:
        w, h = r.info.width, r.info.height
    assert (w, h) == (48, 64)
    assert probe(out)["size"] == (48, 64)


def test_scene_cut_gets_keys_on_both_sides(tmp_path, style):
    src = tmp_path / "cut.mp4"
    write_test_clip(src, width=96, height=64, frames=16, fps=10.0, scene_cut_at=9)
    out, report = tmp_path / "out.mp4", tmp_path / "r.json"
    assert run("stylize", src, "--style", style, "-o", out, "--report", report, "-q") == 0
    keys = json.loads(report.read_text())["key_frames"]
    assert 8 in keys and 9 in keys


def test_single_image(tmp_path, style):
    src = tmp_path / "photo.png"
    cv2.imwrite(str(src), cv2.cvtColor(to8(texture(61, 87, seed=2)), cv2.COLOR_RGB2BGR))
    out = tmp_path / "styled.jpg"
    assert run("stylize", src, "--style", style, "-o", out, "-q") == 0
    assert cv2.imread(str(out)).shape == (61, 87, 3)


@pytest.mark.parametrize("kind", ["grey", "rgba"])
def test_grey_and_rgba_styles(tmp_path, kind):
    style = tmp_path / f"{kind}.png"
    img = to8(texture(40, 50, seed=3))
    if kind == "grey":
        cv2.imwrite(str(style), cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))
    else:
        cv2.imwrite(str(style), np.dstack([img, np.full(img.shape[:2], 200, np.uint8)]))
    src = tmp_path / "in.mp4"
    write_test_clip(src, width=48, height=32, frames=4, fps=10.0)
    assert run("stylize", src, "--style", style, "-o", tmp_path / "out.mp4", "-q") == 0


def test_models_lists_the_classic_model(capsys):
    assert run("models") == 0
    assert "classic" in capsys.readouterr().out


# --- bad input: one clear line, non-zero exit, no output file ----------------------------------

def _bad(tmp_path, capsys, *args) -> str:
    out = tmp_path / "out.mp4"
    code = run("stylize", *args, "-o", out, "-q") if "-o" not in args else run("stylize", *args, "-q")
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") or "tmp" in p.name]
    return err


def test_missing_input(tmp_path, style, capsys):
    assert "nope.mp4" in _bad(tmp_path, capsys, tmp_path / "nope.mp4", "--style", style)


def test_bad_inputs_each_get_a_clear_error(tmp_path, style, capsys):
    good = tmp_path / "good.mp4"
    write_test_clip(good, width=64, height=48, frames=10, fps=10.0)
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    truncated = tmp_path / "trunc.mp4"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    notimage = tmp_path / "style.png"
    notimage.write_text("not an image")
    cases = [
        (tmp_path / "missing.mp4", "--style", style),
        (text, "--style", style),
        (empty, "--style", style),
        (truncated, "--style", style),
        (good, "--style", notimage),
        (good, "--style", tmp_path / "nostyle.png"),
        (good, "--style", style, "--model", "nonexistent"),
        (good, "--style", style, "--map-scale", "0"),
        (good, "--style", style, "--strength", "1.5"),
    ]
    for case in cases:
        _bad(tmp_path, capsys, *case)


def test_output_folder_missing_and_output_equal_to_input(tmp_path, style, capsys):
    src = tmp_path / "in.mp4"
    write_test_clip(src, width=64, height=48, frames=4, fps=10.0)
    assert run("stylize", src, "--style", style, "-o", tmp_path / "no" / "such" / "out.mp4", "-q") != 0
    assert "error:" in capsys.readouterr().err
    before = src.read_bytes()
    assert run("stylize", src, "--style", style, "-o", src, "-q") != 0
    assert "error:" in capsys.readouterr().err
    assert src.read_bytes() == before


def test_zero_frame_video(tmp_path, style, capsys):
    src = tmp_path / "audio_only.mp4"
    with av.open(str(src), "w") as c:  # a valid container holding no video frames at all
        s = c.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    _bad(tmp_path, capsys, src, "--style", style)


def test_phone_path_with_remote_edge_never_imports_torch():
    code = ("import sys; import mvstylizer.mobile.pipeline, mvstylizer.mobile.http_edge; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_train_command_writes_weights_and_resumes(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        cv2.imwrite(str(photos / f"p{i}.png"), to8(texture(96, 128, seed=20 + i)))
    out, ckpt = tmp_path / "dncm.pt", tmp_path / "dncm.ckpt"
    args = ["train", "dncm", "--data", photos, "--batch", "2", "--size", "64", "--out", out,
            "--checkpoint", ckpt, "--checkpoint-every", "1", "-q"]
    assert run(*args, "--steps", "2") == 0
    assert out.is_file() and ckpt.is_file()
    out.unlink()
    assert run(*args, "--steps", "2", "--resume") == 0  # already at step 2: rewrites the weights only
    assert out.is_file()
    # The learning-rate schedule depends on the total steps, so resuming with other settings is refused.
    assert run(*args, "--steps", "5", "--resume") == 2
    # A mistyped --checkpoint with --resume is refused, not taken for a fresh start.
    missing = [a if a != ckpt else tmp_path / "typo.ckpt" for a in args]
    assert run(*missing, "--steps", "2", "--resume") == 2 and not (tmp_path / "typo.ckpt").exists()


def test_buffered_frames_stay_within_the_memory_budget(tmp_path, style):
    # 64x48 RGB = 9.2 kB a frame: a 0.05 MB budget holds 5 of them, so keys come at most 5 apart
    # although --max-gap allows 30 (what keeps 4K under 2 GiB).
    from mvstylizer.mobile.edge_link import EmbeddedEdge
    from mvstylizer.mobile.pipeline import StylizeConfig, VideoPipeline

    src = tmp_path / "long.mp4"
    write_test_clip(src, width=64, height=48, frames=60, fps=30.0)
    rep = VideoPipeline(EmbeddedEdge(), StylizeConfig(model="reinhard", max_buffer_mb=0.05, progress=False)).run(
        src, style, tmp_path / "out.mp4")
    assert rep.frames == 60 and rep.max_buffered_frames <= 5
    assert np.diff(rep.key_frames).max() <= 5


def test_a_run_asks_the_edge_for_its_model_list_once(tmp_path, style):
    # A remote edge answers GET /v1/models over the network: the model's name and whether it varies
    # over the picture are read from one answer per run, not asked again at each use.
    from mvstylizer.mobile.edge_link import EmbeddedEdge
    from mvstylizer.mobile.pipeline import StylizeConfig, VideoPipeline

    edge = EmbeddedEdge()
    calls = []
    real = edge.models
    edge.models = lambda: calls.append(1) or real()
    src = tmp_path / "clip.mp4"
    write_test_clip(src, width=64, height=48, frames=8, fps=30.0)
    pipeline = VideoPipeline(edge, StylizeConfig(model="reinhard", progress=False))
    for i in range(2):
        assert pipeline.run(src, style, tmp_path / f"out{i}.mp4").model.startswith("reinhard")
    assert len(calls) == 2
