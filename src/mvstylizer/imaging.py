"""Pixel-format and resizing rules shared by the phone, the edge, the models and the metrics
(numpy + OpenCV only)."""

from __future__ import annotations

import cv2
import numpy as np


def fit_within(width: int, height: int, max_side: int, min_side: int = 1) -> tuple[int, int]:
    """(w, h) with the long side at most ``max_side``, aspect kept, never upscaled, each side >= ``min_side``."""
    s = min(1.0, max_side / max(width, height))
    return max(min_side, round(width * s)), max(min_side, round(height * s))


def shrink_to(img: np.ndarray, max_side: int, min_side: int = 1) -> np.ndarray:
    """Area-downscale so the long side is at most ``max_side``; an image already that small is returned as is."""
    h, w = img.shape[:2]
    if max(h, w) <= max_side:
        return img
    return cv2.resize(img, fit_within(w, h, max_side, min_side), interpolation=cv2.INTER_AREA)


def area_resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-downscale to ``size`` (w, h), halving first while the image is at least twice as large.

    OpenCV's area resize is ~10x faster at an exact factor of 2 than at an arbitrary one (1080p to
    512 px: 2 ms; halvings then a small final step: ~0.5 ms), and each halving is itself an exact
    area average, so the result differs from a one-step area resize by rounding only.
    """
    w, h = size
    img = _halved_towards(img, size)
    if img.shape[1::-1] == (w, h):
        return img
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def quick_downscale(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Downscale to ``size`` (w, h) by exact area halvings, then one bilinear step of less than 2x.

    For views made of every frame of a video: at 1080p to 512 px the last step of
    :func:`area_resize` (960 -> 512 px) is OpenCV's slow general area path, ~1.5 ms of CPU per frame;
    a bilinear step costs ~0.2 ms. Its result is a little sharper (a 2x2 rather than a ~2x2 box
    footprint): SSIM 0.993-0.999 to :func:`area_resize` on the first frames of five real clips.
    """
    w, h = size
    img = _halved_towards(img, size)
    if img.shape[1::-1] == (w, h):
        return img
    step = cv2.INTER_LINEAR if img.shape[1] < 2 * w and img.shape[0] < 2 * h else cv2.INTER_AREA
    return cv2.resize(img, (w, h), interpolation=step)


def _halved_towards(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``img`` area-halved (an exact 2x2 average) while it is at least twice ``size`` (w, h) and even."""
    w, h = size
    while img.shape[1] >= 2 * w and img.shape[0] >= 2 * h and img.shape[1] % 2 == 0 and img.shape[0] % 2 == 0:
        img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return img


def as_float01(img: np.ndarray, name: str = "image") -> np.ndarray:
    """Float32 copy-or-view in [0, 1]; uint8 is rescaled, other dtypes are only cast."""
    arr = np.asarray(img)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if not np.issubdtype(arr.dtype, np.floating) and arr.dtype != np.bool_:
        raise TypeError(f"{name}: expected float in [0,1] or uint8, got dtype {arr.dtype}")
    return arr.astype(np.float32, copy=False)


def model_rgb(img: np.ndarray) -> np.ndarray:
    """What a colour model may compute with: float32 RGB in [0, 1]. uint8 and uint16 are scaled by their
    range (taken as 0..1 as they stand, a uint8 frame was all white); float is clipped, NaN to black
    and infinities to the range's ends (one NaN pixel of a style made a whole result NaN, and the
    colour maps' eigendecompositions failed). In-range float32 comes back unchanged."""
    img = np.asarray(img)
    if img.dtype in (np.uint8, np.uint16):
        return img.astype(np.float32) * np.float32(1.0 / np.iinfo(img.dtype).max)
    img = np.nan_to_num(img.astype(np.float32), copy=False, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(img, 0.0, 1.0, out=img)
