"""The Python API (mvstylizer/__init__.py, api.py) and the examples of docs/API.md."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mvstylizer
from helpers import texture
from mvstylizer.bench.synthetic import write_test_clip

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def style(tmp_path: Path) -> Path:
    import cv2

    path = tmp_path / "style.png"
    img = np.zeros((96, 128, 3), np.uint8)
    img[:48] = (30, 60, 200)
    img[48:] = (200, 120, 40)
    cv2.imwrite(str(path), img)
    return path


def test_public_names_and_no_heavy_import_at_import_time():
    assert set(mvstylizer.__all__) >= {"stylize", "VideoStylizer", "export_lut", "list_models", "StylizeReport",
                                       "UserError", "ModelInfo"}
    for name in mvstylizer.__all__:
        assert getattr(mvstylizer, name) is not None
    code = "import mvstylizer, sys; assert not any(m in sys.modules for m in ('torch', 'flwr', 'ray', 'cv2')), sys.modules.keys()"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (ROOT / "src" / "mvstylizer" / "py.typed").is_file()


def test_stylize_a_file_refuses_to_overwrite_and_reports_model_and_keys(tmp_path, style):
    src, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    write_test_clip(src, width=96, height=64, frames=12, fps=12.0)
    report = mvstylizer.stylize(src, style, out, model="reinhard")
    assert out.is_file() and report.frames == 12
    assert report.model == "reinhard:numpy"
    assert sum(report.key_reasons.values()) == len(report.keys) == len(report.key_frames)
    assert report.keys[0] == {"index": 0, "reason": "first"} and report.keys[-1]["index"] == 11
    before = out.read_bytes()
    with pytest.raises(mvstylizer.UserError, match="already exists"):
        mvstylizer.stylize(src, style, out, model="reinhard")
    assert out.read_bytes() == before
    mvstylizer.stylize(src, style, out, model="reinhard", overwrite=True, strength=0.3)


def test_stylize_frames_matches_dtype_and_order(style):
    frames = [(texture(48, 64, seed=i) * 255).astype(np.uint8) for i in range(7)]
    with mvstylizer.VideoStylizer(model="reinhard", max_gap=3) as vs:
        report = mvstylizer.StylizeReport("<frames>", "<frames>", "reinhard", "transform", 0, 0, 0.0)
        out = list(vs.stylize_frames(iter(frames), style, report=report))
        assert len(out) == 7 and all(o.shape == (48, 64, 3) and o.dtype == np.uint8 for o in out)
        assert len({id(o) for o in out}) == 7  # fresh arrays, not one reused buffer
        assert report.frames == 7 and report.keys[0]["index"] == 0
        floats = list(vs.stylize_frames([f.astype(np.float32) / 255 for f in frames[:3]], style))
        assert floats[0].dtype == np.float32 and 0.0 <= floats[0].min() and floats[0].max() <= 1.0
        np.testing.assert_allclose(floats[0], out[0] / 255.0, atol=2 / 255)
        # each frame comes back in its own type, whatever the first frame's was
        mixed = list(vs.stylize_frames([frames[0], frames[1].astype(np.float32) / 255, frames[2]], style))
        assert [o.dtype for o in mixed] == [np.uint8, np.float32, np.uint8]
        np.testing.assert_allclose(mixed[1], out[1] / 255.0, atol=2 / 255)
        with pytest.raises(mvstylizer.UserError, match="same size"):
            list(vs.stylize_frames([frames[0], frames[1][:40]], style))
        with pytest.raises(mvstylizer.UserError, match="HxWx3"):
            list(vs.stylize_frames([np.zeros((4, 4), np.uint8)], style))


def test_options_are_checked_with_clear_errors():
    for kwargs in ({"strength": 2.0}, {"key_size": 4}, {"keyframes": "sometimes"}, {"max_gap": 0},
                   {"interp": "magic"}):
        with pytest.raises(mvstylizer.UserError):
            mvstylizer.VideoStylizer(**kwargs)


def test_max_gap_bounds_a_fixed_stride_only_when_given():
    def stride(**kwargs) -> tuple[int, int]:
        cfg = mvstylizer.VideoStylizer(model="reinhard", **kwargs).config.keyframes
        return cfg.every, cfg.max_gap

    assert stride(keyframes="every:50") == (50, 30)
    assert stride(keyframes="every:50", max_gap=12) == (12, 12)
    assert stride(keyframes="every:5", max_gap=12) == (5, 12)
    assert stride(max_gap=12) == (10, 12)


def test_list_models_default_first():
    models = mvstylizer.list_models()
    assert models[0].default and models[0].name == "regions"
    assert {m.name for m in models if m.experimental} == {"wct2", "mk", "reinhard"}


def test_api_md_examples_run(tmp_path):
    text = (ROOT / "docs" / "API.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 3
    for block in blocks:
        result = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "bikes_coffee.mp4").is_file() and (tmp_path / "coffee.cube").is_file()


class Stop(Exception):
    """What the on_frame hooks below raise: a caller cancelling a run."""


def test_on_frame_counts_written_frames_and_its_exception_leaves_no_file(tmp_path, style):
    src = tmp_path / "in.mp4"
    write_test_clip(src, width=96, height=64, frames=12, fps=12.0)
    image = tmp_path / "in.png"
    image.write_bytes(style.read_bytes())
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    calls: list[tuple[int, int | None]] = []

    def record(written: int, total: int | None) -> None:
        calls.append((written, total))

    def stop_at_5(written: int, total: int | None) -> None:
        if written == 5:
            raise Stop

    def stop(written: int, total: int | None) -> None:
        raise Stop

    with mvstylizer.VideoStylizer(model="reinhard", max_gap=4) as vs:
        report = vs.stylize_file(src, style, out_dir / "out.mp4", on_frame=record)
        assert calls == [(n, 12) for n in range(1, 13)] and report.frames == 12
        calls.clear()
        vs.stylize_file(image, style, out_dir / "out.png", on_frame=record)
        assert calls == [(1, 1)]
        before = {p.name: p.read_bytes() for p in out_dir.iterdir()}
        # A hook that raises: an existing output stays as it was, a new one is never created, and no
        # temporary file (hidden, beside the output) is left either.
        for target, hook in ((out_dir / "out.mp4", stop_at_5), (out_dir / "new.mp4", stop_at_5),
                             (out_dir / "out.png", stop), (out_dir / "new.png", stop)):
            with pytest.raises(Stop):
                vs.stylize_file(src if target.suffix == ".mp4" else image, style, target, overwrite=True,
                                on_frame=hook)
        assert {p.name: p.read_bytes() for p in out_dir.iterdir()} == before
    with pytest.raises(Stop):
        mvstylizer.stylize(src, style, out_dir / "one_call.mp4", model="reinhard", on_frame=stop)
    assert sorted(p.name for p in out_dir.iterdir()) == ["out.mp4", "out.png"]


def test_a_stride_longer_than_the_frame_budget_is_shortened_not_held(style, caplog):
    """every:N holds the N frames between two keys: past the budget it would grow with the video."""
    from dataclasses import replace

    frames = [(texture(48, 64, seed=i) * 255).astype(np.uint8) for i in range(40)]
    budget_frames = 8
    with mvstylizer.VideoStylizer(model="reinhard", keyframes="every:30") as vs:
        vs._pipeline.config = replace(vs._pipeline.config, max_buffer_mb=budget_frames * frames[0].nbytes / 1e6)
        report = mvstylizer.StylizeReport("<frames>", "<frames>", "reinhard", "transform", 0, 0, 0.0)
        with caplog.at_level("WARNING", logger="mvstylizer"):
            out = list(vs.stylize_frames(frames, style, report=report))
    assert len(out) == 40 and report.max_buffered_frames <= 2 * budget_frames
    assert "every:30 would hold 30 frames" in caplog.text


def test_bad_numbers_and_files_are_user_errors(tmp_path, style):
    frame = np.full((24, 32, 3), np.nan, np.float32)
    with mvstylizer.VideoStylizer(model="reinhard") as vs:
        (out,) = vs.stylize_frames([frame], style)  # NaN is black, as read_image takes it
    assert np.isfinite(out).all()
    # 0-255 values given as float came out a near-white picture without a word; a little outside [0, 1]
    # (resampling overshoot) is clipped
    with mvstylizer.VideoStylizer(model="reinhard") as vs:
        with pytest.raises(mvstylizer.UserError, match=r"frame 0 holds values from 0 to 200: .*divide"):
            list(vs.stylize_frames([np.full((24, 32, 3), 200.0, np.float32) * (np.arange(32) > 0)[:, None]], style))
        with pytest.raises(mvstylizer.UserError, match="style holds values"):
            list(vs.stylize_frames([frame], np.full((24, 32, 3), 255.0)))
        (out,) = vs.stylize_frames([np.full((24, 32, 3), 1.2, np.float32)], style)
    assert out.dtype == np.float32
    for kwargs in ({"max_gap": float("nan")}, {"max_gap": 2.5}, {"keyframes": "every:3", "max_gap": True}):
        with pytest.raises(mvstylizer.UserError):
            mvstylizer.VideoStylizer(**kwargs)
    for size in (4.5, "5", True):
        with pytest.raises(mvstylizer.UserError, match="whole number"):
            mvstylizer.export_lut(style, tmp_path / "a.cube", size=size)
    report = mvstylizer.StylizeReport("<frames>", "<frames>", "reinhard", "transform", 0, 0, 0.0)
    with pytest.raises(mvstylizer.UserError, match="cannot write the report"):
        report.write_json(tmp_path / "missing" / "r.json")
    for bad in ("", None):
        with pytest.raises(mvstylizer.UserError, match="needs a file name"):
            report.write_json(bad)
    photo = tmp_path / "photo.png"
    photo.write_bytes(style.read_bytes())
    own_style = tmp_path / "s.png"
    own_style.write_bytes(style.read_bytes())
    with pytest.raises(mvstylizer.UserError, match="is the style photo"):
        mvstylizer.stylize(photo, own_style, own_style, model="reinhard", overwrite=True)
    assert own_style.read_bytes() == style.read_bytes()


def test_a_source_that_refills_one_buffer_gets_the_same_video(style):
    frames = [(texture(48, 64, seed=i) * 255).astype(np.uint8) for i in range(12)]

    def refilled():
        buf = np.empty_like(frames[0])
        for f in frames:
            buf[...] = f
            yield buf

    with mvstylizer.VideoStylizer(model="reinhard") as vs:
        copies = list(vs.stylize_frames(frames, style))
        reused = list(vs.stylize_frames(refilled(), style))
    assert all(np.array_equal(a, b) for a, b in zip(copies, reused, strict=True))


def test_strength_0_leaves_a_frame_exposed_differently_from_its_keys_as_it_is(style):
    base = (texture(48, 64, seed=3) * 200).astype(np.uint8)
    frames = [base] * 9 + [np.clip(base.astype(np.float32) * 1.08, 0, 255).astype(np.uint8)] + [base] * 6
    with mvstylizer.VideoStylizer(model="reinhard", strength=0.0) as vs:
        out = list(vs.stylize_frames(frames, style))
    assert max(np.abs(o.astype(int) - f).mean() for o, f in zip(out, frames, strict=True)) < 1.0


def test_half_strength_is_half_way_between_the_frame_and_its_full_style(tmp_path):
    """Each key's transforms were blended with the identity: where a look mixes channels (a cyan and
    magenta style), half strength came out more saturated than full, not between the two ends."""
    import cv2

    style = np.zeros((96, 128, 3), np.uint8)
    style[:, :64], style[:, 64:] = (40, 230, 240), (250, 30, 220)  # RGB: cyan, magenta
    style = np.clip(style.astype(np.float32) + np.random.default_rng(1).normal(0, 12, style.shape), 0, 255)
    cv2.imwrite(str(tmp_path / "neon.png"), cv2.cvtColor(style.astype(np.uint8), cv2.COLOR_RGB2BGR))
    frames = [(texture(48, 64, seed=5) * 220 + 20).astype(np.uint8)] * 6
    outs = {}
    for s in (0.0, 0.5, 1.0):
        with mvstylizer.VideoStylizer(model="mk", strength=s) as vs:
            outs[s] = np.stack(list(vs.stylize_frames(frames, tmp_path / "neon.png"))).astype(np.float32)
    assert np.abs(outs[0.0] - np.stack(frames)).max() == 0
    mid = (outs[0.0] + outs[1.0]) / 2
    assert np.abs(outs[0.5] - mid).max() <= 0.5


def _remote_edge_in_process(monkeypatch) -> None:
    """``VideoStylizer(edge="http://edge.test")`` talks HTTP to an in-process edge service (no socket)."""
    import httpx

    from mvstylizer.edge.service import EdgeService
    from mvstylizer.mobile import http_edge
    from mvstylizer.wire import FRAMES_MEDIA_TYPE, Encoding, decode_frame, encode_frame, pack_frames, unpack_frames

    service = EdgeService()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"models": service.models()})
        if request.url.path == "/v1/styles":
            return httpx.Response(200, json={"style_id": service.register_style(request.content)})
        q = request.url.params
        out = service.stylize(q["style_id"], q["model"], [decode_frame(b) for b in unpack_frames(request.content)])
        enc = Encoding(q["encoding"], int(q["quality"]))
        return httpx.Response(200, content=pack_frames([encode_frame(f, enc) for f in out]),
                              headers={"Content-Type": FRAMES_MEDIA_TYPE})

    real = http_edge.HttpEdge
    monkeypatch.setattr(http_edge, "HttpEdge",
                        lambda url, **kw: real(url, transport=httpx.MockTransport(handler), **kw))


@pytest.mark.parametrize("edge", [None, "http://edge.test"], ids=["embedded", "remote"])
def test_a_stylizer_works_again_after_close_and_in_a_second_with_block(monkeypatch, style, edge):
    _remote_edge_in_process(monkeypatch)
    frames = [(texture(32, 48, seed=i) * 255).astype(np.uint8) for i in range(3)]
    vs = mvstylizer.VideoStylizer(model="reinhard", edge=edge)
    with vs:
        first = list(vs.stylize_frames(frames, style))
    after_close = list(vs.stylize_frames(frames, style))
    vs.close()
    with vs:
        second_block = list(vs.stylize_frames(frames, style))
    for out in (after_close, second_block):
        assert all(np.array_equal(a, b) for a, b in zip(first, out, strict=True))


@pytest.mark.parametrize("kwargs, message", [
    ({"key_size": "512"}, "key_size must be a whole number"),
    ({"key_size": float("nan")}, "key_size must be a whole number"),
    ({"key_size": float("inf")}, "key_size must be a whole number"),
    ({"key_size": 512.0}, "key_size must be a whole number"),
    ({"key_size": True}, "key_size must be a whole number"),
    ({"strength": "0.5"}, "strength must be a number"),
    ({"strength": float("inf")}, "strength must be a number"),
    ({"strength": True}, "strength must be a number"),
    ({"crf": "18"}, "crf must be a whole number"),
    ({"crf": None}, "crf must be a whole number"),
    ({"crf": 18.5}, "crf must be a whole number"),
    ({"max_gap": "5"}, "max_gap must be a whole number"),
    ({"keyframes": None}, "keyframes must be a string"),
    ({"keyframes": 5}, "keyframes must be a string"),
    ({"keyframes": "every:²"}, "keyframes: expected 'auto' or 'every:N'"),
    ({"keyframes": "every:٣"}, "keyframes: expected 'auto' or 'every:N'"),
    ({"preset": "bogus"}, "preset must be one of ultrafast, "),
    ({"preset": None}, "preset must be a string"),
    ({"interp": 5}, "interp must be a string"),
    ({"model": None}, "model must be a string"),
    ({"model": 5}, "model must be a string"),
    ({"model": ""}, "model must be a model name"),
    ({"model": "nope"}, "unknown model 'nope'"),
    ({"edge": 5}, "edge must be a URL string"),
    ({"edge": "http://127.0.0.1:9", "token": 5}, "token must be a string"),
])
def test_options_of_the_wrong_type_are_user_errors_at_construction(kwargs, message):
    with pytest.raises(mvstylizer.UserError, match=re.escape(message)):
        mvstylizer.VideoStylizer(**kwargs)


def test_numpy_numbers_are_taken_as_numbers():
    cfg = mvstylizer.VideoStylizer(model="reinhard", key_size=np.int64(64), strength=np.float32(0.5),
                                   crf=np.int32(20), max_gap=np.int16(5)).config
    assert (cfg.key_size, cfg.interp.strength, cfg.crf, cfg.keyframes.max_gap) == (64, 0.5, 20, 5)
    assert all(type(v) in (int, float) for v in (cfg.key_size, cfg.interp.strength, cfg.crf, cfg.keyframes.max_gap))


def test_stylize_frames_and_export_lut_check_their_arguments(tmp_path, style):
    frames = [np.zeros((24, 32, 3), np.uint8)] * 2
    with mvstylizer.VideoStylizer(model="reinhard") as vs:
        for bad_style in (None, 5, [1, 2], ""):
            with pytest.raises(mvstylizer.UserError, match="style must be an HxWx3 array or a file path"):
                vs.stylize_frames(frames, bad_style)
        for bad_frames in (None, 5, "in.mp4"):
            with pytest.raises(mvstylizer.UserError, match="frames must be an iterable"):
                vs.stylize_frames(bad_frames, style)
        with pytest.raises(mvstylizer.UserError, match="report must be a StylizeReport"):
            vs.stylize_frames(frames, style, report={})
        with pytest.raises(mvstylizer.UserError, match="on_frame must be a function"):
            vs.stylize_file(tmp_path / "in.mp4", style, tmp_path / "out.mp4", on_frame=5)
        with pytest.raises(mvstylizer.UserError, match="output must be a file path"):
            vs.stylize_file(tmp_path / "in.mp4", style, None)
    with pytest.raises(mvstylizer.UserError, match="unknown option 'strenght'"):
        mvstylizer.stylize(tmp_path / "in.mp4", style, tmp_path / "out.mp4", strenght=0.5)
    for kwargs, message in (({"model": None}, "model must be a model name"), ({"style": None}, "style must be"),
                            ({"output": None}, "output must be"), ({"content": 5}, "content must be")):
        args = {"style": style, "output": tmp_path / "a.cube", "size": 3, **kwargs}
        with pytest.raises(mvstylizer.UserError, match=message):
            mvstylizer.export_lut(args.pop("style"), args.pop("output"), **args)
    assert not (tmp_path / "a.cube").exists()
    # A photo named .cube given as the output too: -y would have replaced it with the LUT.
    photo = tmp_path / "photo.cube"
    photo.write_bytes(Path(style).read_bytes())
    for kwargs, what in (({"style": photo}, "the style photo"), ({"style": style, "content": photo}, "the content image")):
        with pytest.raises(mvstylizer.UserError, match=f"is {what}"):
            mvstylizer.export_lut(kwargs.pop("style"), photo, size=3, overwrite=True, **kwargs)
        assert photo.read_bytes() == Path(style).read_bytes()


def test_a_file_another_run_writes_meanwhile_is_not_replaced_without_overwrite(tmp_path, style, monkeypatch):
    src, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    write_test_clip(src, width=96, height=64, frames=6, fps=12.0)

    def other_run_finishes_first(written: int, total: int | None) -> None:
        if written == 1:
            out.write_bytes(b"the other run's video")

    with pytest.raises(mvstylizer.UserError, match="appeared while this ran"):
        mvstylizer.stylize(src, style, out, model="reinhard", on_frame=other_run_finishes_first)
    assert out.read_bytes() == b"the other run's video"

    import mvstylizer.models.dncm as dncm

    lut, export = tmp_path / "look.cube", dncm.export_cube

    def export_while_another_run_writes(*args, **kwargs):
        lut.write_bytes(b"another LUT")
        return export(*args, **kwargs)

    monkeypatch.setattr(dncm, "export_cube", export_while_another_run_writes)
    with pytest.raises(mvstylizer.UserError, match="appeared while this ran"):
        mvstylizer.export_lut(style, lut, size=4)
    assert lut.read_bytes() == b"another LUT"
