"""Region-aware photorealistic colour transfer without masks (the ``regions`` model).

Deep Photo Style Transfer (Luan et al. 2017) recolours a photo region by region: sky from the
style's sky, buildings from its buildings. It needs hand-made segmentation masks and minutes of
optimisation per image. This model finds the regions and their correspondence itself, from ImageNet
VGG16 features, and recolours each region by a closed-form transform, in well under a second:

1. **Features.** relu3_1 (pooled to stride 8) and relu4_1 of content and style, at
   ``feature_side`` pixels, each L2-normalised per position and concatenated: a unit vector per
   8x8 cell that says *what* is there, not what colour it is.
2. **Regions.** Spherical k-means of the content's cell features into ``regions`` clusters
   (deterministic farthest-point start); each cell's membership is a softmax of its cosine
   similarity to the centres, so a cell between two regions belongs partly to both.
3. **Correspondence.** Every content cell attends to the style's cells (softmax of cosine
   similarity at ``match_temperature``); a region's style distribution is the attention of its
   cells averaged over the region. Sky attends to sky, buildings to buildings, whatever colour
   either is, because the features are largely colour-invariant at these layers.
4. **Transfer.** Per region, the linear Monge-Kantorovich map in CIE Lab between the region's
   membership-weighted content colours and its attention-weighted style colours (matches mean and
   covariance, the optimal-transport map between Gaussians). Style statistics are shrunk towards
   the whole style's in proportion to how little of the style a region attends to.
5. **Edges.** Memberships are upsampled to the content and guided-filtered with the content as the
   guide, so region boundaries follow the photo's own edges instead of the 8-pixel feature grid
   (without this a dark halo of the city's transform spills into the sky).
6. **Tone protection.** A soft knee keeps values that a dark or saturated style pushes past black
   or white inside (0, 1) with their order kept, instead of clipping them flat: shadows keep their
   detail and no more pixels clip than in the style.
7. **Photorealism by construction.** The result is projected onto a local affine function of the
   content (a colour-guided filter fit, He et al. 2013, radius scaled with the image): every
   window's output is an affine recolouring of the window's input, so edges stay where the photo
   has them, and no halo, blotch or painted texture can appear.

Everything runs in numpy, OpenCV and onnxruntime (the VGG trunk of :mod:`mvstylizer.metrics.vgg`);
~0.5 s for a 700 px image on 2 cores. Masks are never used.

Simplification: regions come from one k-means per image, so a content region with no counterpart
in the style (a face where the style has only landscape) takes the colours of whatever it resembles
most, shrunk towards the global style; DPST with masks does better there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..imaging import shrink_to
from ..mobile.affine import AffineFit, apply_affine, fit_local_affine
from .classic import gaussian_w2_sq, monge_kantorovich, rgb_to_lab
from .tone import KNEE, soft_clip

_MAX_GAIN = 2.5  # most a colour transfer may stretch contrast (and noise) along any Lab direction
_NOISE_FLOOR = 2.0  # Lab units: colour spread below this is taken for noise, not signal
_STATS_SIDE = 256  # colour statistics (65k pixels) converge long before full resolution


@dataclass(frozen=True)
class RegionConfig:
    """Args:
    feature_side: long side at which VGG features are computed, pixels.
    context: Gaussian averaging of cell features over neighbouring cells (sigma, in cells).
    regions: k-means clusters in the content.
    match_temperature: softmax temperature of content-to-style attention (cosine units).
    member_temperature: softmax temperature of cell-to-region membership (cosine units).
    min_share: a region attending to less than this share of the style's cells is shrunk towards
        the global style statistics.
    distinct: Lab distance (Gaussian W2) between a region's style palette and the whole style's at
        which the region's own map and the global map weigh equally.
    edge_radius, edge_eps: guided filter that snaps memberships to the content's edges (radius in
        pixels at a 512 px image; scaled with the image).
    fit_radius, fit_eps: local affine projection of the result (radius at a 512 px image).
    knee: width of the soft knee near black and white, colour units.
    strength: 0 gives the content, 1 the full transfer; in between the transforms are blended.
    """

    feature_side: int = 320
    context: float = 1.5
    regions: int = 5
    match_temperature: float = 0.03
    member_temperature: float = 0.05
    min_share: float = 0.05
    distinct: float = 6.0
    edge_radius: int = 8
    edge_eps: float = 1e-3
    fit_radius: int = 4
    fit_eps: float = 1e-4
    knee: float = KNEE
    strength: float = 1.0

    def __post_init__(self) -> None:
        if self.regions < 1:
            raise ValueError(f"regions must be >= 1, got {self.regions}")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {self.strength}")
        if min(self.match_temperature, self.member_temperature) <= 0.0:
            raise ValueError("temperatures must be > 0")


@dataclass
class RegionStyle:
    """A style photo digested once: its cell features and its colours at the feature grid."""

    features: np.ndarray  # (cells, D) unit vectors
    grid: tuple[int, int]  # (gh, gw) feature cells
    lab: np.ndarray  # (pixels, 3) float64 Lab colours at ``lab_size``
    lab_size: tuple[int, int]  # (w, h)
    mean: np.ndarray  # global Lab mean and covariance
    cov: np.ndarray = field(repr=False)


@dataclass
class RegionTransfer:
    """The ``regions`` edge model (see the module docstring)."""

    config: RegionConfig = field(default_factory=RegionConfig)
    name: str = "regions"
    description: str = ("region-aware colour transfer: VGG16 feature regions matched to the style's, "
                        "Monge-Kantorovich per region, locally affine output (spatially varying)")

    def __post_init__(self) -> None:
        from ..metrics.vgg import VGGFeatures

        self._vgg = VGGFeatures()

    def prepare_style(self, style: np.ndarray) -> RegionStyle:
        style = _float_rgb(style)
        feats, grid = cell_features(self._vgg, style, self.config.feature_side, self.config.context)
        small = shrink_to(style, _STATS_SIDE)
        lab = rgb_to_lab(small).reshape(-1, 3).astype(np.float64)
        mean, cov = weighted_stats(lab, np.ones(len(lab)))
        return RegionStyle(feats, grid, lab, (small.shape[1], small.shape[0]), mean, cov)

    def stylize(self, content: np.ndarray, style_state: RegionStyle) -> np.ndarray:
        cfg = self.config
        content = _float_rgb(content)
        scale = max(content.shape[:2]) / 512.0
        feats, (gh, gw) = cell_features(self._vgg, content, cfg.feature_side, cfg.context)
        centres = spherical_kmeans(feats, min(cfg.regions, len(feats)))
        members = softmax((feats @ centres.T) / cfg.member_temperature)  # (cells, K)
        attention = softmax((feats @ style_state.features.T) / cfg.match_temperature)  # (cells, style cells)
        region_attention = (members.T @ attention) / (members.sum(axis=0)[:, None] + 1e-8)  # (K, style cells)
        weights = _snap_to_edges(members.reshape(gh, gw, -1), content,
                                 max(1, round(cfg.edge_radius * scale)), cfg.edge_eps)

        lab = rgb_to_lab(content)
        out = np.zeros_like(lab)
        for k, (t, o) in enumerate(self._region_maps(content, weights, region_attention, style_state)):
            mapped = lab.reshape(-1, 3) @ t.T.astype(np.float32) + o.astype(np.float32)
            out += mapped.reshape(lab.shape) * weights[..., k:k + 1]
        rgb = soft_clip(from_lab(out), cfg.knee)
        coeffs = fit_local_affine(content, rgb, AffineFit(max(1, round(cfg.fit_radius * scale)), cfg.fit_eps))
        return apply_affine(coeffs, content)

    def _region_maps(self, content: np.ndarray, weights: np.ndarray, region_attention: np.ndarray,
                     style: RegionStyle) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each region's Lab map ``y = t x + o`` (strength applied).

        Shape:
            weights: (H, W, K) region weights of the content; region_attention: (K, style cells).
        """
        cfg = self.config
        stats = shrink_to(content, _STATS_SIDE)
        stats_lab = rgb_to_lab(stats).reshape(-1, 3).astype(np.float64)
        stats_w = np.stack([shrink_to(weights[..., k], _STATS_SIDE) for k in range(weights.shape[2])], axis=2)
        stats_w = stats_w.reshape(len(stats_lab), -1)
        g_t, g_o = mk_map(*weighted_stats(stats_lab, np.ones(len(stats_lab))), style.mean, style.cov)
        sw, sh = style.lab_size
        maps = []
        for k, a in enumerate(region_attention):
            att = cv2.resize(a.reshape(style.grid).astype(np.float32), (sw, sh), interpolation=cv2.INTER_LINEAR)
            mu_s, cov_s = weighted_stats(style.lab, att.reshape(-1))
            # A region that attends to only a few of the style's cells (its effective number, the
            # attention's participation ratio, below min_share of them) is shrunk towards the
            # global style: a handful of cells is no colour distribution to match.
            share = 1.0 / (float(np.sum(a * a)) * len(a) + 1e-12)
            trust = min(1.0, share / cfg.min_share) if cfg.min_share > 0 else 1.0
            mu_s = trust * mu_s + (1.0 - trust) * style.mean
            cov_s = trust * cov_s + (1.0 - trust) * style.cov
            # A region whose style colours are the style's overall colours gets the global map: on a
            # plain wall, k-means still splits the wall, and mapping each piece's own statistics onto
            # the same target would flatten its shading into blotches that move from frame to frame.
            # Regions take their own map only as far as their target palette differs (Gaussian W2
            # distance against ``distinct`` Lab units).
            d2 = gaussian_w2_sq(mu_s, cov_s, style.mean, style.cov)
            own = d2 / (d2 + cfg.distinct ** 2)
            t, o = mk_map(*weighted_stats(stats_lab, stats_w[:, k]), mu_s, cov_s)
            t, o = own * t + (1.0 - own) * g_t, own * o + (1.0 - own) * g_o
            # Strength blends the map with the identity: y = (1-s) x + s (t x + o).
            maps.append(((1.0 - cfg.strength) * np.eye(3) + cfg.strength * t, cfg.strength * o))
        return maps


def _float_rgb(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype == np.uint8:
        return img.astype(np.float32) * (1.0 / 255.0)
    return np.clip(img.astype(np.float32, copy=False), 0.0, 1.0)


def from_lab(lab: np.ndarray) -> np.ndarray:
    """CIE Lab -> RGB, not clipped (values outside [0, 1] are what :func:`soft_clip` is for)."""
    return cv2.cvtColor(np.ascontiguousarray(lab, dtype=np.float32), cv2.COLOR_Lab2RGB)


def cell_features(vgg, img: np.ndarray, side: int, context: float) -> tuple[np.ndarray, tuple[int, int]]:
    """Unit feature vectors per 8x8 cell of ``img`` shrunk to ``side``, for matching across images.

    relu4_1, minus the image's mean feature (what every cell shares: the photo's overall colour,
    light and grain, which differ between content and style and would otherwise dominate the
    cosine), normalised, then averaged over neighbouring cells (Gaussian, ``context`` cells) so a
    cell is matched by what it is part of as much as by itself. On the dev half of the DPST pairs
    the share of each content cell's attention that lands on the style's cells of the same
    semantic label went from 0.64 (relu4_1 alone) to 0.71 with both steps; relu3_1 added nothing.

    Shape:
        returns (gh * gw, 512) float32 and (gh, gw).
    """
    f = vgg.features(shrink_to(img, side), None)["relu4_1"]
    gh, gw = f.shape[1:]
    x = _unit(f.reshape(f.shape[0], -1).T)
    x = _unit(x - x.mean(axis=0))
    if context > 0:
        x = gaussian_cells(x.reshape(gh, gw, -1), context).reshape(gh * gw, -1)
        x = _unit(x)
    return x.astype(np.float32), (gh, gw)


def gaussian_cells(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a gh x gw x C array over its two grid axes, edges repeated.

    The same numbers as ``scipy.ndimage.gaussian_filter(x, (sigma, sigma, 0), mode="nearest")``
    (kernel truncated at 4 sigma; tests/test_light_install.py checks it), in numpy, so the core install
    needs no scipy for it: the grid is small (40 x 30 cells at the default feature side).
    """
    radius = int(4.0 * sigma + 0.5)
    taps = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * taps * taps / (sigma * sigma))
    w /= w.sum()
    out = x
    for axis in (0, 1):
        n = out.shape[axis]
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="edge")
        acc = np.zeros(out.shape, np.float64)
        for i, wi in enumerate(w):
            acc += wi * np.take(padded, np.arange(i, i + n), axis=axis)
        out = acc.astype(x.dtype)
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-6)


def spherical_kmeans(x: np.ndarray, k: int, iters: int = 15) -> np.ndarray:
    """k unit centres of the unit rows of ``x`` (cosine k-means), started deterministically from the
    first row and then, greedily, the row least similar to every centre so far."""
    centres = [x[0]]
    for _ in range(k - 1):
        centres.append(x[np.argmin(np.max(x @ np.array(centres).T, axis=1))])
    c = np.array(centres)
    label = None
    for _ in range(iters):
        new = np.argmax(x @ c.T, axis=1)
        if label is not None and np.array_equal(new, label):
            break
        label = new
        sums = np.eye(k, dtype=x.dtype)[label].T @ x  # (k, D): each cluster's sum of members
        keep = np.linalg.norm(sums, axis=1) > 0  # an emptied cluster keeps its centre
        c[keep] = sums[keep] / np.linalg.norm(sums[keep], axis=1, keepdims=True)
    return c


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax."""
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def weighted_stats(px: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and covariance of Nx3 Lab colours, ridged by the noise floor (``_NOISE_FLOOR``
    Lab units squared), so a flat region's map is not fitted to its noise."""
    w = np.maximum(w.astype(np.float64), 0.0)
    total = w.sum()
    if total <= 1e-12:
        w, total = np.ones(len(px)), float(len(px))
    mu = (px * w[:, None]).sum(axis=0) / total
    d = px - mu
    return mu, (d * w[:, None]).T @ d / total + np.eye(3) * _NOISE_FLOOR ** 2


def mk_map(mu_c: np.ndarray, cov_c: np.ndarray, mu_s: np.ndarray, cov_s: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """The affine Monge-Kantorovich map ``y = t x + o`` taking N(mu_c, cov_c) to N(mu_s, cov_s), its
    gain along any direction capped at ``_MAX_GAIN``.

    Uncapped, a region with little colour spread (a plain wall, a clear sky: what spread it has is
    sensor noise) is stretched to the style region's whole spread: the noise becomes blotches that
    boil from frame to frame. The map is symmetric positive definite, so the cap is on its eigenvalues.
    """
    vals, vecs = np.linalg.eigh(monge_kantorovich(cov_c, cov_s))
    t = (vecs * np.clip(vals, 0.0, _MAX_GAIN)) @ vecs.T
    return t, mu_s - t @ mu_c


def _snap_to_edges(members: np.ndarray, content: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Upsample (gh, gw, K) memberships to the content and guided-filter them with the content as
    guide, three at a time; renormalised to sum to 1 per pixel.

    Shape:
        returns (H, W, K) float32.
    """
    h, w = content.shape[:2]
    k = members.shape[2]
    up = cv2.resize(members.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    if up.ndim == 2:
        up = up[..., None]
    pad = (-k) % 3
    stack = np.concatenate([up, np.zeros((h, w, pad), np.float32)], axis=2) if pad else up
    parts = [apply_affine(fit_local_affine(content, np.ascontiguousarray(stack[..., i:i + 3]),
                                           AffineFit(radius, eps)), content)
             for i in range(0, stack.shape[2], 3)]
    out = np.maximum(np.concatenate(parts, axis=2)[..., :k], 1e-4)
    return out / out.sum(axis=2, keepdims=True)
