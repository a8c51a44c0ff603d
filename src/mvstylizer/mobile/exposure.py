"""Frame-to-frame exposure of a video: how much darker or brighter the camera made each frame.

Phone cameras hunt: auto exposure dips for a few frames when something bright passes, then comes
back. A model run on every frame normalises that away (dncm's content normalisation; mk and
reinhard recompute their statistics per frame); a key's colour transform applied to the frames
between keys would pass it through. This tracker measures it so the phone can undo it.

An exposure change scales every pixel alike; new content changes some pixels. So the measure is
the *median* over pixels of the brightness ratio between consecutive frames, on a tiny blurred
thumbnail (so camera motion moves little between two frames), over mid-tones only (clipped pixels
do not scale). Accumulated from frame to frame, in log units.

The same measure keeps a fade a fade (:class:`ShotExposure`). A model matches every frame to the
style's exposure, so a fade to black stayed at full brightness to its last frame, which frame-by-frame
turned into the style's mean colour. So a frame more than ``keep_below`` darker than the brightest
frame of its shot the phone has decoded by the time it is rendered (some frames past it: decoding
runs ahead) comes out darkened by what it lacks beyond that: the style is applied at the shot's own
exposure, and the fade is kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..imaging import area_resize, fit_within

_THUMB_SIDE = 48  # pixels on the long side
_LOW, _HIGH = 16.0, 240.0  # mid-tones: both frames' levels inside this range
_MIN_PIXELS = 0.25  # below this share of mid-tone pixels the pair says nothing: ratio 1
# A fade leaves ever fewer mid-tones: below _MIN_PIXELS of them the ratio is taken over every pixel
# that is not black in either frame (quantisation then errs by a few per cent per frame, against a
# measure that stopped at about a third of the levels and left the rest of the fade lifted).
_DARK = 2.0
# A step is a pure rescaling when this share of the counted pixels moved within this log distance
# (10%) of the median ratio; across a cut, unrelated pixels scatter far wider.
_RESCALED_TOLERANCE, _RESCALED_SHARE = 0.1, 0.5


@dataclass
class ExposureTracker:
    """Feed each frame's grey image in order; get its log exposure relative to the first frame."""

    _prev: np.ndarray | None = field(default=None, init=False, repr=False)
    _log_exposure: float = field(default=0.0, init=False)
    # Whether the last frame differs from the one before by a brightness factor alone (a fade, the
    # camera re-exposing), which a scene-cut detector that compares pixels takes for a cut.
    rescaled: bool = field(default=False, init=False)

    def push(self, gray8: np.ndarray) -> float:
        """Log exposure (natural log of the brightness scale) of this frame relative to the first."""
        h, w = gray8.shape[:2]
        thumb: np.ndarray = area_resize(gray8, fit_within(w, h, _THUMB_SIDE)).astype(np.float32)
        thumb = cv2.GaussianBlur(thumb, (0, 0), 1.0)
        self.rescaled = False
        if self._prev is not None:
            ratios = _log_ratios(self._prev, thumb)
            if ratios.size:
                step = float(np.median(ratios))
                self._log_exposure += step
                self.rescaled = float(np.mean(np.abs(ratios - step) < _RESCALED_TOLERANCE)) >= _RESCALED_SHARE
        self._prev = thumb
        return self._log_exposure


def log_ratio(prev: np.ndarray, cur: np.ndarray) -> float:
    """Median log brightness ratio cur / prev over pixels that are mid-tones in both, or in a dark pair
    not black in both (0: too few such pixels)."""
    ratios = _log_ratios(prev, cur)
    return float(np.median(ratios)) if ratios.size else 0.0


def _log_ratios(prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """Per-pixel log ratios cur / prev over the pixels :func:`log_ratio` counts (empty: too few)."""
    valid = (prev > _LOW) & (prev < _HIGH) & (cur > _LOW) & (cur < _HIGH)
    if valid.mean() < _MIN_PIXELS:
        valid = (prev > _DARK) & (prev < _HIGH) & (cur > _DARK) & (cur < _HIGH)
        if valid.mean() < _MIN_PIXELS:
            return np.empty(0, np.float32)
    return np.log(cur[valid] / prev[valid])


@dataclass
class ShotExposure:
    """The brightest exposure of each shot so far, and how much darker than it a frame is kept.

    Args:
        keep_below: log units of :class:`ExposureTracker` (of the 8-bit levels; ln 2: half the levels,
            about 2 stops of light). Exposure dips smaller than this are the model's to normalise,
            as it does on every frame (auto exposure hunting: on 20 real phone and camera clips the
            deepest dip below the brightest frame of its shot was 1.56x, so none reaches it); a
            fade or the lights going down does. ``math.inf`` keeps nothing.
    """

    keep_below: float = math.log(2.0)
    _brightest: list[float] = field(default_factory=list, init=False, repr=False)  # per shot

    def __post_init__(self) -> None:
        if not self.keep_below >= 0.0:
            raise ValueError(f"keep_below must be >= 0, got {self.keep_below}")

    def push(self, log_exposure: float, new_shot: bool) -> int:
        """Count a decoded frame; returns its shot (0, 1, ...). ``new_shot``: the frame starts a shot
        (the first frame, a cut); the first frame pushed always does."""
        if new_shot or not self._brightest:
            self._brightest.append(log_exposure)
        else:
            self._brightest[-1] = max(self._brightest[-1], log_exposure)
        return len(self._brightest) - 1

    def darker(self, shot: int, log_exposure: float) -> float:
        """The log factor (>= 0) by which to darken a frame of ``shot`` at ``log_exposure``: its
        deficit against the shot's brightest frame pushed so far, beyond ``keep_below``."""
        return max(0.0, self._brightest[shot] - log_exposure - self.keep_below)


def darken(rgb8: np.ndarray, log_factor: float, out: np.ndarray | None = None) -> np.ndarray:
    """``rgb8`` (uint8) with its levels ``exp(-log_factor)`` times darker, rounded (into ``out`` if
    given; it may be ``rgb8``). One factor on every level, as :class:`ExposureTracker` measures."""
    return cv2.convertScaleAbs(rgb8, out, alpha=math.exp(-log_factor))
