"""Frame-to-frame exposure of a video: how much darker or brighter the camera made each frame.

Phone cameras hunt: auto exposure dips for a few frames when something bright passes, then comes
back. A model run on every frame normalises that away (dncm's content normalisation; mk and
reinhard recompute their statistics per frame); a key's colour transform applied to the frames
between keys would pass it through. This tracker measures it so the phone can undo it.

An exposure change scales every pixel alike; new content changes some pixels. So the measure is
the *median* over pixels of the brightness ratio between consecutive frames, on a tiny blurred
thumbnail (so camera motion moves little between two frames), over mid-tones only (clipped pixels
do not scale). Accumulated from frame to frame, in log units.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..imaging import area_resize, fit_within

_THUMB_SIDE = 48  # pixels on the long side
_LOW, _HIGH = 16.0, 240.0  # mid-tones: both frames' levels inside this range
_MIN_PIXELS = 0.25  # below this share of mid-tone pixels the pair says nothing: ratio 1


@dataclass
class ExposureTracker:
    """Feed each frame's grey image in order; get its log exposure relative to the first frame."""

    _prev: np.ndarray | None = field(default=None, init=False, repr=False)
    _log_exposure: float = field(default=0.0, init=False)

    def push(self, gray8: np.ndarray) -> float:
        """Log exposure (natural log of the brightness scale) of this frame relative to the first."""
        h, w = gray8.shape[:2]
        thumb: np.ndarray = area_resize(gray8, fit_within(w, h, _THUMB_SIDE)).astype(np.float32)
        thumb = cv2.GaussianBlur(thumb, (0, 0), 1.0)
        if self._prev is not None:
            self._log_exposure += log_ratio(self._prev, thumb)
        self._prev = thumb
        return self._log_exposure


def log_ratio(prev: np.ndarray, cur: np.ndarray) -> float:
    """Median log brightness ratio cur / prev over pixels that are mid-tones in both (0: none)."""
    valid = (prev > _LOW) & (prev < _HIGH) & (cur > _LOW) & (cur < _HIGH)
    if valid.mean() < _MIN_PIXELS:
        return 0.0
    return float(np.median(np.log(cur[valid] / prev[valid])))
