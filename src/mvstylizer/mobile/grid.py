"""What a spatially varying style transfer adds to a key frame's global look: a bilateral grid of
affine colour transforms, indexed by position *and* brightness.

``styled ~= look(content) + A(x, y, l) content + b(x, y, l)``, ``l`` the content's brightness. The
grid has one cell per ``cell`` x ``cell`` key-frame pixels and ``bins`` brightness bins per cell (the
bilateral grid of Chen et al. 2007 holding affine maps, as in bilateral guided upsampling and
HDRNet). Each cell and bin holds the ridge-regressed affine map from the content's colours to what
the look leaves unexplained, over the pixels that fall in it, shrunk towards zero (the global look)
when few pixels do, and smoothed over neighbouring cells and bins. Why this shape:

* a flat wall falls into one or two bins of a few cells, each the fit of a hundred or more pixels
  (a cell's own and, through the smoothing, its neighbours'); the ridge (``ridge``, in colour
  variance) makes a bin whose colours barely vary (a wall's spread is sensor noise) take an offset,
  not a gain, so noise is never amplified into boiling patches (what made per-pixel affine maps boil);
* where the model changes local contrast (a recoloured region keeps its shading but with another
  gain, as a local affine model like ``regions`` does) the gain follows. Against ``regions`` run on
  the full-resolution first frame of five real clips, a key rendered through 32 px cells of colour
  offsets scored SSIM 0.94-0.97, through 32 px affine cells 0.95-0.98, through 12 px affine cells
  0.96-0.98 (16 px cells with half the smoothing across cells scored higher still, but let a grey
  pavement's noise through: the flat-area test of tests/mobile/test_interp_synthetic.py);
* an in-between frame looks its pixels up by *their own* brightness, so a dark coat passing a
  bright wall takes the dark bin's map wherever it is, not the wall's; and where the key saw no
  such brightness the map fades to zero and the global look alone applies;
* slicing is two OpenCV remaps and a few multiply-adds at a fraction of the key resolution
  (~1.2 ms at 256 x 144, half a 16:9 key, on the 2-core box).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from ..colour.affine import COV_PAIRS, inv_sym3

# Per cell and bin, four 4-channel parts: the gains from input channel 0, 1 and 2 to the three output
# channels, then the offsets; the fourth channel of each is 0. OpenCV remaps 4-channel float images on
# a vectorised path: one 12-channel remap cost as much as six 4-channel ones.
_PARTS = 4


@dataclass(frozen=True)
class GridConfig:
    """Args:
    cell: grid cell side, in key-frame pixels (43 x 24 cells for a 512 x 288 key at 12).
    bins: brightness bins per cell.
    prior: pseudo-fraction of a cell's pixels that pulls every bin's map towards zero; a bin
        holding fewer than about this fraction of the cell's pixels mostly keeps the global look.
    blur: Gaussian smoothing of the grid's statistics across cells (in cells), so maps change
        gently from one cell to the next and a lone cell's outliers are averaged away.
    ridge: added to each bin's colour covariance before solving for its gain (colour units squared):
        colours spread less than ~sqrt(ridge) (1/100 of the range at 1e-4: 8-bit sensor noise)
        get an offset rather than a gain.
    """

    cell: int = 12
    bins: int = 8
    prior: float = 0.05
    blur: float = 1.0
    ridge: float = 1e-4

    def __post_init__(self) -> None:
        if self.cell < 2 or self.bins < 2:
            raise ValueError(f"grid cell must be >= 2 px and bins >= 2, got {self.cell}, {self.bins}")
        if self.ridge <= 0:
            raise ValueError(f"grid ridge must be > 0, got {self.ridge}")


@dataclass(frozen=True)
class ResidualGrid:
    """Affine colour maps on a bilateral grid.

    Shape:
        coeffs: (4, bins, gh, gw, 4) float32, acting on colours in [0, 1]: ``coeffs[j, ..., i]`` is the
            gain from input channel j to output channel i (j < 3), ``coeffs[3, ..., i]`` the offset of
            output channel i; ``coeffs[..., 3]`` is 0 (see :meth:`from_affine`).
    """

    coeffs: np.ndarray

    def __post_init__(self) -> None:
        # OpenCV's accumulateProduct mixes no depths: a float64 grid failed in slice
        if self.coeffs.ndim != 5 or self.coeffs.shape[0] != _PARTS or self.coeffs.shape[-1] != 4:
            raise ValueError(f"grid coefficients must be (4, bins, gh, gw, 4), got {self.coeffs.shape}")
        object.__setattr__(self, "coeffs", np.asarray(self.coeffs, np.float32))

    @classmethod
    def from_affine(cls, gain: np.ndarray, offset: np.ndarray) -> ResidualGrid:
        """The grid of per cell and bin maps ``gain @ c + offset``.

        Shape:
            gain: (bins, gh, gw, 3, 3), output channel first.
            offset: (bins, gh, gw, 3)."""
        coeffs = np.zeros((_PARTS, *offset.shape[:3], 4), np.float32)
        coeffs[:3, ..., :3] = np.moveaxis(gain, -1, 0)
        coeffs[3, ..., :3] = offset
        return cls(coeffs)

    @property
    def bins(self) -> int:
        return self.coeffs.shape[1]

    @property
    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """``(gain, offset)`` as :meth:`from_affine` takes them."""
        return np.moveaxis(self.coeffs[:3, ..., :3], 0, -1), self.coeffs[3, ..., :3]

    def slice(self, luma8: np.ndarray, content: np.ndarray) -> np.ndarray:
        """Per-pixel residual ``A content + b`` (HxWx3 float32) of a frame whose brightness is
        ``luma8`` (HxW uint8) and colours ``content`` (HxWx3 float32 in [0, 1], same size).

        Trilinear: each pixel reads the two brightness bins around its own brightness, each
        bilinearly between cells. Every part's bins are read as one tall image (rows clamped into each
        bin, so no bin reads its neighbour), a remap per part and bin side; the map of each side is
        applied and the two are blended by the pixel's place between the bins, which is the same as
        blending the maps first (the map is linear in them). Remap places its samples on a 1/32-cell
        lattice: the residual moved by at most 0.1 levels on a real 1080p frame's grid, ~0.35 on a
        test's noise-fit one."""
        h, w = luma8.shape
        if content.shape != (h, w, 3):
            raise ValueError(f"content {content.shape} does not match the brightness {luma8.shape}")
        _, bins, gh, gw, _ = self.coeffs.shape
        xs, ys, bin_row, bin_frac = _slice_maps(bins, gh, gw, h, w)
        parts = self.coeffs.reshape(_PARTS, bins * gh, gw, 4)
        below = ys + cv2.LUT(luma8, bin_row)
        channels = [cv2.merge([c] * 4) for c in cv2.split(content)]  # merging strided views cost 5x
        sides = []
        for rows in (below, below + np.float32(gh)):
            side = cv2.remap(parts[3], xs, rows, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            for j in range(3):
                cv2.accumulateProduct(cv2.remap(parts[j], xs, rows, cv2.INTER_LINEAR,
                                                borderMode=cv2.BORDER_REPLICATE), channels[j], side)
            sides.append(side)
        low, high = sides
        cv2.subtract(high, low, dst=high)
        cv2.accumulateProduct(high, cv2.merge([cv2.LUT(luma8, bin_frac)] * 4), low)
        return cv2.cvtColor(low, cv2.COLOR_RGBA2RGB)  # a fifth of numpy's copy of the strided view

    def warped(self, motion: np.ndarray | None) -> ResidualGrid:
        """The grid for a frame whose point u shows what this grid's frame showed at ``motion @ [u, 1]``
        (``motion``: 2x3, points as fractions of the frame's width and height; None: unmoved).
        Bilinear between cells; cells beyond the edge repeat the edge's."""
        if motion is None:
            return self
        parts, bins, gh, gw, n = self.coeffs.shape
        blocks = parts * bins
        m = in_pixels(motion, gw, gh)
        ys, xs = np.mgrid[0:gh, 0:gw].astype(np.float32)
        # Every part's bins are read as one tall image by one remap (one warp per bin cost 4x as many
        # calls, a third of a millisecond per frame); clamping the read positions into the grid, rather
        # than a border mode, keeps each bin from reading its neighbour's rows and repeats the edge's cells.
        read_x = np.clip(m[0, 0] * xs + m[0, 1] * ys + m[0, 2], 0.0, gw - 1.0)
        read_y = np.clip(m[1, 0] * xs + m[1, 1] * ys + m[1, 2], 0.0, gh - 1.0)
        rows = (read_y[None] + (np.arange(blocks, dtype=np.float32) * gh)[:, None, None]).reshape(blocks * gh, gw)
        moved = cv2.remap(self.coeffs.reshape(blocks * gh, gw, n), np.tile(read_x, (blocks, 1)), rows,
                          cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return ResidualGrid(moved.reshape(self.coeffs.shape))

    def blend(self, other: ResidualGrid, weight: float) -> ResidualGrid:
        """``(1 - weight) * self + weight * other`` (grids of one shape)."""
        if other.coeffs.shape != self.coeffs.shape:
            raise ValueError(f"cannot blend grids of shapes {self.coeffs.shape} and {other.coeffs.shape}")
        flat = self.coeffs.reshape(-1, self.coeffs.shape[-1])  # OpenCV takes 2-D arrays: one pass, not four
        mixed = cv2.addWeighted(flat, 1.0 - weight, other.coeffs.reshape(flat.shape), weight, 0.0)
        return ResidualGrid(mixed.reshape(self.coeffs.shape))


def fit_grid(luma8: np.ndarray, content: np.ndarray, residual: np.ndarray,
             config: GridConfig = GridConfig(), mask: np.ndarray | None = None,
             base: ResidualGrid | None = None) -> ResidualGrid:
    """The grid of affine maps that best explains ``residual`` (HxWx3, styled minus the look) from the
    key frame's colours ``content`` (HxWx3 float in [0, 1]) and brightness ``luma8`` (HxW uint8);
    only pixels where ``mask`` (HxW bool, if given) is true count, and cells without any borrow from
    their neighbours as any thinly filled cell does. With ``base``, what that grid leaves of
    ``residual``: it is sliced at the pixels the fit samples only (a quarter of a key's for 6 px cells)."""
    h, w = luma8.shape
    if residual.shape != (h, w, 3) or content.shape != (h, w, 3):
        raise ValueError(f"content {content.shape} and residual {residual.shape} must match the frame {luma8.shape}")
    gw, gh = max(1, round(w / config.cell)), max(1, round(h / config.cell))
    c = content.astype(np.float32, copy=False)
    r = residual.astype(np.float32, copy=False)
    # A cell's statistics from every third pixel of every third row (the centre of each 3 x 3 block):
    # 16 pixels per 12 px cell, and through the smoothing across cells ~100. The key's fit at 512 x 288
    # took 13 ms from every other pixel, 7 ms so, with the same fidelity to the model (in-between
    # frames of two real clips: SSIM unchanged to 4 digits). A finer grid (the detail grid's 6 px
    # cells) samples every other pixel: 9 per cell. Not an area downscale, which would mix dark and
    # bright neighbours into one mid-grey bin.
    stride = 3 if config.cell >= 8 else 2 if config.cell >= 4 else 1
    if stride > 1:
        pick = (slice(stride // 2, None, stride),) * 2
        luma8, c, r = luma8[pick], c[pick], r[pick]
        mask = mask[pick] if mask is not None else None
        h, w = luma8.shape
    if base is not None:
        r = r - base.slice(luma8, np.ascontiguousarray(c))
    # Per pixel the products whose cell averages are the weighted least-squares statistics:
    # 1, c, c c^T (6 distinct), r, r c^T (9).
    products = np.concatenate(
        [np.ones((h, w, 1), np.float32), c, np.stack([c[..., i] * c[..., j] for i, j in COV_PAIRS], axis=2),
         r, (r[..., :, None] * c[..., None, :]).reshape(h, w, 9)], axis=2)
    if mask is not None:
        products *= mask[..., None].astype(np.float32)
    # OpenCV area-resizes at most 4 channels at other than whole-number ratios: the products are
    # split once into contiguous 4-channel parts, and each bin's weighted part is made contiguous.
    parts = [np.ascontiguousarray(products[..., i:i + 4]) for i in range(0, products.shape[2], 4)]
    moments = np.zeros((config.bins, gh, gw, products.shape[2]), np.float32)
    for k, weight in enumerate(_bin_weights(luma8, config.bins)):
        if weight is None:
            continue
        moments[k] = np.concatenate([cv2.resize(p * weight[..., None], (gw, gh), interpolation=cv2.INTER_AREA)
                                     .reshape(gh, gw, -1) for p in parts], axis=2)
    if config.blur > 0:
        for k in range(config.bins):
            moments[k] = _blur(moments[k], config.blur)
    # Neighbouring bins share a little, so brightness a cell barely holds borrows from its neighbours.
    moments = _smooth_bins(moments)
    return _solve(moments, config)


def _solve(moments: np.ndarray, config: GridConfig) -> ResidualGrid:
    """Each cell and bin's ridge-regressed affine map from its moments, shrunk by its pixel share."""
    count = moments[..., 0]
    n = (count + 1e-8)[..., None]
    mu = moments[..., 1:4] / n
    second = np.empty(moments.shape[:3] + (3, 3), np.float32)
    for idx, (i, j) in enumerate(COV_PAIRS):
        second[..., i, j] = second[..., j, i] = moments[..., 4 + idx] / n[..., 0]
    cov = second - mu[..., :, None] * mu[..., None, :]
    r_mean = moments[..., 10:13] / n
    cross = moments[..., 13:22].reshape(moments.shape[:3] + (3, 3)) / n[..., None] \
        - r_mean[..., :, None] * mu[..., None, :]
    ridge = np.float32(config.ridge)
    gain = cross @ inv_sym3(cov[..., 0, 0] + ridge, cov[..., 0, 1], cov[..., 0, 2], cov[..., 1, 1] + ridge,
                            cov[..., 1, 2], cov[..., 2, 2] + ridge)
    offset = r_mean - (gain @ mu[..., None])[..., 0]
    shrink = (count / (count + config.prior))[..., None]
    return ResidualGrid.from_affine(gain * shrink[..., None], offset * shrink)


def in_pixels(motion: np.ndarray, w: int, h: int) -> np.ndarray:
    """A 2x3 map between points given as fractions of an image's size, for an image of w x h pixels
    (pixel centres at (i + 0.5) / w): the matrix OpenCV's warpAffine takes."""
    to_unit = np.array([[1.0 / w, 0.0, 0.5 / w], [0.0, 1.0 / h, 0.5 / h], [0.0, 0.0, 1.0]])
    from_unit = np.array([[w, 0.0, -0.5], [0.0, h, -0.5]])
    return (from_unit @ np.vstack([motion, [0.0, 0.0, 1.0]]) @ to_unit).astype(np.float32)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    out = cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    return out.reshape(img.shape)


def _smooth_bins(x: np.ndarray) -> np.ndarray:
    padded = np.concatenate([x[:1], x, x[-1:]], axis=0)
    return 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]


@functools.lru_cache(maxsize=8)
def _slice_maps(bins: int, gh: int, gw: int, h: int, w: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Where an h x w frame's pixels read a grid of ``bins`` bins of gh x gw cells stacked into one
    tall image: column and row in the lowest bin (cell centres at pixel centres; rows clamped into
    the bin, which repeats its edge), and per brightness level the row offset of the bin below it and
    the weight of the bin above. Read-only: shared between calls."""
    xs = np.tile(((np.arange(w, dtype=np.float32) + 0.5) * (gw / w) - 0.5), (h, 1))
    rows = np.clip((np.arange(h, dtype=np.float32) + 0.5) * (gh / h) - 0.5, 0.0, gh - 1.0)
    ys = np.repeat(rows[:, None], w, axis=1)
    pos = np.arange(256, dtype=np.float64) * ((bins - 1) / 255.0)
    below = np.minimum(pos.astype(np.int64), bins - 2)
    maps = (xs, ys, (below * gh).astype(np.float32), (pos - below).astype(np.float32))
    for m in maps:
        m.setflags(write=False)
    return maps


def _bin_weights(luma8: np.ndarray, bins: int) -> list[np.ndarray | None]:
    """Tent weights of each pixel for each brightness bin (bins at evenly spaced levels 0..255);
    ``None`` for a bin no pixel touches, so callers skip it."""
    levels = np.arange(256, dtype=np.float32) * ((bins - 1) / 255.0)
    out: list[np.ndarray | None] = []
    low, high = int(luma8.min()), int(luma8.max())
    for k in range(bins):
        table = np.clip(1.0 - np.abs(levels - k), 0.0, 1.0).astype(np.float32)
        out.append(cv2.LUT(luma8, table) if table[low:high + 1].any() else None)
    return out
