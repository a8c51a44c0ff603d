"""The fast guided filter (colour/affine.py, ``guided_filter(..., subsample=s)``): coefficients fit at
1/s resolution, applied to the full-resolution guide."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mvstylizer.colour.affine import AffineFit, guided_filter


def _guide(h: int, w: int, seed: int) -> np.ndarray:
    """Colour blocks with hard edges at odd and even pixels, plus fine texture."""
    rng = np.random.default_rng(seed)
    blocks = cv2.resize(rng.random((7, 9, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)
    grain = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 1.0)
    return np.clip(0.8 * blocks + 0.2 * grain, 0.0, 1.0)


def _smooth(h: int, w: int, n: int, seed: int) -> np.ndarray:
    """Bilinear upsampling of a coarse 8-pixel grid, as the regions model's memberships."""
    coarse = np.random.default_rng(seed).random(((h + 7) // 8, (w + 7) // 8, n)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, n)


def _box(x: np.ndarray, r: int) -> np.ndarray:
    return cv2.boxFilter(x, cv2.CV_64F, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def _textbook(guide: np.ndarray, src: np.ndarray, r: int, eps: float) -> np.ndarray:
    """He et al.'s colour-guided filter in float64, one channel and one pixel's 3x3 solve at a time."""
    g = guide.astype(np.float64)
    mean_g = _box(g, r)
    cov_g = np.stack([_box(g[..., i] * g[..., j], r) - mean_g[..., i] * mean_g[..., j]
                      for i in range(3) for j in range(3)], axis=2).reshape(*g.shape[:2], 3, 3)
    inv = np.linalg.inv(cov_g + eps * np.eye(3))
    out = np.empty(src.shape, np.float64)
    for k in range(src.shape[2]):
        p = src[..., k].astype(np.float64)
        mean_p = _box(p, r)
        cov_gp = _box(g * p[..., None], r) - mean_g * mean_p[..., None]
        a = (inv @ cov_gp[..., None])[..., 0]
        b = mean_p - (a * mean_g).sum(axis=2)
        out[..., k] = (_box(a, r) * g).sum(axis=2) + _box(b, r)
    return out


def test_subsample_one_is_the_exact_filter():
    guide, src = _guide(40, 56, seed=1), _smooth(40, 56, 5, seed=2)
    fit = AffineFit(3, 1e-3)
    out = guided_filter(guide, src, fit, subsample=1)
    np.testing.assert_array_equal(out, guided_filter(guide, src, fit))
    assert np.abs(out - _textbook(guide, src, 3, 1e-3)).max() < 1e-4


@pytest.mark.parametrize("h, w", [(144, 256), (97, 131)])
def test_fast_filter_is_close_to_the_exact_one_on_a_smooth_source(h, w):
    guide, src = _guide(h, w, seed=3), _smooth(h, w, 8, seed=4)
    fit = AffineFit(8, 1e-3)
    exact = guided_filter(guide, src, fit)
    fast = guided_filter(guide, src, fit, subsample=2)
    assert fast.shape == exact.shape and fast.dtype == np.float32
    err = np.abs(fast - exact)
    # The source spans [0, 1]; the two differ mostly along the guide's edges (measured: mean ~0.005,
    # max ~0.06), a small part of what the filter itself changes.
    assert err.mean() < 0.008 and err.max() < 0.1, (err.mean(), err.max())
    assert err.mean() < 0.2 * np.abs(exact - src).mean()


def test_fast_filter_snaps_to_the_full_resolution_edge():
    # The guide's edge between columns 32 and 33 falls inside a half-resolution pixel; the output's
    # step must still be there, as the exact filter's is, not smeared over the subsampled grid.
    guide = np.zeros((32, 64, 3), np.float32)
    guide[:, 33:] = 1.0
    soft = np.clip((np.arange(64, dtype=np.float32) - 25) / 16, 0, 1)[None, :, None] * np.ones((32, 1, 1), np.float32)
    for s in (1, 2):
        steps = np.diff(guided_filter(guide, soft, AffineFit(4, 1e-4), subsample=s)[..., 0], axis=1)
        assert np.all(steps[:, 32] > 0.25) and np.all(np.abs(np.delete(steps, 32, axis=1)) < 0.06), s


def test_subsample_must_be_positive():
    guide = _guide(16, 16, seed=5)
    with pytest.raises(ValueError):
        guided_filter(guide, guide, AffineFit(2, 1e-3), subsample=0)
