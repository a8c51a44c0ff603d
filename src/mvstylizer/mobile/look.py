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
# With a detail scale (spatially varying models), each detail pair weighs this many whole-colour pairs: the
# detail's spread is a few hundredths of the colours', so the detail pins the matrix's gains wherever the
# key has texture; the offsets still take the key's colours (tests/mobile/test_look.py).
_DETAIL_WEIGHT = 1000.0


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


def fit_look(content: np.ndarray, styled: np.ndarray, knots: int = KNOTS, detail_scale: float | None = None) -> Look:
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

    ``detail_scale``: for a spatially varying model, whose frames take their colours from a grid
    sliced at this fraction of the key's size and only the finer detail from the look alone
    (:mod:`.interpolate`), the matrix is fit to that detail above all (:func:`_detail_pairs`,
    ``_DETAIL_WEIGHT``): the look's gains are then the model's *local* gains. Fit to the whole colours,
    a region-aware model's regions, darkened or lightened each by its own offset, read as a steeper
    global slope than any region has (1.23 against the model's 1.19 on a street clip's key): every
    frame's detail, and the noise and motion in it, came out steeper than the model draws it, and
    the output flickered more than frame-by-frame's.
    """
    if content.shape != styled.shape:
        raise ValueError(f"content {content.shape} and styled {styled.shape} differ in size")
    c = content.reshape(-1, 3).astype(np.float32)
    s = styled.reshape(-1, 3).astype(np.float32)
    idx = np.linspace(0, len(c) - 1, _MAX_PIXELS).astype(np.int64) if len(c) > _MAX_PIXELS else None
    if idx is not None:
        c, s = c[idx], s[idx]
    pre = fit_tone_curves(c.reshape(-1, 1, 3), s.reshape(-1, 1, 3), knots, cross=_CROSS)
    f = _curved(c, pre)
    a = np.concatenate([f, np.ones((len(f), 1))], axis=1).astype(np.float64)
    n = len(a)
    gram = a.T @ a + 1e-6 * n * np.eye(4)
    detail_rhs = np.zeros((4, 3))
    if detail_scale is not None:
        fd, sd = _detail_pairs(content, styled, pre, detail_scale, idx)
        if len(fd):
            weight = _DETAIL_WEIGHT * n / len(fd)
            gram[:3, :3] += weight * fd.T @ fd
            detail_rhs[:3] = weight * fd.T @ sd
    target = s.astype(np.float64)
    low, high = target <= _CLIPPED, target >= 1.0 - _CLIPPED
    matrix = np.zeros((3, 4))
    for _ in range(_CENSOR_ROUNDS):
        for i in range(3):
            matrix[i] = np.linalg.solve(gram + cross_ridge(i, _CROSS * n), a.T @ target[:, i] + detail_rhs[:, i])
        pred = a @ matrix.T
        target = np.where((low & (pred < s)) | (high & (pred > s)), pred, s)
    return Look(pre.astype(np.float32), matrix.astype(np.float32))


def _curved(colours: np.ndarray, pre: np.ndarray) -> np.ndarray:
    """The curves ``pre`` (3, K) applied to Nx3 colours in [0, 1]."""
    grid = np.linspace(0.0, 1.0, pre.shape[1])
    return np.stack([np.interp(colours[:, j], grid, pre[j]) for j in range(3)], axis=1)


def _detail_pairs(content: np.ndarray, styled: np.ndarray, pre: np.ndarray, scale: float,
                  idx: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The curved content's and the styled key's detail finer than ``scale`` of the key's size: each image
    less itself area-downscaled to that size and upsampled bilinearly, as a frame's grid residual is
    made and upsampled; at the pixels ``idx`` of the flattened key (all if None), less those the model
    clipped (their detail is the clip's, not the model's gain).

    Shape:
        content, styled: (H, W, 3) float in [0, 1], the content read at 8-bit levels (a key's come in
        them). Returns two (N, 3) float64 arrays.
    """
    h, w = content.shape[:2]
    size = max(1, round(w * scale)), max(1, round(h * scale))

    def fine(img: np.ndarray) -> np.ndarray:
        img = np.ascontiguousarray(img, np.float32)
        coarse = cv2.resize(cv2.resize(img, size, interpolation=cv2.INTER_AREA), (w, h), interpolation=cv2.INTER_LINEAR)
        flat = (img - coarse).reshape(-1, 3)
        return flat if idx is None else flat[idx]

    s = styled.reshape(-1, 3) if idx is None else styled.reshape(-1, 3)[idx]
    kept = ((s > _CLIPPED) & (s < 1.0 - _CLIPPED)).all(axis=1)
    # The curves through a table of the 256 levels a key's colours come in (np.interp over a whole
    # 512 x 288 key cost 10 ms, a third of a look's fit).
    levels = np.linspace(0.0, 1.0, 256, dtype=np.float32)
    table = _curved(np.repeat(levels[:, None], 3, axis=1), pre).astype(np.float32).reshape(256, 1, 3)
    content8 = cv2.convertScaleAbs(np.ascontiguousarray(content, np.float32), alpha=255.0)
    curved = cv2.LUT(content8, table)
    return fine(curved)[kept].astype(np.float64), fine(styled)[kept].astype(np.float64)
