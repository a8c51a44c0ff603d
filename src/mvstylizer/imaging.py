"""Resizing rules shared by the phone, the edge, the models and the metrics (numpy + OpenCV only)."""

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
