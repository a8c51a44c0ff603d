import numpy as np
import pytest

from mvstylizer.metrics import psnr
from mvstylizer.mobile.look import Look, blend_gap, fit_look, identity_look

from helpers import texture, to8


def photo_look(x):
    """A global look of the kind photographic styles are: a tone curve, a warm cast, a little cross-talk."""
    x = np.clip(x, 0, 1)
    curved = x ** 0.8
    m = np.float32([[0.95, 0.08, 0.0], [0.05, 0.85, 0.05], [0.0, 0.1, 0.7]])
    return np.clip(curved @ m.T + np.float32([0.06, 0.03, 0.0]), 0, 1)


def test_fit_reproduces_a_global_look_on_new_colours():
    key = texture(96, 128, seed=1)
    look = fit_look(key, photo_look(key))
    other = texture(96, 128, seed=5)  # colours of another frame
    assert psnr(look.apply(to8(other)) / 255.0, photo_look(other)) > 35
    assert psnr(look.apply_float(other), photo_look(other)) > 35


def test_uint8_and_float_paths_agree():
    key = texture(64, 64, seed=2)
    look = fit_look(key, photo_look(key))
    assert np.abs(look.apply(to8(key)).astype(np.float32) - look.apply_float(to8(key) / 255.0) * 255).max() <= 2.0


def test_clipped_outputs_are_censored_so_saturated_colours_stay_still():
    # The model clips a saturated red to (1, 0, 0): the look must not give that colour a slope,
    # or every frame's sensor noise on it flickers.
    rng = np.random.default_rng(0)
    key = texture(96, 128, seed=3)
    key[30:60, 40:80] = np.float32([0.85, 0.1, 0.1]) + rng.normal(0, 0.01, (30, 40, 3)).astype(np.float32)
    model = lambda x: np.clip(1.6 * x - 0.2, 0, 1)  # noqa: E731 - strong contrast: the red clips
    look = fit_look(key, model(key))
    red = np.float32([0.85, 0.1, 0.1])
    nudges = red + rng.normal(0, 0.01, (200, 3)).astype(np.float32)
    assert look.apply_float(nudges).std(axis=0).max() < 0.004  # the model's own spread is 0


def test_flat_grey_key_does_not_invent_cross_channel_gains():
    # A grey wall: the three channels move together, so the data cannot say which input drives which
    # output. The look must keep to its own channels there (cross-talk would turn chroma noise into
    # colour flicker between keys).
    rng = np.random.default_rng(4)
    wall = np.clip(0.6 + rng.normal(0, 0.01, (80, 80, 3)), 0, 1).astype(np.float32)
    model = lambda x: np.clip(x * np.float32([1.1, 0.9, 0.7]) + 0.05, 0, 1)  # noqa: E731
    m = fit_look(wall, model(wall)).matrix[:, :3]
    assert np.abs(m - np.diag(np.diag(m))).max() < 0.2


def test_blend_is_exact_at_the_ends_and_gap_measures_the_middle():
    key = texture(64, 64, seed=6)
    a = fit_look(key, photo_look(key))
    b = fit_look(key, np.clip(key * 0.5, 0, 1))
    x = to8(key)
    assert np.array_equal(a.blend(b, 0.0).apply(x), a.apply(x))
    assert np.array_equal(a.blend(b, 1.0).apply(x), b.apply(x))
    assert blend_gap(a, a) == pytest.approx(0.0, abs=1e-6)
    assert blend_gap(a, b) > 0.0
    assert blend_gap(identity_look(), Look(identity_look().pre, np.eye(3, 4, dtype=np.float32) * 0.5)) < 1e-4


def test_shapes_are_checked():
    with pytest.raises(ValueError):
        fit_look(np.zeros((4, 4, 3), np.float32), np.zeros((4, 5, 3), np.float32))
