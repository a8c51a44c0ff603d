"""Known-answer tests for mvstylizer.metrics."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from skimage.color import lab2rgb, rgb2lab

from mvstylizer.metrics import (
    WarpErrorMeter,
    flow_and_mask,
    lab_swd,
    psnr,
    ssim,
    ssim_luma,
    warp_error,
)
from mvstylizer.video.flow import warp


def _texture(h: int, w: int, seed: int = 0, sigma: float = 1.5) -> np.ndarray:
    """Smooth random RGB texture in [0, 1], float32 (trackable by DIS, no flat areas)."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), sigma)
    img -= img.min()
    img /= img.max()
    return img


def _shifted_pair(k: int, h: int = 96, w: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """(prev, cur) where content moves k px to the right: cur[:, x] == prev[:, x - k]."""
    big = _texture(h, w + k)
    return big[:, k : k + w].copy(), big[:, :w].copy()


# ---------------------------------------------------------------- image


def test_psnr_identical_is_inf() -> None:
    a = _texture(32, 40)
    assert psnr(a, a) == math.inf


def test_psnr_constant_offset() -> None:
    a = np.full((16, 16, 3), 0.5, np.float32)
    assert psnr(a, a + 0.1) == pytest.approx(20.0, abs=1e-4)
    assert psnr(a, a + 0.01) == pytest.approx(40.0, abs=1e-3)


def test_psnr_accepts_uint8_and_rejects_shape_mismatch() -> None:
    a = np.zeros((8, 8, 3), np.uint8)
    b = np.full((8, 8, 3), 255, np.uint8)
    assert psnr(a, b) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        psnr(a, b[:4])


def test_ssim_identical_and_noise() -> None:
    a = _texture(64, 64)
    rng = np.random.default_rng(1)
    noisy = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1).astype(np.float32)
    noisier = np.clip(a + rng.normal(0, 0.2, a.shape), 0, 1).astype(np.float32)
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, noisier) < ssim(a, noisy) < 0.99


def test_ssim_max_side_downscales() -> None:
    a = _texture(200, 300)
    rng = np.random.default_rng(2)
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1).astype(np.float32)
    assert ssim(a, a, max_side=64) == pytest.approx(1.0)
    # Downscaling averages the noise away, so the value rises but stays below 1.
    assert ssim(a, b) < ssim(a, b, max_side=64) < 1.0


def test_ssim_luma_tracks_structure_not_colour() -> None:
    a = _texture(64, 64)
    # A pure colour change that keeps structure: luminance SSIM stays high, colour SSIM drops.
    tinted = np.clip(a * np.array([1.0, 0.6, 0.3], np.float32), 0, 1)
    assert ssim_luma(a, a) == pytest.approx(1.0)
    assert ssim_luma(a, tinted) > ssim(a, tinted)
    rng = np.random.default_rng(3)
    noisy = np.clip(a + rng.normal(0, 0.2, a.shape), 0, 1).astype(np.float32)
    assert ssim_luma(a, noisy) < 0.9



@pytest.mark.parametrize("shape", [(1, 1, 3), (2, 2, 3), (2, 320, 3), (5, 6, 3)])
def test_ssim_of_pictures_smaller_than_its_window(shape) -> None:
    """A 2x2 or 2x320 video is a video: SSIM narrows its window (or pads to 3 px) instead of raising."""
    rng = np.random.default_rng(4)
    a = rng.random(shape).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.1, shape), 0, 1).astype(np.float32)
    assert ssim(a, a) == pytest.approx(1.0) and ssim_luma(a, a) == pytest.approx(1.0)
    assert 0.0 < ssim(a, b) < 1.0 and 0.0 < ssim_luma(a, b) < 1.0

# ---------------------------------------------------------------- temporal


def test_warp_error_static_frames_is_zero() -> None:
    a = _texture(32, 48)
    frames = [a, a, a]
    flows = [np.zeros((32, 48, 2), np.float32)] * 2
    masks = [np.ones((32, 48), bool)] * 2
    assert warp_error(frames, flows, masks) == 0.0
    assert warp_error(frames, flows) == 0.0  # masks=None: every pixel counts


def test_warp_error_true_flow_vs_zero_flow() -> None:
    k = 4
    prev, cur = _shifted_pair(k)
    h, w = cur.shape[:2]
    true_flow = np.zeros((h, w, 2), np.float32)
    true_flow[..., 0] = -k  # documented direction: frame t -> t-1, content moved right
    mask = np.ones((h, w), bool)
    mask[:, :k] = False  # disoccluded left border
    assert warp_error([prev, cur], [true_flow], [mask]) == pytest.approx(0.0, abs=1e-10)
    zero_err = warp_error([prev, cur], [np.zeros_like(true_flow)], [mask])
    assert zero_err > 0.01
    # The wrong sign is as bad as no flow.
    assert warp_error([prev, cur], [-true_flow], [mask]) > 0.01


def test_warp_error_mask_excludes_occluded_pixels() -> None:
    k = 3
    prev, cur = _shifted_pair(k)
    h, w = cur.shape[:2]
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0] = -k
    mask = np.ones((h, w), bool)
    mask[:, :k] = False
    mask[20:40, 50:80] = False
    garbage = cur.copy()
    garbage[20:40, 50:80] = np.random.default_rng(4).random((20, 30, 3))
    assert warp_error([prev, garbage], [flow], [mask]) == pytest.approx(0.0, abs=1e-10)
    # Without the mask the garbage counts.
    assert warp_error([prev, garbage], [flow], None) > 0.01


def test_warp_error_known_value_and_mean_over_pairs() -> None:
    h, w = 16, 16
    zeros = np.zeros((h, w, 3), np.float32)
    flow = np.zeros((h, w, 2), np.float32)
    # Pair 1: every channel differs by 0.1 -> ||.||^2 = 3 * 0.01. Pair 2: identical -> 0.
    frames = [zeros, zeros + 0.1, zeros + 0.1]
    assert warp_error(frames, [flow, flow]) == pytest.approx((0.03 + 0.0) / 2, rel=1e-5)


def test_meter_matches_batch_and_skips_empty_masks() -> None:
    rng = np.random.default_rng(5)
    frames = [rng.random((24, 24, 3)).astype(np.float32) for _ in range(4)]
    flows = [rng.normal(0, 1, (24, 24, 2)).astype(np.float32) for _ in range(3)]
    masks = [rng.random((24, 24)) > 0.3 for _ in range(3)]
    meter = WarpErrorMeter()
    per_pair = [meter.update(frames[i], frames[i + 1], flows[i], masks[i]) for i in range(3)]
    assert meter.value == pytest.approx(warp_error(frames, flows, masks))
    assert meter.value == pytest.approx(np.mean(per_pair))
    assert meter.pairs == 3
    assert math.isnan(meter.update(frames[0], frames[1], flows[0], np.zeros((24, 24), bool)))
    assert meter.skipped == 1 and meter.pairs == 3
    assert math.isnan(WarpErrorMeter().value)


def test_warp_error_rejects_bad_shapes() -> None:
    a = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(ValueError):
        warp_error([a], [])
    with pytest.raises(ValueError):
        warp_error([a, a], [np.zeros((8, 4, 2), np.float32)])
    with pytest.raises(ValueError):
        warp_error([a, a], [np.zeros((8, 8, 2), np.float32)], [np.ones((4, 8), bool)])


def test_flow_and_mask_recovers_shift_and_masks_border() -> None:
    k = 3
    prev, cur = _shifted_pair(k, h=96, w=128)
    flow, mask = flow_and_mask(prev, cur)
    assert flow.shape == (96, 128, 2) and flow.dtype == np.float32
    assert mask.shape == (96, 128) and mask.dtype == bool
    interior = (slice(10, -10), slice(10, -10))
    # Documented direction: reference = frame t, so content moving right gives dx = -k.
    assert np.median(flow[interior][..., 0]) == pytest.approx(-k, abs=0.1)
    assert np.abs(flow[interior][..., 0] + k).mean() < 0.2
    assert np.abs(flow[interior][..., 1]).mean() < 0.2
    # The disoccluded strip (content that entered from the left) is masked, the interior is kept.
    assert not mask[:, :k].any()
    assert mask[interior].mean() > 0.95
    # warp(prev, flow) lands in frame t's geometry.
    aligned = warp(prev, flow)
    assert np.abs(aligned - cur)[interior].mean() < 0.01


def test_flow_and_mask_end_to_end_output_vs_floor() -> None:
    """Stylized output that flickers scores worse than the input floor on the same flows."""
    prev, cur = _shifted_pair(2, h=64, w=80)
    flow, mask = flow_and_mask(prev, cur, preset="fast")
    floor, flicker = WarpErrorMeter(), WarpErrorMeter()
    floor.update(prev, cur, flow, mask)
    flicker.update(prev * 0.8, cur, flow, mask)
    assert floor.value < 1e-3
    assert flicker.value > 10 * floor.value


# ---------------------------------------------------------------- colour


def test_lab_swd_identical_symmetric_deterministic() -> None:
    a = _texture(48, 64, seed=0)
    b = _texture(40, 40, seed=1) ** 2
    assert lab_swd(a, a) == pytest.approx(0.0, abs=1e-12)
    assert lab_swd(a, b) == pytest.approx(lab_swd(b, a), rel=1e-12)
    assert lab_swd(a, b) == lab_swd(a, b)
    assert lab_swd(a, b, seed=1) != lab_swd(a, b, seed=0)


def test_lab_swd_grows_with_colour_shift() -> None:
    a = _texture(48, 64) * 0.6 + 0.2
    small = a + np.array([0.05, 0.0, -0.05], np.float32)
    large = a + np.array([0.2, 0.0, -0.2], np.float32)
    d_small, d_large = lab_swd(a, small), lab_swd(a, large)
    assert 0.0 < d_small < d_large


def test_lab_swd_constant_colours_known_answer() -> None:
    # Two one-colour images: each projection's W2 is |theta . d|, and E[(theta . d)^2] = |d|^2 / 3
    # for theta uniform on the sphere, so SW2 -> |d| / sqrt(3) with many projections.
    c1, c2 = np.array([0.2, 0.5, 0.7]), np.array([0.6, 0.4, 0.2])
    a = np.broadcast_to(c1, (10, 12, 3)).astype(np.float32)
    b = np.broadcast_to(c2, (7, 5, 3)).astype(np.float32)
    d = np.linalg.norm(rgb2lab(c1) - rgb2lab(c2))
    assert lab_swd(a, b, n_projections=4096) == pytest.approx(d / math.sqrt(3), rel=0.03)


def test_lab_swd_different_sizes() -> None:
    a = _texture(30, 40)
    # Nearest 2x upscale holds every colour exactly 4 times: the same distribution, other pixel count.
    up = np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)
    assert lab_swd(a, up) == pytest.approx(0.0, abs=1e-9)
    # Subsampling a large image keeps the distribution close.
    big = np.repeat(np.repeat(a, 8, axis=0), 8, axis=1)  # 76800 px > max_pixels
    other = _texture(30, 40, seed=7)
    assert lab_swd(a, big, max_pixels=20000) < 0.2 * lab_swd(a, other)


def test_lab_swd_matches_lab_offset() -> None:
    # A constant Lab offset d shifts every projection by theta . d: SW2 ~= |d| / sqrt(3).
    lab = rgb2lab(_texture(32, 32) * 0.5 + 0.25)
    off = np.array([5.0, 3.0, -4.0])
    a = np.clip(lab2rgb(lab), 0, 1).astype(np.float32)
    b = np.clip(lab2rgb(lab + off), 0, 1).astype(np.float32)
    assert lab_swd(a, b, n_projections=4096) == pytest.approx(np.linalg.norm(off) / math.sqrt(3), rel=0.05)


def test_flat_mask_separates_plain_wall_from_texture():
    from mvstylizer.metrics import flat_mask

    rng = np.random.default_rng(0)
    img = np.full((32, 32, 3), 0.6, np.float32)
    img += rng.normal(0, 0.004, img.shape).astype(np.float32)  # sensor noise on a wall: still flat
    img[:, 16:] += rng.normal(0, 0.1, (32, 16, 3)).astype(np.float32)  # texture
    m = flat_mask(np.clip(img, 0, 1))
    assert m.shape == (32, 32) and m.dtype == bool
    assert m[:, :10].all()
    assert not m[:, 20:].any()
    assert flat_mask((img.clip(0, 1) * 255).astype(np.uint8))[:, :10].all()
