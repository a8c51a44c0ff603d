"""Exposure tracking and the shot's exposure (mobile/exposure.py)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from helpers import texture, to8

from mvstylizer.mobile.exposure import ExposureTracker, ShotExposure, scale_exposure


def _gray(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(to8(img), cv2.COLOR_RGB2GRAY)


def test_a_fade_is_tracked_to_near_black_and_is_a_rescaling():
    scene = texture(96, 128, seed=0)
    tracker = ExposureTracker()
    tracker.push(_gray(scene))
    for a in (0.7, 0.45, 0.25, 0.12, 0.06):
        e = tracker.push(_gray(scene * a))
        assert tracker.rescaled
    # Mid-tones alone lost the fade at about a third of the levels; the dark pixels carry it on.
    assert e == pytest.approx(math.log(0.06), abs=0.25)


def test_a_cut_is_not_a_rescaling():
    tracker = ExposureTracker()
    tracker.push(_gray(texture(96, 128, seed=0)))
    tracker.push(_gray(texture(96, 128, seed=5) * 0.6))
    assert not tracker.rescaled


def test_shot_exposure_keeps_only_dips_past_the_threshold_and_restarts_at_a_shot():
    shot = ShotExposure(keep_below=math.log(2))
    assert shot.push(0.0, new_shot=True) == 0.0
    assert shot.push(0.3, new_shot=False) == 0.0  # brighter: the new reference
    assert shot.push(0.3 - 0.5, new_shot=False) == 0.0  # a dip of 0.5 < ln 2: the model's to normalise
    assert shot.push(0.3 - 2.0, new_shot=False) == pytest.approx(2.0 - math.log(2))
    assert shot.push(-5.0, new_shot=True) == 0.0  # a new shot, however dark, is its own reference
    with pytest.raises(ValueError):
        ShotExposure(keep_below=-1.0)


def test_scale_exposure_is_one_factor_on_the_levels_clipped():
    rgb = np.array([[[0.1, 0.4, 0.8]]], np.float32)
    np.testing.assert_allclose(scale_exposure(rgb, math.log(0.5)), rgb * 0.5, rtol=1e-6)
    np.testing.assert_allclose(scale_exposure(rgb, math.log(2.0)), [[[0.2, 0.8, 1.0]]], rtol=1e-6)
