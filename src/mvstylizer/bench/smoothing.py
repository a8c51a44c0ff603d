"""Meta-smoothing benchmark: upscale a damaged low-resolution stylization back to full resolution.

On held-out pictures (never trained on; :data:`mvstylizer.models.meta_smoother_train.HELD_OUT`),
each at several looks and scale factors, the methods get the low-resolution stylized frame plus the
full-resolution original, and are scored by PSNR and SSIM against the look applied at full resolution
(:mod:`mvstylizer.models.smoothing_data`). Two conditions: ``damaged`` (style-transfer artefacts and
JPEG transport) and ``transport_only`` (a clean stylization, JPEG q88-97 only).

- ``bicubic``: bicubic upscaling of the stylized frame alone (no guide).
- ``guided``: guided-filter upsampling (He et al. 2013): local affine maps fit at low resolution,
  resized and applied to every full-resolution pixel (the exact form, not the phone's fast render).
- ``bgu``: bilateral guided upsampling (Chen et al. 2016), simplified: affine maps fit per cell of a
  bilateral grid (8 px cells x 8 luma bins), smoothed by a Gaussian over the grid instead of the
  paper's global least-squares smoothness term, sliced trilinearly at full resolution.
- ``learned``: our meta-smoothing module (onnxruntime + OpenCV, what the phone runs).

Timing: each method's median ms per frame for a 512 px key frame to 1080p and to 4K output.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter

from ..colour.affine import apply_affine, fit_global_affine, fit_local_affine, resize_maps, to_rgb8
from ..errors import UserError
from ..files import atomic_path
from ..imaging import shrink_to
from ..metrics import psnr, ssim
from ..mobile.meta_smoothing import ONNX_FILE, LearnedSmoother
from ..models.data import package_sources
from ..models.meta_smoother_train import HELD_OUT
from ..models.smoothing_data import Damage, make_pair
from ..video.image import read_image
from .machine import machine_info

SCALES = (2.0, 2.7, 4.0, 8.0)
METHODS = ("bicubic", "guided", "bgu", "learned")
DEFAULT_COMMAND = "mvstylizer bench smoothing --json docs/results/smoothing.json"
# Style-transfer damage plus transport (what wct2-like DNNs return), and transport alone (what a clean
# global model such as dncm returns): a module must win on the first without losing on the second.
CONDITIONS = {"damaged": Damage(clean_prob=0.0), "transport_only": Damage(clean_prob=1.0)}
EVAL_SIDE = 1024  # held-out pictures are area-downscaled to this long side: the "full resolution"
_SEED = 20261125

Upscaler = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (styled_low, content_low, full8) -> uint8


def bicubic(styled_low: np.ndarray, content_low: np.ndarray, full8: np.ndarray) -> np.ndarray:
    h, w = full8.shape[:2]
    return to_rgb8(cv2.resize(styled_low, (w, h), interpolation=cv2.INTER_CUBIC))


def guided(styled_low: np.ndarray, content_low: np.ndarray, full8: np.ndarray) -> np.ndarray:
    prior = fit_global_affine(content_low, styled_low)
    coeffs = fit_local_affine(content_low, styled_low, prior=prior)
    h, w = full8.shape[:2]
    return to_rgb8(apply_affine(resize_maps(coeffs, w, h), full8))


def bgu(styled_low: np.ndarray, content_low: np.ndarray, full8: np.ndarray, cell: float = 8.0,
        bins: int = 8, sigma: float = 1.0, ridge: float = 1e-4) -> np.ndarray:
    """Bilateral guided upsampling, simplified (see the module docstring)."""
    h, w = content_low.shape[:2]
    gh, gw = int(np.ceil((h - 1) / cell)) + 2, int(np.ceil((w - 1) / cell)) + 2
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    coords = (ys / cell, xs / cell, _luma(content_low) * (bins - 1))
    x4 = np.concatenate([content_low, np.ones((h, w, 1), np.float32)], axis=2).reshape(-1, 4)
    y3 = styled_low.reshape(-1, 3)
    # Per-pixel moments: the 4x4 x x^T and the 3x4 y x^T, splatted trilinearly into the grid.
    feats = np.concatenate([(x4[:, :, None] * x4[:, None, :]).reshape(-1, 16),
                            (y3[:, :, None] * x4[:, None, :]).reshape(-1, 12)], axis=1)
    grid = np.zeros((gh, gw, bins, feats.shape[1]), np.float64)
    for idx, weight in _corners(coords, (gh, gw, bins)):
        np.add.at(grid, idx, feats * weight[:, None])
    grid = gaussian_filter(grid, sigma=(sigma, sigma, sigma, 0), mode="nearest")
    xx = grid[..., :16].reshape(gh, gw, bins, 4, 4)
    yx = grid[..., 16:].reshape(gh, gw, bins, 3, 4)
    # Ridge towards the frame's global map, so empty cells and flat regions fall back to it.
    g = fit_global_affine(content_low, styled_low).reshape(3, 4).astype(np.float64)
    lam = ridge * (xx[..., 3, 3][..., None, None] + 1e-3) * np.diag([1.0, 1.0, 1.0, 1e-2])
    coeffs = np.linalg.solve(np.swapaxes(xx + lam, -1, -2), np.swapaxes(yx + g @ lam, -1, -2))
    coeffs = np.swapaxes(coeffs, -1, -2).reshape(gh, gw, bins, 12).astype(np.float32)
    return to_rgb8(apply_affine(_slice(coeffs, full8, (h, w), cell), full8))


def _luma(rgb: np.ndarray) -> np.ndarray:
    return np.clip(rgb @ np.array([0.299, 0.587, 0.114], np.float32), 0.0, 1.0)


def _corners(coords, shape):
    """Trilinear splat: for each of the 8 neighbouring grid nodes, (index tuple, weight per pixel)."""
    base = [np.floor(c).astype(np.int64).ravel() for c in coords]
    frac = [c.ravel() - b for c, b in zip(coords, base, strict=True)]
    for corner in range(8):
        idx, weight = [], np.ones_like(frac[0])
        for d in range(3):
            bit = (corner >> d) & 1
            idx.append(np.clip(base[d] + bit, 0, shape[d] - 1))
            weight = weight * (frac[d] if bit else 1.0 - frac[d])
        yield tuple(idx), weight


def _slice(coeffs: np.ndarray, full8: np.ndarray, low_hw: tuple[int, int], cell: float) -> np.ndarray:
    """Per full-resolution pixel coefficients: bilinear in space, linear in the full-res luma."""
    hf, wf = full8.shape[:2]
    h, w = low_hw
    gy = ((np.arange(hf, dtype=np.float32) + 0.5) * h / hf - 0.5).clip(0, h - 1) / cell
    gx = ((np.arange(wf, dtype=np.float32) + 0.5) * w / wf - 0.5).clip(0, w - 1) / cell
    map_x, map_y = np.broadcast_to(gx[None, :], (hf, wf)).copy(), np.broadcast_to(gy[:, None], (hf, wf)).copy()
    bins = coeffs.shape[2]
    z = _luma(full8.astype(np.float32) / 255.0) * (bins - 1)
    out = np.zeros((hf, wf, 12), np.float32)
    for b in range(bins):
        hat = np.clip(1.0 - np.abs(z - b), 0.0, None)
        if hat.any():
            plane = cv2.remap(np.ascontiguousarray(coeffs[:, :, b]), map_x, map_y, cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
            out += plane * hat[..., None]
    return out


def learned_upscaler(smoother: LearnedSmoother | None = None) -> Upscaler:
    smoother = smoother or LearnedSmoother()
    return lambda styled_low, content_low, full8: smoother.upscale(styled_low, content_low, full8)


def held_out_pictures() -> dict[str, np.ndarray]:
    """The held-out pictures available here (package ones always; Debian photos when installed)."""
    pics = {}
    for path in package_sources():
        if path.name in HELD_OUT:
            rgb = shrink_to(read_image(path), EVAL_SIDE)
            # Crop to a multiple of 8 so every scale's low-resolution frame is a whole number of pixels.
            h, w = rgb.shape[:2]
            pics[path.stem] = np.ascontiguousarray(rgb[: h - h % 8, : w - w % 8])
    return pics


def run_smoothing(looks: int = 3, timing_repeats: int = 21, methods: tuple[str, ...] = METHODS,
                  pictures: dict[str, np.ndarray] | None = None, scales: tuple[float, ...] = SCALES,
                  time_sizes: dict[str, tuple[int, int]] | None = None, model: Path | None = None) -> dict[str, Any]:
    """PSNR/SSIM per condition, method and scale, and ms per frame; see the module docstring.
    ``model``: the learned module's ONNX file (default: the shipped one)."""
    upscalers = _upscalers(methods, model)
    pictures = pictures if pictures is not None else held_out_pictures()
    rows = []
    for p, (name, rgb) in enumerate(pictures.items()):
        full8 = to_rgb8(rgb)
        for condition, damage in CONDITIONS.items():
            for i, scale in enumerate(scales):
                for look in range(looks):
                    # Seeded by position, so every method (and every run) sees the very same pairs.
                    rng = np.random.default_rng([_SEED, p, i, look])
                    pair = make_pair(full8.astype(np.float32) / 255.0, scale, rng, damage)
                    target8 = to_rgb8(pair.target)
                    for method, up in upscalers.items():
                        out = up(pair.styled_low, pair.content_low, full8)
                        rows.append({"picture": name, "condition": condition, "scale": scale, "look": look,
                                     "method": method, "psnr": psnr(out, target8), "ssim": ssim(out, target8)})

    def mean(c: str, m: str, s: float, key: str) -> float:
        return float(np.mean([r[key] for r in rows if (r["condition"], r["method"], r["scale"]) == (c, m, s)]))

    summary = {c: {m: {str(s): {k: mean(c, m, s, k) for k in ("psnr", "ssim")} for s in scales} for m in upscalers}
               for c in CONDITIONS}
    timing = _timing(upscalers, timing_repeats, time_sizes or {"1080p": (1920, 1080), "4K": (3840, 2160)})
    return {"command": DEFAULT_COMMAND, "learned_model": str(model or ONNX_FILE),
            "pictures": sorted(pictures), "looks": looks, "scales": list(scales),
            "conditions": {c: vars(d) for c, d in CONDITIONS.items()}, "rows": rows, "summary": summary,
            "ms_per_frame": timing, "machine": machine_info()}


_INPUTS = {"styled", "content", "scale"}  # what LearnedSmoother.maps feeds the module
_OUTPUTS = 2  # the grid of local maps and the global map


def open_learned(model: Path | None = None) -> LearnedSmoother:
    """The learned module, its ONNX file loaded now: a file onnxruntime cannot load, or one that is not a
    meta-smoothing module, is a UserError before any picture is scored."""
    smoother = LearnedSmoother(model=model) if model else LearnedSmoother()
    try:
        session = smoother._sess()
    except UserError:
        raise
    except Exception as e:  # onnxruntime's own exceptions (InvalidProtobuf, InvalidArgument, Fail) are bare
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"meta-smoothing model {smoother.model} cannot be loaded by onnxruntime ({reason}); "
                        "give an ONNX file made by `mvstylizer train smoothing`") from None
    inputs = {i.name for i in session.get_inputs()}
    if inputs != _INPUTS or len(session.get_outputs()) != _OUTPUTS:
        raise UserError(f"meta-smoothing model {smoother.model} is an ONNX model, but not a meta-smoothing module "
                        f"(inputs {sorted(inputs)}, {len(session.get_outputs())} outputs; expected inputs "
                        f"{sorted(_INPUTS)} and {_OUTPUTS} outputs)")
    return smoother


def _upscalers(methods: tuple[str, ...], model: Path | None = None) -> dict[str, Upscaler]:
    def learned() -> Upscaler:
        return learned_upscaler(open_learned(model))

    table: dict[str, Callable[[], Upscaler]] = {"bicubic": lambda: bicubic, "guided": lambda: guided,
                                                "bgu": lambda: bgu, "learned": learned}
    unknown = set(methods) - set(table)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {sorted(table)}")
    return {m: table[m]() for m in methods}


def _timing(upscalers: dict[str, Upscaler], repeats: int, sizes: dict[str, tuple[int, int]]) -> dict:
    """Median ms to make one full-resolution frame from a 512 px key frame."""
    src = read_image(next(p for p in package_sources() if p.name == "astronaut.png"))
    out: dict[str, dict[str, float]] = {m: {} for m in upscalers}
    for label, (w, h) in sizes.items():
        full8 = to_rgb8(cv2.resize(src, (w, h), interpolation=cv2.INTER_LINEAR))
        low = cv2.resize(full8, (512, round(512 * h / w)), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        styled = np.clip(low[..., ::-1] * 0.9 + 0.05, 0, 1).astype(np.float32)
        for method, up in upscalers.items():
            reps = 1 if method == "bgu" else repeats  # the BGU slice is seconds per frame in numpy
            up(styled, low, full8)
            times = []
            for _ in range(reps):
                t = time.perf_counter()
                up(styled, low, full8)
                times.append(time.perf_counter() - t)
            out[method][label] = round(1000 * float(np.median(times)), 1)
    return out


def write_json(result: dict, path: Path) -> None:
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(json.dumps(result, indent=1) + "\n")


def crop_comparison(path: Path, picture: str = "GreenMeadow", scale: float = 4.0, size: int = 256,
                    model: Path | None = None) -> Path:
    """PNG: one crop of the target and of every method's output, side by side, labelled."""
    pictures = held_out_pictures()
    name = picture if picture in pictures else sorted(pictures)[0]
    rgb = pictures[name]
    full8 = to_rgb8(rgb)
    pair = make_pair(rgb, scale, np.random.default_rng([_SEED, 7]), CONDITIONS["damaged"])
    h, w = full8.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    nearest = cv2.resize(pair.styled_low, (w, h), interpolation=cv2.INTER_NEAREST)
    panels = [("input (nearest)", to_rgb8(nearest)), ("target", to_rgb8(pair.target))]
    panels += [(m, up(pair.styled_low, pair.content_low, full8)) for m, up in _upscalers(METHODS, model).items()]
    tiles = []
    for label, img in panels:
        tile = np.ascontiguousarray(img[y : y + size, x : x + size])
        cv2.rectangle(tile, (0, 0), (size, 18), (0, 0, 0), -1)
        cv2.putText(tile, label, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    with atomic_path(Path(path)) as tmp:
        if not cv2.imwrite(str(tmp), np.concatenate(tiles, axis=1)[..., ::-1]):
            raise OSError(f"could not write {path}")
    return Path(path)
