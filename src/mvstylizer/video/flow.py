"""Optical flow and warping shared by the phone side and the metrics (OpenCV DIS, no torch).

Flow convention: ``flow[y, x] = (dx, dy)`` maps a pixel of the *reference* frame to its position in
the *other* frame, so ``warp(other, flow)`` resamples ``other`` into the reference frame's geometry.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass
class FlowEstimator:
    """DIS optical flow; one OpenCV object reused, since creating it costs more than small flows."""

    preset: str = "fast"

    def __post_init__(self) -> None:
        if self.preset not in _PRESETS:
            raise ValueError(f"unknown DIS preset {self.preset!r}; choose from {sorted(_PRESETS)}")
        self._dis = cv2.DISOpticalFlow_create(_PRESETS[self.preset])

    def __call__(self, ref_gray8: np.ndarray, other_gray8: np.ndarray) -> np.ndarray:
        """Flow HxWx2 float32 from ``ref`` to ``other`` (both grey uint8, same size)."""
        if ref_gray8.shape != other_gray8.shape:
            raise ValueError(f"flow needs equal sizes, got {ref_gray8.shape} and {other_gray8.shape}")
        return self._dis.calc(ref_gray8, other_gray8, None)


def warp(image: np.ndarray, flow: np.ndarray, border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Backward warp: ``out[y, x] = image[y + dy, x + dx]`` with bilinear sampling.

    ``image`` may have any channel count OpenCV's remap accepts (up to 4); the flow may be smaller than
    the image only if both were resized consistently by the caller.
    """
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x = gx + flow[..., 0]
    map_y = gy + flow[..., 1]
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=border)


def warp_channels(stack: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward warp of an HxWxC array with any C (remap takes at most 4 channels per call)."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x, map_y = cv2.convertMaps(gx + flow[..., 0], gy + flow[..., 1], cv2.CV_16SC2)
    parts = [
        cv2.remap(np.ascontiguousarray(stack[..., i : i + 4]), map_x, map_y, cv2.INTER_LINEAR,
                  borderMode=cv2.BORDER_REPLICATE)
        for i in range(0, stack.shape[2], 4)
    ]
    parts = [p[..., None] if p.ndim == 2 else p for p in parts]
    return np.concatenate(parts, axis=2)


def occlusion_mask(flow_fw: np.ndarray, flow_bw: np.ndarray, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """Forward-backward consistency: True where the reference pixel is visible in the other frame.

    ``flow_fw`` goes ref -> other, ``flow_bw`` other -> ref. A pixel is consistent when the round trip
    returns close to where it started (the test of Sundaram et al. 2010, used by most video-consistency
    work): |fw + bw(x + fw)|^2 < alpha (|fw|^2 + |bw(x + fw)|^2) + beta.
    Pixels whose forward flow leaves the frame are marked occluded too.
    """
    bw_at = warp(flow_bw, flow_fw, border=cv2.BORDER_REPLICATE)
    s = flow_fw + bw_at
    lhs = (s**2).sum(axis=2)
    rhs = alpha * ((flow_fw**2).sum(axis=2) + (bw_at**2).sum(axis=2)) + beta
    h, w = flow_fw.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
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
