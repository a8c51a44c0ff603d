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

from dataclasses import dataclass, field

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
    global_map: np.ndarray  # 12 floats (+ tone curves: learned smoothing; see affine.render)
    # Full-resolution stylized key frame: written as the key's output, and warped by the warp method.
    styled8: np.ndarray | None = None
    # gray and coeffs at the transform method's map resolution, made once per key when first needed.
    small: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)


@dataclass
class InterpConfig:
    method: str = "transform"
    flow_preset: str = "fast"
    # Occluded pixels keep this much weight so a key seen nowhere still blends smoothly.
    occluded_weight: float = 0.02
    # The transform method finds flow, occlusion and blends the keys' colour maps at this fraction of
    # the key size. At 1080p 0.5 halved the phone's time per in-between frame; it smooths the maps of
    # spatially varying models (wct2 on bikes.mp4: warping error 0.00371 vs 0.00291 at 1.0).
    map_scale: float = 0.5

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"interpolation must be one of {METHODS}, got {self.method!r}")
        if not 0.0 < self.map_scale <= 1.0:
            raise ValueError(f"map_scale must be in (0, 1], got {self.map_scale}")


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
        if self.config.method == "warp":
            return self._warp(content8, [self._visible(gray, k.gray) + (k, w) for k, w in sides if w > 0])
        small = self._map_size(gray)
        gray_t = _shrink(gray, small)
        fields = [self._visible(gray_t, self._small(k, small)[0]) + (k, w) for k, w in sides if w > 0]
        return self._transform(content_low, content8, fields, small)

    def as_seen(self, key: KeyFrame) -> np.ndarray:
        """The key's maps after the round trip through the map resolution that in-between frames get
        (the small maps are cached on the key, so the in-between frames reuse them)."""
        if self.config.method == "warp" or self.config.map_scale == 1.0:
            return key.coeffs
        return _shrink(self._small(key, self._map_size(key.gray))[1], key.coeffs.shape[1::-1])

    def _map_size(self, gray: np.ndarray) -> tuple[int, int]:
        h, w = gray.shape[:2]
        s = self.config.map_scale
        return max(8, round(w * s)), max(8, round(h * s))

    def _small(self, key: KeyFrame, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """The key's grey frame and colour maps at the map resolution (cached on the key)."""
        if key.small is None or key.small[0].shape[1::-1] != size:
            key.small = (_shrink(key.gray, size), _shrink(key.coeffs, size))
        return key.small

    def _visible(self, gray: np.ndarray, key_gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flow frame t -> key, and where frame t's pixels are visible in the key."""
        to_key = self._flow(gray, key_gray)
        back = self._flow(key_gray, gray)
        return to_key, occlusion_mask(to_key, back)

    def _weights(self, fields: list) -> list[np.ndarray]:
        """Per-pixel blend weights: temporal closeness times visibility, normalised to sum to one."""
        eps = self.config.occluded_weight
        raw = [w * (m.astype(np.float32) * (1.0 - eps) + eps) for _, m, _, w in fields]
        total = sum(raw)
        return [r / total for r in raw]

    def _transform(self, content_low: np.ndarray, content8: np.ndarray, fields: list,
                   small: tuple[int, int]) -> np.ndarray:
        weights = self._weights(fields)
        # Where no key sees the pixel its warped maps are border guesses: fade to the global map
        # (with unit detail gain when the maps carry one), softly, so the fallback leaves no seam.
        seen = np.maximum.reduce([m for _, m, _, _ in fields]).astype(np.float32)
        seen = cv2.GaussianBlur(seen, (0, 0), 2.0 * self.config.map_scale)
        global_map = sum(k.global_map * wt for _, _, k, wt in fields) / sum(wt for *_, wt in fields)
        channels = fields[0][2].coeffs.shape[2]
        fallback = np.concatenate([global_map[:12], np.ones(channels - 12, np.float32)])
        coeffs = np.broadcast_to(fallback, (small[1], small[0], channels)) * (1.0 - seen)[..., None]
        for (f, _, k, _), w in zip(fields, weights):
            coeffs += warp(self._small(k, small)[1], f) * (w * seen)[..., None]
        coeffs = _shrink(coeffs, content_low.shape[1::-1])  # back up to the key size, bilinearly
        return render(coeffs, global_map, content_low, content8, self._scratch)

    def _warp(self, content8: np.ndarray, fields: list) -> np.ndarray:
        h, w = content8.shape[:2]
        weights = self._weights(fields)
        out = np.zeros((h, w, 3), np.float32)
        for (f, _, k, _), wt in zip(fields, weights):
            if k.styled8 is None:
                raise ValueError("warp interpolation needs the keys' full-resolution stylized frames")
            big = resize_flow(f, w, h)
            out += warp(k.styled8, big).astype(np.float32) * cv2.resize(wt, (w, h))[..., None]
        return to_rgb8(out * (1.0 / 255.0))


def _shrink(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to ``size`` (w, h); a no-op at the same size.

    Area averaging when shrinking images of up to 4 channels (OpenCV's limit for it); bilinear
    otherwise, which is enough for the colour maps, smooth by construction."""
    if img.shape[1::-1] == size:
        return img
    area = size[0] < img.shape[1] and (img.ndim == 2 or img.shape[2] <= 4)
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if area else cv2.INTER_LINEAR)
