"""Exposure tracking and the shot's exposure (mobile/exposure.py)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from helpers import shifted, texture, to8

from mvstylizer.mobile.exposure import ExposureTracker, Lighting, ShotExposure, fade_levels


def _gray(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(to8(img), cv2.COLOR_RGB2GRAY)


def _track(frames: list[np.ndarray]) -> tuple[ExposureTracker, list[bool]]:
    tracker, rescaled = ExposureTracker(), []
    for f in frames:
        tracker.push(_gray(f))
        rescaled.append(tracker.rescaled)
    return tracker, rescaled[1:]


def test_a_fade_to_black_is_followed_to_black_in_the_levels_alone():
    scene = texture(96, 128, seed=0)
    tracker, rescaled = _track([scene * a for a in (1.0, 0.7, 0.45, 0.25, 0.12, 0.06)])
    assert all(rescaled)
    # Mid-tones alone lost the fade at about a third of the levels; the dark pixels carry it on.
    assert tracker.levels == pytest.approx(math.log(0.06), abs=0.25)
    assert tracker.headroom == 0.0
    tracker.push(np.zeros((96, 128), np.uint8))  # black to the last pixel: the end of the fade
    assert tracker.rescaled and tracker.levels < math.log(0.01)


def test_a_fade_to_white_is_followed_in_the_headroom_alone():
    scene = texture(96, 128, seed=0)
    tracker, rescaled = _track([scene + (1.0 - scene) * a for a in (0.0, 0.3, 0.55, 0.75, 0.88, 0.94)])
    assert all(rescaled)
    assert tracker.headroom == pytest.approx(math.log(0.06), abs=0.25)
    assert tracker.levels == 0.0
    tracker.push(np.full((96, 128), 255, np.uint8))
    assert tracker.rescaled and tracker.headroom < math.log(0.01)


def test_a_camera_panning_and_re_exposing_moves_the_levels_not_the_headroom():
    scene = texture(96, 160, seed=3)
    tracker, _ = _track([shifted(scene, i) * g for i, g in enumerate((1.0, 1.05, 1.1, 1.15, 1.2, 1.25))])
    assert tracker.levels == pytest.approx(math.log(1.25), abs=0.05)
    assert tracker.headroom == 0.0


def test_a_cut_is_not_a_rescaling():
    _, rescaled = _track([texture(96, 128, seed=0), texture(96, 128, seed=5) * 0.6])
    assert rescaled == [False]


def test_shot_exposure_keeps_only_dips_past_the_threshold_and_restarts_at_a_shot():
    shot = ShotExposure(keep_below=math.log(2))
    assert shot.push(0.0, 0.0, new_shot=False).shot == 0  # the first frame starts the first shot
    shot.push(0.3, 0.0, new_shot=False)
    assert shot.kept(Lighting(0, 0.0, 0.0)) == (0.0, 0.0)  # a dip of 0.3 < ln 2: the model's to normalise
    assert shot.kept(Lighting(0, 0.3 - 2.0, 0.0)) == pytest.approx((2.0 - math.log(2), 0.0))
    assert shot.kept(Lighting(0, 0.3, -3.0)) == pytest.approx((0.0, 3.0 - math.log(2)))
    dark = shot.push(-5.0, -5.0, new_shot=True)  # a new shot, however dark, is its own reference
    assert dark == Lighting(1, -5.0, -5.0) and shot.kept(dark) == (0.0, 0.0)
    assert shot.kept(Lighting(0, 0.3 - 2.0, 0.0)) == pytest.approx((2.0 - math.log(2), 0.0))  # older shot kept
    with pytest.raises(ValueError):
        ShotExposure(keep_below=-1.0)


def test_fade_levels_scales_towards_black_then_towards_white():
    rgb8 = np.array([[[10, 100, 250]]], np.uint8)
    np.testing.assert_array_equal(fade_levels(rgb8, math.log(2.0), 0.0), [[[5, 50, 125]]])
    np.testing.assert_array_equal(fade_levels(rgb8, 0.0, math.log(2.0)), [[[132, 178, 252]]])
    np.testing.assert_array_equal(fade_levels(rgb8, 0.0, 0.0), rgb8)
