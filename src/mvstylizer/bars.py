"""Letterbox and pillarbox bars: the black borders of a picture framed for another screen shape.

A film cut for 2.39:1 shown in a 16:9 frame, or a phone's portrait clip in a landscape one, carries
rows or columns of flat black that are no part of the scene. A colour transfer that maps the
picture's tones to a style's maps that black too (brown or tan bars, whatever the style's dark
tones are), and the bars weigh in the picture's colour statistics and regions. So the model runs on
the picture inside the bars, and the bars are passed through unchanged.

A bar is a run of full rows (or columns) from an edge that are black to the last pixel, as a
decoder gives them back: mean at most ``level``, and at most ``stray`` of their pixels brighter than
``peak`` (the ringing that a codec leaves along the picture's edge). A frame that is black to the last
pixel (a fade's last frame) is passed through whole: black in, black out. A night sky or a dark room is
not black to that degree (their levels are ~10-20 of 255, with noise); a crushed pure-black
background can be, and passing it through keeps it black, as a colourist would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

_LEVEL = 3.0 / 255.0  # most a bar row's mean may be
_PEAK = 12.0 / 255.0  # a bar row's pixels are at most this bright ...
_STRAY = 0.01  # ... but for this share of them (a codec's ringing beside the picture's edge)
# Beside the picture a codec's ringing leaves a few rows that are not quite that black (a 320x240
# H.264 letterbox: two rows at a mean of 4.5 levels, 7% of their pixels at 13-17); taken for picture,
# they were styled into a coloured line between the bar and the picture, there on some frames and not
# on others. A bar takes in up to _RINGING such rows next to it (half a macroblock): mean at most twice
# _LEVEL, and at most _STRAY of their pixels brighter than twice _PEAK.
_RINGING = 8
_MIN_BAR = 0.01  # a bar thinner than this share of its side is taken for the picture's own dark edge
_MIN_PICTURE = 0.25  # with less picture than this share of a side left, it is a dark frame, not bars
_MIN_SIDE = 16  # nor with less than this many pixels: the models' feature trunks need 8 (wct2 pads to 16)


@dataclass(frozen=True)
class Bars:
    """Widths of the black bars on each side of a picture, pixels; ``black``: the whole frame is
    black to the last pixel (a fade's last frame), so there is no picture at all."""

    top: int = 0
    bottom: int = 0
    left: int = 0
    right: int = 0
    black: bool = False

    def __bool__(self) -> bool:
        return self.black or any((self.top, self.bottom, self.left, self.right))

    def common(self, other: Bars) -> Bars:
        """The bars both pictures have: each side's narrower bar (a black frame has bars everywhere)."""
        if self.black or other.black:
            return other if self.black else self
        return Bars(min(self.top, other.top), min(self.bottom, other.bottom),
                    min(self.left, other.left), min(self.right, other.right))

    def picture(self, img: np.ndarray) -> np.ndarray:
        """The view of ``img`` inside the bars."""
        h, w = img.shape[:2]
        return img[self.top:h - self.bottom, self.left:w - self.right]


def find_bars(rgb: np.ndarray) -> Bars:
    """The black bars of an HxWx3 RGB picture (float in [0, 1] or uint8); ``Bars()`` if it has none.

    Shape:
        rgb: (H, W, 3).
    """
    img = np.asarray(rgb)
    scale = 255.0 if img.dtype == np.uint8 else 1.0
    brightest = img.max(axis=2).astype(np.float32) / scale
    bright, ringing = brightest > _PEAK, brightest > 2 * _PEAK

    def lines(axis: int, part: slice) -> tuple[np.ndarray, np.ndarray]:
        """(black, faint) per row (axis 1) or column (axis 0) of the rows ``part``."""
        mean = brightest[part].mean(axis=axis)
        return ((mean <= _LEVEL) & (bright[part].mean(axis=axis) <= _STRAY),
                (mean <= 2 * _LEVEL) & (ringing[part].mean(axis=axis) <= _STRAY))

    def run(black: np.ndarray, faint: np.ndarray) -> tuple[int, int]:
        n = len(black)
        lead, trail = int(np.argmin(black)), int(np.argmin(black[::-1]))
        lead = lead + _leading(faint[lead:lead + _RINGING]) if lead >= max(2, _MIN_BAR * n) else 0
        trail = trail + _leading(faint[::-1][trail:trail + _RINGING]) if trail >= max(2, _MIN_BAR * n) else 0
        if n - lead - trail < max(_MIN_PICTURE * n, _MIN_SIDE):
            return 0, 0
        return lead, trail

    h = brightest.shape[0]
    black_rows, faint_rows = lines(1, slice(0, h))
    if black_rows.all():
        return Bars(black=True)
    top, bottom = run(black_rows, faint_rows)
    left, right = run(*lines(0, slice(top, h - bottom)))
    return Bars(top, bottom, left, right)


def _leading(flags: np.ndarray) -> int:
    """How many of ``flags`` are true before the first false one."""
    return len(flags) if flags.all() else int(np.argmin(flags))


def within_bars(stylize: Callable[[np.ndarray], np.ndarray], frame: np.ndarray) -> np.ndarray:
    """``stylize`` run on the picture inside ``frame``'s bars, the bars kept as they are.

    Args:
        stylize: HxWx3 float32 RGB in [0, 1] -> the same shape.
        frame: HxWx3 float32 RGB in [0, 1].
    """
    bars = find_bars(frame)
    if not bars:
        return stylize(frame)
    out = np.array(frame, dtype=np.float32, copy=True)
    # A black frame has no picture, so black stays black: a transfer maps it to the style's dark
    # tones, and a letterboxed fade's last frame flashed brown between frames whose bars stayed black.
    if not bars.black:
        bars.picture(out)[...] = stylize(np.ascontiguousarray(bars.picture(frame)))
    return out
