"""Global tone curves: the learned meta-smoothing's guide is the content frame seen through them.

Photographic looks and photorealistic style transfers are strongly non-linear in each channel
(contrast curves, faded blacks, gamma). An affine colour map per window cannot follow such a curve
across a window holding both shadows and highlights, so full-resolution detail comes back with the
slope of the window's average instead of the slope at each pixel's own brightness. Fitting one set
of per-channel curves ``f`` for the whole frame, with ``styled ~= M f(content) + b``, and giving the
local maps ``f(content)`` as their guide moves that non-linearity to the pixel level, where it costs
one lookup table pass (cv2.LUT, converting uint8 to float at the same time as the plain copy it
replaces). Measured on the smoothing benchmark's held-out pairs: +0.3 to +1.5 dB for the learned
module (bilateral guided upsampling gets at this through its luma bins, at ~40x the cost).

Curves are piecewise linear on ``KNOTS`` evenly spaced knots per channel, normalised to run from 0
to 1 and kept strictly increasing, so the guide never merges two content values (no detail is lost)
and curves of neighbouring key frames can be blended knot by knot.
"""

from __future__ import annotations

import cv2
import numpy as np

KNOTS = 8
_MIN_SLOPE = 0.05  # of the identity's slope: keeps the curve invertible
_SMOOTH = 1e-2  # second-difference penalty per pixel
_ITERS = 3
_MAX_PIXELS = 4096  # the fit reads an evenly strided subset of a key frame's pixels


def identity_curves(knots: int = KNOTS) -> np.ndarray:
    return np.tile(np.linspace(0.0, 1.0, knots, dtype=np.float32), (3, 1))


def _hats(x: np.ndarray, knots: int) -> np.ndarray:
    """N x knots piecewise-linear (hat) basis of values in [0, 1]."""
    t = np.clip(x, 0.0, 1.0) * (knots - 1)
    i = np.minimum(t.astype(np.int64), knots - 2)
    f = t - i
    h = np.zeros((x.size, knots))
    rows = np.arange(x.size)
    h[rows, i] = 1.0 - f
    h[rows, i + 1] = f
    return h


def fit_tone_curves(content: np.ndarray, styled: np.ndarray, knots: int = KNOTS, cross: float = 0.0) -> np.ndarray:
    """Per-channel curves (3 x knots, float32) with ``styled ~= M f(content) + b`` over the frame.

    ``cross`` > 0 adds a ridge (per pixel, colour variance units) on M's cross-channel terms, so
    that where the channels move together (grey walls, pavement) the curves are not fit alongside a
    matrix that trades one channel for another (see :func:`mvstylizer.mobile.look.fit_look`).

    Alternating least squares from the identity: the 3x4 map given the curves, then the curves given
    the map (linear in the knot values), with a smoothness penalty. Both steps need only the Gram
    matrix of the hat basis and its products with ``styled``, gathered in one pass over the pixels,
    so the iterations cost nothing per pixel (~1 ms per key frame). HxWx3 inputs in [0,1].
    """
    c = content.reshape(-1, 3)
    s = styled.reshape(-1, 3).astype(np.float64)
    if len(c) > _MAX_PIXELS:
        idx = np.linspace(0, len(c) - 1, _MAX_PIXELS).astype(np.int64)
        c, s = c[idx], s[idx]
    n = len(c)
    k = knots
    basis = np.concatenate([_hats(c[:, j], k) for j in range(3)], axis=1)  # n x 3k
    gram = basis.T @ basis  # blocks (j, j') of H_j^T H_j'
    hs = basis.T @ s  # 3k x 3: H_j^T s_i
    h1 = basis.sum(axis=0)  # 3k: H_j^T 1
    s1 = s.sum(axis=0)
    d2 = np.diff(np.eye(k), 2, axis=0)
    penalty = np.kron(np.eye(3), d2.T @ d2) * (_SMOOTH * n) + 1e-6 * n * np.eye(3 * k)
    curves = identity_curves(k).astype(np.float64)
    for _ in range(_ITERS):
        # Map step: least squares of s on [f(c), 1], from the Gram matrix of the curves' values.
        theta = np.zeros((3 * k, 3))  # f(c) = basis @ theta
        for j in range(3):
            theta[j * k:(j + 1) * k, j] = curves[j]
        normal = np.empty((4, 4))
        normal[:3, :3] = theta.T @ gram @ theta
        normal[:3, 3] = normal[3, :3] = theta.T @ h1
        normal[3, 3] = n
        rhs = np.concatenate([theta.T @ hs, s1[None]], axis=0)
        w = np.stack([np.linalg.solve(normal + 1e-9 * n * np.eye(4) + cross_ridge(i, cross * n), rhs[:, i])
                      for i in range(3)], axis=1)  # 4 x 3
        m, b = w[:3].T, w[3]
        # Curve step: s_i - b_i = sum_j M_ij H_j curve_j, linear in the 3k knot values.
        mm = np.kron(m.T @ m, np.ones((k, k)))  # (j, j') block: sum_i M_ij M_ij'
        lhs = penalty + mm * gram
        rhs_c = (hs - np.outer(h1, b)) * np.repeat(m.T, k, axis=0)  # row (j, k'), column i
        curves = _normalise(np.linalg.solve(lhs, rhs_c.sum(axis=1)).reshape(3, k))
    return curves.astype(np.float32) if np.all(np.isfinite(curves)) else identity_curves(k)


def cross_ridge(row: int, weight: float) -> np.ndarray:
    """4x4 ridge on the cross-channel coefficients of output channel ``row`` (not its own channel,
    not the offset)."""
    return np.diag([0.0 if j == row else weight for j in range(3)] + [0.0])


def _normalise(curves: np.ndarray) -> np.ndarray:
    """From 0 to 1, strictly increasing (a falling curve is flipped: the map's sign absorbs it)."""
    out = np.empty_like(curves)
    knots = curves.shape[1]
    for j, curve in enumerate(curves):
        if curve[-1] < curve[0]:
            curve = -curve
        steps = np.maximum(np.diff(curve), 0.0)
        total = steps.sum()
        steps = steps / total if total > 1e-9 else np.full(knots - 1, 1.0 / (knots - 1))
        steps = np.maximum(steps, _MIN_SLOPE / (knots - 1))
        out[j] = np.concatenate([[0.0], np.cumsum(steps / steps.sum())])
    return out


def curve_lut(curves: np.ndarray) -> np.ndarray:
    """256x1x3 float32 table for cv2.LUT on uint8 frames: the curves at ``v / 255``."""
    levels = np.linspace(0.0, 1.0, 256)
    grid = np.linspace(0.0, 1.0, curves.shape[1])
    table = np.stack([np.interp(levels, grid, curves[j]) for j in range(3)], axis=1)
    return table.astype(np.float32).reshape(256, 1, 3)


def guide(curves: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """``f(rgb)`` for a float HxWx3 frame in [0,1], through the same 8-bit table the phone applies to
    full-resolution frames. The frame is rounded to 8 bits first (a float lookup costs ~30x more;
    the rounding moves a low-resolution key frame's guide by at most half a level), and training
    goes through this very function, so it learns on what the phone computes."""
    return cv2.LUT(cv2.convertScaleAbs(rgb, alpha=255.0), curve_lut(curves))
