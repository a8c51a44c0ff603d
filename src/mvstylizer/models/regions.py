"""Region-aware photorealistic colour transfer without masks (the ``regions`` model).

Deep Photo Style Transfer (Luan et al. 2017) recolours a photo region by region: sky from the
style's sky, buildings from its buildings. It needs hand-made segmentation masks and minutes of
optimisation per image. This model finds the regions and their correspondence itself, from ImageNet
VGG16 features, and recolours each region by a closed-form transform, in well under a second:

1. **Features.** relu4_1 of content and style at ``feature_side`` pixels, centred per image,
   L2-normalised per position and averaged over neighbouring cells: a unit vector per 8x8 cell that
   says *what* is there, not what colour it is.
2. **Regions, from the style.** Spherical k-means of the *style's* cells into ``regions`` clusters
   (deterministic farthest-point start), once per style. Each content cell belongs to each cluster
   by a softmax of its cosine similarity to the cluster's centre, less a soft vertical prior (sky is
   up, ground down: the squared distance between the cell's row and the cluster's mean row in the
   style). Because the clusters are fixed by the style, a frame's regions are a smooth function of
   the frame: nothing is re-clustered, so nearby frames get nearby regions (a k-means of each frame
   jumped between splits, and its output moved more than its input).
3. **Correspondence is the clustering.** A region's style colours are its cluster's cells
   (membership-weighted), precomputed with the style; a cluster holding only a few cells is shrunk
   towards the whole style.
4. **Transfer.** Per region, the linear Monge-Kantorovich map in CIE Lab between the region's
   membership-weighted content colours and its cluster's colours (mean and covariance, the
   optimal-transport map between Gaussians), then per Lab channel a monotone tone curve moving the
   mapped quantiles ``tone_match`` of the way to the cluster's quantiles (the Gaussian map leaves a
   region's tones Gaussian-shaped; a sunset sky is not). A region whose cluster's palette is close
   to the whole style's takes the global map instead, in proportion (the W2 gate), and both the map's
   gain and the curves' slopes are capped, so a plain region's noise is not stretched into blotches.
5. **Edges.** Memberships are upsampled to the content and guided-filtered with the content as the
   guide, so region boundaries follow the photo's own edges instead of the 8-pixel feature grid
   (without this a dark halo of the city's transform spills into the sky). The memberships are
   smooth, so the fast guided filter does (fit at half resolution, applied at full): ~30 ms instead
   of ~66 ms at 512x288, and on real frames the output moves by under 0.05 8-bit levels on average.
6. **Tone protection.** A soft knee keeps values that a dark or saturated style pushes past black
   or white inside (0, 1) with their order kept, instead of clipping them flat: shadows keep their
   detail and no more pixels clip than in the style.
7. **Photorealism by construction.** The result is projected onto a local affine function of the
   content (a colour-guided filter fit, He et al. 2013, radius scaled with the image): every
   window's output is an affine recolouring of the window's input, so edges stay where the photo
   has them, and no halo, blotch or painted texture can appear.

Everything runs in numpy, OpenCV and onnxruntime (the VGG trunk of :mod:`mvstylizer.models.vgg_onnx`);
~0.3 s for a 700 px image on 2 cores. Masks are never used.

Simplification: the regions are the style's, so a content region with no counterpart in the style
(a face where the style has only landscape) takes the colours of whatever cluster it resembles
most; DPST with masks does better there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..colour.affine import AffineFit, apply_affine, fit_local_affine, guided_filter
from ..imaging import model_rgb, shrink_to
from .classic import gaussian_w2_sq, monge_kantorovich, rgb_to_lab
from .tone import KNEE, soft_clip
from .vgg_onnx import MIN_SIDE, VGGFeatures

_MAX_GAIN = 2.5  # most a colour transfer may stretch contrast (and noise) along any Lab direction
_NOISE_FLOOR = 2.0  # Lab units: colour spread below this is taken for noise, not signal
_STATS_SIDE = 256  # colour statistics (65k pixels) converge long before full resolution
_STATS_MIN_SIDE = 8  # ...but are taken from at least this many pixels across (see _stats_image)
_PADDED_CELLS = 3  # relu4_1 cells at each edge that VGG's zero padding reaches (8 px cells, ~30 px)
_KNOTS = 33  # quantiles per Lab channel of a region's tone curves
_TABLE = 8192  # points each tone curve is tabulated at for lookup


@dataclass(frozen=True)
class RegionConfig:
    """Args:
    feature_side: long side at which VGG features are computed, pixels.
    context: Gaussian averaging of cell features over neighbouring cells (sigma, in cells).
    regions: k-means clusters of the style's cells; each is one region of the content.
    member_temperature: softmax temperature of cell-to-region membership (cosine units). The
        cells of a plain wall are about as close to several clusters; sharper memberships (0.05)
        matched the dev pairs' regions more closely but split such a wall into patches with
        different maps, blotches that move from frame to frame (tests/mobile/test_interp_synthetic.py).
    vertical_prior: cosine units taken off a content cell's similarity to a region per squared
        distance (in image heights) between the cell's row and the region's mean row in the style.
    min_share: a region holding less than this share of the style's cells is shrunk towards the
        global style statistics.
    distinct: Lab distance (Gaussian W2) between a region's style palette and the whole style's at
        which the region's own map and the global map weigh equally (0: every region its own map).
    tone_match: 0 gives each region the Monge-Kantorovich map alone (mean and covariance); 1 adds
        per-channel tone curves that match the region's Lab quantiles to its style cluster's too.
    edge_radius, edge_eps: guided filter that snaps memberships to the content's edges (radius in
        pixels at a 512 px image; scaled with the image).
    fit_radius, fit_eps: local affine projection of the result (radius at a 512 px image).
    knee: width of the soft knee near black and white, colour units.
    strength: 0 gives the content, 1 the full transfer; in between the transforms are blended.
    structure: how far a content's cells spread around their mean feature (:func:`_structure`) where
        memberships start to follow the features, and where they follow them fully; below, the picture
        has no regions to tell apart (sensor noise alone spreads them 0.02-0.37, photos measured 0.75-1.01).
    """

    feature_side: int = 320
    context: float = 1.5
    regions: int = 8
    member_temperature: float = 0.15
    vertical_prior: float = 1.0
    min_share: float = 0.05
    distinct: float = 6.0
    tone_match: float = 0.75
    edge_radius: int = 8
    edge_eps: float = 1e-3
    fit_radius: int = 4
    fit_eps: float = 1e-4
    knee: float = KNEE
    strength: float = 1.0
    structure: tuple[float, float] = (0.4, 0.65)

    def __post_init__(self) -> None:
        if self.regions < 1:
            raise ValueError(f"regions must be >= 1, got {self.regions}")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {self.strength}")
        if not 0.0 <= self.tone_match <= 1.0:
            raise ValueError(f"tone_match must be in [0, 1], got {self.tone_match}")
        if self.member_temperature <= 0.0:
            raise ValueError("member_temperature must be > 0")
        if self.vertical_prior < 0.0:
            raise ValueError("vertical_prior must be >= 0")


@dataclass
class RegionStyle:
    """A style photo digested once: its regions (clusters of its cells) and each one's colours."""

    centres: np.ndarray  # (K, D) unit feature centres of the style's regions
    rows: np.ndarray  # (K,) each region's mean row in the style, in image heights
    means: np.ndarray  # (K, 3) Lab mean of each region
    covs: np.ndarray = field(repr=False)  # (K, 3, 3) Lab covariance of each region
    quantiles: np.ndarray = field(repr=False)  # (K, 3, _KNOTS) Lab quantiles of each region
    mean: np.ndarray = field(repr=False)  # the whole style's Lab mean and covariance
    cov: np.ndarray = field(repr=False)


@dataclass
class RegionTransfer:
    """The ``regions`` edge model (see the module docstring)."""

    config: RegionConfig = field(default_factory=RegionConfig)
    name: str = "regions"
    description: str = ("region-aware colour transfer: VGG16 feature regions of the style found in the content, "
                        "Monge-Kantorovich and tone curves per region, locally affine output (spatially varying)")

    def __post_init__(self) -> None:
        self._vgg = VGGFeatures()

    def prepare_style(self, style: np.ndarray) -> RegionStyle:
        cfg = self.config
        style = model_rgb(style)
        feats, grid, _ = cell_features(self._vgg, style, cfg.feature_side, cfg.context)
        centres = spherical_kmeans(feats, min(cfg.regions, len(feats)))
        members = softmax((feats @ centres.T) / cfg.member_temperature)  # (cells, K)
        rows = (members * _cell_rows(grid)[:, None]).sum(axis=0) / (members.sum(axis=0) + 1e-8)
        small = _stats_image(style)
        lab = rgb_to_lab(small).reshape(-1, 3).astype(np.float64)
        g_mean, g_cov = weighted_stats(lab, np.ones(len(lab)))
        uniform = np.full(len(lab), 1.0 / len(lab))
        means, covs, quantiles = [], [], []
        for m in members.T:
            w = cv2.resize(m.reshape(grid).astype(np.float64), small.shape[1::-1], interpolation=cv2.INTER_LINEAR)
            w = w.reshape(-1) / (w.sum() + 1e-12)
            # A region holding only a few of the style's cells (its effective number, the
            # participation ratio of its memberships, below min_share of them) is shrunk towards
            # the global style: a handful of cells is no colour distribution to match.
            share = float(m.sum()) ** 2 / (float(np.sum(m * m)) * len(m) + 1e-12)
            trust = min(1.0, share / cfg.min_share) if cfg.min_share > 0 else 1.0
            mu, cov = weighted_stats(lab, w)
            means.append(trust * mu + (1.0 - trust) * g_mean)
            covs.append(trust * cov + (1.0 - trust) * g_cov)
            quantiles.append(weighted_quantiles(lab, trust * w + (1.0 - trust) * uniform))
        return RegionStyle(centres, rows, np.array(means), np.array(covs), np.array(quantiles), g_mean, g_cov)

    def stylize(self, content: np.ndarray, style_state: RegionStyle) -> np.ndarray:
        cfg = self.config
        content = model_rgb(content)
        scale = max(content.shape[:2]) / 512.0
        feats, (gh, gw), structure = cell_features(self._vgg, content, cfg.feature_side, cfg.context)
        # Sky is up and ground is down in both photos: a soft prior, so a grey sky does not take a
        # grey road's colours, yet a region seen elsewhere in the frame still finds its counterpart.
        offset = _cell_rows((gh, gw))[:, None] - style_state.rows[None, :]
        logits = feats @ style_state.centres.T - cfg.vertical_prior * offset * offset
        # A picture without structure (a plain colour, a blank wall filling the frame) has no regions to
        # tell apart: its cells' features differ by noise alone, which then picked a region per cell
        # (with the row prior, a plain picture came out graded top to bottom in the style's colours).
        # Below the structure a photo has, memberships fade to even: one transform for the picture.
        lo, hi = cfg.structure
        evidence = float(np.clip((structure - lo) / (hi - lo), 0.0, 1.0))
        members = softmax(evidence * logits / cfg.member_temperature)  # (cells, K)
        weights = _snap_to_edges(members.reshape(gh, gw, -1), content,
                                 max(1, round(cfg.edge_radius * scale)), cfg.edge_eps)

        lab = rgb_to_lab(content)
        h, w = lab.shape[:2]
        planes = np.ascontiguousarray(lab.reshape(-1, 3).T)  # (3, H*W): each channel contiguous
        shares = np.ascontiguousarray(weights.reshape(-1, weights.shape[2]).T)  # (K, H*W)
        out = np.zeros_like(planes)
        for k, (t, o, curves) in enumerate(self._region_maps(content, weights, style_state)):
            if curves:
                mapped = _tone_curves(curves, t, o, planes, h)
            else:
                mapped = t.astype(np.float32) @ planes + o.astype(np.float32)[:, None]
            mapped *= shares[k]
            out += mapped
        # Strength blends with the identity: y = (1-s) x + s f(x).
        out = (1.0 - cfg.strength) * planes + cfg.strength * out
        rgb = soft_clip(from_lab(out.T.reshape(lab.shape)), cfg.knee)
        coeffs = fit_local_affine(content, rgb, AffineFit(max(1, round(cfg.fit_radius * scale)), cfg.fit_eps))
        return apply_affine(coeffs, content)

    def _region_maps(self, content: np.ndarray, weights: np.ndarray, style: RegionStyle
                     ) -> list[tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]]]]:
        """Each region's Lab map: ``y = t x + o``, then per channel the curve ``src -> dst``.

        Shape:
            weights: (H, W, K) region weights of the content.
        """
        cfg = self.config
        stats_lab = rgb_to_lab(_stats_image(content)).reshape(-1, 3).astype(np.float64)
        stats_w = np.stack([_stats_image(weights[..., k]) for k in range(weights.shape[2])], axis=2)
        stats_w = stats_w.reshape(len(stats_lab), -1)
        g_t, g_o = mk_map(*weighted_stats(stats_lab, np.ones(len(stats_lab))), style.mean, style.cov)
        maps = []
        for k in range(weights.shape[2]):
            # A region whose style colours are the style's overall colours gets the global map: a
            # plain wall still falls partly into several clusters, and mapping each part's own
            # statistics onto nearly the same target flattens its shading into blotches that move
            # from frame to frame. Regions take their own map only as far as their target palette
            # differs (Gaussian W2 distance against ``distinct`` Lab units).
            d2 = gaussian_w2_sq(style.means[k], style.covs[k], style.mean, style.cov)
            own = d2 / (d2 + cfg.distinct ** 2) if cfg.distinct > 0 else 1.0
            t, o = mk_map(*weighted_stats(stats_lab, stats_w[:, k]), style.means[k], style.covs[k])
            t, o = own * t + (1.0 - own) * g_t, own * o + (1.0 - own) * g_o
            # Mean and covariance leave a region's tone distribution Gaussian-shaped; the curves move
            # the mapped quantiles towards the style region's (monotone, so the photo's order of
            # tones is kept, and the local affine projection absorbs what is not smooth).
            curves = []
            if cfg.tone_match > 0.0:
                src = weighted_quantiles(stats_lab @ t.T + o, stats_w[:, k])
                lam = cfg.tone_match * own
                curves = [(a, _capped_curve(a, (1.0 - lam) * a + lam * b))
                          for a, b in zip(src, style.quantiles[k], strict=True)]
            maps.append((t, o, curves))
        return maps


def _capped_curve(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """``dst`` with each segment's slope against ``src`` kept within [1 / _MAX_GAIN, _MAX_GAIN],
    then shifted back to ``dst``'s mean: the same reason as the Monge-Kantorovich gain cap (a
    region's noise-only tones would otherwise be stretched to the style's whole range)."""
    d_src = np.diff(src)
    steps = np.clip(np.diff(dst), d_src / _MAX_GAIN, d_src * _MAX_GAIN)
    out = np.concatenate([[0.0], np.cumsum(steps)])
    return out + (dst.mean() - out.mean())


def _tone_curves(curves: list[tuple[np.ndarray, np.ndarray]], t: np.ndarray, o: np.ndarray,
                 planes: np.ndarray, height: int) -> np.ndarray:
    """``y = t x + o`` of every pixel, then channel c through the piecewise-linear curve ``curves[c]``
    (``np.interp``, constant beyond the end knots).

    Each curve is tabulated at _TABLE points between its end knots and read by OpenCV's bilinear
    remap, with the affine map folded into the table coordinates: at 512x288, the 8 regions' maps
    and curves took ~57 ms with np.interp per channel and take ~10 ms so (2-core box). The table
    errs by at most a knot's change of slope times a quarter of the table step, ~0.013 Lab units for
    a 200-unit curve with slopes capped at _MAX_GAIN; ~0.003 on real frames' curves.

    Shape:
        planes: (3, N) float32 Lab channels of N = height * width pixels. Returns (3, N) float32.
    """
    src = np.array([a for a, _ in curves])
    lo, hi = src[:, 0], src[:, -1]
    steps = (_TABLE - 1) / (hi - lo)
    grid = lo[:, None] + np.arange(_TABLE) / steps[:, None]
    tables = np.array([np.interp(g, a, b) for g, (a, b) in zip(grid, curves, strict=True)], np.float32)
    coords = (t * steps[:, None]).astype(np.float32) @ planes + ((o - lo) * steps).astype(np.float32)[:, None]
    width = planes.shape[1] // height
    rows = np.repeat(np.arange(3, dtype=np.float32), planes.shape[1]).reshape(3 * height, width)
    # Beyond the end knots the border is replicated: np.interp's constant extension.
    mapped = cv2.remap(tables, coords.reshape(3 * height, width), rows, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    return mapped.reshape(3, -1)


def _cell_rows(grid: tuple[int, int]) -> np.ndarray:
    """Row of each cell's centre, in image heights (0 top, 1 bottom), row-major."""
    gh, gw = grid
    return np.repeat((np.arange(gh) + 0.5) / gh, gw)


def weighted_quantiles(px: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``_KNOTS`` evenly spaced weighted quantiles of each column of ``px``, strictly increasing
    (so they can be the x of an interpolation).

    Shape:
        px: (N, 3); w: (N,). Returns (3, _KNOTS).
    """
    w = np.maximum(w.astype(np.float64), 0.0) + 1e-12
    qs = np.linspace(0.0, 1.0, _KNOTS)
    out = np.empty((px.shape[1], _KNOTS))
    for c in range(px.shape[1]):
        order = np.argsort(px[:, c])
        cdf = np.cumsum(w[order])
        out[c] = np.interp(qs * cdf[-1], cdf, px[order, c])
    return np.maximum.accumulate(out + np.arange(_KNOTS) * 1e-6, axis=1)


def _stats_image(img: np.ndarray) -> np.ndarray:
    """``img`` shrunk for colour statistics: ``_STATS_SIDE`` long, but at least ``_STATS_MIN_SIDE``
    across where it has that many. Shrunk to 256x1, a 4000x8 style strip averaged its whole height
    into each pixel: its Lab spread fell from 23 to 6.5 and the output lost three quarters of its
    contrast. A photo of up to 32:1 is shrunk as before."""
    return shrink_to(img, _STATS_SIDE, min_side=min(_STATS_MIN_SIDE, *img.shape[:2]))


def from_lab(lab: np.ndarray) -> np.ndarray:
    """CIE Lab -> RGB, not clipped (values outside [0, 1] are what :func:`soft_clip` is for)."""
    return cv2.cvtColor(np.ascontiguousarray(lab, dtype=np.float32), cv2.COLOR_Lab2RGB)


def cell_features(vgg, img: np.ndarray, side: int, context: float
                  ) -> tuple[np.ndarray, tuple[int, int], float]:
    """Unit feature vectors per 8x8 cell of ``img`` shrunk to ``side``, for matching across images.

    relu4_1, minus the image's mean feature (what every cell shares: the photo's overall colour,
    light and grain, which differ between content and style and would otherwise dominate the
    cosine), normalised, then averaged over neighbouring cells (Gaussian, ``context`` cells) so a
    cell is matched by what it is part of as much as by itself. On the dev half of the DPST pairs
    the share of each content cell's attention that lands on the style's cells of the same
    semantic label went from 0.64 (relu4_1 alone) to 0.71 with both steps; relu3_1 added nothing.

    An image under the trunk's 8 pixels across (a 2x2 style or frame) is enlarged to 8, nearest
    neighbour: its colours are what it has to give.

    Also returns the picture's :func:`_structure` (how far its cells spread around their mean).

    Shape:
        returns (gh * gw, 512) float32, (gh, gw) and a float.
    """
    h, w = img.shape[:2]
    if min(h, w) < MIN_SIDE:
        img = cv2.resize(img, (max(w, MIN_SIDE), max(h, MIN_SIDE)), interpolation=cv2.INTER_NEAREST)
    f = vgg.features(img, side)["relu4_1"]  # its own downscale keeps the short side >= the trunk's minimum
    gh, gw = f.shape[1:]
    x = _unit(f.reshape(f.shape[0], -1).T)
    x = x - x.mean(axis=0)
    structure = _structure(x.reshape(gh, gw, -1))
    x = _unit(x)
    if context > 0:
        x = gaussian_cells(x.reshape(gh, gw, -1), context).reshape(gh * gw, -1)
        x = _unit(x)
    return x.astype(np.float32), (gh, gw), structure


def _structure(x: np.ndarray, border: int = _PADDED_CELLS) -> float:
    """How far a picture's cells spread around their mean feature (the 90th percentile of their
    distances from it, unit features): 0.02-0.37 for a plain picture with sensor noise, 0.75-1.01 on
    every photo and real frame measured (docs/QUALITY.md). Cells within ``border`` of the edge are
    left out where the grid is large enough: VGG's zero padding makes them unlike the rest in every
    picture (on a plain one, distances 0.13-0.82 from its middle there, 0.00 further in).

    Shape:
        x: (gh, gw, C) features minus the picture's mean feature.
    """
    gh, gw = x.shape[:2]
    if gh > 2 * border + 1 and gw > 2 * border + 1:
        x = x[border:gh - border, border:gw - border]
    inner = x.reshape(-1, x.shape[-1])
    return float(np.percentile(np.linalg.norm(inner - inner.mean(axis=0), axis=1), 90))


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
    guide; renormalised to sum to 1 per pixel.

    Shape:
        returns (H, W, K) float32.
    """
    h, w = content.shape[:2]
    up = cv2.resize(members.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    if up.ndim == 2:
        up = up[..., None]
    # The memberships are bilinear upsamplings of 8-pixel cells, smooth at the scale of 2 pixels:
    # the fast guided filter, fit at half resolution, snaps them to the same edges.
    out = guided_filter(content, up, AffineFit(radius, eps), subsample=2)
    np.clip(out, 1e-4, 1.0, out=out)
    out /= out.sum(axis=2, keepdims=True)
    return out
