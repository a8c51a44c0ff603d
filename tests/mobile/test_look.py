import numpy as np
import pytest

from mvstylizer.metrics import psnr
from mvstylizer.mobile.look import KNOTS, SUBLEVELS, Look, blend_gap, fit_look

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


@pytest.mark.parametrize("scene", ["flat_wall", "person_crossing"])
def test_slope_follows_the_model_on_grey_walls_and_pavement(scene, package_media):
    # On a grey wall or pavement the channels move together, so the colours alone cannot say which
    # input drives which output; a free fit took cross-channel gains of -0.4..+2.6 there (the model's:
    # 1.2-1.6 on the diagonal, < 0.6 off it), and its slope, what it does to each frame's noise,
    # made the wall flicker between keys. Scored against dncm's own slope at the scene's median colour.
    from mvstylizer.imaging import shrink_to
    from mvstylizer.models.dncm import DNCMOnnxStylizer
    from mvstylizer.video.image import read_image
    from synthetic_scenes import SCENES

    x = SCENES[scene]().frames[0].astype(np.float32) / 255.0
    model = DNCMOnnxStylizer()
    style = model.prepare_style(shrink_to(read_image(package_media("coffee.png")), 160))
    content = model.content_matrix(x)
    look = fit_look(x, model.stylize(x, style))
    c = np.median(x.reshape(-1, 3), axis=0).astype(np.float32)

    def slope(fn):
        return np.stack([(fn(c + e) - fn(c - e)).ravel() / 0.02 for e in np.eye(3, dtype=np.float32) * 0.01], axis=1)

    true = slope(lambda p: model.map_colours(p.reshape(-1, 3), content, style))
    ours = slope(lambda p: look.apply_float(p.reshape(1, 3)))
    assert np.abs(ours - true).max() < 1.0


def test_blend_is_exact_at_the_ends_and_gap_measures_the_middle():
    key = texture(64, 64, seed=6)
    a = fit_look(key, photo_look(key))
    b = fit_look(key, np.clip(key * 0.5, 0, 1))
    x = to8(key)
    assert np.array_equal(a.blend(b, 0.0).apply(x), a.apply(x))
    assert np.array_equal(a.blend(b, 1.0).apply(x), b.apply(x))
    assert blend_gap(a, a) == pytest.approx(0.0, abs=1e-6)
    assert blend_gap(a, b) > 0.0
    identity = np.tile(np.linspace(0.0, 1.0, KNOTS, dtype=np.float32), (3, 1))
    assert blend_gap(Look(identity, np.eye(3, 4, dtype=np.float32)), Look(identity, np.eye(3, 4, dtype=np.float32) * 0.5)) < 1e-4
    # Measured on the colours a video holds, the gap is the largest over those colours only.
    grey = np.full((1, 3), 0.5, np.float32)
    exact = 0.5 * (a.apply_float(grey) + b.apply_float(grey))
    assert blend_gap(a, b, grey) == pytest.approx(float(np.abs(a.blend(b, 0.5).apply_float(grey) - exact).max() * 255),
                                                  abs=1e-4)
    assert blend_gap(a, b, grey) <= blend_gap(a, b, np.concatenate([grey, key.reshape(-1, 3)]))


def test_the_8_bit_output_is_rounded_once():
    # Curves then matrix on 8-bit images: the curves' output is kept at 1/128 of a level and the
    # matrix's at 1/16, so a look matches its exact float version to within half a level plus 1/32
    # and the table's own sampling.
    key = texture(64, 64, seed=8)
    look = fit_look(key, photo_look(key))
    x = to8(key)
    exact = look.apply_float(x.astype(np.float32) / 255.0) * 255.0
    assert np.abs(look.apply(x).astype(np.float32) - exact).max() <= 0.5 + 0.5 / SUBLEVELS + 0.01


def test_shapes_are_checked():
    with pytest.raises(ValueError):
        fit_look(np.zeros((4, 4, 3), np.float32), np.zeros((4, 5, 3), np.float32))


def test_levels_are_the_look_before_clipping_at_white():
    # A frame adds the grid's offsets to these levels and clips once; apply() is their clip.
    x = to8(texture(32, 32, seed=9))
    bright = Look(np.tile(np.linspace(0, 1, 16, dtype=np.float32), (3, 1)), np.eye(3, 4, dtype=np.float32) * 1.3)
    levels = bright.levels(x)
    assert levels.dtype == np.int16 and levels.max() > 255 * SUBLEVELS
    whole = np.clip(np.rint(levels.astype(np.float32) / SUBLEVELS), 0, 255)
    assert np.array_equal(bright.apply(x), whole.astype(np.uint8))


def test_levels_keep_a_sixteenth_of_a_level():
    # The look's levels keep what the curves and matrix make to within half a sub-level, so a frame's
    # offsets are added before the one rounding to 8 bits.
    x = to8(texture(32, 32, seed=4))
    look = Look(np.tile(np.linspace(0, 1, 16, dtype=np.float32) ** 1.3, (3, 1)),
                np.float32([[0.9, 0.1, 0.0, 0.02], [0.05, 0.8, 0.1, 0.0], [0.0, 0.2, 0.7, 0.05]]))
    exact = look.apply_float(x.astype(np.float32) / 255.0) * 255.0
    got = np.clip(look.levels(x).astype(np.float32) / SUBLEVELS, 0.0, 255.0)
    assert np.abs(got - exact).max() <= 0.5 / SUBLEVELS + 0.01


def _region_model_key():
    """A key whose model recolours two regions by their own offsets at a local gain of 1: the darker half
    darkened and the lighter lightened, as a region-aware model may treat a road and a shop front. Their
    colours overlap, so no tone curve can tell them apart."""
    import cv2

    tex = texture(96, 192, seed=4)
    left = np.arange(192) < 96
    content = np.where(left[None, :, None], 0.2 + 0.5 * tex, 0.3 + 0.5 * tex).astype(np.float32)
    offset = cv2.GaussianBlur(np.where(left, -0.1, 0.1).astype(np.float32)[None, :].repeat(96, 0), (0, 0), 4)
    return content, np.clip(content + offset[..., None], 0, 1).astype(np.float32)


def _detail_gain(look, content):
    # Gain of the look on a small change of colour around each of the key's own colours.
    nudge = np.float32(0.02)
    return float(np.median((look.apply_float(content + nudge) - look.apply_float(content)) / nudge))


def test_detail_scale_fits_the_models_local_gain_not_the_regions_spread():
    # Fit to the whole colours, the regions' offsets read as a global slope of ~1.4: every frame's detail
    # (and its noise, and the motion in it) came out steeper than the model draws it. With the detail
    # scale the gains are the model's local gain, 1; the regions' offsets are left to the grid.
    content, styled = _region_model_key()
    whole = fit_look(content, styled)
    local = fit_look(content, styled, detail_scale=0.5)
    assert _detail_gain(whole, content) > 1.25
    assert abs(_detail_gain(local, content) - 1.0) < 0.06


def test_detail_scale_keeps_the_whole_colours_fit_on_a_key_without_detail():
    # A plain key's detail is noise the model may flatten; its look must still map its colour.
    rng = np.random.default_rng(2)
    content = np.clip(np.float32([0.4, 0.5, 0.6]) + rng.normal(0, 0.003, (64, 96, 3)), 0, 1).astype(np.float32)
    styled = photo_look(content)
    look = fit_look(content, styled, detail_scale=0.5)
    assert np.abs(look.apply_float(content) - styled).mean() < 2.0 / 255.0
