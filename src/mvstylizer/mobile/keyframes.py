"""Adaptive key-frame selection: decide, frame by frame, when the phone needs a new stylized key.

A frame becomes a key when interpolating it from the last key would be unreliable: the camera moved
far, much of the picture is newly uncovered (occlusion), the colours changed, the scene cut, or the
gap reached its maximum. Works on a small grey/colour thumbnail so it costs ~1-2 ms per frame.
"""

from __future__ import annotations

import logging
import numbers
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..video.flow import FlowEstimator, occlusion_mask, warp

log = logging.getLogger(__name__)


@dataclass
class KeyframeConfig:
    mode: str = "auto"  # "auto" (adaptive) or "every" (fixed stride)
    every: int = 10  # stride for mode "every"
    max_gap: int = 30  # frames between keys at most, whatever the content does
    min_gap: int = 1
    thumb_side: int = 256  # long side of the analysis thumbnail
    motion: float = 0.10  # mean flow from the last key, as a fraction of the thumbnail's long side
    # Fraction of pixels the last key cannot explain: they fail the forward-backward flow check AND
    # the key, warped by the flow, misses them by more than ``residual`` (grey levels in [0,1]).
    # The residual test matters: DIS is fb-inconsistent over flat sky and road, which interpolation
    # handles fine; uncovered or changed *content* is what it cannot.
    occlusion: float = 0.15
    residual: float = 0.08
    colour: float = 0.25  # Hellinger distance of colour histograms, last key -> frame
    # A scene cut: consecutive frames whose colour histograms differ this much (Hellinger), or
    # where the previous frame, warped by the flow, misses this fraction of pixels. On bikes.mp4 the
    # five real cuts score 0.42-0.85 / 0.57-0.86 and every other frame pair at most 0.15 / 0.18.
    cut: float = 0.3
    cut_residual: float = 0.4

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "every"):
            raise ValueError(f"key-frame mode must be 'auto' or 'every', got {self.mode!r}")
        for name in ("every", "max_gap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"key-frame {name} must be a whole number >= 1, got {value!r}")


def parse_keyframes(text: str) -> tuple[str, int]:
    """The key-frame option's text: ``"auto"`` -> ("auto", 0); ``"every:N"``, N plain digits >= 1 ->
    ("every", N). ValueError otherwise (the command line and the API take the same text)."""
    mode, _, n = text.partition(":")
    if text == "auto":
        return "auto", 0
    if mode == "every" and n.isascii() and n.isdigit() and int(n) >= 1:
        return "every", int(n)
    raise ValueError(f"expected 'auto' or 'every:N' with N a whole number >= 1, got {text!r}")


def keyframe_config(mode: str, every: int, max_gap: int | None) -> KeyframeConfig:
    """The key-frame options a user gave: ``max_gap`` None is the default; given with a fixed stride
    longer than it, it wins ("most frames between keys" is a bound), with a warning."""
    if max_gap is None:
        max_gap = KeyframeConfig.max_gap
    elif mode == "every" and every > max_gap >= 1:  # callers pass whole numbers (CLI, API checks)
        log.warning("key frames every:%d with a max gap of %d: a key every %d frames", every, max_gap, max_gap)
        every = max_gap
    return KeyframeConfig(mode=mode, every=every, max_gap=max_gap)


@dataclass
class Decision:
    """What the selector says about the frame just pushed."""

    is_key: bool
    reason: str = ""  # "first", "cut", "max-gap", "motion", "occlusion", "colour", "stride"
    previous_is_key: bool = False  # at a scene cut the frame before it must close the old scene


@dataclass
class Thumb:
    gray: np.ndarray
    hist: np.ndarray


@dataclass
class KeyframeSelector:
    config: KeyframeConfig = field(default_factory=KeyframeConfig)

    def __post_init__(self) -> None:
        self._flow = FlowEstimator("ultrafast")
        self._key: Thumb | None = None
        self._prev: Thumb | None = None
        self._since_key = 0
        self.stats: dict[str, int] = {}

    def push(self, rgb8: np.ndarray) -> Decision:
        thumb = self.thumb(rgb8)
        decision = self._decide(thumb)
        if decision.is_key:
            self._key = thumb
            self._since_key = 0
            self.stats[decision.reason] = self.stats.get(decision.reason, 0) + 1
        self._prev = thumb
        return decision

    def _decide(self, t: Thumb) -> Decision:
        cfg = self.config
        if self._key is None:
            return Decision(True, "first")
        self._since_key += 1
        assert self._prev is not None
        if self.is_cut(self._prev, t):
            # The frame before a cut closes the old scene, so no frame interpolates across the cut;
            # a fixed stride honours cuts too (without it, a stride interpolated across them).
            return Decision(True, "cut", previous_is_key=self._since_key > 1)
        if cfg.mode == "every":
            return Decision(self._since_key >= cfg.every, "stride")
        if self._since_key >= cfg.max_gap:
            return Decision(True, "max-gap")
        if self._since_key < cfg.min_gap:
            return Decision(False)
        if _hellinger(self._key.hist, t.hist) > cfg.colour:
            return Decision(True, "colour")
        fw = self._flow(t.gray, self._key.gray)
        side = max(t.gray.shape)
        if float(cv2.magnitude(fw[..., 0], fw[..., 1]).mean()) > cfg.motion * side:
            return Decision(True, "motion")
        missed = self._missed(self._key, t, fw)
        # Occluded pixels are missed pixels that also fail the forward-backward check: when too few are
        # missed, the backward flow cannot change the answer and is not computed (most frames).
        if float(missed.mean()) <= cfg.occlusion:
            return Decision(False)
        bw = self._flow(self._key.gray, t.gray)
        if float((missed & ~occlusion_mask(fw, bw)).mean()) > cfg.occlusion:
            return Decision(True, "occlusion")
        return Decision(False)

    def is_cut(self, prev: Thumb, cur: Thumb) -> bool:
        cfg = self.config
        if _hellinger(prev.hist, cur.hist) > cfg.cut:
            return True
        return float(self._missed(prev, cur, self._flow(cur.gray, prev.gray)).mean()) > cfg.cut_residual

    def _missed(self, ref: Thumb, cur: Thumb, flow_cur_to_ref: np.ndarray) -> np.ndarray:
        """Pixels of ``cur`` that ``ref``, warped by the flow, misses by more than the residual threshold."""
        return cv2.absdiff(cur.gray, warp(ref.gray, flow_cur_to_ref)) > self.config.residual * 255

    def thumb(self, rgb8: np.ndarray) -> Thumb:
        """The small grey image and colour histogram the decisions are made on."""
        h, w = rgb8.shape[:2]
        s = min(1.0, self.config.thumb_side / max(h, w))
        small = cv2.resize(rgb8, (max(8, round(w * s)), max(8, round(h * s))), interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
        hist: np.ndarray = cv2.calcHist([hsv], [0, 1, 2], None, [12, 4, 4], [0, 180, 0, 256, 0, 256]).ravel()
        hist /= max(float(hist.sum()), 1.0)
        return Thumb(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), hist)


def _hellinger(p: np.ndarray, q: np.ndarray) -> float:
    """Hellinger distance of two normalised histograms, in [0, 1]."""
    return float(np.sqrt(max(0.0, 1.0 - np.sqrt(p * q).sum())))
