"""Exposure tracking and the shot's exposure (mobile/exposure.py)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from helpers import texture, to8

from mvstylizer.mobile.exposure import ExposureTracker, ShotExposure, darken


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
    assert shot.push(0.0, new_shot=False) == 0  # the first frame starts the first shot
    assert shot.push(0.3, new_shot=False) == 0
    assert shot.darker(0, 0.0) == 0.0  # a dip of 0.3 < ln 2: the model's to normalise
    assert shot.darker(0, 0.3 - 2.0) == pytest.approx(2.0 - math.log(2))
    assert shot.push(-5.0, new_shot=True) == 1  # a new shot, however dark, is its own reference
    assert shot.darker(1, -5.0) == 0.0
    assert shot.darker(0, 0.3 - 2.0) == pytest.approx(2.0 - math.log(2))  # the last shot's brightest kept
    with pytest.raises(ValueError):
        ShotExposure(keep_below=-1.0)


def test_darken_is_one_factor_on_the_levels():
    rgb8 = np.array([[[10, 100, 250]]], np.uint8)
    np.testing.assert_array_equal(darken(rgb8, math.log(2.0)), [[[5, 50, 125]]])
