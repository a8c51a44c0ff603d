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
turned into the style's mean colour (a fade to white, likewise, ended brown with a warm style). So a
frame more than ``keep_below`` darker than the brightest frame of its shot around it (from a few
seconds before it to the key it is rendered from), or nearer white by as much, comes out scaled
towards black or white by what it lacks beyond that: the style is applied at the shot's own
exposure, and the fade is kept. A fade-in is not: its brightest frame is still to come.
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
# A step goes to the headroom only where it predicts the frame with at most this share of the levels'
# error: where motion changes the frame more than the exposure does, both err alike (a panning
# selfie: ratios 0.7-1.0), and a coin toss between them let each measure drift.
_CLEARLY_BETTER = 0.5
_SAME_PICTURE = 0.9  # correlation of two thumbnails above which the second is the first rescaled


@dataclass
class ExposureTracker:
    """Feed each frame's grey image in order; get its log exposure relative to the first frame.

    Also measured, the same way on the levels' distance from white (:attr:`headroom`): a fade or
    dip to white scales that distance as a fade to black scales the levels."""

    _prev: np.ndarray | None = field(default=None, init=False, repr=False)
    _log_exposure: float = field(default=0.0, init=False)
    # For fades (ShotExposure), each step is counted in one of two log measures: ``headroom`` (the
    # levels' distance from white scaled: towards white) when it is a rescaling that the headroom
    # predicts clearly better than the levels do, else ``levels`` (the levels scaled: towards black,
    # or a camera re-exposing). Counted in both, a fade to white raised the levels 1.98x and a fade
    # to black the headroom 1.80x, which would have darkened or lightened the frames before them, and
    # a walking selfie's re-exposing moved the headroom 1.96x. On 20 real clips no step went to the
    # headroom, so there ``levels`` is the exposure.
    levels: float = field(default=0.0, init=False)
    headroom: float = field(default=0.0, init=False)
    # Whether the last frame is the one before with its brightness scaled, towards black or towards
    # white (a fade, the camera re-exposing), which a scene-cut detector that compares pixels takes
    # for a cut: the ratios agree and the picture is the same (two smooth, unrelated frames of a hard
    # cut gave ratios as uniform as a fade's).
    rescaled: bool = field(default=False, init=False)
    # Whether the last frame follows one that was black or white to the last pixel: whatever comes
    # after a dip through black or white is measured from scratch (nothing to compare it with).
    after_blank: bool = field(default=False, init=False)

    def push(self, gray8: np.ndarray) -> float:
        """Log exposure (natural log of the brightness scale) of this frame relative to the first."""
        h, w = gray8.shape[:2]
        thumb: np.ndarray = area_resize(gray8, fit_within(w, h, _THUMB_SIDE)).astype(np.float32)
        thumb = cv2.GaussianBlur(thumb, (0, 0), 1.0)
        self.rescaled = False
        self.after_blank = self._prev is not None and _blank(self._prev) and not _blank(thumb)
        if self._prev is not None:
            step, fit = _step(self._prev, thumb)
            white_step, white_fit = _step(255.0 - self._prev, 255.0 - thumb)
            self._log_exposure += step
            # Two frames with nothing brighter than the darkest mid-tone (a fade's last, nearly black
            # frames) cannot tell a cut from a fade: taken for a cut, one such frame started a shot of
            # its own, which the model lifted to the style's brightness (a one-frame flash of 56
            # levels between frames of 1).
            dim = float(self._prev.max()) <= _LOW and float(thumb.max()) <= _LOW
            self.rescaled = dim or max(fit, white_fit) >= _RESCALED_SHARE and (
                _blank(thumb) or _same_picture(self._prev, thumb))
            if self.rescaled and _towards_white(self._prev, thumb, step, white_step):
                self.headroom += white_step
            else:
                self.levels += step
        self._prev = thumb
        return self._log_exposure


def _towards_white(prev: np.ndarray, cur: np.ndarray, step: float, white_step: float) -> bool:
    """Whether scaling the distance from white by ``white_step`` predicts ``cur`` clearly better than
    scaling the levels by ``step``. Judged in levels: near black the headroom hardly moves and near
    white the levels hardly move, so shares of pixels or log ratios would favour the other one. The
    median pixel: something moving over a fading picture errs alike under both and, averaged in, hid
    the fade (a ball crossing a fade to white: 1.78 against 0.94 levels, not clearly better, so the
    fade was taken for a camera brightening and the output stayed at the style's colours to its end)."""
    by_levels = float(np.median(np.abs(prev * math.exp(step) - cur)))
    by_headroom = float(np.median(np.abs(255.0 - (255.0 - prev) * math.exp(white_step) - cur)))
    return by_headroom < _CLEARLY_BETTER * by_levels


def _blank(thumb: np.ndarray) -> bool:
    """Black or white to the last pixel."""
    return float(thumb.max()) <= _DARK or float(thumb.min()) >= 255.0 - _DARK


def _same_picture(prev: np.ndarray, cur: np.ndarray) -> bool:
    """Whether ``cur`` is ``prev`` up to brightness and contrast: their correlation over pixels."""
    a, b = prev - prev.mean(), cur - cur.mean()
    norm = float(np.sqrt(np.sum(a * a) * np.sum(b * b)))
    return norm > 0.0 and float(np.sum(a * b)) / norm >= _SAME_PICTURE


def _step(prev: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """(median log brightness ratio cur / prev over pixels that are mid-tones in both, or in a dark
    pair not black in both, 0 if too few; the share of those pixels that moved by that one factor:
    near 1 for a rescaling, low across a cut). A frame gone black to the last pixel ends a fade: the
    ratio of the means, a rescaling."""
    ratios = _log_ratios(prev, cur)
    if not ratios.size:
        if float(cur.max()) <= _DARK:  # faded all the way out (to black; to white for the headroom)
            return math.log((float(cur.mean()) + 0.5) / (float(prev.mean()) + 0.5)), 1.0
        return 0.0, 0.0
    step = float(np.median(ratios))
    return step, float(np.mean(np.abs(ratios - step) < _RESCALED_TOLERANCE))


def _log_ratios(prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
    """Per-pixel log ratios cur / prev over the pixels :func:`_step` counts (empty: too few)."""
    valid = (prev > _LOW) & (prev < _HIGH) & (cur > _LOW) & (cur < _HIGH)
    if valid.mean() < _MIN_PIXELS:
        valid = (prev > _DARK) & (prev < _HIGH) & (cur > _DARK) & (cur < _HIGH)
        if valid.mean() < _MIN_PIXELS:
            return np.empty(0, np.float32)
    return np.log(cur[valid] / prev[valid])


@dataclass(frozen=True)
class Lighting:
    """Where a frame stands for :class:`ShotExposure`: its index, shot, log levels and headroom."""

    index: int = 0
    shot: int = 0
    levels: float = 0.0
    headroom: float = 0.0


@dataclass
class ShotExposure:
    """The brightest levels and the largest headroom (:class:`ExposureTracker`) of a shot around each
    frame, and how much darker or lighter than them the frame is kept.

    A frame is compared with the frames of its shot from ``window`` frames before it up to a frame
    the caller names (the key it is rendered from, always decoded by then): a fixed range, so the
    output does not depend on how far decoding had run ahead of the edge (so a fade-in, whose
    brightest frame is still to come, is mostly not kept). The window bounds how far back a fade's
    start is looked for, and keeps a long shot's measure, which wanders with content (by 0.4-0.8 over
    3000 frames of a synthetic pan, in a review), from building a dip that is not there.

    Args:
        keep_below: log units of :class:`ExposureTracker` (of the 8-bit levels; ln 2: half the levels,
            about 2 stops of light; for the headroom, half the distance to white). Dips smaller than
            this are the model's to normalise, as it does on every frame (on 20 real phone and camera
            clips the deepest dip below the brightest frame of its shot was 1.56x, and no step went
            to the headroom, so none reaches it); a fade or the lights going down does. ``math.inf``
            keeps nothing.
        window: frames before a frame that count (90: 3 s at 30 frames per second).
    """

    keep_below: float = math.log(2.0)
    window: int = 90
    _frames: dict[int, Lighting] = field(default_factory=dict, init=False, repr=False)
    _shot: int = field(default=-1, init=False)

    def __post_init__(self) -> None:
        if not self.keep_below >= 0.0:
            raise ValueError(f"keep_below must be >= 0, got {self.keep_below}")
        if self.window < 0:
            raise ValueError(f"window must be >= 0, got {self.window}")

    def push(self, index: int, levels: float, headroom: float, new_shot: bool) -> Lighting:
        """Count decoded frame ``index`` (increasing); returns where it stands. ``new_shot``: the frame
        starts a shot (a cut, after a blank frame); the first frame pushed always does."""
        if new_shot or self._shot < 0:
            self._shot += 1
        light = Lighting(index, self._shot, levels, headroom)
        self._frames[index] = light
        return light

    def kept(self, light: Lighting, upto: int) -> tuple[float, float]:
        """The log factors (>= 0) by which to scale a frame down towards black and then its distance
        from white: its deficits against the brightest levels and largest headroom of its shot's
        frames from ``window`` before it to ``upto`` (pushed already), beyond ``keep_below``."""
        near = [f for i in range(light.index - self.window, upto + 1)
                if (f := self._frames.get(i)) is not None and f.shot == light.shot]
        return (max(0.0, max(f.levels for f in near) - light.levels - self.keep_below),
                max(0.0, max(f.headroom for f in near) - light.headroom - self.keep_below))

    def forget(self, before: int) -> None:
        """Drop what no frame from ``before`` on can look back to."""
        for i in [i for i in self._frames if i < before - self.window]:
            del self._frames[i]


def fade_levels(rgb8: np.ndarray, darker: float, lighter: float, out: np.ndarray | None = None) -> np.ndarray:
    """``rgb8`` (uint8) with its levels scaled by ``exp(-darker)`` towards black, then their distance
    from white by ``exp(-lighter)`` towards white, rounded (into ``out`` if given; it may be ``rgb8``).
    One factor on every level, as :class:`ExposureTracker` measures."""
    levels = np.arange(256, dtype=np.float64) * math.exp(-darker)
    table = np.rint(255.0 - (255.0 - levels) * math.exp(-lighter)).astype(np.uint8)
    return cv2.LUT(rgb8, table, dst=out)
