"""Phone-side frame interpolation between two stylized key frames, from DIS optical flow.

Two methods, both guided by flow between the current frame t and its enclosing keys a < t < b,
computed on the low-resolution work frames, with forward-backward occlusion masks and weights that
fall off with temporal distance:

- ``warp`` (the paper's): warp the full-resolution stylized key frames into frame t and blend.
  Detail and any flow error come from the keys, so fast motion ghosts.
- ``transform`` (ours): warp each key's *local affine colour maps* (content -> stylized) into frame t,
  blend them, and apply them to the real frame t. Detail comes from frame t itself; where both keys
  are occluded the keys' global colour maps take over, so nothing is left unstyled.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..video.flow import FlowEstimator, occlusion_mask, resize_flow, warp
from .affine import Scratch, render, to_rgb8

METHODS = ("transform", "warp")


@dataclass
class KeyFrame:
    """What the phone keeps of a stylized key frame while it fills the frames around it."""

    index: int
    gray: np.ndarray  # work-resolution grey uint8, for flow
    coeffs: np.ndarray  # work-resolution local affine maps, HxWx12 (+3 detail gain: learned smoothing)
    global_map: np.ndarray  # 12 floats
    # Full-resolution stylized key frame: written as the key's output, and warped by the warp method.
    styled8: np.ndarray | None = None


@dataclass
class InterpConfig:
    method: str = "transform"
    flow_preset: str = "fast"
    # Occluded pixels keep this much weight so a key seen nowhere still blends smoothly.
    occluded_weight: float = 0.02

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"interpolation must be one of {METHODS}, got {self.method!r}")


class Interpolator:
    def __init__(self, config: InterpConfig | None = None, scratch: Scratch | None = None) -> None:
        self.config = config or InterpConfig()
        self._flow = FlowEstimator(self.config.flow_preset)
        self._scratch = scratch or Scratch()

    def frame(self, t: int, gray: np.ndarray, content_low: np.ndarray, content8: np.ndarray,
              a: KeyFrame, b: KeyFrame) -> np.ndarray:
        """Stylized frame t (full-resolution uint8 RGB) from keys ``a`` and ``b`` (a.index <= t <= b.index)."""
        span = max(1, b.index - a.index)
        dist_a = (b.index - t) / span  # weight of key a: 1 at a, 0 at b
        sides = [(a, dist_a), (b, 1.0 - dist_a)] if a is not b else [(a, 1.0)]
        fields = [self._visible(gray, k) + (w,) for k, w in sides if w > 0]
        if self.config.method == "transform":
            return self._transform(content_low, content8, fields)
        return self._warp(content8, fields)

    def _visible(self, gray: np.ndarray, key: KeyFrame) -> tuple[KeyFrame, np.ndarray, np.ndarray]:
        """Flow frame t -> key, and where frame t's pixels are visible in the key."""
        to_key = self._flow(gray, key.gray)
        back = self._flow(key.gray, gray)
        return key, to_key, occlusion_mask(to_key, back)

    def _weights(self, fields: list) -> list[np.ndarray]:
        """Per-pixel blend weights: temporal closeness times visibility, normalised to sum to one."""
        eps = self.config.occluded_weight
        raw = [w * (m.astype(np.float32) * (1.0 - eps) + eps) for _, _, m, w in fields]
        total = sum(raw)
        return [r / total for r in raw]

    def _transform(self, content_low: np.ndarray, content8: np.ndarray, fields: list) -> np.ndarray:
        weights = self._weights(fields)
        coeffs = sum(warp(k.coeffs, f) * w[..., None] for (k, f, _, _), w in zip(fields, weights))
        global_map = sum(k.global_map * wt for k, _, _, wt in fields) / sum(wt for *_, wt in fields)
        # Where no key sees the pixel its warped maps are border guesses: fade to the global map
        # (with unit detail gain when the maps carry one), softly, so the fallback leaves no seam.
        seen = np.maximum.reduce([m for _, _, m, _ in fields]).astype(np.float32)
        seen = cv2.GaussianBlur(seen, (0, 0), 2.0)[..., None]
        fallback = np.concatenate([global_map, np.ones(coeffs.shape[2] - 12, np.float32)])
        coeffs = coeffs * seen + fallback * (1.0 - seen)
        return render(coeffs, global_map, content_low, content8, self._scratch)

    def _warp(self, content8: np.ndarray, fields: list) -> np.ndarray:
        h, w = content8.shape[:2]
        weights = self._weights(fields)
        out = np.zeros((h, w, 3), np.float32)
        for (k, f, _, _), wt in zip(fields, weights):
            if k.styled8 is None:
                raise ValueError("warp interpolation needs the keys' full-resolution stylized frames")
            big = resize_flow(f, w, h)
            out += warp(k.styled8, big).astype(np.float32) * cv2.resize(wt, (w, h))[..., None]
        return to_rgb8(out * (1.0 / 255.0))
