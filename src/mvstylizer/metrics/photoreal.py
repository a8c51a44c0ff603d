"""Photorealistic style transfer metrics: palette per semantic region, photorealism, clipping.

A photorealistic transfer (Luan et al., Deep Photo Style Transfer, CVPR 2017) should give each part
of the content the colours of the *matching* part of the style photo (sky from sky, building from
building) while staying a photograph. With colour-coded segmentation masks for both images:

- :func:`region_palette_distance`: Lab sliced Wasserstein distance, per label, between the output's
  pixels in a content region and the style's pixels in the region of the same label; area-weighted
  mean. The global palette distance (``metrics.lab_swd(output, style)``) ignores which part is which.
- :func:`photorealism_db`: how far the output is from a *local affine colour function of the
  content* (PSNR to its best such fit). A recoloured photo is one and scores high; halos, blotches
  and painted texture are not and score low.
- :func:`clipped_share`: pixels pushed to pure black/white in some channel.

numpy / OpenCV / scikit-image only. Images are HxWx3 RGB, float32 in [0, 1] or uint8.
"""

from __future__ import annotations

import cv2
import numpy as np

from mvstylizer.colour.affine import AffineFit, apply_affine, fit_local_affine
from mvstylizer.imaging import as_float01
from mvstylizer.metrics.color import lab_swd_pixels
from mvstylizer.metrics.image import psnr

# Channel levels of the mask colours. DPST's masks use black, white, red, green, blue, yellow, cyan,
# magenta and grey (0.5): every channel at 0, 0.5 or 1 (its ExtractMask tests each channel within 0.1
# of those). Each channel is rounded to the nearest level first, which absorbs JPEG-ish noise (254, 1).
MASK_LEVELS = (0, 128, 255)
# A quantised colour is a label only where it has an interior: pixels whose 5x5 neighbourhood is all
# that colour. Anti-aliased boundaries (grey between black and white, orange between red and yellow)
# are 1-3 px wide bands with no interior and are snapped to the nearest real label instead.
_INTERIOR = 5
_MIN_INTERIOR_PIXELS = 64
_MIN_INTERIOR_SHARE = 5e-4

PHOTOREAL_FIT = AffineFit(radius=4, eps=1e-4)


def label_code(rgb: tuple[int, int, int]) -> int:
    """The label id of a mask colour: ``r * 65536 + g * 256 + b`` (0..255 channels)."""
    r, g, b = (int(v) for v in rgb)
    return r * 65536 + g * 256 + b


def label_rgb(label: int) -> tuple[int, int, int]:
    """Inverse of :func:`label_code`."""
    return (label >> 16) & 255, (label >> 8) & 255, label & 255


def mask_labels(mask_rgb8: np.ndarray, levels: tuple[int, ...] = MASK_LEVELS) -> np.ndarray:
    """Decode a colour-coded segmentation mask into integer labels, robust to edge and JPEG noise.

    Rule: round each channel to the nearest of ``levels``; the palette is the quantised colours that
    have an interior (at least max(64, 0.05 % of the pixels) pixels whose 5x5 neighbourhood is all
    that colour); every pixel is then snapped to the palette colour nearest to its *raw* RGB
    (Euclidean). Thin anti-aliased bands therefore never become labels of their own. The label is
    the palette colour as :func:`label_code`, so a content mask and a style mask give the same id to
    the same colour. A mask of one colour (or too small for any interior) falls back to the most
    frequent quantised colour.

    Args:
        mask_rgb8: the mask, uint8 RGB (a 4th, alpha channel is ignored; a grey HxW mask is read as
            R = G = B). Float masks in [0, 1] are scaled to 0..255.
        levels: channel levels of the colour code (default: DPST's 0, 128, 255).

    Shape:
        mask_rgb8: (H, W, 3) or (H, W, 4) or (H, W). Returns (H, W) int64.
    """
    m = np.asarray(mask_rgb8)
    if m.dtype != np.uint8:
        m = (np.clip(as_float01(m, "mask"), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if m.ndim == 2:
        m = np.repeat(m[..., None], 3, axis=2)
    if m.ndim != 3 or m.shape[2] not in (3, 4) or m.shape[0] == 0 or m.shape[1] == 0:
        raise ValueError(f"a mask is HxWx3 RGB (or HxW grey), got shape {m.shape}")
    m = m[..., :3]
    lv = np.asarray(sorted(levels), np.int64)
    # Nearest level per channel value, as a 256-entry table.
    table = lv[np.abs(np.arange(256)[:, None] - lv[None, :]).argmin(axis=1)]
    q = table[m]
    codes = q[..., 0] * 65536 + q[..., 1] * 256 + q[..., 2]
    uniq, counts = np.unique(codes, return_counts=True)
    if len(uniq) == 1:
        return codes
    need = max(_MIN_INTERIOR_PIXELS, _MIN_INTERIOR_SHARE * codes.size)
    kernel = np.ones((_INTERIOR, _INTERIOR), np.uint8)
    palette = [int(u) for u in uniq
               if cv2.erode((codes == u).astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE).sum() >= need]
    if not palette:
        palette = [int(uniq[counts.argmax()])]
    if len(palette) == 1:
        return np.full(codes.shape, palette[0], np.int64)
    # A pixel that quantises to a palette colour keeps it; the others (band pixels) go to the palette
    # colour nearest to their raw RGB.
    out = codes.copy()
    stray = ~np.isin(codes, palette)
    if stray.any():
        colours = np.asarray([label_rgb(c) for c in palette], np.float32)
        raw = m[stray].astype(np.float32)
        d2 = ((raw[:, None, :] - colours[None, :, :]) ** 2).sum(axis=2)
        out[stray] = np.asarray(palette, np.int64)[d2.argmin(axis=1)]
    return out


def resize_labels(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of an HxW label map (pixel centres mapped, no new labels).

    Shape:
        labels: (h, w) int. Returns (height, width), same dtype.
    """
    h, w = labels.shape[:2]
    if (h, w) == (height, width):
        return labels
    ys = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    xs = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return labels[ys[:, None], xs[None, :]]


def region_palette_distance(
    output: np.ndarray,
    style: np.ndarray,
    content_mask_labels: np.ndarray,
    style_mask_labels: np.ndarray,
    min_pixels: int = 400,
    n_projections: int = 64,
    seed: int = 0,
    p: int = 2,
) -> float | None:
    """Area-weighted mean, over shared labels, of the Lab sliced Wasserstein distance per region.

    For each label with at least ``min_pixels`` pixels in both label maps (after resizing them to
    their images): ``lab_swd_pixels(output[content region], style[style region])``; the mean is
    weighted by the content region's area. The output is labelled by the *content* mask (a
    photorealistic output has the content's geometry).

    Args:
        output: the stylized image (its geometry is the content's).
        style: the style photo.
        content_mask_labels, style_mask_labels: label maps from :func:`mask_labels`; resized with
            nearest neighbour to ``output`` / ``style`` when their size differs.
        min_pixels: the least area (pixels, at the images' sizes) a label needs on each side.
        n_projections, seed, p: passed to :func:`~mvstylizer.metrics.color.lab_swd_pixels` (``p=1``:
            sliced W1 instead of the default sliced W2).

    Shape:
        output: (H, W, 3); style: (Hs, Ws, 3); label maps: (h, w) and (hs, ws) int.

    Returns:
        The distance in Lab units, or None when no label qualifies.
    """
    out = as_float01(output, "output")
    sty = as_float01(style, "style")
    for name, img in (("output", out), ("style", sty)):
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"{name} must be HxWx3 RGB, got shape {img.shape}")
    cl = resize_labels(np.asarray(content_mask_labels), *out.shape[:2])
    sl = resize_labels(np.asarray(style_mask_labels), *sty.shape[:2])
    c_ids, c_counts = np.unique(cl, return_counts=True)
    s_ids, s_counts = np.unique(sl, return_counts=True)
    s_count = dict(zip(s_ids.tolist(), s_counts.tolist(), strict=True))
    total, weight = 0.0, 0
    for label, n in zip(c_ids.tolist(), c_counts.tolist(), strict=True):
        if n < min_pixels or s_count.get(label, 0) < min_pixels:
            continue
        d = lab_swd_pixels(out[cl == label], sty[sl == label], n_projections=n_projections, seed=seed, p=p)
        total += n * d
        weight += n
    return total / weight if weight else None


def photorealism_db(output: np.ndarray, content: np.ndarray, fit: AffineFit = PHOTOREAL_FIT) -> float:
    """PSNR (dB) between the output and its best local affine colour function of the content.

    The fit is a colour-guided filter (He et al. 2013): per output channel, over each
    (2 * radius + 1)^2 window, ``output ~= A . content + b`` with ridge ``eps`` on ``A``, the
    coefficients then box-averaged (:func:`~mvstylizer.colour.affine.fit_local_affine`, no prior;
    radius 4, eps 1e-4, colours in [0, 1]). The fitted image is not clipped: the residual is what
    no local affine map reproduces (an output is in [0, 1] anyway). Recolouring keeps this high; an
    unchanged input scores ~51 dB on photos (the ridge shrinks ``A`` in flat windows), noise,
    halos and painted texture lower it.

    Args:
        output, content: same size (compare at one resolution: resize one of them first).
        fit: window radius and ridge (default :data:`PHOTOREAL_FIT`).

    Shape:
        output, content: (H, W, 3). Returns dB (inf for an exact fit).
    """
    out = as_float01(output, "output")
    con = as_float01(content, "content")
    if out.shape != con.shape or out.ndim != 3 or out.shape[2] != 3:
        raise ValueError(f"output {out.shape} and content {con.shape} must be the same HxWx3 size")
    coeffs = fit_local_affine(con, out, fit)
    fitted = apply_affine(coeffs, con, clip=False)
    return psnr(out, fitted)


def clipped_share(img: np.ndarray) -> float:
    """Share of pixels with at least one channel at 0 or 255 after uint8 quantisation.

    Shape:
        img: (H, W, 3), float in [0, 1] (rounded to uint8 first) or uint8. Returns a float in [0, 1].
    """
    arr = np.asarray(img)
    q = arr if arr.dtype == np.uint8 else (np.clip(as_float01(arr), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if q.ndim != 3 or q.size == 0:
        raise ValueError(f"clipped_share needs an HxWxC image, got shape {q.shape}")
    return float(((q == 0) | (q == 255)).any(axis=2).mean())
