"""Tiny synthetic data shared by the tests (no media files needed)."""

from __future__ import annotations

import cv2
import numpy as np


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth, flow-trackable colour texture, float32 RGB in [0,1]."""
    rng = np.random.default_rng(seed)
    noise = rng.random((max(2, h // 8), max(2, w // 8), 3)).astype(np.float32)
    img = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    img += 0.15 * rng.standard_normal((h, w, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(img, (0, 0), 1.0), 0, 1)


def shifted(img: np.ndarray, dx: int, dy: int = 0) -> np.ndarray:
    """Content moved right by dx and down by dy, border replicated."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REFLECT)


def to8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
