"""Per-image fidelity metrics: PSNR, SSIM and luminance SSIM.

All functions take HxWx3 RGB images in [0, 1] (float, or uint8 which is rescaled by 1/255) and
use a data range of 1, so numbers are comparable across the project (tests, benchmarks, FL eval).
"""

from __future__ import annotations

import numpy as np

from mvstylizer.imaging import as_float01, shrink_to

# scikit-image (the [bench] extra) is imported inside ssim/ssim_luma: the core install imports this
# module and must not need it.


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = as_float01(a, "a")
    b = as_float01(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"images must have the same shape, got {a.shape} and {b.shape}")
    return a, b


def _downscale(img: np.ndarray, max_side: int | None) -> np.ndarray:
    """Area-downscale so the longer side is at most ``max_side`` (no-op if None or already small)."""
    if max_side is None:
        return img
    if max_side < 7:
        raise ValueError(f"max_side must be >= 7 (the SSIM window), got {max_side}")
    return shrink_to(img, max_side, min_side=7)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB, data range 1: ``10 log10(1 / MSE)``; identical -> inf."""
    a, b = _check_pair(a, b)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(1.0 / mse))


def ssim(a: np.ndarray, b: np.ndarray, max_side: int | None = None) -> float:
    """Mean SSIM over colour channels (scikit-image defaults: 7x7 uniform window), data range 1.

    ``max_side`` optionally area-downscales both images first so the longer side is at most that many
    pixels; SSIM of full-HD frames is slow and the downscaled value tracks it closely.
    2-D (grey) inputs are accepted too.
    """
    a, b = _check_pair(a, b)
    a, b = _downscale(a, max_side), _downscale(b, max_side)
    return _ssim(a, b, channel_axis=-1 if a.ndim == 3 else None)


def ssim_luma(a: np.ndarray, b: np.ndarray, max_side: int | None = None) -> float:
    """SSIM of luminance only ("structure kept"): colour changes from styling barely count.

    Luminance is scikit-image's ``rgb2gray`` (Rec. 709 weights), in [0, 1].
    """
    a, b = _check_pair(a, b)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"ssim_luma needs HxWx3 RGB images, got shape {a.shape}")
    from skimage.color import rgb2gray

    la, lb = rgb2gray(a), rgb2gray(b)
    la, lb = _downscale(la, max_side), _downscale(lb, max_side)
    return _ssim(la, lb, channel_axis=None)


def _ssim(a: np.ndarray, b: np.ndarray, channel_axis: int | None) -> float:
    """scikit-image's SSIM with its 7x7 window, narrowed to the largest odd size that fits a picture
    smaller than that; a side under 3 pixels (the smallest window with a variance) is edge-padded to 3.
    A 2x2 or 2x320 video is a video: benches compared such clips with an internal error."""
    from skimage.metrics import structural_similarity

    sides = a.shape[:2]
    if min(sides) < 3:
        pad = [(0, max(0, 3 - n)) for n in sides] + [(0, 0)] * (a.ndim - 2)
        a, b = np.pad(a, pad, mode="edge"), np.pad(b, pad, mode="edge")
        sides = a.shape[:2]
    win = min(7, min(sides) - (1 - min(sides) % 2))
    return float(structural_similarity(a, b, win_size=win, channel_axis=channel_axis, data_range=1.0))
