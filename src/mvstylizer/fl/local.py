"""What one edge does in a federated round: fine-tune the dncm model on its own frames, and score a
model on frames it never trained on.

The objective is :func:`mvstylizer.models.dncm_train.losses` through
:func:`~mvstylizer.models.dncm_train.train_step`, the very step central training takes, so a model
retrained at the edges is still the model :mod:`mvstylizer.models.dncm` serves. Only the trainable
parameters travel (``parameter_arrays``); buffers (the LUT export's neutral code) stay as in the
pre-trained weights, so every edge and the cloud agree on them without sending them.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..models.data import ImageBank
from ..models.registry import build_model
from .model_file import FEDERATED_MODEL

# Frames are kept at this long side in memory: training crops are 64-128 px and the encoder reads a
# 128 px thumbnail, so a bigger copy would cost memory and resize time for nothing.
BANK_SIDE = 384
MAX_BATCH = 128  # crops per local step: 128 crops of 384 px and their filtered copies are ~1 GB


@dataclass
class LocalConfig:
    """One edge's local work per round (sent by the cloud in each round's train config)."""

    epochs: float = 1.0  # passes over the edge's training frames, counted in crops
    batch: int = 8
    size: int = 96  # crop side, pixels
    lr: float = 1e-4  # fine-tuning a trained model: a tenth of the from-scratch rate
    max_steps: int = 50  # bound per round, so a big store does not stall the round
    proximal_mu: float = 0.0  # FedProx: weight of mu/2 * ||w - w_global||^2
    seed: int = 0
    warmup: int = 0  # linear lr warm-up over a round's first steps (its fresh Adam's first steps are sign-like)

    def lr_at(self, step: int) -> float:
        return self.lr * min(1.0, (step + 1) / self.warmup) if self.warmup > 0 else self.lr

    def steps_for(self, frames: int) -> int:
        return max(1, min(self.max_steps, math.ceil(self.epochs * frames / self.batch)))

    def to_config(self) -> dict[str, Any]:
        return {f"local-{k.replace('_', '-')}": v for k, v in asdict(self).items()}

    @classmethod
    def from_config(cls, config: Any) -> LocalConfig:
        """From a Flower ConfigRecord (or dict) holding ``local-*`` keys; missing keys keep defaults."""
        out = cls()
        for k in asdict(out):
            key = f"local-{k.replace('_', '-')}"
            if key in config:
                setattr(out, k, type(getattr(out, k))(config[key]))
        if "proximal-mu" in config:  # Flower's FedProx injects its mu under this key
            out.proximal_mu = float(config["proximal-mu"])
        return out


@dataclass
class FrameBank(ImageBank):
    """An :class:`ImageBank` over frames already in memory (an edge's store), same crop sampler."""

    frames: list[np.ndarray] = field(default_factory=list)
    sources: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.images = [self._fit(np.ascontiguousarray(f, dtype=np.uint8)) for f in self.frames]
        self.frames = []  # the fitted copies are all the bank needs
        if not self.images:
            raise UserError("no frames to train on")


def split_held_out(n: int, every: int = 5) -> tuple[list[int], list[int]]:
    """(train, held-out) indices: every ``every``-th frame held out (at least one when n >= 2)."""
    if n < 2:
        raise UserError(f"an edge needs at least 2 frames (one to train, one held out), it has {n}")
    held = [i for i in range(n) if i % every == every - 1] or [n - 1]
    return [i for i in range(n) if i not in held], held


def load_base(weights: Path | None = None) -> tuple[Any, dict[str, Any]]:
    """The federated model's network (a torch module) and meta from ``weights`` (None: shipped)."""
    return build_model(FEDERATED_MODEL, weights)


def parameter_arrays(net: Any) -> OrderedDict[str, np.ndarray]:
    """The trainable parameters as float32 numpy arrays, in a fixed order."""
    return OrderedDict((k, p.detach().cpu().numpy().astype(np.float32, copy=True))
                       for k, p in net.named_parameters())


def set_parameters(net: Any, arrays: dict[str, np.ndarray]) -> None:
    """Load ``arrays`` into ``net``'s parameters; refuses a missing name or a wrong shape."""
    import torch

    params = dict(net.named_parameters())
    if set(arrays) != set(params):
        raise ValueError(f"parameter names differ: missing {sorted(set(params) - set(arrays))[:3]}, "
                         f"unexpected {sorted(set(arrays) - set(params))[:3]}")
    with torch.no_grad():
        for k, p in params.items():
            a = np.asarray(arrays[k])
            if a.shape != tuple(p.shape):
                raise ValueError(f"parameter {k} has shape {a.shape}, expected {tuple(p.shape)}")
            p.copy_(torch.from_numpy(a.astype(np.float32)))


# What ``local_fit(..., part="head")`` trains: the encoder's last layer and the two colour maps (the
# "last layers" a personalising edge may fine-tune alone); everything else stays frozen.
HEAD_PREFIXES = ("encoder.head.", "norm_map.", "style_map.")


def local_fit(net: Any, bank: ImageBank, config: LocalConfig, steps: int, *, round_seed: int = 0,
              part: str = "all", on_step: Callable[[int], None] | None = None) -> dict[str, float]:
    """Fine-tune ``net`` in place for ``steps`` steps on crops of ``bank``; returns train metrics.

    A fresh Adam each round (as in FedAvg: optimiser state is local and does not survive the
    average). Crops and filters come from ``default_rng([seed, round_seed, step])``, so a round is
    reproducible. ``part="head"`` trains only :data:`HEAD_PREFIXES`; ``on_step(k)`` is called after
    the k-th step (k = 1..steps), e.g. to score checkpoints of one fine-tune.
    """
    import torch

    from ..models.dncm_train import make_batch, train_step

    if part not in ("all", "head"):
        raise UserError(f"unknown part {part!r}; choose all or head")
    named = list(net.named_parameters())
    trained = [p for k, p in named if part == "all" or k.startswith(HEAD_PREFIXES)]
    frozen = [p for k, p in named if not (part == "all" or k.startswith(HEAD_PREFIXES))]
    for p in frozen:
        p.requires_grad_(False)
    net.train()
    optim = torch.optim.Adam(trained, lr=config.lr)
    regulariser = None
    if config.proximal_mu > 0:
        anchor = [p.detach().clone() for p in net.parameters()]
        mu = config.proximal_mu

        def regulariser() -> torch.Tensor:  # FedProx: stay near this round's global model
            return 0.5 * mu * sum(((p - a) ** 2).sum() for p, a in zip(net.parameters(), anchor, strict=False))

    total = rec = 0.0
    for step in range(steps):
        batch = make_batch(bank, np.random.default_rng([config.seed, round_seed, step]), config.batch, config.size)
        parts = train_step(net, optim, batch, config.lr_at(step), regulariser=regulariser)
        total += float(parts["total"].detach())
        rec += float(parts["rec"].detach())
        if on_step is not None:
            on_step(step + 1)
            net.train()
    for p in frozen:
        p.requires_grad_(True)
    net.eval()
    return {"train-loss": total / max(1, steps), "train-rec": rec / max(1, steps), "steps": float(steps)}


def held_out_batch(bank: ImageBank, seed: int = 0, n: int = 32, size: int = 96) -> dict[str, np.ndarray]:
    """A fixed set of filtered crop pairs of held-out frames (same sampler as training validation)."""
    from ..models.dncm_train import validation_batch

    return validation_batch(bank, seed, n=n, size=size)


def evaluate_net(net: Any, batch: dict[str, np.ndarray]) -> dict[str, float]:
    """Held-out metrics: the training loss (``loss``) and the transfer PSNRs of ``dncm_train.evaluate``."""
    import torch

    from ..models.dncm_train import CONSISTENCY_WEIGHT, CROSS_WEIGHT, evaluate, losses

    net.eval()
    with torch.no_grad():
        loss = float(losses(net, batch, CONSISTENCY_WEIGHT, CROSS_WEIGHT)["total"])
    psnr = evaluate(net, batch)
    net.eval()  # evaluate() leaves the net in train mode
    return {"loss": loss, "psnr": psnr["self"], "psnr-identity": psnr["identity"]}
