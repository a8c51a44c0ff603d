"""Tone protection: keep what a colour transfer pushes past black or white, instead of clipping it."""

from __future__ import annotations

import numpy as np

KNEE = 0.04  # colour units: the band at each end where values are compressed rather than kept


def soft_clip(rgb: np.ndarray, knee: float = KNEE) -> np.ndarray:
    """Map values into (0, 1) with an exponential knee of width ``knee`` at each end.

    Identity in [knee, 1 - knee]; below and above, ``knee * exp((x - knee) / knee)`` and its mirror,
    so the slope is continuous and the order of values is kept: shadows that a dark style pushes
    below black stay distinct, slightly lifted, instead of flattening to 0 (and highlights to 1).

    Args:
        rgb: any array of colours, nominally in [0, 1], values outside allowed.
        knee: width of each band; 0 gives a plain clip.

    Returns:
        float32 array of the same shape, in (0, 1) (in [0, 1] for ``knee == 0``).
    """
    x = np.asarray(rgb, dtype=np.float32)
    if knee <= 0.0:
        return np.clip(x, 0.0, 1.0)
    out = x.copy()
    lo = x < knee
    out[lo] = knee * np.exp((x[lo] - knee) / knee)
    hi = x > 1.0 - knee
    out[hi] = 1.0 - knee * np.exp(-(x[hi] - (1.0 - knee)) / knee)
    return out
