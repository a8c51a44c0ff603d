import cv2
import numpy as np
import pytest

from mvstylizer.metrics import psnr
from mvstylizer.mobile.interpolate import InterpConfig, Interpolator, KeyFrame
from mvstylizer.mobile.smoothing import GuidedUpsampler
from mvstylizer.video.flow import to_gray8

from helpers import shifted, texture, to8


def spatial_style(img):
    """A spatially varying style tied to content position: warm left, cool right."""
    h, w = img.shape[:2]
    ramp = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    tint = (1 - ramp) * np.float32([1.1, 0.9, 0.6]) + ramp * np.float32([0.7, 0.9, 1.2])
    return np.clip(img * tint, 0, 1)


def make_key(index, frame, styled, with_full=False):
    k, g = GuidedUpsampler().maps(frame, styled)
    key = KeyFrame(index, to_gray8(frame), k, g)
    if with_full:
        key.styled8 = to8(styled)
    return key


@pytest.mark.parametrize("method", ["transform", "warp"])
def test_interpolated_middle_frame_matches_direct_stylization(method):
    base = texture(120, 200, seed=7)
    frames = [shifted(base, 2 * i) for i in range(5)]
    styles = [spatial_style(base) for _ in frames]  # style moves with content
    styles = [shifted(styles[0], 2 * i) for i in range(5)]
    a = make_key(0, frames[0], styles[0], with_full=True)
    b = make_key(4, frames[4], styles[4], with_full=True)
    interp = Interpolator(InterpConfig(method=method))
    mid = frames[2]
    out = interp.frame(2, to_gray8(mid), mid, to8(mid), a, b)
    assert out.shape == (120, 200, 3) and out.dtype == np.uint8
    inner = (slice(10, -10), slice(12, -12))
    assert psnr(out[inner] / 255.0, styles[2][inner]) > 30


def test_transform_keeps_detail_of_the_current_frame_when_keys_differ():
    # Frame t holds detail the keys never saw (a new bright square): warping pixels cannot
    # produce it, applying warped colour maps to the real frame does.
    base = texture(100, 160, seed=9)
    cur = base.copy()
    cur[40:60, 70:90] = 0.95
    style = lambda x: np.clip(x * np.float32([0.9, 0.8, 0.6]) + 0.05, 0, 1)
    a, b = make_key(0, base, style(base), True), make_key(2, base, style(base), True)
    gray = to_gray8(cur)
    t_out = Interpolator(InterpConfig("transform")).frame(1, gray, cur, to8(cur), a, b)
    w_out = Interpolator(InterpConfig("warp")).frame(1, gray, cur, to8(cur), a, b)
    region = (slice(42, 58), slice(72, 88))
    assert psnr(t_out[region] / 255.0, style(cur)[region]) > 35
    assert psnr(t_out[region] / 255.0, style(cur)[region]) > psnr(w_out[region] / 255.0, style(cur)[region]) + 10


def test_unknown_method_is_refused():
    with pytest.raises(ValueError):
        InterpConfig(method="magic")
