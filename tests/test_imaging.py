import cv2
import numpy as np
import pytest

from mvstylizer.imaging import area_resize, quick_downscale

from helpers import texture, to8


@pytest.mark.parametrize("shape, size", [((1080, 1920), (512, 288)), ((720, 1280), (512, 288)),
                                         ((718, 718), (512, 512)), ((101, 203), (37, 19)), ((64, 96), (64, 96))])
def test_quick_downscale_is_close_to_an_area_resize(shape, size):
    img = to8(cv2.resize(texture(shape[0] // 4 + 1, shape[1] // 4 + 1, seed=4), shape[::-1],
                         interpolation=cv2.INTER_CUBIC))
    got, want = quick_downscale(img, size), area_resize(img, size)
    assert got.shape == want.shape == (size[1], size[0], 3) and got.dtype == np.uint8
    assert np.abs(got.astype(np.int16) - want.astype(np.int16)).mean() < 2.0


def test_quick_downscale_never_skips_a_large_factor():
    # Odd sizes stop the halvings early: the rest is still area-averaged, not point-sampled.
    stripes = np.zeros((99, 999, 3), np.uint8)
    stripes[:, ::2] = 255
    out = quick_downscale(stripes, (111, 11))
    assert np.abs(out.astype(np.float32) - 127.5).max() < 20
