"""The models federated learning can train, behind one interface ("any trainable model").

A :class:`Task` says how to load a model's shipped weights, fine-tune it on an edge's frames for a
number of steps, and score it on fixed held-out data. The population experiment
(:mod:`mvstylizer.fl.population`) and its tuning (:mod:`mvstylizer.fl.tune`) only talk to a task,
so a model joins by adding an entry to :data:`TASKS` (and its network to
:data:`mvstylizer.models.registry.TRAINABLE`, which loads it):

* ``dncm``: the edge's style-transfer network (:mod:`mvstylizer.fl.local`, the Flower ClientApp's
  very step); loss = ``dncm_train.losses`` on filtered crop pairs, quality = PSNR of reproducing a
  filtered crop.
* ``meta_smoother``: the phone's learned meta-smoothing module (:mod:`mvstylizer.models.meta_smoother`,
  16k parameters), self-supervised on the same frames: pairs of (damaged low-resolution look, the
  look at full resolution) from :mod:`mvstylizer.models.smoothing_data`, loss = log MSE of the
  full-resolution output (``meta_smoother_train.pair_loss``), quality = its PSNR.

Only trainable parameters travel; the tasks share :class:`~mvstylizer.fl.local.LocalConfig` (steps,
batch = crops or pairs per step, lr, FedProx mu) and the same seeding (``[seed, round_seed, step]``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..models.registry import build_model
from .local import BANK_SIDE, FrameBank, LocalConfig, evaluate_net, held_out_batch, local_fit

_VAL_SEED = 424_242  # held-out pairs come from their own stream, never a training step's


@dataclass(frozen=True)
class Task:
    name: str  # also the network's name in the registry (models.registry.build_model)
    fit: Callable[..., dict[str, float]]  # (net, bank, config, steps, *, round_seed, part, on_step)
    eval_batch: Callable[[Any, int, int], Any]  # (bank, n, crop size) -> fixed held-out data
    evaluate: Callable[[Any, Any], dict[str, float]]  # (net, data) -> {"loss", "psnr"}
    metric: str

    def bank(self, frames: list[np.ndarray]) -> FrameBank:
        return FrameBank(frames=frames, max_side=BANK_SIDE)


# ----------------------------------------------------------------------------------- meta-smoother


def _smoother_fit(net: Any, bank: FrameBank, config: LocalConfig, steps: int, *, round_seed: int = 0,
                  part: str = "all", on_step: Callable[[int], None] | None = None) -> dict[str, float]:
    """``steps`` Adam steps of ``config.batch`` pairs each (the step of ``meta_smoother_train.train``:
    mean pair loss, gradient norm clipped to 1), fresh Adam, optional FedProx term."""
    import torch

    from ..models.meta_smoother_train import pair_loss, random_crop_pair
    from ..models.smoothing_data import Damage

    if part != "all":
        raise UserError("the meta-smoother fine-tunes all its 16k parameters (part 'all')")
    net.train()
    optim = torch.optim.Adam(net.parameters(), lr=config.lr)
    anchor = [p.detach().clone() for p in net.parameters()] if config.proximal_mu > 0 else None
    total = 0.0
    for step in range(steps):
        rng = np.random.default_rng([config.seed, round_seed, step])
        for group in optim.param_groups:
            group["lr"] = config.lr_at(step)
        optim.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for _ in range(config.batch):
            loss, _ = pair_loss(net, random_crop_pair(bank.images, rng, Damage()))
            (loss / config.batch).backward()
            loss_sum += float(loss.detach())
        if anchor is not None:
            prox = 0.5 * config.proximal_mu * sum(((p - a) ** 2).sum()
                                                  for p, a in zip(net.parameters(), anchor, strict=True))
            prox.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optim.step()
        total += loss_sum / config.batch
        if on_step is not None:
            on_step(step + 1)
            net.train()
    net.eval()
    return {"train-loss": total / max(1, steps), "steps": float(steps)}


def _smoother_eval_batch(bank: FrameBank, n: int, size: int) -> list[Any]:
    from ..models.meta_smoother_train import random_crop_pair
    from ..models.smoothing_data import Damage

    rng = np.random.default_rng(_VAL_SEED)
    return [random_crop_pair(bank.images, rng, Damage()) for _ in range(n)]


def _smoother_evaluate(net: Any, pairs: list[Any]) -> dict[str, float]:
    import torch

    from ..models.meta_smoother_train import pair_loss

    net.eval()
    losses, psnrs = [], []
    with torch.no_grad():
        for pair in pairs:
            loss, mse = pair_loss(net, pair)
            losses.append(float(loss))
            psnrs.append(10 * math.log10(1.0 / max(float(mse), 1e-10)))
    return {"loss": float(np.mean(losses)), "psnr": float(np.mean(psnrs))}


TASKS: dict[str, Task] = {
    "dncm": Task("dncm", local_fit, lambda bank, n, size: held_out_batch(bank, 0, n, size),
                 lambda net, batch: {k: v for k, v in evaluate_net(net, batch).items() if k in ("loss", "psnr")},
                 "loss: held-out self-supervised loss of dncm_train.losses (lower is better); psnr: dB of "
                 "reproducing a held-out colour-filtered crop from its other filtered version (higher is better)"),
    "meta_smoother": Task("meta_smoother", _smoother_fit, _smoother_eval_batch, _smoother_evaluate,
                          "loss: mean log MSE of the full-resolution output on held-out smoothing pairs "
                          "(meta_smoother_train.pair_loss, lower is better); psnr: its mean PSNR in dB"),
}


def task(name: str) -> Task:
    if name not in TASKS:
        raise UserError(f"no federated task for model {name!r}; trainable: {', '.join(TASKS)}")
    return TASKS[name]


def starting_model(name: str, weights: Path | None) -> tuple[Any, dict[str, Any]]:
    """Task ``name``'s starting model from ``weights`` (None: the shipped weights). A file that holds
    something else (a torch file of a list, a dict without its keys) is a UserError naming it, not an
    internal error from inside the loader."""
    task(name)
    try:
        return build_model(name, weights)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever the file holds, it is not this model's weights
        raise UserError(f"--base-weights {weights} is not a {name} weights file ({type(e).__name__})") from None
