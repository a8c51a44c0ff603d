"""A key frame's look as one global colour function: per-channel curves, then a 3x4 colour matrix.

A global style transfer (dncm, mk, reinhard) gives every pixel an output that depends on its colour
alone. Such a function is fit once per key frame, from the key's low-resolution original and its
stylized version, as

    look(c) = M f(c) + b

with per-channel piecewise-linear curves ``f`` (:mod:`.tone_curve`: normalised to run from 0 to 1,
strictly increasing) and a 3x4 affine map ``M, b``: the curves follow tone changes (contrast, faded
blacks, roll-offs), the matrix mixes channels (casts, saturation, split toning). Applying it to a
full-resolution frame is three OpenCV passes (~3 ms at 1080p on two cores) with no position in
it, so it cannot boil on flat walls or carry one object's colours onto another.

Between two keys the phone needs ``(1 - w) look_a(c) + w look_b(c)``. Blending the parameters
instead costs one look per frame rather than two, and errs by ``w (1 - w) (M_a - M_b)(f_a - f_b)``:
second order, because with normalised curves both parameters are pinned down by the colours (a third
stage, output curves, made them trade off against each other: the same look fit to two keys came
out with different parameters whose blend was lighter than either; it also bought only 0.3-1.5 dB).
:func:`blend_gap` measures that error for a pair of keys once, on the colours the two keys hold; where
it exceeds ``blend_tolerance`` (a level by default), the phone adds the difference, made on a small
copy of the frame (:mod:`.interpolate`), instead of applying both looks at full resolution.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from ..colour.tone_curve import cross_ridge, fit_tone_curves

KNOTS = 16
# Look.levels counts sixteenths of an 8-bit level: a frame's look and the grid's offsets are added at
# this precision and rounded to 8 bits once (in int16: levels from -2048 to 2047, far beyond what a
# look and its offsets reach before the clip to 0..255). In whole levels, the offsets' rounding and the
# look's added up to a level.
SUBLEVELS = 16
_CURVE_UNITS = 128  # the curves' table, in 1/128 of a level: 255 x 128 fits in int16
_MAX_PIXELS = 16384  # the fit reads an evenly strided subset of a key frame's pixels
_CROSS = 1e-3  # ridge on the matrix's cross-channel terms, per pixel (colour variance units)
_CLIPPED = 1.5 / 255.0  # outputs this close to 0 or 1 were clipped by the model
_CENSOR_ROUNDS = 3


@dataclass(frozen=True)
class Look:
    """``look(c) = matrix @ [pre(c), 1]`` for colours in [0, 1].

    Shape:
        pre: (3, K) values of the curves at K evenly spaced levels, increasing from 0 to 1.
        matrix: (3, 4) affine map of the curved colours.
    """

    pre: np.ndarray
    matrix: np.ndarray
    # A gain on the input colours before the curves: a frame that the camera exposed darker or
    # brighter than the keys around it is looked at as they were (see :meth:`exposed`).
    exposure: float = 1.0
    # The tables OpenCV applies, made once per look, when first applied. The curves' table is 16-bit (1/128 of a
    # level) and the matrix's output counts sixteenths of a level (:data:`SUBLEVELS`), so the output is rounded to 8
    # bits once, at the end: with an 8-bit curve stage its rounding was amplified by the matrix, and a look blended
    # parameter by parameter (a new table every frame) rounded differently from frame to frame (up to 1.04 levels
    # off the exact look on a test texture; it flickered on the synthetic flat wall and grey pavement).
    @functools.cached_property
    def _tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(the curves' int16 table, the matrix from it to sixteenths of a level, the matrix from it to
        whole levels), made when the look is first applied: a frame between keys makes three looks (each
        key's at the frame's exposure, and their blend) and applies one."""
        levels = np.clip(np.linspace(0.0, 1.0, 256) * self.exposure, 0.0, 1.0)
        grid = np.linspace(0.0, 1.0, self.pre.shape[1])
        table = np.stack([np.interp(levels, grid, self.pre[j]) for j in range(3)], axis=1) * (255.0 * _CURVE_UNITS)
        whole = self.matrix.astype(np.float32).copy()
        whole[:, :3] *= 1.0 / _CURVE_UNITS
        whole[:, 3] *= 255.0
        return (np.clip(np.rint(table), 0, 32767).astype(np.int16).reshape(256, 1, 3), whole * np.float32(SUBLEVELS),
                whole)

    def apply(self, rgb8: np.ndarray, dst: np.ndarray | None = None, scratch: np.ndarray | None = None
              ) -> np.ndarray:
        """The look of a uint8 RGB frame (any size), uint8 RGB, into ``dst`` if given.

        ``scratch``: :func:`look_scratch` of ``rgb8``'s shape, the two 16-bit working images; at
        1080p, writing into memory already touched saves ~1-3 ms of page faults per frame."""
        return levels_to_rgb8(self.levels(rgb8, scratch), dst)

    def levels(self, rgb8: np.ndarray, scratch: np.ndarray | None = None) -> np.ndarray:
        """The look of a uint8 RGB frame in sixteenths of an 8-bit level (:data:`SUBLEVELS`), int16, clipped
        at neither end (into ``scratch[1]`` if given): a caller that adds offsets of its own rounds and
        clips once (:func:`levels_to_rgb8`), instead of rounding and clipping here and again after its
        addition."""
        curved, mixed = (None, None) if scratch is None else (scratch[0], scratch[1])
        table, matrix, _ = self._tables
        return cv2.transform(cv2.LUT(rgb8, table, dst=curved), matrix, dst=mixed)

    def float_levels(self, rgb8: np.ndarray, clip_black: bool = False) -> np.ndarray:
        """:meth:`levels` unrounded, in whole levels, float32, unclipped as those are (clipped at black
        with ``clip_black``, as the look's own output is): for small images, where a caller adds
        differences of looks that rounding would blur by a level."""
        table, _, whole = self._tables
        levels = cv2.transform(cv2.LUT(rgb8, table).astype(np.float32), whole)
        return np.maximum(levels, 0.0) if clip_black else levels

    def apply_float(self, rgb: np.ndarray) -> np.ndarray:
        """The look of float RGB colours in [0, 1] (any shape ...x3), without 8-bit rounding."""
        x = np.clip(np.asarray(rgb, np.float32).reshape(-1, 3) * self.exposure, 0.0, 1.0)
        grid = np.linspace(0.0, 1.0, self.pre.shape[1])
        f = np.stack([np.interp(x[:, j], grid, self.pre[j]) for j in range(3)], axis=1)
        out = np.clip(f @ self.matrix[:, :3].T + self.matrix[:, 3], 0.0, 1.0)
        return out.reshape(np.shape(rgb)).astype(np.float32)

    def blend(self, other: Look, weight: float) -> Look:
        """``(1 - weight) * self + weight * other``, parameter by parameter: exact at both ends."""
        def mix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return ((1.0 - weight) * a + weight * b).astype(np.float32)

        return Look(mix(self.pre, other.pre), mix(self.matrix, other.matrix),
                    float((1.0 - weight) * self.exposure + weight * other.exposure))

    def exposed(self, gain: float) -> Look:
        """This look for a frame whose colours are ``gain`` times darker than its key's (gain > 1)
        or brighter (gain < 1): the colours are scaled back first. In gamma-encoded values a
        camera's exposure change is close to a plain scale (a power-law transfer curve turns the
        sensor's linear gain into another gain)."""
        return Look(self.pre, self.matrix, float(gain))


def look_scratch(shape: tuple[int, ...]) -> np.ndarray:
    """Working memory for :meth:`Look.apply` on uint8 images of ``shape`` (H, W, 3)."""
    return np.empty((2, *shape), np.int16)


def levels_to_rgb8(levels: np.ndarray, dst: np.ndarray | None = None) -> np.ndarray:
    """Sixteenths of a level (int16, as :meth:`Look.levels`) rounded to 8-bit levels and clipped, uint8,
    into ``dst`` if given; ``levels`` is clipped at black in place. Costs about what one 16-bit to
    8-bit saturating add did, at 1080p."""
    # convertScaleAbs takes the magnitude: negatives are clipped first (OpenCV takes the scalar; its stubs don't)
    cv2.max(levels, 0, dst=levels)  # type: ignore[call-overload]
    return cv2.convertScaleAbs(levels, dst=dst, alpha=1.0 / SUBLEVELS)


def blend_gap(a: Look, b: Look, colours: np.ndarray | None = None, samples: int = 9) -> float:
    """Largest difference, in 8-bit levels, between the half-way parameter blend of two looks and the
    half-way blend of their outputs (where the gap peaks), over ``colours`` (Nx3 float in [0, 1]:
    the colours a video holds, e.g. its keys'), or over a ``samples``-per-side lattice of the whole
    colour cube if None.

    The lattice is the worst case over colours a video may never show: two neighbouring keys of a
    1080p street clip differed by 1.3 levels somewhere in the cube but by at most 0.43 levels on the
    colours of their own frames."""
    if colours is None:
        axis = np.linspace(0.0, 1.0, samples, dtype=np.float32)
        colours = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    exact = 0.5 * (a.apply_float(colours) + b.apply_float(colours))
    return float(np.abs(a.blend(b, 0.5).apply_float(colours) - exact).max() * 255.0)


def fit_look(content: np.ndarray, styled: np.ndarray, knots: int = KNOTS) -> Look:
    """The global colour function that best takes ``content`` to ``styled`` (HxWx3 float in [0,1]).

    Curves by alternating least squares (:func:`fit_tone_curves`), then the matrix on the final
    curves with two safeguards for the frames between keys, which bring colours the key barely had
    and, above all, fresh sensor noise:

    * the *slope* of the look (what it does to noise) is only pinned down where the key has colour
      variety; on a flat wall the free least-squares matrix took values that fit the wall's colour
      exactly with cross-channel gains of -0.4 to +2.2 (the model's own: 0.25 off the diagonal,
      1.2-1.6 on it), turning the wall's noise into flicker. A ridge towards zero off the diagonal
      (``_CROSS``, in units of colour variance) keeps cross-channel mixing to what the data shows;
    * an output the model clipped to 0 or 1 says "at most 0" / "at least 1", not "exactly": fitting
      it as exact gave saturated colours (a red top) a slope where the model has none, so their noise
      flickered. Such pixels are censored: a prediction beyond the clip counts as a match (a few
      reweighted least-squares rounds).
    """
    if content.shape != styled.shape:
        raise ValueError(f"content {content.shape} and styled {styled.shape} differ in size")
    c = content.reshape(-1, 3).astype(np.float32)
    s = styled.reshape(-1, 3).astype(np.float32)
    if len(c) > _MAX_PIXELS:
        idx = np.linspace(0, len(c) - 1, _MAX_PIXELS).astype(np.int64)
        c, s = c[idx], s[idx]
    pre = fit_tone_curves(c.reshape(-1, 1, 3), s.reshape(-1, 1, 3), knots, cross=_CROSS)
    grid = np.linspace(0.0, 1.0, knots)
    f = np.stack([np.interp(c[:, j], grid, pre[j]) for j in range(3)], axis=1)
    a = np.concatenate([f, np.ones((len(f), 1))], axis=1).astype(np.float64)
    n = len(a)
    gram = a.T @ a + 1e-6 * n * np.eye(4)
    target = s.astype(np.float64)
    low, high = target <= _CLIPPED, target >= 1.0 - _CLIPPED
    matrix = np.zeros((3, 4))
    for _ in range(_CENSOR_ROUNDS):
        for i in range(3):
            matrix[i] = np.linalg.solve(gram + cross_ridge(i, _CROSS * n), a.T @ target[:, i])
        pred = a @ matrix.T
        target = np.where((low & (pred < s)) | (high & (pred > s)), pred, s)
    return Look(pre.astype(np.float32), matrix.astype(np.float32))
