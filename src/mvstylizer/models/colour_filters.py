"""Random photographic colour filters: the supervision for the learned colour-mapping model.

Neural Preset (Ke et al., CVPR 2023) trains on pairs made by applying two different colour "presets"
(3D LUTs) to one photo. We have no LUT packs, so we synthesise presets: each filter is a short random
chain of the global colour operations a photo editor offers — white balance (temperature/tint),
exposure, contrast S-curves, per-channel gamma and tone curves, saturation and vibrance, hue rotation,
channel mixing, split toning, fades (lifted blacks / lowered whites) and cross-process curves.

Every operation is a *global* colour transform: a pixel's output depends only on its own RGB value,
which is exactly the class of mappings the DNCM model (and a .cube LUT) can represent. Filters are
plain numpy, work on any ``...x3`` float array in [0, 1] (an image, a batch, a list of colours) and are
drawn from a caller-supplied ``numpy.random.Generator``, so a seed reproduces them exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

# Rec. 709 luma weights (applied to the gamma-encoded values, as editors do for "saturation").
_LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
_CURVE_SAMPLES = 1024  # tone curves are tabulated at this many points and linearly interpolated


def _luma(x: np.ndarray) -> np.ndarray:
    return x @ _LUMA


def _power_s_curve(x: np.ndarray, c: float, pivot: float) -> np.ndarray:
    """Monotone contrast curve through (0,0), (pivot,pivot), (1,1) with slope ``c`` at the pivot.

    ``c > 1`` adds contrast, ``c < 1`` flattens; the derivative is continuous (no kink at the pivot).
    """
    x = np.clip(x, 0.0, 1.0)
    lo = pivot * (x / pivot) ** c
    hi = 1.0 - (1.0 - pivot) * ((1.0 - x) / (1.0 - pivot)) ** c
    return np.where(x < pivot, lo, hi).astype(np.float32)


def _pchip_table(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """A monotone cubic (PCHIP) curve through the control points, tabulated on [0, 1]."""
    from scipy.interpolate import PchipInterpolator

    grid = np.linspace(0.0, 1.0, _CURVE_SAMPLES)
    return np.clip(PchipInterpolator(xs, ys)(grid), 0.0, 1.0).astype(np.float32)


def _apply_tables(x: np.ndarray, tables: np.ndarray) -> np.ndarray:
    """Per-channel lookup of 3 x N curve tables (linear interpolation)."""
    grid = np.linspace(0.0, 1.0, tables.shape[1], dtype=np.float32)
    out = np.empty_like(x)
    for c in range(3):
        out[..., c] = np.interp(x[..., c], grid, tables[c])
    return out


def _rotation_about_grey(theta: float) -> np.ndarray:
    """3x3 rotation of RGB about the grey axis (a hue rotation that keeps luma roughly fixed)."""
    u = np.ones(3) / np.sqrt(3.0)
    k = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
    r = np.eye(3) + np.sin(theta) * k + (1 - np.cos(theta)) * (k @ k)
    return r.astype(np.float32)


def _hue_vector(angle: float) -> np.ndarray:
    """A zero-mean RGB direction (pure chroma) for a hue angle in radians; norm ~1."""
    v = np.array([np.cos(angle), np.cos(angle - 2 * np.pi / 3), np.cos(angle + 2 * np.pi / 3)])
    return (v / np.linalg.norm(v)).astype(np.float32)


@dataclass(frozen=True)
class Op:
    """One global colour operation: a name, its parameters (for logs) and the function."""

    name: str
    params: dict
    fn: Callable[[np.ndarray], np.ndarray] = field(repr=False, compare=False)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.clip(self.fn(x), 0.0, 1.0).astype(np.float32, copy=False)


@dataclass(frozen=True)
class ColourFilter:
    """A chain of global colour operations; ``f(img)`` works on any ``...x3`` float array in [0,1]."""

    ops: tuple[Op, ...] = ()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = np.clip(np.asarray(x, np.float32), 0.0, 1.0)
        for op in self.ops:
            y = op(y)
        return y

    def describe(self) -> str:
        if not self.ops:
            return "identity"
        return " -> ".join(f"{o.name}({', '.join(f'{k}={v:.3g}' for k, v in o.params.items())})" for o in self.ops)


# --------------------------------------------------------------------------------------------
# Operation samplers: each takes the RNG and a strength in (0, 1] and returns an Op.
# --------------------------------------------------------------------------------------------


def white_balance(rng: np.random.Generator, s: float = 1.0) -> Op:
    temp = float(rng.uniform(-0.6, 0.6) * s)  # stops of red-vs-blue
    tint = float(rng.uniform(-0.3, 0.3) * s)  # stops of green-vs-magenta
    gains = np.array([2 ** (temp / 2), 2 ** tint, 2 ** (-temp / 2)], np.float32)
    gains /= float(gains @ _LUMA)  # keep the luma of grey
    return Op("white_balance", {"temp": temp, "tint": tint}, lambda x: x * gains)


def exposure(rng: np.random.Generator, s: float = 1.0) -> Op:
    ev = float(rng.uniform(-0.9, 0.9) * s)
    k = 2.0**ev
    # In (approximately) linear light, with a soft shoulder so brightening rolls off instead of clipping.
    def fn(x: np.ndarray) -> np.ndarray:
        lin = np.power(x, 2.2) * k
        if k > 1:
            lin = lin / (1.0 + (k - 1.0) * lin / k)  # maps k -> 1 smoothly, slope k at 0
        return np.power(np.clip(lin, 0.0, 1.0), 1 / 2.2)

    return Op("exposure", {"ev": ev}, fn)


def contrast(rng: np.random.Generator, s: float = 1.0) -> Op:
    c = float(np.exp(rng.uniform(-0.5, 0.6) * s))
    pivot = float(rng.uniform(0.35, 0.6))
    return Op("contrast", {"slope": c, "pivot": pivot}, lambda x: _power_s_curve(x, c, pivot))


def channel_gamma(rng: np.random.Generator, s: float = 1.0) -> Op:
    g = np.exp(rng.uniform(-0.3, 0.3, 3) * s).astype(np.float32)
    return Op("channel_gamma", {"r": float(g[0]), "g": float(g[1]), "b": float(g[2])},
              lambda x: np.power(np.clip(x, 0.0, 1.0), g))


def tone_curves(rng: np.random.Generator, s: float = 1.0) -> Op:
    """Independent monotone curves per channel through 5 jittered control points."""
    xs = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    tables = []
    for _ in range(3):
        ys = xs + rng.normal(0.0, 0.06 * s, 5)
        ys[0] = abs(ys[0]) * 0.8  # blacks can lift, not go negative
        ys[-1] = 1.0 - abs(ys[-1] - 1.0) * 0.8
        ys = np.maximum.accumulate(np.clip(ys, 0.0, 1.0))
        ys = ys + np.arange(5) * 1e-4  # strictly increasing
        tables.append(_pchip_table(xs, ys))
    t = np.stack(tables)
    return Op("tone_curves", {"spread": float(np.abs(t - np.linspace(0, 1, t.shape[1])).mean())},
              lambda x: _apply_tables(x, t))


def saturation(rng: np.random.Generator, s: float = 1.0) -> Op:
    k = float(np.exp(rng.uniform(-1.0, 0.45) * s))  # ~0.37 .. 1.57
    def fn(x: np.ndarray) -> np.ndarray:
        y = _luma(x)[..., None]
        return y + k * (x - y)

    return Op("saturation", {"k": k}, fn)


def vibrance(rng: np.random.Generator, s: float = 1.0) -> Op:
    v = float(rng.uniform(-0.5, 0.8) * s)
    def fn(x: np.ndarray) -> np.ndarray:
        y = _luma(x)[..., None]
        sat = (x.max(axis=-1, keepdims=True) - x.min(axis=-1, keepdims=True))
        return y + (1.0 + v * (1.0 - sat)) * (x - y)

    return Op("vibrance", {"v": v}, fn)


def hue_rotate(rng: np.random.Generator, s: float = 1.0) -> Op:
    theta = float(rng.uniform(-0.5, 0.5) * s)  # radians, up to ~29 degrees
    m = _rotation_about_grey(theta).T
    return Op("hue_rotate", {"deg": np.degrees(theta)}, lambda x: x @ m)


def channel_mix(rng: np.random.Generator, s: float = 1.0) -> Op:
    m = np.eye(3) + rng.normal(0.0, 0.12 * s, (3, 3)) * (1 - np.eye(3))
    m /= m.sum(axis=1, keepdims=True)  # each output channel keeps grey grey
    mt = m.T.astype(np.float32)
    return Op("channel_mix", {"offdiag": float(np.abs(m - np.eye(3)).sum())}, lambda x: x @ mt)


def split_tone(rng: np.random.Generator, s: float = 1.0) -> Op:
    h_sh = float(rng.uniform(0, 2 * np.pi))
    h_hi = float(h_sh + np.pi + rng.normal(0, 0.6))  # usually complementary (teal/orange)
    a_sh = float(rng.uniform(0.02, 0.10) * s)
    a_hi = float(rng.uniform(0.02, 0.10) * s)
    v_sh, v_hi = _hue_vector(h_sh), _hue_vector(h_hi)
    def fn(x: np.ndarray) -> np.ndarray:
        y = np.clip(_luma(x), 0.0, 1.0)[..., None]
        return x + a_sh * (1 - y) ** 2 * v_sh + a_hi * y**2 * v_hi

    return Op("split_tone", {"shadow_hue": np.degrees(h_sh) % 360, "highlight_hue": np.degrees(h_hi) % 360,
                             "shadow": a_sh, "highlight": a_hi}, fn)


def fade(rng: np.random.Generator, s: float = 1.0) -> Op:
    black = float(rng.uniform(0.0, 0.15) * s)
    white = float(1.0 - rng.uniform(0.0, 0.12) * s)
    tint = _hue_vector(float(rng.uniform(0, 2 * np.pi))) * float(rng.uniform(0, 0.03) * s)
    lo = np.clip(black + tint, 0.0, 0.3).astype(np.float32)  # a coloured fade, sometimes
    def fn(x: np.ndarray) -> np.ndarray:
        return lo + (white - lo) * x

    return Op("fade", {"black": black, "white": white}, fn)


def cross_process(rng: np.random.Generator, s: float = 1.0) -> Op:
    """The classic E-6-in-C-41 look: punchy red/green, flat lifted blue, yellow-green highlights."""
    xs = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    r = xs + s * np.array([0.0, -0.06, 0.0, 0.07, 0.0]) * rng.uniform(0.5, 1.5)
    g = xs + s * np.array([0.0, -0.04, 0.02, 0.06, 0.0]) * rng.uniform(0.5, 1.5)
    lift = rng.uniform(0.05, 0.2) * s
    top = 1.0 - rng.uniform(0.05, 0.25) * s
    b = lift + (top - lift) * xs
    t = np.stack([_pchip_table(xs, np.maximum.accumulate(c) + np.arange(5) * 1e-4) for c in (r, g, b)])
    return Op("cross_process", {"blue_lift": float(lift), "blue_top": float(top)}, lambda x: _apply_tables(x, t))


OPS: dict[str, Callable[[np.random.Generator, float], Op]] = {
    "white_balance": white_balance,
    "exposure": exposure,
    "contrast": contrast,
    "channel_gamma": channel_gamma,
    "tone_curves": tone_curves,
    "saturation": saturation,
    "vibrance": vibrance,
    "hue_rotate": hue_rotate,
    "channel_mix": channel_mix,
    "split_tone": split_tone,
    "fade": fade,
    "cross_process": cross_process,
}
# How often each operation is picked (white balance, exposure and contrast are in most presets).
_WEIGHTS = {"white_balance": 3, "exposure": 2, "contrast": 3, "channel_gamma": 1, "tone_curves": 2,
            "saturation": 2, "vibrance": 1, "hue_rotate": 1, "channel_mix": 1, "split_tone": 2,
            "fade": 1.5, "cross_process": 0.7}


def random_filter(rng: np.random.Generator, strength: float = 1.0, min_ops: int = 1, max_ops: int = 5,
                  identity_prob: float = 0.0) -> ColourFilter:
    """A random preset: ``min_ops..max_ops`` distinct operations in a random order.

    ``strength`` scales every parameter range (1 = the ranges above, which span mild to strong looks);
    each filter also draws its own strength factor in [0.35, 1.2] so subtle presets are common too.
    ``identity_prob`` returns the identity (the untouched photo is a style as well).
    """
    if rng.random() < identity_prob:
        return ColourFilter(())
    names = list(OPS)
    p = np.array([_WEIGHTS[n] for n in names], float)
    n = int(rng.integers(min_ops, max_ops + 1))
    chosen = rng.choice(len(names), size=n, replace=False, p=p / p.sum())
    s = strength * float(rng.uniform(0.35, 1.2))
    return ColourFilter(tuple(OPS[names[i]](rng, s) for i in chosen))
