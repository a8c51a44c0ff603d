"""Learned meta-smoothing: a scale-conditioned, learned guided filter (torch side: net and ONNX export).

The phone receives a stylized key frame S at low resolution (with the style transfer's blotches,
halos and the transport's JPEG blocks) and has the original frame C at full resolution. C is first
seen through the frame's global tone curves (:mod:`mvstylizer.colour.tone_curve`: per-channel curves
fit so that S ~= M f(C) + b; one 8-bit lookup at full resolution), so the local maps below need not
approximate a non-linear curve with an affine one; C stands for f(C) from here on. The output is

    out = up(S' - g * (G C_low)) + up(g) * (G C_full)               (1)

where ``up`` is bilinear resizing to full resolution (any real scale factor), ``G`` the frame's global
3x3 colour map, ``S' = A(x) C_low + b(x)`` the cleaned low-resolution frame, and ``g`` a per-pixel,
per-channel gain on the detail that only the full-resolution frame has. (1) keeps every
full-resolution step a 3- or 6-channel OpenCV pass, which is what makes it cheap on a phone; with
``A = G`` and ``g = 1`` it is exactly the classic guided upsampling of :mod:`mvstylizer.colour.affine`.

How ``A, b, g`` are made (all inside one ONNX graph, so the phone needs only onnxruntime):

1. Window statistics of C_low and S on a grid of stride 4 (overlapping 8x8 windows), and the
   closed-form local affine fit of each window with a ridge towards ``G`` — a guided filter's fit.
2. A small CNN on the grid (about 16k parameters) reads the statistics, the fit, the residual
   against the global map and the variance of S the fit leaves unexplained (how damaged this window
   is: clean transfers are explained almost exactly) and predicts, per cell, how much to trust the
   local fit over the global map (a learned, spatially varying regulariser: blotches and noise are
   where the local fit must not be trusted), a correction to the coefficients, and the detail gain
   ``g``.
3. Meta-SR-style scale conditioning: a small MLP maps log(scale) to per-channel FiLM parameters of
   every CNN layer, so one set of weights serves every factor from 1 to 8, integer or not. Sub-pixel
   offsets need no learned filter here because the only resampling is bilinear interpolation of
   smooth coefficient maps, which is exact in position for any offset.

The phone upsamples the grid maps to the key frame's resolution (:func:`expand` here, cv2.resize there)
and warps those maps between key frames (transform interpolation) exactly as it does the classic ones.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..files import atomic_path

WEIGHTS_NAME = "meta_smoother.pt"
ONNX_NAME = "meta_smoother.onnx"
GRID_STRIDE = 4
RIDGE = 1e-3  # local fit's pull towards the global map, colour-variance units
GAIN_RANGE = 0.5  # g in [exp(-0.5), exp(0.5)]
DEFAULT_ARCH: dict[str, Any] = {"width": 16, "film_hidden": 32}  # width 32: same PSNR, +1.6 ms per key

# The 3x3 symmetric matrix from its 6 unique entries (order (0,0),(0,1),(0,2),(1,1),(1,2),(2,2)), row-major.
_SYM = [0, 1, 2, 1, 3, 4, 2, 4, 5]
_NEXT, _AFTER = [1, 2, 0], [2, 0, 1]  # index rolls for cross products


def _inv_sym3(m: torch.Tensor) -> torch.Tensor:
    """Inverse of symmetric 3x3 matrices Bx3x3xHxW, by cofactors: row i of the cofactor matrix is the
    cross product of rows i+1 and i+2. Written on whole tensors (a dozen ONNX ops, not ~100 tiny
    ones per entry): per-op overhead was a third of the network's time on the phone."""
    a, b = m[:, _NEXT], m[:, _AFTER]
    cof = a[:, :, _NEXT] * b[:, :, _AFTER] - a[:, :, _AFTER] * b[:, :, _NEXT]
    det = (m[:, :1] * cof[:, :1]).sum(dim=2, keepdim=True)
    return cof / det  # the cofactor matrix of a symmetric matrix is symmetric: no transpose needed


def _cov_sc(mean_c: torch.Tensor, mean_s: torch.Tensor, sc: torch.Tensor) -> torch.Tensor:
    """Cov(s_i, c_j) as Bx3x3xHxW from the means and the 9 E[s_i c_j]."""
    return sc.unflatten(1, (3, 3)) - mean_s.unsqueeze(2) * mean_c.unsqueeze(1)


def _affine_fit(mean_c: torch.Tensor, mean_s: torch.Tensor, cc: torch.Tensor, sc: torch.Tensor,
                prior: torch.Tensor, ridge: float) -> torch.Tensor:
    """Ridge-regularised affine fit per cell. mean_*: Bx3xHxW, cc: Bx6xHxW (E[c_i c_j]), sc: Bx9xHxW
    (E[s_i c_j]), prior: Bx3x3x1x1 (pull A towards it). Returns Bx12xHxW, rows [A_i0, A_i1, A_i2, b_i]."""
    eye = torch.eye(3, dtype=mean_c.dtype).reshape(1, 3, 3, 1, 1)
    var = cc[:, _SYM].unflatten(1, (3, 3)) - mean_c.unsqueeze(2) * mean_c.unsqueeze(1) + ridge * eye
    cov = _cov_sc(mean_c, mean_s, sc) + ridge * prior
    a = (cov.unsqueeze(3) * _inv_sym3(var).unsqueeze(1)).sum(dim=2)  # A = Cov(s, c) Var(c)^-1
    b = mean_s - (a * mean_c.unsqueeze(1)).sum(dim=2)
    return torch.cat([a, b.unsqueeze(2)], dim=2).flatten(1, 2)


# Channels of the stacked statistics: means of c (3) and s (3), E[c_i c_j] for all 9 (i, j), E[s_i c_j] (9),
# E[s_i^2] (3, at 24-26).
_CC = [6, 7, 8, 10, 11, 14]  # E[c_i c_j] for the 6 unique (i, j), in the order _SYM reads them
_SC = list(range(15, 24))


def _statistics(c: torch.Tensor, s: torch.Tensor) -> list[torch.Tensor]:
    """Per-pixel [c, s], [c_i c_j (9), s_i c_j (9)] and s_i^2 (3): broadcast products, kept as separate
    tensors and pooled apart, since concatenating them at full size costs a copy."""
    x = torch.cat([c, s], dim=1)
    return [x, (x.unsqueeze(2) * c.unsqueeze(1)).flatten(1, 2), s * s]


def _split(stats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean c, mean s, the 6 unique E[c_i c_j], the 9 E[s_i c_j]) from pooled statistics."""
    return stats[:, 0:3], stats[:, 3:6], stats[:, _CC], stats[:, _SC]


def _fit_noise(stats: torch.Tensor, fit: torch.Tensor) -> torch.Tensor:
    """log variance of s per channel that the window's affine fit leaves unexplained, Bx3xHxW.

    The cue for how damaged the stylization is here: a clean transfer is explained almost exactly by
    an affine map of the content (variance ~1e-5, JPEG only), noise and blotches are not (~1e-4 and
    up). Without it the network cannot tell light from heavy damage, and smooths clean frames too.
    """
    mc, ms, _, msc = _split(stats)
    explained = (fit.unflatten(1, (3, 4))[:, :, :3] * _cov_sc(mc, ms, msc)).sum(dim=2)
    unexplained = stats[:, 24:27] - ms * ms - explained
    return (torch.log(unexplained.clamp(min=0.0) + 1e-6) + 9.0) / 3.0


def window_means(xs: list[torch.Tensor], k: int) -> torch.Tensor:
    """Mean over 2k x 2k windows at stride k of each tensor, concatenated along channels, border
    windows averaging only the pixels inside.

    Equals ``avg_pool2d(x, 2k, stride=k, padding=k // 2, count_include_pad=False)`` but reads every
    pixel once: sums over k x k blocks, then adds 2x2 neighbouring blocks, and divides by the same
    pooling of ones (so the border counts come out right without a data-dependent pad, which the
    ONNX export could not keep dynamic). Half the network's time on a phone went into the direct form.
    """
    def pool(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.avg_pool2d(t, k, stride=k, padding=k // 2, count_include_pad=True), 2, stride=1)

    return torch.cat([pool(x) for x in xs], dim=1) / pool(torch.ones_like(xs[0][:, :1, :, :]))


def global_map(c: torch.Tensor, s: torch.Tensor, ridge: float = 1e-4,
               stats: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Per-image least-squares colour map, Bx12 (rows [A_i0, A_i1, A_i2, b_i])."""
    stats = _statistics(c, s) if stats is None else stats
    eye = torch.eye(3, dtype=c.dtype).reshape(1, 3, 3, 1, 1).expand(c.shape[0], 3, 3, 1, 1)
    # Ridge towards the identity: a flat image (no colour variance) keeps its colours plus an offset.
    means = torch.cat([t.mean(dim=(2, 3), keepdim=True) for t in stats], dim=1)
    fit = _affine_fit(*_split(means), eye, ridge)
    return fit.flatten(1)


def apply_maps(maps: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Apply Bx12xHxW affine maps to Bx3xHxW colours."""
    m = maps.unflatten(1, (3, 4))
    return (m[:, :, :3] * c.unsqueeze(1)).sum(dim=2) + m[:, :, 3]


def compose(styled_low: torch.Tensor, gain: torch.Tensor, g: torch.Tensor, content_low: torch.Tensor,
            content: torch.Tensor) -> torch.Tensor:
    """Equation (1) of the module docstring, in torch (training); the phone runs the same in OpenCV."""
    size = content.shape[-2:]
    gmat = g.reshape(-1, 3, 4)[:, :, :3]
    g_low = torch.einsum("bij,bjhw->bihw", gmat, content_low)
    g_full = torch.einsum("bij,bjhw->bihw", gmat, content)
    base = F.interpolate(styled_low - gain * g_low, size=size, mode="bilinear", align_corners=False)
    return base + F.interpolate(gain, size=size, mode="bilinear", align_corners=False) * g_full


class MetaSmootherNet(nn.Module):
    """(styled_low, content_low, scale) -> (15-channel maps on the stride-4 grid, global map Bx12)."""

    def __init__(self, width: int = 16, film_hidden: int = 32) -> None:
        super().__init__()
        # means of c and s, local fit, residual to G, variances, |local - G| fit, fit's unexplained variance
        n_in = 3 + 3 + 12 + 3 + 3 + 3 + 3
        self.inp = nn.Conv2d(n_in, width, 3, padding=1)
        self.mid = nn.ModuleList([nn.Conv2d(width, width, 3, padding=1) for _ in range(2)])
        self.ctx = nn.Conv2d(width, width, 3, padding=2, dilation=2)  # wider context, no resampling
        self.glob = nn.Linear(width, width)
        self.out = nn.Conv2d(width, 1 + 12 + 3, 1)  # trust, coefficient correction, detail gain
        film_in, film_out = nn.Linear(1, film_hidden), nn.Linear(film_hidden, 2 * width * 4)
        self.film = nn.Sequential(film_in, nn.ReLU(), film_out)
        self.width = width
        # Start from "trust the local fit, no correction, unit gain": the classic guided filter.
        assert self.out.bias is not None  # Conv2d's default bias=True
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        with torch.no_grad():
            self.out.bias[0] = 2.0
        nn.init.zeros_(film_out.weight)
        nn.init.zeros_(film_out.bias)

    def forward(self, styled: torch.Tensor, content: torch.Tensor, scale: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        b = styled.shape[0]
        stats = _statistics(content, styled)
        g = global_map(content, styled, stats=stats)
        prior = g.reshape(b, 3, 4)[:, :, :3].reshape(b, 3, 3, 1, 1)
        pooled = window_means(stats, GRID_STRIDE)
        mc, ms, mcc, msc = _split(pooled)
        local = _affine_fit(mc, ms, mcc, msc, prior, RIDGE)
        gmaps = g.reshape(b, 12, 1, 1)
        resid = ms - apply_maps(gmaps.expand_as(local), mc)
        var = torch.stack([mcc[:, 0] - mc[:, 0] ** 2, mcc[:, 3] - mc[:, 1] ** 2, mcc[:, 5] - mc[:, 2] ** 2], 1)
        diff = (local - gmaps).unflatten(1, (3, 4))[:, :, :3].abs().mean(dim=2)
        feats = torch.cat([mc, ms, local - gmaps, resid * 4.0, var.clamp(min=0).sqrt() * 4.0, diff,
                           _fit_noise(pooled, local)], dim=1)

        film = self.film(torch.log(scale).reshape(b, 1) / math.log(8.0)).reshape(b, 4, 2, self.width, 1, 1)

        def mod(x: torch.Tensor, i: int) -> torch.Tensor:
            return F.relu(x * (1.0 + film[:, i, 0]) + film[:, i, 1])

        x = mod(self.inp(feats), 0)
        for i, conv in enumerate(self.mid):
            x = mod(conv(x), i + 1) + x
        x = mod(x + self.ctx(x) + self.glob(x.mean(dim=(2, 3))).reshape(b, self.width, 1, 1), 3)
        o = self.out(x)
        trust = torch.sigmoid(o[:, :1])
        coeffs = trust * local + (1.0 - trust) * gmaps + 0.1 * o[:, 1:13]
        gain = torch.exp(GAIN_RANGE * torch.tanh(o[:, 13:16]))
        return torch.cat([coeffs, gain], dim=1), g


def expand(grid: torch.Tensor, content_low: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Grid maps -> low-resolution maps (Bx15xHxW) and the cleaned low-resolution frame.

    Outside the network (and the ONNX graph) because the old ONNX exporter bakes a resize's target
    size into the graph; the phone does this step with cv2.resize, which matches bilinear
    ``align_corners=False`` interpolation.
    """
    maps = F.interpolate(grid, size=content_low.shape[-2:], mode="bilinear", align_corners=False)
    return maps, apply_maps(maps[:, :12], content_low)


def build_net(arch: dict[str, Any] | None = None, seed: int = 0) -> MetaSmootherNet:
    torch.manual_seed(seed)
    return MetaSmootherNet(**(arch or DEFAULT_ARCH))


def load_net(path: Path | None = None) -> tuple[MetaSmootherNet, dict[str, Any]]:
    """(net, meta) from a weights file written by :func:`mvstylizer.models.training.save_weights`
    (None: the trained weights under the package's weights folder)."""
    from .training import WEIGHTS_DIR, load_trained

    path = Path(path) if path is not None else WEIGHTS_DIR / WEIGHTS_NAME
    net, meta = load_trained(path, build_net, f"no meta-smoother weights at {path}; train them with: "
                                              "mvstylizer train smoothing")
    return cast(MetaSmootherNet, net), meta


def export_onnx(net: MetaSmootherNet, path: Path) -> Path:
    """ONNX graph with dynamic height/width: inputs styled, content (1x3xHxW), scale (1); outputs
    grid (1x15x(H/4)x(W/4): 12 affine + 3 gain per cell) and global_map (1x12)."""
    net = net.eval()
    h, w = 72, 128
    args = (torch.rand(1, 3, h, w), torch.rand(1, 3, h, w), torch.tensor([3.0]))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dims = {2: "height", 3: "width"}
    with warnings.catch_warnings(), atomic_path(path) as tmp:  # the TorchScript exporter's deprecation notices
        warnings.simplefilter("ignore")
        torch.onnx.export(net, args, str(tmp), input_names=["styled", "content", "scale"],
                          output_names=["grid", "global_map"], opset_version=17,
                          dynamic_axes={"styled": dims, "content": dims, "grid": {2: "grid_h", 3: "grid_w"}},
                          dynamo=False)
    return path
