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


def bt2020_signal(rgb8: np.ndarray) -> np.ndarray:
    """The 16-bit BT.2020 signal (SDR, a 2.4 power curve) that shows as ``rgb8`` does on BT.709: display
    light converted to BT.2020 primaries by BT.2087's matrix, then the same curve back."""
    to_2020 = np.array([[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]])
    light = ((np.asarray(rgb8) / 255.0) ** 2.4) @ to_2020.T
    return np.round(np.clip(light, 0, 1) ** (1 / 2.4) * 65535).astype(np.uint16)
