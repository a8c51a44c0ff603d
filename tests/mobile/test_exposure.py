"""Exposure tracking and the shot's exposure (mobile/exposure.py)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from helpers import shifted, texture, to8

from mvstylizer.mobile.exposure import ExposureTracker, ShotExposure, fade_levels


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


def test_a_fade_to_white_with_something_moving_is_followed_in_the_headroom():
    # A ball crossing the fading picture errs alike under both measures; averaged in, it hid the fade,
    # which went into the levels as a camera brightening (a review helper's clip: the output stayed at
    # the style's colours until the last frames, then jumped to white).
    y, x = np.mgrid[0:96, 0:160].astype(np.float32)
    frames, rng = [], np.random.default_rng(0)
    for i in range(25):  # a second of a slow fade (to white at frame 30), with a camera's noise
        img = np.stack([120 + 100 * x / 160, 60 + 80 * y / 96, np.full_like(x, 40)], axis=-1) / 255
        img[(x - 30 - 2 * i) ** 2 + (y - 48) ** 2 < 15 ** 2] = (250 / 255, 230 / 255, 60 / 255)
        frames.append(1.0 - (1.0 - img) * (1.0 - i / 30) + rng.normal(0.0, 3 / 255, img.shape))
    tracker, rescaled = _track(frames)
    assert all(rescaled)
    assert tracker.headroom == pytest.approx(math.log(6 / 30), abs=0.3), (tracker.headroom, tracker.levels)
    assert abs(tracker.levels) < 0.1, (tracker.headroom, tracker.levels)


def test_a_camera_panning_and_re_exposing_moves_the_levels_not_the_headroom():
    scene = texture(96, 160, seed=3)
    tracker, _ = _track([shifted(scene, i) * g for i, g in enumerate((1.0, 1.05, 1.1, 1.15, 1.2, 1.25))])
    assert tracker.levels == pytest.approx(math.log(1.25), abs=0.05)
    assert tracker.headroom == 0.0


def test_a_cut_is_not_a_rescaling():
    _, rescaled = _track([texture(96, 128, seed=0), texture(96, 128, seed=5) * 0.6])
    assert rescaled == [False]


def test_a_cut_between_two_smooth_pictures_is_not_a_rescaling():
    # On a blurred thumbnail two smooth, unrelated frames gave ratios as uniform as a fade's.
    y, x = np.mgrid[0:96, 0:128].astype(np.float32)
    a = np.repeat((0.5 + 0.2 * np.sin(x / 40.0))[..., None], 3, axis=2)
    b = np.repeat((0.3 + 0.1 * np.cos(y / 30.0))[..., None], 3, axis=2)
    _, rescaled = _track([a, b])
    assert rescaled == [False]


def test_the_frame_after_a_black_one_is_measured_afresh():
    scene = texture(96, 128, seed=0)
    tracker, _ = _track([scene, scene * 0.3, np.zeros_like(scene)])
    assert not tracker.after_blank
    tracker.push(_gray(scene * 0.2))
    assert tracker.after_blank


def test_shot_exposure_keeps_only_dips_past_the_threshold_within_its_shot_and_window():
    shot = ShotExposure(keep_below=math.log(2), window=3)
    lights = [shot.push(0, 0.0, 0.0, new_shot=False), shot.push(1, 0.3, 0.0, new_shot=False),
              shot.push(2, 0.0, 0.0, new_shot=False), shot.push(3, 0.3 - 2.0, -3.0, new_shot=False)]
    assert [f.shot for f in lights] == [0, 0, 0, 0]  # the first frame starts the first shot
    assert shot.kept(lights[2], 2) == (0.0, 0.0)  # a dip of 0.3 < ln 2: the model's to normalise
    assert shot.kept(lights[3], 3) == pytest.approx((2.0 - math.log(2), 3.0 - math.log(2)))
    assert shot.kept(lights[0], 3) == (0.0, 0.0)  # later, darker frames are no reference
    dark = shot.push(4, -5.0, -5.0, new_shot=True)  # a new shot, however dark, is its own reference
    assert dark.shot == 1 and shot.kept(dark, 4) == (0.0, 0.0)
    assert shot.kept(lights[3], 4) == pytest.approx((2.0 - math.log(2), 3.0 - math.log(2)))  # up to its shot's end
    for i in range(5, 12):
        shot.push(i, 0.0, 0.0, new_shot=False)
    late = shot.push(12, -2.0, 0.0, new_shot=False)
    assert shot.kept(late, 12) == pytest.approx((2.0 - math.log(2), 0.0))  # -5 at frame 4 is out of the window
    shot.forget(12)
    assert shot.kept(late, 12) == pytest.approx((2.0 - math.log(2), 0.0))
    with pytest.raises(ValueError):
        ShotExposure(keep_below=-1.0)


def test_fade_levels_scales_towards_black_then_towards_white():
    rgb8 = np.array([[[10, 100, 250]]], np.uint8)
    np.testing.assert_array_equal(fade_levels(rgb8, math.log(2.0), 0.0), [[[5, 50, 125]]])
    np.testing.assert_array_equal(fade_levels(rgb8, 0.0, math.log(2.0)), [[[132, 178, 252]]])
    np.testing.assert_array_equal(fade_levels(rgb8, 0.0, 0.0), rgb8)
