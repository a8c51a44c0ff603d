"""Optical flow and warping shared by the phone side and the metrics (OpenCV DIS, no torch).

Flow convention: ``flow[y, x] = (dx, dy)`` maps a pixel of the *reference* frame to its position in
the *other* frame, so ``warp(other, flow)`` resamples ``other`` into the reference frame's geometry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import cast

import cv2
import numpy as np

_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def to_gray8(rgb: np.ndarray) -> np.ndarray:
    """Grey uint8 image from RGB float in [0,1] or uint8."""
    if rgb.dtype != np.uint8:
        rgb = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


# OpenCV's DIS refuses images under 12 px, and segfaults or raises on a short side of 12-31 px when the
# long side is ~96 px or more (OpenCV 5.0; the key-selection thumbnail of any video wider than ~8:1).
_DIS_MIN_SIDE = 32


@dataclass
class FlowEstimator:
    """DIS optical flow; one OpenCV object reused, since creating it costs more than small flows."""

    preset: str = "fast"

    def __post_init__(self) -> None:
        if self.preset not in _PRESETS:
            raise ValueError(f"unknown DIS preset {self.preset!r}; choose from {sorted(_PRESETS)}")
        self._dis = cv2.DISOpticalFlow.create(_PRESETS[self.preset])

    def __call__(self, ref_gray8: np.ndarray, other_gray8: np.ndarray) -> np.ndarray:
        """Flow HxWx2 float32 from ``ref`` to ``other`` (both grey uint8, same size)."""
        if ref_gray8.shape != other_gray8.shape:
            raise ValueError(f"flow needs equal sizes, got {ref_gray8.shape} and {other_gray8.shape}")
        # OpenCV's stub makes calc's flow argument an array; None, which has OpenCV allocate it, is valid.
        calc = cast(Callable[[np.ndarray, np.ndarray, None], np.ndarray], self._dis.calc)
        h, w = ref_gray8.shape[:2]
        if min(h, w) >= _DIS_MIN_SIDE:
            return calc(ref_gray8, other_gray8, None)
        # Too thin for DIS (a tiny or very wide video's thumbnails): flow on an enlarged copy, in its
        # own pixels, brought back to this size.
        k = -(-_DIS_MIN_SIDE // min(h, w))
        big = [cv2.resize(g, (w * k, h * k), interpolation=cv2.INTER_LINEAR) for g in (ref_gray8, other_gray8)]
        flow = calc(big[0], big[1], None)
        return cv2.resize(flow, (w, h), interpolation=cv2.INTER_AREA) * np.float32(1.0 / k)


@lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates of an HxW frame; memoised because every warp of a video needs the same one."""
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    gx.flags.writeable = False
    gy.flags.writeable = False
    return gx, gy


def warp(image: np.ndarray, flow: np.ndarray, border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Backward warp: ``out[y, x] = image[y + dy, x + dx]`` with bilinear sampling.

    ``image`` may have any number of channels (OpenCV's remap takes e.g. the 12 colour-map channels
    in one call) and must have the flow's height and width.
    """
    gx, gy = _grid(*flow.shape[:2])
    return cv2.remap(image, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=border)


def occlusion_mask(flow_fw: np.ndarray, flow_bw: np.ndarray, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """Forward-backward consistency: True where the reference pixel is visible in the other frame.

    ``flow_fw`` goes ref -> other, ``flow_bw`` other -> ref. A pixel is consistent when the round trip
    returns close to where it started (the test of Sundaram et al. 2010, used by most video-consistency
    work): |fw + bw(x + fw)|^2 < alpha (|fw|^2 + |bw(x + fw)|^2) + beta.
    Pixels whose forward flow leaves the frame are marked occluded too.
    """
    bw_at = warp(flow_bw, flow_fw, border=cv2.BORDER_REPLICATE)
    fx, fy, bx, by = flow_fw[..., 0], flow_fw[..., 1], bw_at[..., 0], bw_at[..., 1]
    # Written out per component: numpy's reduction over a length-2 last axis is ~5x slower.
    lhs = (fx + bx) ** 2 + (fy + by) ** 2
    rhs = alpha * (fx * fx + fy * fy + bx * bx + by * by) + beta
    h, w = flow_fw.shape[:2]
    gx, gy = _grid(h, w)
    tx, ty = gx + flow_fw[..., 0], gy + flow_fw[..., 1]
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    return (lhs < rhs) & inside


def resize_flow(flow: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resample a flow field to another size, scaling its vectors to the new pixel units."""
    h, w = flow.shape[:2]
    out = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= width / w
    out[..., 1] *= height / h
    return out
