"""Local affine colour models: stylized ~= A(x) . content + b(x), fit at low resolution.

This is the shared machinery of the phone side. A style transfer that keeps structure is, locally,
close to an affine map of colours (the observation behind guided filtering, bilateral guided
upsampling and deep photo style transfer's matting regulariser). Fit the 3x4 maps at the key frame's
low resolution, then apply them to the *full-resolution* frame: detail comes from the real frame,
and the smooth maps can be resized and warped cheaply.

Coefficient maps are HxWx12 float32: for output channel i, ``[A_i0, A_i1, A_i2, b_i]`` at ``4*i``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .tone_curve import curve_lut, guide


@dataclass(frozen=True)
class AffineFit:
    """Window radius in low-res pixels and ridge regularisation (colour variance units, [0,1]^2).

    A larger ``eps`` pulls each window towards a pure offset (smoother, less contrast change);
    a larger radius averages more, which removes blotches and halos the style transfer left.
    """

    # r=2, eps=1e-4 kept 42.5 dB PSNR to frame-by-frame on bikes.mp4 key frames (lossless transport)
    # where r=4, eps=1e-3 kept 40 dB: larger values smooth more than the classic models need.
    radius: int = 2
    eps: float = 1e-4


def _box(x: np.ndarray, r: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


COV_PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))  # the distinct entries of a 3x3 colour covariance


def _radius(radius: int, h: int, w: int) -> int:
    return max(1, min(radius, (min(h, w) - 1) // 2)) if min(h, w) > 2 else 1


def _guide_terms(c: np.ndarray, r: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Window means of the guide and the inverse of its ridged window covariance, (h, w, 3, 3)."""
    mean_c = _box(c, r)
    cc = _box(np.stack([c[..., i] * c[..., j] for i, j in COV_PAIRS], axis=2), r)
    var = [cc[..., k] - mean_c[..., i] * mean_c[..., j] + (eps if i == j else 0.0)
           for k, (i, j) in enumerate(COV_PAIRS)]
    return mean_c, inv_sym3(*var)


def _window_cov(c: np.ndarray, mean_c: np.ndarray, s: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Window means of ``s`` (h, w, n) and its window covariance with the guide, (h, w, n, 3)."""
    h, w, n = s.shape
    mean_s = _box(s, r).reshape(h, w, n)  # OpenCV drops a single channel's axis
    cs = _box(np.stack([s[..., i] * c[..., j] for i in range(n) for j in range(3)], axis=2), r)
    cov = cs.reshape(h, w, n, 3) - mean_s[..., :, None] * mean_c[..., None, :]
    return mean_s, cov


def fit_local_affine(content: np.ndarray, styled: np.ndarray, fit: AffineFit = AffineFit(),
                     prior: np.ndarray | None = None) -> np.ndarray:
    """Per-pixel 3x4 colour maps (HxWx12) with ``styled ~= A . content + b`` over each window.

    A guided filter with a colour guide (He et al. 2013), solved for all output channels at once,
    except that the ridge term pulls ``A`` towards ``prior`` (a global map from
    :func:`fit_global_affine`) instead of towards zero: flat windows, where the data cannot pin ``A``
    down, then take the frame's global colour map rather than losing contrast, and a transform that
    is global is reproduced exactly whatever ``eps`` is. Both inputs HxWx3 float32 in [0,1].
    """
    if content.shape != styled.shape:
        raise ValueError(f"content {content.shape} and styled {styled.shape} differ in size")
    h, w = content.shape[:2]
    r = _radius(fit.radius, h, w)
    c = content.astype(np.float32)
    mean_c, inv = _guide_terms(c, r, fit.eps)
    mean_s, cov_sc = _window_cov(c, mean_c, styled.astype(np.float32), r)
    if prior is not None:
        cov_sc = cov_sc + fit.eps * prior.reshape(3, 4)[:, :3].astype(np.float32)
    a = cov_sc @ inv  # (h, w, 3 out, 3 in)
    b = mean_s - (a @ mean_c[..., None])[..., 0]
    coeffs = np.concatenate([a, b[..., None]], axis=3).reshape(h, w, 12)
    # Averaging the maps over the window (the guided filter's second step) makes them smooth enough
    # to upsample and warp without seams.
    return _box(coeffs, r)


def guided_filter(guide: np.ndarray, src: np.ndarray, fit: AffineFit = AffineFit(), subsample: int = 1) -> np.ndarray:
    """He et al.'s colour-guided filter of every channel of ``src``: each output channel is, over
    every window, an affine function of the guide's colours, so edges follow the guide's.

    The guide's window statistics and their inverse are computed once for all channels, where one
    :func:`fit_local_affine` per three channels would redo them (OpenCV's own guided filter lives in
    opencv-contrib, which the core install does not have).

    With ``subsample`` s > 1 this is the fast guided filter (He and Sun 2015): the affine
    coefficients are fit and window-averaged on the guide and source area-downscaled by s (radius
    r / s), then upsampled bilinearly and applied to the full-resolution guide. The fit costs about
    1 / s^2 as much; edges still follow the full-resolution guide, and the result is close to the
    exact filter's wherever ``src`` is smooth on the scale of s pixels.

    Args:
        guide: HxWx3 float32 in [0, 1].
        src: HxWxN float32, any N.
        fit: window radius (full-resolution pixels) and ridge.
        subsample: factor the coefficients are fit at; 1 is the exact filter.

    Shape:
        returns (H, W, N) float32, not clipped.
    """
    if guide.shape[:2] != src.shape[:2] or guide.ndim != 3 or guide.shape[2] != 3 or src.ndim != 3:
        raise ValueError(f"guide {guide.shape} must be HxWx3 and src {src.shape} HxWxN of the same size")
    if subsample < 1:
        raise ValueError(f"subsample must be >= 1, got {subsample}")
    h, w, n = src.shape
    c = guide.astype(np.float32, copy=False)
    s = src.astype(np.float32, copy=False)
    if subsample > 1:
        size = (max(1, round(w / subsample)), max(1, round(h / subsample)))
        c_fit = cv2.resize(c, size, interpolation=cv2.INTER_AREA)
        # OpenCV's area resize takes more than 4 channels only at integer factors.
        s_fit = np.dstack([cv2.resize(np.ascontiguousarray(s[..., i:i + 4]), size, interpolation=cv2.INTER_AREA)
                           for i in range(0, n, 4)])
        radius = max(1, round(fit.radius / subsample))
    else:
        c_fit, s_fit, radius = c, s, fit.radius
    a, b = _guided_coeffs(c_fit, s_fit, radius, fit.eps)
    if subsample > 1:
        a = cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR)
        b = cv2.resize(b, (w, h), interpolation=cv2.INTER_LINEAR)
    return (a.reshape(h, w, n, 3) @ c[..., None])[..., 0] + b.reshape(h, w, n)


def _guided_coeffs(c: np.ndarray, s: np.ndarray, radius: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """The guided filter's window-averaged coefficients: ``a`` (h, w, 3 n) and ``b`` (h, w, n)."""
    h, w, n = s.shape
    r = _radius(radius, h, w)
    mean_c, inv = _guide_terms(c, r, eps)
    mean_s, cov = _window_cov(c, mean_c, s, r)
    a = cov @ inv  # (h, w, n, 3)
    b = mean_s - (a @ mean_c[..., None])[..., 0]
    a = _box(np.ascontiguousarray(a.reshape(h, w, n * 3)), r).reshape(h, w, n * 3)
    return a, _box(np.ascontiguousarray(b), r).reshape(h, w, n)


def inv_sym3(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray, e: np.ndarray, f: np.ndarray
             ) -> np.ndarray:
    """Per-pixel inverse of symmetric 3x3 matrices [[a,b,c],[b,d,e],[c,e,f]] by cofactors.

    np.linalg.inv on a stack of 3x3 matrices took ~45 ms of a ~95 ms fit at 512x218; with this the
    whole fit takes ~40 ms (2-core box).
    """
    i00, i01, i02 = d * f - e * e, c * e - b * f, b * e - c * d
    i11, i12, i22 = a * f - c * c, b * c - a * e, a * d - b * b
    inv_det = 1.0 / (a * i00 + b * i01 + c * i02)
    rows = [[i00, i01, i02], [i01, i11, i12], [i02, i12, i22]]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2) * inv_det[..., None, None]


def fit_global_affine(content: np.ndarray, styled: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """One 3x4 colour map for the whole frame (12 floats): the fallback where no local map is known."""
    x = content.reshape(-1, 3).astype(np.float64)
    y = styled.reshape(-1, 3).astype(np.float64)
    mx, my = x.mean(axis=0), y.mean(axis=0)
    cov_xx = (x - mx).T @ (x - mx) / len(x) + np.eye(3) * eps
    cov_yx = (y - my).T @ (x - mx) / len(x)
    a = cov_yx @ np.linalg.inv(cov_xx)
    b = my - a @ mx
    return np.concatenate([a, b[:, None]], axis=1).reshape(12).astype(np.float32)


def apply_affine(coeffs: np.ndarray, content: np.ndarray, clip: bool = True) -> np.ndarray:
    """Apply HxWx12 maps (any size: resized bilinearly to the content) to an HxWx3 frame.

    ``content`` may be uint8 (0..255) or float in [0,1]; returns float32 RGB, clipped to [0,1] unless
    ``clip`` is False.
    """
    h, w = content.shape[:2]
    if coeffs.shape[:2] != (h, w):
        coeffs = resize_maps(coeffs, w, h)
    c = content.astype(np.float32)
    if content.dtype == np.uint8:
        c *= 1.0 / 255.0
    # Plane by plane on contiguous 2-D images: twice as fast as broadcasting over strided 3x4 views.
    planes = [np.ascontiguousarray(c[..., j]) for j in range(3)]
    k = coeffs.transpose(2, 0, 1)
    out = np.empty((h, w, 3), np.float32)
    for i in range(3):
        acc = k[4 * i + 3].copy()
        for j in range(3):
            acc += k[4 * i + j] * planes[j]
        out[..., i] = acc
    return np.clip(out, 0.0, 1.0, out=out) if clip else out


class Scratch:
    """Full-resolution float32 working images kept from one frame to the next.

    Allocating, and first touching, three fresh 25 MB images per 1080p frame cost ~5 ms of page faults
    in :func:`render`. Not thread-safe: one per rendering thread.
    """

    def __init__(self) -> None:
        self._images: dict[str, np.ndarray] = {}

    def image(self, name: str, height: int, width: int) -> np.ndarray:
        img = self._images.get(name)
        if img is None or img.shape[:2] != (height, width):
            img = self._images[name] = np.empty((height, width, 3), np.float32)
        return img


def render(coeffs: np.ndarray, global_map: np.ndarray, content_low: np.ndarray, content8: np.ndarray,
           scratch: Scratch | None = None) -> np.ndarray:
    """Full-resolution output of local maps fit at low resolution, as uint8 RGB.

    Resizing twelve coefficient maps to 1080p and applying them costs ~80 ms on two cores, over the
    phone budget. Instead the local maps are applied at low resolution and only the detail band
    (what the low-res frame lacks) goes through the frame's global 3x3 map ``G``:
        out = up(S_low - g G C_low) + up(g) G C_full,   S_low = A(x) C_low + b(x)
    which, with the detail gain ``g = 1``, is exact whenever the transform is global and otherwise errs
    only by (A(x) - G) times the high-frequency detail. Every full-resolution step is a 3-channel
    OpenCV pass. ``coeffs`` is HxWx12 (classic: ``g = 1``) or HxWx15 (learned meta-smoothing: the last
    three channels are ``g``, the per-pixel, per-channel gain on the detail). ``global_map`` is 12 floats,
    or for the learned module 12 + 3 x K: then the tail holds the tone curves of
    :mod:`mvstylizer.colour.tone_curve`, and the content (low and full resolution) goes through them
    before the maps apply. Pass a ``scratch`` to reuse working memory across frames; the returned frame
    is always a new array.
    """
    h, w = content8.shape[:2]
    scratch = scratch or Scratch()
    g = global_map[:12].reshape(3, 4)[:, :3]
    full = scratch.image("content", h, w)
    if global_map.size > 12:
        curves = global_map[12:].reshape(3, -1)
        content_low = guide(curves, content_low)
        cv2.LUT(content8, curve_lut(curves) * 255.0, dst=full)  # in 0-255 units, as the plain copy
    else:
        np.copyto(full, content8)
    # The learned maps were trained on the unclipped low-resolution frame (only the output is clipped).
    styled_low = apply_affine(coeffs[..., :12], content_low, clip=coeffs.shape[2] == 12)
    detail_low = cv2.transform(content_low, g)
    out = cv2.transform(full, g * (1.0 / 255.0), dst=scratch.image("out", h, w))
    # Every full-resolution operand is a contiguous 3-channel image: OpenCV vectorises 3-channel
    # resizes and arithmetic (a 6-channel resize or a strided view costs ~10x more at 1080p).
    if coeffs.shape[2] > 12:
        gain = np.ascontiguousarray(coeffs[..., 12:15])
        styled_low -= gain * detail_low
        base = _upsize(styled_low, scratch.image("up", h, w))
        # base += up(g) * out in one pass (a multiply then an add cost ~1.5 ms more at 1080p); the
        # content buffer is free again once ``out`` holds G C_full.
        cv2.accumulateProduct(_upsize(gain, full), out, base)
        return to_rgb8(base)
    styled_low -= detail_low
    return to_rgb8(cv2.add(out, _upsize(styled_low, scratch.image("up", h, w)), dst=out))


def _upsize(img: np.ndarray, dst: np.ndarray) -> np.ndarray:
    return cv2.resize(img, dst.shape[1::-1], dst=dst, interpolation=cv2.INTER_LINEAR)


def to_rgb8(rgb: np.ndarray) -> np.ndarray:
    """float [0,1] -> uint8 with rounding and saturation."""
    return cv2.convertScaleAbs(rgb, alpha=255.0)


def resize_maps(maps: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of a multi-channel map (OpenCV's resize takes many channels)."""
    return cv2.resize(maps, (width, height), interpolation=cv2.INTER_LINEAR)
