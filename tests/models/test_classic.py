"""The classic colour transfers (mk, reinhard) on flat and noisy frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mvstylizer.models.registry import create_model


def _primaries() -> np.ndarray:
    s = np.zeros((96, 144, 3), np.float32)
    for i in range(3):
        s[:, i * 48:(i + 1) * 48, i] = 1.0
    return s


@pytest.mark.parametrize("name", ["reinhard", "mk"])
def test_a_flat_frame_takes_the_styles_mean_at_any_size(name):
    """float32 sums over 150k identical pixels were off by 0.08 Lab, and a flat frame's tiny spread
    amplified that ~10^4 times: the colour depended on the frame's size."""
    model = create_model(name)
    state = model.prepare_style(_primaries())
    colours = [model.stylize(np.full((h, w, 3), 0.5, np.float32), state)[0, 0] for h, w in ((8, 8), (96, 144),
                                                                                          (288, 512))]
    assert np.abs(np.array(colours) - colours[0]).max() < 2e-3


@pytest.mark.parametrize("name", ["reinhard", "mk"])
def test_sensor_noise_on_a_dark_frame_is_not_stretched_to_full_range(name):
    rng = np.random.default_rng(0)
    dark = np.clip(0.03 + rng.normal(0, 0.004, (144, 256, 3)), 0, 1).astype(np.float32)
    style = np.clip(rng.random((64, 64, 3)) ** 2, 0, 1).astype(np.float32)  # a varied, dark-leaning style
    out = create_model(name).stylize(dark, create_model(name).prepare_style(style))

    def detail(x: np.ndarray) -> float:
        return float((x - cv2.GaussianBlur(x, (0, 0), 2)).std())

    assert detail(out) < 15 * detail(dark)  # ~50x before the noise floor
