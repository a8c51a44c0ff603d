"""The learned colour-mapping model (dncm): shipped weights, evidence it learned, globality,
exact resume, ONNX parity, and the .cube export checked through FFmpeg's own lut3d filter."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import texture, to8
from mvstylizer.errors import UserError
from mvstylizer.metrics import psnr
from mvstylizer.models.colour_filters import random_filter
from mvstylizer.models.dncm import (DNCMOnnxStylizer, DNCMStylizer, cube_grid, default_weights, export_cube,
                                    parse_cube)

torch = pytest.importorskip("torch")
from mvstylizer.models.dncm.export import export_onnx  # noqa: E402 - needs torch


pytestmark = pytest.mark.media  # real photos that ship in scikit-image
pytest.importorskip("skimage", reason="the real photos ship in scikit-image: pip install scikit-image")


@pytest.fixture(scope="module")
def model() -> DNCMStylizer:
    assert default_weights().is_file(), "the trained dncm weights must ship with the package"
    return DNCMStylizer()


def _photo(name: str, width: int) -> np.ndarray:
    from skimage import data

    img = getattr(data, name)()
    img = img[0] if isinstance(img, tuple) else img
    h, w = img.shape[:2]
    img = cv2.resize(img[..., :3], (width, round(h * width / w)), interpolation=cv2.INTER_AREA)
    return img.astype(np.float32) / 255.0


@pytest.fixture(scope="module")
def content() -> np.ndarray:
    return _photo("coffee", 240)


@pytest.fixture(scope="module")
def style() -> np.ndarray:
    return random_filter(np.random.default_rng(7), strength=1.2)(_photo("astronaut", 200))


# Summary of the shipped weights' output on a fixed input; update together with the weights.
_EXPECTED_MEAN = [0.62224, 0.44334, 0.35481]
_EXPECTED_STD = [0.31530, 0.30567, 0.28550]
_EXPECTED_PIXELS = [[0.68858, 0.21426, 0.12134], [0.0, 0.0, 0.02102], [0.65844, 0.47175, 0.33052]]


def test_shipped_weights_give_a_stable_output(model, content, style):
    meta = model.meta
    assert meta["model"] == "dncm" and meta["wall_time_s"] > 0 and meta["final_loss"] is not None
    out = model.stylize(content, model.prepare_style(style))
    assert out.shape == content.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    got_mean = out.reshape(-1, 3).mean(0)
    got_std = out.reshape(-1, 3).std(0)
    got_px = out[[60, 120, 150], [60, 40, 200]]
    np.testing.assert_allclose(got_mean, _EXPECTED_MEAN, atol=2e-3)
    np.testing.assert_allclose(got_std, _EXPECTED_STD, atol=2e-3)
    np.testing.assert_allclose(got_px, _EXPECTED_PIXELS, atol=4e-3)


# Measured with the shipped weights on these held-out filters and a photo the model never saw
# (skimage's stereo_motorcycle is not in the training data): 37.3 dB mean, against 29.5 dB for
# leaving the photo as it is. Thresholds are those minus a margin.
_MIN_PSNR = 36.0
_MIN_GAIN_OVER_IDENTITY = 6.0


def test_transferring_a_filtered_copy_reproduces_the_filter(model):
    img = _photo("stereo_motorcycle", 256)
    rng = np.random.default_rng(2024)  # not a training seed stream
    got, base = [], []
    for _ in range(8):
        f = random_filter(rng)
        target = f(img)
        out = model.stylize(img, model.prepare_style(target))
        got.append(psnr(out, target))
        base.append(psnr(img, target))
    assert np.mean(got) >= _MIN_PSNR, (got, base)
    assert np.mean(got) - np.mean(base) >= _MIN_GAIN_OVER_IDENTITY, (got, base)


def test_mapping_is_global_and_resolution_free(model, content, style):
    st = model.prepare_style(style)
    img = content.copy()
    img[100:140, 150:230] = img[10:50, 20:100]  # the same colours in two places
    out = model.stylize(img, st)
    np.testing.assert_array_equal(out[100:140, 150:230], out[10:50, 20:100])
    # The torch path is a pure function of each pixel's colour: shuffle the colours, push them
    # through the numpy reference map with the same content code, get the same colours back.
    perm = np.random.default_rng(0).permutation(img.shape[0] * img.shape[1])
    flat = img.reshape(-1, 3)[perm]
    ref = model.map_colours(flat, model.content_matrix(img), st)
    np.testing.assert_allclose(ref, out.reshape(-1, 3)[perm], atol=1e-5)
    # Any size works, and a 2x nearest-neighbour enlargement (same colours, same thumbnail) gives
    # exactly the enlarged output: nothing depends on the pixel count.
    small = cv2.resize(content, (128, 128), interpolation=cv2.INTER_AREA)
    big = np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)
    out_small = model.stylize(small, st)
    np.testing.assert_allclose(model.stylize(big, st), np.repeat(np.repeat(out_small, 2, 0), 2, 1), atol=1e-4)
    for shape in [(1, 1, 3), (3, 5, 3), (17, 1, 3)]:
        assert model.stylize(np.full(shape, 0.4, np.float32), st).shape == shape


def test_exact_resume_matches_straight_training(tmp_path):
    from mvstylizer.models.dncm_train import train
    from mvstylizer.models.training import TrainConfig
    from mvstylizer.video.image import write_image

    data = tmp_path / "photos"
    data.mkdir()
    for i in range(2):
        write_image(data / f"p{i}.png", texture(72, 88, seed=i))
    arch = {"thumb": 32, "stem": 8, "widths": [8, 16], "hidden": 16}

    def cfg(name: str, **kw) -> TrainConfig:
        return TrainConfig(data=[str(data)], steps=4, batch=2, size=32, lr=1e-3, seed=3, checkpoint_every=2,
                           checkpoint=tmp_path / f"{name}.ckpt", out=tmp_path / f"{name}.pt", progress=False, **kw)

    straight = train(cfg("a"), arch=arch, val_every=0)
    train(cfg("b"), arch=arch, val_every=0, stop_after=2)  # "killed" after the step-2 checkpoint
    assert not (tmp_path / "b.pt").exists()
    resumed = train(cfg("b", resume=True), arch=arch, val_every=0)
    sa = torch.load(straight, weights_only=False)["state_dict"]
    sb = torch.load(resumed, weights_only=False)["state_dict"]
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    ca = torch.load(tmp_path / "a.ckpt", weights_only=False)
    cb = torch.load(tmp_path / "b.ckpt", weights_only=False)
    assert ca["step"] == cb["step"] == 4
    for k in ca["model"]:
        assert torch.equal(ca["model"][k], cb["model"][k]), k


def test_onnx_path_matches_torch(model, content, style, tmp_path):
    path = export_onnx(tmp_path / "dncm.onnx")
    ort_model = DNCMOnnxStylizer(onnx_path=path)
    got = ort_model.stylize(content, ort_model.prepare_style(style))
    want = model.stylize(content, model.prepare_style(style))
    assert np.abs(got - want).max() < 2e-4
    np.testing.assert_allclose(ort_model.content_matrix(None), model.content_matrix(None), atol=1e-5)


def _ffmpeg_lut3d(rgb8: np.ndarray, cube: Path) -> np.ndarray:
    import av

    h, w = rgb8.shape[:2]
    graph = av.filter.Graph()
    src = graph.add_buffer(width=w, height=h, format="rgb24", time_base=Fraction(1, 25))
    lut = graph.add("lut3d", file=str(cube), interp="tetrahedral")
    sink = graph.add("buffersink")
    src.link_to(lut)
    lut.link_to(sink)
    graph.configure()
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb8), format="rgb24")
    frame.pts = 0
    graph.push(frame)
    out = graph.pull()
    assert out.format.name == "rgb24"
    return out.to_ndarray()


def test_cube_export_matches_the_model_through_ffmpeg(model, content, style, tmp_path):
    content8 = to8(content)
    c = content8.astype(np.float32) / 255.0
    cube = export_cube(style, tmp_path / "look.cube", content=c, model=model)
    lines = cube.read_text().splitlines()
    header = [ln.split()[0] for ln in lines if ln and not ln[0].isdigit() and not ln.startswith("-")]
    assert header[0] == "TITLE" and "LUT_3D_SIZE" in header and "DOMAIN_MIN" in header and "DOMAIN_MAX" in header
    size, table = parse_cube(cube)
    assert size == 33 and table.shape == (33**3, 3)
    st = model.prepare_style(style)
    m_n = model.content_matrix(c)
    # Red varies fastest: row 1 is (1/32, 0, 0), row 33 is (0, 1/32, 0), row 33^2 is (0, 0, 1/32).
    for row, colour in [(1, (1, 0, 0)), (33, (0, 1, 0)), (33 * 33, (0, 0, 1))]:
        want = model.map_colours(np.array([colour], np.float32) / 32, m_n, st)[0]
        np.testing.assert_allclose(table[row], want, atol=2e-6)
    np.testing.assert_allclose(table, model.map_colours(cube_grid(33), m_n, st), atol=2e-6)

    got = _ffmpeg_lut3d(content8, cube).astype(np.float32)
    want = model.stylize(c, st) * 255.0
    err = np.abs(got - want)
    # 33^3 tetrahedral interpolation of a smooth map plus FFmpeg's rounding to 8 bits.
    assert err.mean() < 1.5, err.mean()
    assert np.percentile(err, 99) < 4.0, np.percentile(err, 99)

    neutral = export_cube(style, tmp_path / "neutral.cube", model=model)
    assert "neutral code" in neutral.read_text()
    assert parse_cube(neutral)[1].shape == (33**3, 3)


def test_cube_for_a_letterboxed_frame_is_the_cube_for_its_picture(model, content, style, tmp_path, caplog):
    # stylize styles the picture inside a frame's bars; the bars once weighed in the LUT's content
    # code too (30-38 levels off inside the picture, black mapped to a dark blue-grey).
    picture = to8(content).astype(np.float32) / 255.0
    h, w = picture.shape[:2]
    boxed = np.zeros((h + 80, w + 60, 3), np.float32)
    boxed[40 : 40 + h, 30 : 30 + w] = picture
    want = parse_cube(export_cube(style, tmp_path / "picture.cube", content=picture, model=model, size=9))[1]
    got = export_cube(style, tmp_path / "boxed.cube", content=boxed, model=model, size=9)
    np.testing.assert_allclose(parse_cube(got)[1], want, atol=2e-6)
    assert "inside its black bars" in got.read_text()

    # A black frame (a fade's end) has no picture: stylize leaves it black, the LUT takes the neutral code.
    neutral = parse_cube(export_cube(style, tmp_path / "neutral.cube", model=model, size=9))[1]
    with caplog.at_level(logging.WARNING, logger="mvstylizer"):
        black = export_cube(style, tmp_path / "black.cube", content=np.zeros((40, 60, 3), np.float32), model=model,
                            size=9)
    np.testing.assert_array_equal(parse_cube(black)[1], neutral)
    assert "neutral code" in black.read_text() and "black to the last pixel" in caplog.text


def test_cube_at_a_strength_is_the_blend_of_colour_and_look(model, style, tmp_path):
    # stylize --strength S renders (1 - S) x frame + S x look: a LUT written at S holds that same
    # function (the studio's LUT download once ignored the job's strength: 43 levels off at 0.3).
    full = parse_cube(export_cube(style, tmp_path / "full.cube", model=model, size=9))[1]
    part = parse_cube(export_cube(style, tmp_path / "part.cube", model=model, size=9, strength=0.3))[1]
    np.testing.assert_allclose(part, 0.7 * cube_grid(9) + 0.3 * full, atol=2e-6)
    assert "strength 0.3" in (tmp_path / "part.cube").read_text()
    with pytest.raises(UserError, match="strength"):
        export_cube(style, tmp_path / "bad.cube", model=model, size=9, strength=1.5)


def test_colour_filters_are_seeded_global_and_in_range():
    img = texture(40, 50, seed=1)
    for seed in range(20):
        f, g = random_filter(np.random.default_rng(seed)), random_filter(np.random.default_rng(seed))
        out = f(img)
        np.testing.assert_array_equal(out, g(img))
        assert out.dtype == np.float32 and out.min() >= 0.0 and out.max() <= 1.0
        perm = np.random.default_rng(seed).permutation(40 * 50)
        np.testing.assert_allclose(f(img.reshape(-1, 3)[perm]), out.reshape(-1, 3)[perm], atol=1e-6)


@pytest.mark.parametrize("flags", [["--lr", "-1"], ["--seed", "-1"], ["--threads", "-1"], ["--out", "{data}"],
                                   ["--out", "{data}/o.pt"], ["--out", "{tmp}/x.pt", "--checkpoint", "{tmp}/x.pt"]],
                         ids=" ".join)
def test_train_refuses_bad_settings_before_any_step(tmp_path, capsys, flags):
    from mvstylizer.cli import main
    from mvstylizer.video.image import write_image

    data = tmp_path / "photo.png"
    write_image(data, texture(40, 48, seed=1))
    before = data.read_bytes()
    args = [f.format(data=data, tmp=tmp_path) for f in flags]
    assert main(["train", "dncm", "--data", str(data), "--steps", "1", "-q", *args]) == 2
    assert capsys.readouterr().err.startswith("error:") and data.read_bytes() == before


def test_resuming_from_another_models_checkpoint_is_a_user_error(tmp_path):
    from mvstylizer.errors import UserError
    from mvstylizer.models.training import Checkpointer

    path = tmp_path / "other.ckpt"
    torch.save({"step": 3, "model": {"not.this.model": torch.zeros(2)}, "optim": {}, "rng": torch.get_rng_state(),
                "extra": {}}, path)
    model = torch.nn.Linear(2, 2)
    with pytest.raises(UserError, match="not a training checkpoint of this model"):
        Checkpointer(path).load(model, torch.optim.Adam(model.parameters()))
