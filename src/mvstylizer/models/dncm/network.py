"""dncm's network in PyTorch: the thumbnail encoder and the two colour-map modules (training, ``dncm:torch``).

Imported only where torch is wanted: the core install runs the exported graph instead (:mod:`.runtime`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from . import weights as weight_files
from .colour_map import DEFAULT_ARCH


class ColourMap(nn.Module):
    """One DNCM module: phi(x) . T . Q with phi = [x, 1, tanh(x A + a)]."""

    def __init__(self, k: int) -> None:
        super().__init__()
        m = k - 4  # tanh ridges; filled by reset() from the network's seeded generator
        self.A = nn.Parameter(torch.zeros(3, m))
        self.a = nn.Parameter(torch.zeros(m))
        self.Q = nn.Parameter(torch.zeros(k, 3))

    def reset(self, gen: torch.Generator) -> None:
        with torch.no_grad():
            self.A.copy_(torch.randn(self.A.shape, generator=gen) * 2.0)
            self.a.copy_(-self.A.sum(0) * 0.5)
            q = torch.zeros_like(self.Q)
            q[:3] = torch.eye(3)
            self.Q.copy_(q + torch.randn(self.Q.shape, generator=gen) * 0.01)

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        ones = torch.ones_like(x[..., :1])
        return torch.cat([x, ones, torch.tanh(x @ self.A + self.a)], dim=-1)

    def matrix(self, t: torch.Tensor) -> torch.Tensor:
        """T (B x k x k) -> the k x 3 matrix applied to phi."""
        return t @ self.Q

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x: B x N x 3, t: B x k x k -> B x N x 3."""
        return self.phi(x) @ self.matrix(t)

    def map_matrix(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """Inference form for N x 3 colours and one k x 3 matrix m: phi(x) . m without building
        phi (about 1.5x faster at 1080p)."""
        h = torch.tanh(torch.addmm(self.a, x, self.A))
        return torch.addmm(m[3], x, m[:3]).addmm_(h, m[4:])

class Encoder(nn.Module):
    """Thumbnail -> (d, r): patchify stem, strided 3x3 convs, global average pool + colour moments, MLP heads."""

    def __init__(self, k: int, stem: int, widths: list[int], hidden: int, quantiles: int) -> None:
        super().__init__()
        self.quantiles = quantiles
        # A 4x4/4 "patchify" stem (cheap on CPU, where tiny 3-channel convs at full thumbnail
        # resolution dominate the cost), then stride-2 stages of two 3x3 convs each.
        layers: list[nn.Module] = [nn.Conv2d(3, stem, 4, stride=4), nn.LeakyReLU(0.1)]
        cin = stem
        for w in widths:
            layers += [nn.Conv2d(cin, w, 3, stride=2, padding=1), nn.LeakyReLU(0.1),
                       nn.Conv2d(w, w, 3, padding=1), nn.LeakyReLU(0.1)]
            cin = w
        self.features = nn.Sequential(*layers)
        self.k = k
        self.mlp = nn.Sequential(nn.Linear(cin + 9 + 5 * quantiles, hidden), nn.LeakyReLU(0.1),
                                 nn.Linear(hidden, hidden), nn.LeakyReLU(0.1))
        self.head = nn.Linear(hidden, 2 * k * k)
        with torch.no_grad():
            self.head.weight.mul_(0.05)
            eye = torch.eye(k).flatten()
            self.head.bias.copy_(torch.cat([eye, eye]))

    def forward(self, thumb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """thumb: B x 3 x S x S in [0,1] -> d, r (B x k x k)."""
        x = thumb * 2.0 - 1.0
        mean = x.mean(dim=(2, 3))
        var = (x * x).mean(dim=(2, 3)) - mean * mean
        std = torch.sqrt(var.clamp_min(0.0) + 1e-6)
        # Colour covariance off-diagonals: how channels move together (casts, saturation).
        xc = x - mean[:, :, None, None]
        cov = torch.stack([(xc[:, 0] * xc[:, 1]).mean(dim=(1, 2)), (xc[:, 0] * xc[:, 2]).mean(dim=(1, 2)),
                           (xc[:, 1] * xc[:, 2]).mean(dim=(1, 2))], dim=1)
        f = self.features(x).mean(dim=(2, 3))
        stats = [f, mean, std, cov]
        if self.quantiles:
            # Tone-curve shape, directly: quantiles of R, G, B and of two opponent axes.
            flat = x.flatten(2)
            chans = torch.cat([flat, flat[:, 0:1] - flat[:, 1:2], flat[:, 2:3] - flat[:, 1:2]], dim=1)
            srt = torch.sort(chans, dim=2).values
            n = srt.shape[2]
            idx = [min(n - 1, int((i + 0.5) * n / self.quantiles)) for i in range(self.quantiles)]
            stats.append(srt[:, :, idx].flatten(1))
        h = self.mlp(torch.cat(stats, dim=1))
        out = self.head(h).view(-1, 2, self.k, self.k)
        return out[:, 0], out[:, 1]

class DNCMNet(nn.Module):
    neutral_code: torch.Tensor  # a buffer (register_buffer below)

    def __init__(self, k: int, thumb: int, stem: int, widths: list[int], hidden: int, quantiles: int,
                 seed: int = 0) -> None:
        super().__init__()
        self.arch: dict[str, Any] = {"k": k, "thumb": thumb, "stem": stem, "widths": list(widths), "hidden": hidden,
                     "quantiles": quantiles}
        torch.manual_seed(seed)
        self.encoder = Encoder(k, stem, list(widths), hidden, quantiles)
        self.norm_map = ColourMap(k)
        self.style_map = ColourMap(k)
        gen = torch.Generator().manual_seed(seed)
        self.norm_map.reset(gen)
        self.style_map.reset(gen)
        # The content code used when a LUT is exported without a content reference: the mean d over
        # the unfiltered training photos (set at the end of training; identity until then).
        self.register_buffer("neutral_code", torch.eye(k))

    def codes(self, thumbs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(thumbs)

    def normalise(self, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return self.norm_map(x, d)

    def stylise(self, z: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return self.style_map(z, r)


def build_net(arch: dict[str, Any] | None = None, seed: int = 0) -> DNCMNet:
    """A fresh (untrained) network with the given architecture."""
    a = dict(DEFAULT_ARCH, **(arch or {}))
    return DNCMNet(k=a["k"], thumb=a["thumb"], stem=a["stem"], widths=a["widths"], hidden=a["hidden"],
                   quantiles=a["quantiles"], seed=seed)


def load_net(path: Path | None = None) -> tuple[DNCMNet, dict[str, Any]]:
    """(net, meta) from a weights file written by :func:`mvstylizer.models.training.save_weights`."""
    from ..training import load_trained

    path = Path(path) if path is not None else weight_files.default_weights()
    net, meta = load_trained(path, build_net, f"no trained dncm weights at {path}; train them with: "
                                              "mvstylizer train dncm --data package")
    return cast(DNCMNet, net), meta
