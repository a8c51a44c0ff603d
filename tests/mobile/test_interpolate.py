import cv2
import numpy as np
import pytest

from mvstylizer.metrics import psnr
from mvstylizer.mobile.grid import ResidualGrid
from mvstylizer.mobile.interpolate import InterpConfig, Interpolator, KeyFrame
from mvstylizer.mobile.look import Look

from helpers import shifted, texture, to8


def spatial_style(img):
    """A spatially varying style tied to content position: warm left, cool right."""
    h, w = img.shape[:2]
    ramp = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    tint = (1 - ramp) * np.float32([1.1, 0.9, 0.6]) + ramp * np.float32([0.7, 0.9, 1.2])
    return np.clip(img * tint, 0, 1)


def warm(img):
    """A global, non-linear look: lifted blacks, warm cast, soft contrast curve."""
    x = np.clip(img, 0, 1)
    return np.clip(0.08 + 0.85 * x ** 0.8 * np.float32([1.05, 0.95, 0.75]), 0, 1)


def key(interp, index, frame, styled):
    return interp.key(index, to8(frame), styled.astype(np.float32), to8(frame))


@pytest.mark.parametrize("method", ["transform", "warp"])
def test_interpolated_middle_frame_matches_direct_stylization(method):
    base = texture(120, 200, seed=7)
    frames = [shifted(base, 2 * i) for i in range(5)]
    styles = [shifted(spatial_style(base), 2 * i) for i in range(5)]  # style moves with content
    interp = Interpolator(InterpConfig(method=method), spatial=True)
    a, b = key(interp, 0, frames[0], styles[0]), key(interp, 4, frames[4], styles[4])
    mid = frames[2]
    out = interp.frame(2, to8(mid), to8(mid), a, b)
    assert out.shape == (120, 200, 3) and out.dtype == np.uint8
    inner = (slice(10, -10), slice(12, -12))
    assert psnr(out[inner] / 255.0, styles[2][inner]) > 30


def test_a_frame_no_bigger_than_the_key_is_sliced_whole():
    # Upsampling a coarse slice blurs one side's map across an edge; a small video (its frames at
    # the key size) needs no upsampling at all, so its grid is sliced at full size at any map_scale.
    base = texture(64, 96, seed=5)
    styled = spatial_style(base)
    outs = []
    for scale in (0.25, 1.0):
        interp = Interpolator(InterpConfig(map_scale=scale), spatial=True)
        outs.append(key(interp, 0, base, styled).styled8)
    assert np.array_equal(outs[0], outs[1])
    bigger = np.repeat(np.repeat(to8(base), 2, axis=0), 2, axis=1)  # the same picture at twice the key size
    coarse = Interpolator(InterpConfig(map_scale=0.25), spatial=True)
    k = coarse.key(0, to8(base), styled.astype(np.float32), bigger)
    fine = Interpolator(InterpConfig(map_scale=1.0), spatial=True)
    assert not np.array_equal(k.styled8, fine.key(0, to8(base), styled.astype(np.float32), bigger).styled8)


def test_global_look_is_reproduced_exactly_without_flow():
    # A global model's key is one colour function: any frame, however different from the keys
    # (here a new bright square and a dark bar), gets that function, not a warped neighbour's colours.
    base = texture(100, 160, seed=9)
    cur = base.copy()
    cur[40:60, 70:90] = 0.95
    cur[10:20, 10:150] = 0.05
    interp = Interpolator(InterpConfig("transform"), spatial=False)
    a, b = key(interp, 0, base, warm(base)), key(interp, 2, base, warm(base))
    out = interp.frame(1, to8(cur), to8(cur), a, b)
    assert a.grid is None
    assert psnr(out / 255.0, warm(cur)) > 38
    w_out = Interpolator(InterpConfig("warp")).frame(1, to8(cur), to8(cur), a, b)
    region = (slice(42, 58), slice(72, 88))
    assert psnr(out[region] / 255.0, warm(cur)[region]) > psnr(w_out[region] / 255.0, warm(cur)[region]) + 10


def test_keys_blend_in_time_and_are_exact_at_the_keys():
    base = texture(64, 96, seed=3)
    dark = lambda x: np.clip(x * 0.6, 0, 1)  # noqa: E731
    bright = lambda x: np.clip(x * 0.9 + 0.1, 0, 1)  # noqa: E731
    interp = Interpolator(InterpConfig("transform"), spatial=False)
    a, b = key(interp, 0, base, dark(base)), key(interp, 10, base, bright(base))
    img8 = to8(base)
    at_a, mid, at_b = (interp.frame(t, img8, img8, a, b) / 255.0 for t in (0, 5, 10))
    assert psnr(at_a, dark(base)) > 40 and psnr(at_b, bright(base)) > 40
    assert np.all(at_a.mean() < mid.mean()) and mid.mean() < at_b.mean()
    assert np.array_equal(a.styled8, interp.frame(0, img8, img8, a, b))  # a key renders as its neighbours do


def test_flat_noisy_wall_stays_as_steady_as_the_input():
    # The defect that per-pixel colour maps had: on a flat wall the fit amplified sensor noise into
    # patches that changed from frame to frame. A grid cell averages hundreds of wall pixels.
    rng = np.random.default_rng(0)
    wall = np.full((96, 128, 3), 0.8, np.float32)
    frames = [np.clip(wall + rng.normal(0, 0.01, wall.shape).astype(np.float32), 0, 1) for _ in range(3)]
    interp = Interpolator(InterpConfig("transform"), spatial=True)
    a, b = key(interp, 0, frames[0], spatial_style(frames[0])), key(interp, 2, frames[2], spatial_style(frames[2]))
    out = interp.frame(1, to8(frames[1]), to8(frames[1]), a, b).astype(np.float32)
    ref = spatial_style(frames[1]) * 255
    # Noise in the output is the input's noise through the style, not amplified.
    assert np.std(out[40:56, 56:72] - ref[40:56, 56:72]) < 1.5
    assert np.std(out[40:56, 56:72]) <= np.std(ref[40:56, 56:72]) * 1.2


def test_with_strength_blends_the_outputs():
    from mvstylizer.mobile.interpolate import with_strength

    frame, styled = to8(texture(64, 96, seed=4)), to8(spatial_style(warm(texture(64, 96, seed=4))))
    assert with_strength(styled, frame, 1.0) is styled
    np.testing.assert_array_equal(with_strength(styled, frame, 0.0), frame)
    half = with_strength(styled, frame, 0.5).astype(np.float32)
    assert np.abs(half - (frame.astype(np.float32) + styled) / 2).max() <= 0.5
    with pytest.raises(ValueError):
        InterpConfig(strength=-0.1)


def test_unknown_method_is_refused():
    with pytest.raises(ValueError):
        InterpConfig(method="magic")


def test_an_interpolation_method_is_one_registry_entry(monkeypatch):
    from mvstylizer.cli import build_parser
    from mvstylizer.mobile.interpolate import INTERPOLATORS, InterpConfig, InterpMethod, Interpolator

    calls = []

    def hold_a(interp, low8, full8, a, b, w_b, exposure, out):
        calls.append(w_b)
        return a.styled8

    monkeypatch.setitem(INTERPOLATORS, "hold", InterpMethod("hold", "repeat the earlier key", hold_a))
    args = build_parser().parse_args(["stylize", "in.mp4", "--style", "s.png", "-o", "o.mp4", "--interp", "hold"])
    interp = Interpolator(InterpConfig(method=args.interp), spatial=False)
    rng = np.random.default_rng(0)
    full8 = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    a = interp.key(0, full8, full8.astype(np.float32) / 255, full8)
    b = interp.key(4, full8, full8.astype(np.float32) / 255, full8)
    assert interp.frame(1, full8, full8, a, b) is a.styled8 and calls == [0.25]
    assert not interp.keys_disagree(a, b, full8)  # refines_keys defaults to off
    with pytest.raises(ValueError, match="hold"):
        InterpConfig(method="nope")


def test_a_smoother_is_one_registry_entry(monkeypatch):
    from mvstylizer.cli import build_parser
    from mvstylizer.mobile.meta_smoothing import SMOOTHERS, SmootherSpec
    from mvstylizer.mobile.pipeline import StylizeConfig

    monkeypatch.setitem(SMOOTHERS, "none", SmootherSpec("none", "no cleaning", lambda: None))
    args = build_parser().parse_args(["stylize", "in.mp4", "--style", "s.png", "-o", "o.mp4", "--smoothing", "none"])
    assert StylizeConfig(smoothing=args.smoothing).smoothing == "none"
    with pytest.raises(ValueError, match="guided"):
        StylizeConfig(smoothing="nope")


def cold(img):
    x = np.clip(img, 0, 1)
    return np.clip(x ** 1.3 * np.float32([0.7, 0.95, 1.15]), 0, 1)


@pytest.mark.parametrize("spatial", [False, True])
def test_two_looks_too_far_apart_are_mixed(spatial):
    # Keys whose looks cannot be blended by their parameters: each frame between them is the mix of
    # both keys' outputs, with or without a grid on top. The parameter blend is corrected by the exact
    # mix made at the map size, here the frame itself (no bigger than the key): within a level and a
    # half of rounding wherever neither key's output is clipped at black or white (the correction
    # mixes the looks before the clip, the keys' outputs after it).
    img = texture(64, 96, seed=11)
    both = Interpolator(InterpConfig(blend_tolerance=0.0), spatial=spatial)
    a, b = key(both, 0, img, warm(img)), key(both, 4, img, cold(img))
    unclipped = ~np.any((a.styled8 % 255 == 0) | (b.styled8 % 255 == 0), axis=2)
    assert unclipped.mean() > 0.8
    for t, w_b in ((1, 0.25), (2, 0.5)):
        out = both.frame(t, to8(img), to8(img), a, b).astype(np.float32)
        exact = (1 - w_b) * a.styled8.astype(np.float32) + w_b * b.styled8.astype(np.float32)
        err = np.abs(out - exact)[unclipped]
        assert err.max() <= 1.5 and err.mean() < 0.6


def test_two_looks_mixed_for_a_darker_frame_are_the_exposed_looks_mix():
    # A frame the camera exposed darker than both keys: each key's look is applied as if the frame
    # were exposed like the keys (the gain, capped at max_exposure_gain), the correction too.
    img = texture(256, 384, seed=13)
    low = cv2.resize(img, (96, 64), interpolation=cv2.INTER_AREA)
    interp = Interpolator(InterpConfig(blend_tolerance=0.0), spatial=False)
    a, b = key(interp, 0, low, warm(low)), key(interp, 4, low, cold(low))
    dark, dark_low = to8(img * 0.8), to8(low * 0.8)
    gain = 1.0 / 0.8
    exact = 0.5 * (a.look.exposed(gain).float_levels(dark) + b.look.exposed(gain).float_levels(dark))
    out = interp.frame(2, dark_low, dark, a, b, exposure=float(np.log(0.8))).astype(np.float32)
    unclipped = ~np.any((exact <= 1) | (exact >= 254), axis=2)
    err = np.abs(out - exact)[unclipped]
    assert err.mean() < 0.6 and np.percentile(err, 99) <= 3.0


def test_keys_agree_across_a_camera_exposure_change():
    # The camera darkened between the keys; the model styles both the same (it normalises exposure),
    # so each key's look, exposure undone, styles the frame between alike: no refinement is needed.
    # A key that really looks different still disagrees.
    img = texture(64, 96, seed=14) * 0.8 + 0.1
    interp = Interpolator(InterpConfig(refine_levels=1.0), spatial=False)
    a = interp.key(0, to8(img), warm(img), to8(img), exposure=0.0)
    b = interp.key(8, to8(img * 0.7), warm(img), to8(img * 0.7), exposure=float(np.log(0.7)))
    mid = to8(img * 0.85)
    assert interp.keys_disagree(a, b, mid, exposure=0.0)  # exposure ignored: the looks differ by levels
    assert not interp.keys_disagree(a, b, mid, exposure=float(np.log(0.85)))
    c = interp.key(8, to8(img * 0.7), cold(img), to8(img * 0.7), exposure=float(np.log(0.7)))
    assert interp.keys_disagree(a, c, mid, exposure=float(np.log(0.85)))


def test_keys_of_a_region_aware_model_disagree_where_an_object_moved_on_its_own():
    # A block crossing a still background, which the model tints apart from it. The keys' looks are
    # alike (each key holds as much block as background), so a global model's keys need nothing
    # between them; a region-aware model's maps put the block's tint where the block was at each key,
    # and the frame between, blended from both, would carry two ghost tints: it becomes a key.
    h, w = 96, 160
    background = texture(h, w, seed=3) * 0.6 + 0.2
    block = texture(h, w, seed=9) * 0.6 + 0.2

    def frame_and_style(x0):
        img, inside = background.copy(), np.zeros((h, w), bool)
        inside[24:72, x0:x0 + 40] = True
        img[inside] = block[inside]
        out = img * np.float32([0.8, 0.9, 1.2])
        out[inside] = img[inside] * np.float32([1.3, 0.8, 0.6])
        return img, np.clip(out, 0, 1).astype(np.float32)

    (first, first_styled), (middle, _), (last, last_styled) = (frame_and_style(x) for x in (10, 60, 110))
    for spatial in (False, True):
        interp = Interpolator(InterpConfig(), spatial=spatial)
        a, b = key(interp, 0, first, first_styled), key(interp, 8, last, last_styled)
        assert interp.keys_disagree(a, b, to8(middle)) is spatial


@pytest.mark.parametrize("spatial", [False, True])
def test_keys_are_compared_over_the_picture_not_its_bars(spatial):
    # Letterbox bars pass through as the frame has them, whatever the keys do there, so they must not
    # count: two keys that differ by a few levels on the dark rows along the bars only (the grid
    # borrows into the bars what the picture's edge rows do) agree over the picture at a threshold
    # that the mean over the whole frame, bars included, exceeds.
    h, w, bar = 144, 256, 36
    img = texture(h, w, seed=1) * 0.5 + 0.4
    img[bar:bar + 10] *= 0.15
    img[h - bar - 10:h - bar] *= 0.15
    img[:bar] = img[h - bar:] = 0

    def style(red):
        out = img.copy()
        dark = img.max(axis=2) < 0.2
        out[dark] = np.clip(out[dark] + np.float32([red, 0, 0]), 0, 1)
        out[:bar] = out[h - bar:] = 0
        return out.astype(np.float32)

    interp = Interpolator(InterpConfig(), spatial=spatial)
    a, b = key(interp, 0, img, style(0.12)), key(interp, 8, img, style(0.0))
    assert a.bars.top == bar and a.bars.bottom == bar
    picture = (slice(bar, h - bar),)
    ra, rb = interp.frame(0, to8(img), to8(img), a, a), interp.frame(8, to8(img), to8(img), b, b)
    inside = float(np.abs(ra.astype(np.float32) - rb)[picture].mean())
    interp.config.refine_levels = inside + 0.5
    assert not interp.keys_disagree(a, b, to8(img))
    interp.config.refine_levels = inside - 0.5
    assert interp.keys_disagree(a, b, to8(img))


@pytest.mark.parametrize("spatial", [False, True])
def test_a_frame_mid_exposure_ramp_is_each_key_at_its_own_exposure(spatial):
    # The camera darkens from key a to key b (x0.7); the model styles both alike (it normalises
    # exposure). A frame between them at x0.85 must come out as the keys do: each key's transform
    # reading the frame as exposed like that key. One gain for both (from the keys' blended exposure)
    # read it ~15% off each key's exposure and averaged two non-linear transforms: a biased frame
    # (mean 1.1 / 2.4 levels off, 99th percentile 2.5 / 13 levels, global / spatial).
    img = texture(96, 128, seed=15) * 0.85 + 0.1
    style = spatial_style if spatial else warm
    interp = Interpolator(InterpConfig(blend_tolerance=0.0), spatial=spatial)
    a = interp.key(0, to8(img), style(img), to8(img), exposure=0.0)
    b = interp.key(8, to8(img * 0.7), style(img), to8(img * 0.7), exposure=float(np.log(0.7)))
    mid = to8(img * 0.85)
    out = interp.frame(4, mid, mid, a, b, exposure=float(np.log(0.85))).astype(np.float32)
    target = (a.styled8.astype(np.float32) + b.styled8.astype(np.float32)) / 2  # the keys, both ~style(img)
    inner = (slice(8, -8), slice(8, -8))
    err = np.abs(out - target)[inner]
    assert err.mean() < 0.6 and np.percentile(err, 99) <= 2.0


def test_two_looks_mixed_at_the_map_size_match_the_full_resolution_mix():
    # A frame 4x the key's size: the correction is made on the frame at half the key size and upsampled,
    # so it only softens across the frame's sharpest edges; the parameter blend alone is further off.
    img = texture(256, 384, seed=12)
    low = cv2.resize(img, (96, 64), interpolation=cv2.INTER_AREA)
    interp = Interpolator(InterpConfig(blend_tolerance=0.0), spatial=False)
    a, b = key(interp, 0, low, warm(low)), key(interp, 4, low, cold(low))
    full8 = to8(img)
    exact = 0.5 * (a.look.float_levels(full8) + b.look.float_levels(full8))
    out = interp.frame(2, to8(low), full8, a, b).astype(np.float32)
    blended = a.look.blend(b.look, 0.5).apply(full8).astype(np.float32)
    unclipped = ~np.any((exact <= 1) | (exact >= 254), axis=2)
    err, before = np.abs(out - exact)[unclipped], np.abs(blended - exact)[unclipped]
    # Rounding alone costs ~0.25 levels; this texture's per-pixel grain is a harsh case for the
    # upsampling (8x here, 7.5x for a 1080p frame), real frames fare better (docs/BENCHMARKS.md).
    assert before.mean() > 2 * err.mean()
    assert err.mean() < 0.6 and np.percentile(err, 99) <= 3.0


def _affine_key(index: int, offset: float, grid_offset: float | None = None) -> KeyFrame:
    """A key whose look is the identity plus ``offset`` (colour units) and, if given, a grid adding
    ``grid_offset`` everywhere."""
    look = Look(np.tile(np.linspace(0, 1, 16, dtype=np.float32), (3, 1)),
                np.hstack([np.eye(3, dtype=np.float32), np.full((3, 1), offset, np.float32)]))
    grid = None if grid_offset is None else ResidualGrid.from_affine(
        np.zeros((8, 4, 6, 3, 3), np.float32), np.full((8, 4, 6, 3), grid_offset, np.float32))
    return KeyFrame(index, look, grid)


def test_two_looks_mixed_near_black_blend_the_keys_outputs():
    # One key lifts the shadows, one crushes them below black: without a grid a frame between them is
    # the blend of the two keys' outputs, each clipped at black (their parameter blend, unclipped, came
    # out up to 4 levels darker near black).
    dark = to8(np.clip(texture(48, 64, seed=21) * 0.15, 0, 1))
    interp = Interpolator(InterpConfig(blend_tolerance=0.0), spatial=False)
    a, b = _affine_key(0, 0.02), _affine_key(4, -0.08)
    c = dark.astype(np.float32)
    exact = 0.5 * (np.clip(c + 0.02 * 255, 0, 255) + np.clip(c - 0.08 * 255, 0, 255))
    out = interp.frame(2, dark, dark, a, b).astype(np.float32)
    assert np.abs(out - exact).max() <= 1.0


def test_a_frame_next_to_a_key_renders_its_shadows_as_the_key_does():
    # A key whose look dips below black and whose grid lifts it back (its residual is fit against the
    # unclipped look): it renders the frame unchanged. The next frame, mixed with a key that renders it
    # unchanged too, must not jump: had the mix clipped that key's look at black first, the grid's lift
    # would have stayed on (~20 levels in the shadows).
    dark = to8(np.clip(texture(48, 64, seed=22) * 0.3, 0, 1))
    interp = Interpolator(InterpConfig(blend_tolerance=0.0), spatial=True)
    a, b = _affine_key(0, -0.08, grid_offset=0.08), _affine_key(32, 0.0, grid_offset=0.0)
    out = interp.frame(1, dark, dark, a, b).astype(np.float32)
    assert np.abs(out - dark.astype(np.float32)).max() <= 1.0
