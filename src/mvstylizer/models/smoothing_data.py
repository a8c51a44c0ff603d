"""Training and evaluation pairs for meta-smoothing: what the edge sends back, and what it should be.

A pair starts from a full-resolution picture C. A random photographic "look" f is applied to it at
full resolution: the target T = f(C), what frame-by-frame stylization at full resolution would give.
The input is what the phone actually gets: the same look applied to the *downscaled* picture
(area-downscaled by ``scale``, as the pipeline makes key frames), then damaged the way a style-transfer
DNN and the transport damage it:

- colour blotches: a smooth random colour field (WCT-family transfers leave patches of off colour);
- halos / softness: an unsharp-mask with a random sign (over-shoot rings at edges, or blur);
- colour noise: per-pixel Gaussian noise;
- JPEG compression at a random quality, sometimes with 4:2:0 chroma (the transport).

``clean_prob`` makes a share of pairs carry only the transport's JPEG (the benchmark's
``transport_only`` condition; off in training, see :class:`Damage`).

Looks are the global colour filters of :mod:`.colour_filters`; half the time two of them are blended
through a smooth random mask, so the target also holds the spatially varying changes a local style
transfer makes. Simplification, stated: no DNN runs inside the data loop (wct2 costs ~0.4 s per key
frame on two cores), so the artefacts are modelled, not produced by our networks.

Everything is numpy/OpenCV and drawn from the caller's ``numpy.random.Generator``: a seed reproduces
a pair exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .colour_filters import random_filter

MIN_SCALE, MAX_SCALE = 1.0, 8.0


@dataclass(frozen=True)
class Damage:
    """Artefact strengths; each pair draws its own strength uniformly up to these."""

    blotch: float = 0.04  # peak amplitude of the smooth colour field, in [0,1] units
    halo: float = 0.6  # unsharp-mask amount, drawn in [-halo/2, halo]
    noise: float = 0.015  # per-pixel colour noise sigma
    jpeg_quality: tuple[int, int] = (70, 96)
    blend_prob: float = 0.5  # how often the look is two filters blended through a smooth mask
    # How often the frame comes back clean but for the transport's JPEG (q88-97), as from global models
    # such as dncm: the module must not smooth those. The net sees each window's unexplained variance,
    # so it can tell clean from damaged; the benchmark's conditions set 0 and 1 explicitly.
    clean_prob: float = 0.2
    clean_jpeg_quality: tuple[int, int] = (88, 98)


@dataclass
class Pair:
    content: np.ndarray  # full-resolution HxWx3 float32 in [0,1]
    content_low: np.ndarray  # area-downscaled content, what the phone sent
    styled_low: np.ndarray  # low-resolution stylized frame with artefacts, what came back
    target: np.ndarray  # the look applied at full resolution
    scale: float  # content width / low width


def low_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """(w, h) of a frame downscaled by ``scale``, at least 8 px a side."""
    return max(8, round(width / scale)), max(8, round(height / scale))


def downscale(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def _smooth_field(rng: np.random.Generator, h: int, w: int, channels: int, cells: float) -> np.ndarray:
    """Random field with features about ``min(h, w) / cells`` pixels wide, values roughly in [-1, 1]."""
    gh, gw = max(2, round(h / min(h, w) * cells)), max(2, round(w / min(h, w) * cells))
    grid = rng.standard_normal((gh, gw, channels)).astype(np.float32)
    field = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    return field.reshape(h, w, channels) / 1.5


def _mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth blend weight in [0,1] (a large-scale sigmoid of a random field)."""
    f = _smooth_field(rng, h, w, 1, cells=float(rng.uniform(1.5, 4.0)))
    return (1.0 / (1.0 + np.exp(-3.0 * f))).astype(np.float32)


def _look(rng: np.random.Generator, damage: Damage):
    """A function applying the same look at any resolution (the blend mask is resized with it)."""
    f1 = random_filter(rng)
    if rng.random() >= damage.blend_prob:
        return lambda img: f1(img)
    f2 = random_filter(rng)
    mask_seed = int(rng.integers(1 << 31))

    def apply(img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        # The mask is defined on a fixed grid, so the same look at two sizes uses the same mask.
        m = _mask(np.random.default_rng(mask_seed), 64, 64)
        m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)[..., None]
        return (f1(img) * m + f2(img) * (1.0 - m)).astype(np.float32)

    return apply


def damage_frame(styled: np.ndarray, rng: np.random.Generator, damage: Damage) -> np.ndarray:
    """Style-transfer and transport artefacts on a stylized low-resolution frame (float RGB [0,1])."""
    h, w = styled.shape[:2]
    x: np.ndarray = styled.astype(np.float32)
    if rng.random() < damage.clean_prob:
        return _jpeg(x, rng, damage.clean_jpeg_quality)
    x = x + _smooth_field(rng, h, w, 3, cells=float(rng.uniform(3, 12))) * damage.blotch * rng.random()
    amount = float(rng.uniform(-damage.halo / 2, damage.halo))
    sigma = float(rng.uniform(0.6, 2.0))
    x = x + amount * (x - cv2.GaussianBlur(x, (0, 0), sigma))
    x = x + rng.standard_normal(x.shape).astype(np.float32) * damage.noise * rng.random()
    return _jpeg(x, rng, damage.jpeg_quality)


def _jpeg(x: np.ndarray, rng: np.random.Generator, quality_range: tuple[int, int]) -> np.ndarray:
    """JPEG round trip at a random quality, 4:2:0 chroma 30% of the time (else 4:4:4, as our transport)."""
    x8 = np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)
    quality = int(rng.integers(*quality_range))
    sampling = cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420 if rng.random() < 0.3 else cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444
    ok, buf = cv2.imencode(".jpg", x8[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality,
                                                   cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling])
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 RGB frame
        raise RuntimeError("JPEG encode failed")
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None:  # pragma: no cover - OpenCV always decodes the JPEG it just encoded
        raise RuntimeError("JPEG decode failed")
    return bgr[..., ::-1].astype(np.float32) * (1.0 / 255.0)


def make_pair(content: np.ndarray, scale: float, rng: np.random.Generator, damage: Damage = Damage()) -> Pair:
    """One (input, target) pair from a full-resolution float RGB picture, at ``scale`` in [1, 8]."""
    if not MIN_SCALE <= scale <= MAX_SCALE:
        raise ValueError(f"scale must be in [{MIN_SCALE}, {MAX_SCALE}], got {scale}")
    h, w = content.shape[:2]
    size = low_size(w, h, scale)
    look = _look(rng, damage)
    content_low = downscale(content, size)
    return Pair(content=content, content_low=content_low,
                styled_low=np.clip(damage_frame(look(content_low), rng, damage), 0.0, 1.0),
                target=look(content), scale=w / size[0])
