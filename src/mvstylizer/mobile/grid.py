"""What a spatially varying style transfer adds to a key frame's global look: a bilateral grid of
colour offsets, indexed by position *and* brightness.

``styled ~= look(content) + grid(x, y, luma(content))``. The grid has one cell per ``cell`` x ``cell``
key-frame pixels and ``bins`` brightness bins per cell (the bilateral grid of Chen et al. 2007, as
in bilateral guided upsampling and HDRNet). Each cell holds the mean of what the look leaves
unexplained for the pixels that fall in it, shrunk towards zero (the global look) when few pixels
do, and smoothed over neighbouring cells and bins. Why this shape:

* a flat wall falls into one or two bins of a few cells, each the average of hundreds of pixels: one
  smooth, noise-free offset, never a per-pixel gain that amplifies sensor noise (what made the
  per-pixel affine maps boil);
* an in-between frame looks its pixels up by *their own* brightness, so a dark coat passing a
  bright wall takes the dark bin's offset wherever it is, not the wall's; and where the key saw no
  such brightness the offset fades to zero and the global look alone applies;
* slicing is ``bins`` small-image resizes and multiply-adds at key resolution, in OpenCV.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class GridConfig:
    """Args:
    cell: grid cell side, in key-frame pixels (16 x 9 cells for a 512 x 288 key at 32).
    bins: brightness bins per cell.
    prior: pseudo-fraction of a cell's pixels that pulls every bin's offset towards zero; a bin
        holding fewer than about this fraction of the cell's pixels mostly keeps the global look.
    blur: Gaussian smoothing of the grid's statistics across cells (in cells), so offsets change
        gently from one cell to the next and a lone cell's outliers are averaged away.
    """

    cell: int = 32
    bins: int = 8
    prior: float = 0.05
    blur: float = 1.0

    def __post_init__(self) -> None:
        if self.cell < 2 or self.bins < 2:
            raise ValueError(f"grid cell must be >= 2 px and bins >= 2, got {self.cell}, {self.bins}")


@dataclass(frozen=True)
class ResidualGrid:
    """Colour offsets on a bilateral grid.

    Shape:
        offsets: (bins, gh, gw, 3) float32, colour units in [0, 1].
    """

    offsets: np.ndarray

    @property
    def bins(self) -> int:
        return self.offsets.shape[0]

    def slice(self, luma8: np.ndarray) -> np.ndarray:
        """Per-pixel offsets (HxWx3 float32) for a frame whose brightness is ``luma8`` (HxW uint8)."""
        h, w = luma8.shape
        out = np.zeros((h, w, 3), np.float32)
        for k, weight in enumerate(_bin_weights(luma8, self.bins)):
            if weight is None:
                continue
            layer = cv2.resize(self.offsets[k], (w, h), interpolation=cv2.INTER_LINEAR)
            out += layer * weight[..., None]
        return out

    def blend(self, other: ResidualGrid, weight: float) -> ResidualGrid:
        """``(1 - weight) * self + weight * other``."""
        return ResidualGrid(((1.0 - weight) * self.offsets + weight * other.offsets).astype(np.float32))


def fit_grid(luma8: np.ndarray, residual: np.ndarray, config: GridConfig = GridConfig()) -> ResidualGrid:
    """The grid of offsets that best explains ``residual`` (HxWx3, styled minus the look) given the
    key frame's brightness ``luma8`` (HxW uint8)."""
    h, w = luma8.shape
    if residual.shape != (h, w, 3):
        raise ValueError(f"residual {residual.shape} does not match the frame {luma8.shape}")
    gw, gh = max(1, round(w / config.cell)), max(1, round(h / config.cell))
    sums = np.zeros((config.bins, gh, gw, 3), np.float32)
    counts = np.zeros((config.bins, gh, gw), np.float32)
    res = residual.astype(np.float32)
    for k, weight in enumerate(_bin_weights(luma8, config.bins)):
        if weight is None:
            continue
        # Area averages over each cell: the cell's mean of weight * residual and of weight.
        sums[k] = cv2.resize(res * weight[..., None], (gw, gh), interpolation=cv2.INTER_AREA).reshape(gh, gw, 3)
        counts[k] = cv2.resize(weight, (gw, gh), interpolation=cv2.INTER_AREA).reshape(gh, gw)
    if config.blur > 0:
        for k in range(config.bins):
            sums[k] = _blur(sums[k], config.blur)
            counts[k] = _blur(counts[k], config.blur)
    # Neighbouring bins share a little, so brightness a cell barely holds borrows from its neighbours.
    sums = _smooth_bins(sums)
    counts = _smooth_bins(counts)
    return ResidualGrid((sums / (counts + config.prior)[..., None]).astype(np.float32))


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    out = cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    return out.reshape(img.shape)


def _smooth_bins(x: np.ndarray) -> np.ndarray:
    padded = np.concatenate([x[:1], x, x[-1:]], axis=0)
    return 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]


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
