"""A key frame's look as one global colour function: input curves, a 3x4 colour matrix, output curves.

A global style transfer (dncm, mk, reinhard) gives every pixel an output that depends on its colour
alone. Such a function is fit once per key frame, from the key's low-resolution original and its
stylized version, as

    look(c) = h( M f(c) + b )

with per-channel piecewise-linear curves ``f`` (in) and ``h`` (out) and a 3x4 affine map ``M, b``:
curves follow tone changes (contrast, faded blacks, roll-offs), the matrix mixes channels (casts,
saturation, split toning). Applying it to a full-resolution frame is three 8-bit OpenCV passes
(LUT, transform, LUT; ~3.5 ms at 1080p on two cores), it has no position in it, so it cannot boil on
flat walls or bleed one object's colours onto another, and two keys' looks blend parameter by
parameter into the frames between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .tone_curve import _hats, fit_tone_curves

KNOTS = 16
_SMOOTH = 1e-3  # second-difference penalty of the output curves, per pixel
_RIDGE = 1e-4  # pull of the output curves towards the identity where no pixel pins them down
_MAX_PIXELS = 16384


@dataclass(frozen=True)
class Look:
    """``look(c) = post(matrix @ [pre(c), 1])``; colours in [0, 1].

    Shape:
        pre: (3, K) values of the input curves at K evenly spaced levels, increasing, 0 to 1.
        matrix: (3, 4) affine map of the curved colours.
        post: (3, K) values of the output curves at K evenly spaced levels of the map's output.
    """

    pre: np.ndarray
    matrix: np.ndarray
    post: np.ndarray

    def apply(self, rgb8: np.ndarray, dst: np.ndarray | None = None) -> np.ndarray:
        """The look of a uint8 RGB frame (any size), uint8 RGB."""
        tmp = cv2.LUT(rgb8, _table(self.pre))
        m = self.matrix.astype(np.float32).copy()
        m[:, 3] *= 255.0
        cv2.transform(tmp, m, dst=tmp)
        return cv2.LUT(tmp, _table(self.post), dst=dst)

    def apply_float(self, rgb: np.ndarray) -> np.ndarray:
        """The look of a float RGB frame in [0, 1] without 8-bit rounding (the fit's own view)."""
        x = np.clip(rgb, 0.0, 1.0).reshape(-1, 3)
        grid = np.linspace(0.0, 1.0, self.pre.shape[1])
        f = np.stack([np.interp(x[:, j], grid, self.pre[j]) for j in range(3)], axis=1)
        y = np.clip(f @ self.matrix[:, :3].T + self.matrix[:, 3], 0.0, 1.0)
        grid = np.linspace(0.0, 1.0, self.post.shape[1])
        out = np.stack([np.interp(y[:, i], grid, self.post[i]) for i in range(3)], axis=1)
        return out.reshape(rgb.shape).astype(np.float32)

    def blend(self, other: "Look", weight: float) -> "Look":
        """``(1 - weight) * self + weight * other``, parameter by parameter: exact at both ends."""
        mix = lambda a, b: ((1.0 - weight) * a + weight * b).astype(np.float32)  # noqa: E731
        return Look(mix(self.pre, other.pre), mix(self.matrix, other.matrix), mix(self.post, other.post))


def identity_look(knots: int = KNOTS) -> Look:
    ramp = np.tile(np.linspace(0.0, 1.0, knots, dtype=np.float32), (3, 1))
    return Look(ramp.copy(), np.eye(3, 4, dtype=np.float32), ramp.copy())


def fit_look(content: np.ndarray, styled: np.ndarray, knots: int = KNOTS) -> Look:
    """The global colour function that best takes ``content`` to ``styled`` (HxWx3 float in [0,1]).

    Input curves and matrix by alternating least squares (:func:`fit_tone_curves`), then the output
    curves by a smoothed least-squares fit of each styled channel on the matrix's output.
    """
    if content.shape != styled.shape:
        raise ValueError(f"content {content.shape} and styled {styled.shape} differ in size")
    c = content.reshape(-1, 3).astype(np.float32)
    s = styled.reshape(-1, 3).astype(np.float64)
    if len(c) > _MAX_PIXELS:
        idx = np.linspace(0, len(c) - 1, _MAX_PIXELS).astype(np.int64)
        c, s = c[idx], s[idx]
    pre = fit_tone_curves(c.reshape(-1, 1, 3), s.reshape(-1, 1, 3).astype(np.float32), knots)
    grid = np.linspace(0.0, 1.0, knots)
    f = np.stack([np.interp(c[:, j], grid, pre[j]) for j in range(3)], axis=1)
    a = np.concatenate([f, np.ones((len(f), 1))], axis=1)
    matrix = np.linalg.lstsq(a.T @ a + 1e-6 * len(a) * np.eye(4), a.T @ s, rcond=None)[0].T  # 3 x 4
    y = np.clip(a @ matrix.T, 0.0, 1.0)
    post = np.stack([_fit_curve(y[:, i], s[:, i], knots) for i in range(3)])
    return Look(pre.astype(np.float32), matrix.astype(np.float32), post.astype(np.float32))


def _fit_curve(x: np.ndarray, y: np.ndarray, knots: int) -> np.ndarray:
    """Non-decreasing piecewise-linear curve on [0, 1] with y ~= h(x), smoothed, identity where empty."""
    n = len(x)
    h = _hats(x, knots)
    d2 = np.diff(np.eye(knots), 2, axis=0)
    ident = np.linspace(0.0, 1.0, knots)
    lhs = h.T @ h + _SMOOTH * n * d2.T @ d2 + _RIDGE * n * np.eye(knots)
    rhs = h.T @ y + _RIDGE * n * ident
    curve = np.linalg.solve(lhs, rhs)
    return np.clip(np.maximum.accumulate(curve), 0.0, 1.0)


def _table(curves: np.ndarray) -> np.ndarray:
    """256x1x3 uint8 table for cv2.LUT: the curves at ``v / 255``, in levels."""
    levels = np.linspace(0.0, 1.0, 256)
    grid = np.linspace(0.0, 1.0, curves.shape[1])
    table = np.stack([np.interp(levels, grid, curves[j]) for j in range(3)], axis=1) * 255.0 + 0.5
    return np.clip(table, 0, 255).astype(np.uint8).reshape(256, 1, 3)
