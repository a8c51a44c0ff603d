import cv2
import numpy as np

from mvstylizer.metrics import psnr
from mvstylizer.colour.affine import apply_affine, fit_global_affine, fit_local_affine, render
from mvstylizer.mobile.smoothing import GuidedUpsampler

from helpers import texture, to8

M = np.array([[0.8, 0.15, 0.0], [0.1, 0.7, 0.1], [0.0, 0.25, 0.6]], np.float32)


def global_style(img):
    return np.clip(img @ M.T + np.float32([0.1, 0.05, 0.0]), 0, 1)


def test_global_fit_recovers_a_global_transform():
    c = texture(64, 96)
    g = fit_global_affine(c, global_style(c)).reshape(3, 4)
    assert np.allclose(g[:, :3], M, atol=0.02)
    assert np.allclose(g[:, 3], [0.1, 0.05, 0.0], atol=0.02)


def test_local_fit_reproduces_the_stylized_frame():
    c = texture(72, 96)
    s = global_style(c)
    assert psnr(apply_affine(fit_local_affine(c, s), c), s) > 40


def test_local_fit_follows_spatially_varying_transforms():
    c = texture(80, 120)
    s = c.copy()
    s[:, :60] = np.clip(c[:, :60] * 0.6, 0, 1)  # left darker, right warmer
    s[:, 60:] = np.clip(c[:, 60:] * [1.1, 0.9, 0.7], 0, 1)
    out = apply_affine(fit_local_affine(c, s), c)
    # Away from the seam each half keeps its own transform, which a global fit cannot do.
    assert psnr(out[:, :50], s[:, :50]) > 35 and psnr(out[:, 70:], s[:, 70:]) > 35
    glob = apply_affine(np.broadcast_to(fit_global_affine(c, s), (80, 120, 12)).copy(), c)
    assert psnr(glob[:, :50], s[:, :50]) < 30


def test_render_is_exact_for_global_transforms_at_any_scale():
    full = texture(270, 480, seed=3)
    for low_w, low_h in [(240, 135), (177, 100), (60, 34)]:  # 2x, 2.7x, 8x
        low = cv2.resize(full, (low_w, low_h), interpolation=cv2.INTER_AREA)
        up = GuidedUpsampler().upscale(global_style(low), low, to8(full))
        assert up.shape == (270, 480, 3) and up.dtype == np.uint8
        assert psnr(up / 255.0, global_style(full)) > 38


def test_guided_upsampling_beats_bicubic_on_detail():
    full = texture(240, 320, seed=5)
    low = cv2.resize(full, (80, 60), interpolation=cv2.INTER_AREA)
    target = global_style(full)
    ours = GuidedUpsampler().upscale(global_style(low), low, to8(full)) / 255.0
    bicubic = cv2.resize(global_style(low), (320, 240), interpolation=cv2.INTER_CUBIC)
    assert psnr(ours, target) > psnr(bicubic, target) + 6


def test_render_at_native_size_equals_applying_the_maps():
    full = texture(40, 60)
    k, g = GuidedUpsampler().maps(full, global_style(full))
    out = render(k, g, full, to8(full))
    assert out.dtype == np.uint8
    assert np.abs(out / 255.0 - apply_affine(k, full)).max() < 3 / 255


def test_guided_filter_of_many_channels_is_the_per_triple_fit():
    # One guide, N channels: the same numbers as fitting and applying local affine maps three
    # channels at a time, with the guide's statistics computed once.
    from mvstylizer.colour.affine import AffineFit, guided_filter

    rng = np.random.default_rng(3)
    guide = texture(40, 56, seed=5)
    src = rng.random((40, 56, 6)).astype(np.float32)
    fit = AffineFit(3, 1e-3)
    want = np.concatenate([apply_affine(fit_local_affine(guide, np.ascontiguousarray(src[..., i:i + 3]), fit),
                                        guide, clip=False) for i in (0, 3)], axis=2)
    assert np.allclose(guided_filter(guide, src, fit), want, atol=1e-5)


def test_guided_filter_snaps_a_soft_mask_to_the_guides_edge():
    from mvstylizer.colour.affine import AffineFit, guided_filter

    guide = np.zeros((32, 64, 3), np.float32)
    guide[:, 32:] = 1.0
    soft = np.clip((np.arange(64, dtype=np.float32) - 24) / 16, 0, 1)[None, :, None] * np.ones((32, 1, 1), np.float32)
    out = guided_filter(guide, soft, AffineFit(4, 1e-4))[..., 0]
    # The ramp's change concentrates where the guide has its edge (a 0.06 step in the input).
    steps = np.diff(out, axis=1)
    assert np.all(steps[:, 31] > 0.25) and np.all(np.abs(np.delete(steps, 31, axis=1)) < 0.06)
