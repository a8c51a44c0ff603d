"""Training for the learned colour mapping (``dncm``): Neural Preset's self-supervised scheme.

Each step takes a batch of random crops I and two random photographic colour filters per crop
(:mod:`.colour_filters`): A = f1(I), B = f2(I). The encoder gives each filtered crop a normalisation
code d and a style code r, and

    Z_A = nDNCM(A, d_A),  Z_B = nDNCM(B, d_B)          (style removed: should be the same image)
    A'  = sDNCM(Z_B, r_A), B' = sDNCM(Z_A, r_B)         (each rebuilt from the *other* one's content)

    loss = |A' - A|_1 + |B' - B|_1 + w_cons * |Z_A - Z_B|_2^2 (+ w_cross * cross term)

(Ke et al., "Neural Preset for Color Style Transfer", CVPR 2023; w_cons = 10 as in the paper). No
labels, no pretrained weights: any folder of photos or clips trains it, which is what lets an edge
retrain on its own frames.

The optional cross term (``cross_weight``, off by default) is ours: crop i's content rendered with
crop i+1's style code must equal crop i under crop i+1's *filter*. In a 500-step trial it lifted that
cross-image filter-transfer PSNR from ~14 to ~22 dB, but by teaching the model to transfer only the
estimated filter, not the style photo's palette: Lab SWD to the style photo stayed at 19.1 (input:
25.8), against 6.9 for the paper's scheme (1500 steps). Photorealistic style transfer is asked to take
on the style's palette, so the paper's scheme is the default.

Determinism: step s draws its crops and filters from ``numpy.random.default_rng([seed, s])`` and the
learning rate is a pure function of s, so a resumed run (model, Adam state and step from the
checkpoint) reproduces an uninterrupted one exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..errors import UserError
from .colour_filters import random_filter
from .data import ImageBank, find_sources
from .dncm import DEFAULT_ARCH, WEIGHTS_NAME, thumbnail
from .dncm.network import DNCMNet, build_net
from .training import (
    WEIGHTS_DIR,
    Checkpointer,
    TrainConfig,
    check_finite,
    check_resumed_setup,
    check_step_pixels,
    plan_outputs,
    recipe,
    save_weights,
    warmup_cosine,
)

CONSISTENCY_WEIGHT = 10.0
CROSS_WEIGHT = 0.0  # off: see the module docstring
IDENTITY_PROB = 0.1  # the untouched photo is one of the "presets" too
WARMUP = 100
LOSS_PIXELS = 4096  # per crop per step
_VAL_SEED = 987_654_321  # validation pairs come from their own stream, never a training step's


def default_checkpoint() -> Path:
    from .vgg_weights import cache_dir

    return cache_dir() / "train" / "dncm.ckpt"


def make_batch(bank: ImageBank, rng: np.random.Generator, batch: int, size: int,
               pixels: int = LOSS_PIXELS) -> dict[str, np.ndarray]:
    """Crops, two filtered versions of each, the cross targets (crop i under crop i+1's 2nd filter)
    and ``idx``: the pixels the loss looks at (the map is per pixel, so a random subset is an unbiased
    estimate of the full loss at a fraction of the cost; the encoder always sees whole crops)."""
    crops = bank.crops(rng, batch, size)
    f1 = [random_filter(rng, identity_prob=IDENTITY_PROB) for _ in range(batch)]
    f2 = [random_filter(rng, identity_prob=IDENTITY_PROB) for _ in range(batch)]
    a = np.stack([f(c) for f, c in zip(f1, crops, strict=True)])
    b = np.stack([f(c) for f, c in zip(f2, crops, strict=True)])
    cross = np.stack([f2[(i + 1) % batch](crops[i]) for i in range(batch)])
    n = size * size
    idx = np.sort(rng.choice(n, size=min(pixels, n), replace=False)) if pixels < n else np.arange(n)
    return {"crops": crops, "a": a, "b": b, "cross": cross, "idx": idx}


def _thumbs(x: np.ndarray, size: int) -> torch.Tensor:
    t = np.stack([thumbnail(img, size) for img in x]) if x.shape[1] != size else x
    return torch.from_numpy(np.ascontiguousarray(t.transpose(0, 3, 1, 2)))


def _flat(x: np.ndarray, idx: np.ndarray | None = None) -> torch.Tensor:
    flat = x.reshape(x.shape[0], -1, 3)
    return torch.from_numpy(np.ascontiguousarray(flat if idx is None else flat[:, idx]))


def losses(net: DNCMNet, batch: dict[str, np.ndarray], cons_w: float,
           cross_w: float) -> dict[str, torch.Tensor]:
    n = batch["a"].shape[0]
    thumb = int(net.arch["thumb"])
    d, r = net.codes(torch.cat([_thumbs(batch["a"], thumb), _thumbs(batch["b"], thumb)]))
    da, db, ra, rb = d[:n], d[n:], r[:n], r[n:]
    idx = batch["idx"]
    pa, pb = _flat(batch["a"], idx), _flat(batch["b"], idx)
    za, zb = net.normalise(pa, da), net.normalise(pb, db)
    rec = F.l1_loss(net.stylise(zb, ra), pa) + F.l1_loss(net.stylise(za, rb), pb)
    cons = F.mse_loss(za, zb)
    out = {"rec": rec, "cons": cons}
    total = rec + cons_w * cons
    if cross_w > 0:
        cross = F.l1_loss(net.stylise(za, torch.roll(rb, -1, dims=0)), _flat(batch["cross"], idx))
        out["cross"] = cross
        total = total + cross_w * cross
    out["total"] = total
    return out


def _psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    mse = float(((x - y) ** 2).mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))


@torch.no_grad()
def evaluate(net: DNCMNet, batch: dict[str, np.ndarray]) -> dict[str, float]:
    """PSNR (dB) of the full normalise-then-stylise transfer, outputs clipped as at inference:
    ``self``: A's style onto B's content, target A (the same photo); ``cross``: crop i+1's style onto
    crop i, target crop i under crop i+1's filter; ``identity`` / ``cross_identity``: doing nothing
    (the content as it is) against the same targets."""
    net.eval()
    n = batch["a"].shape[0]
    thumb = int(net.arch["thumb"])
    d, r = net.codes(torch.cat([_thumbs(batch["a"], thumb), _thumbs(batch["b"], thumb)]))
    pa, pb = _flat(batch["a"]), _flat(batch["b"])
    zb = net.normalise(pb, d[n:])
    self_out = net.stylise(zb, r[:n]).clamp(0, 1)
    cross_out = net.stylise(net.normalise(pa, d[:n]), torch.roll(r[n:], -1, dims=0)).clamp(0, 1)
    net.train()
    cross_target = _flat(batch["cross"])
    return {"self": _psnr(self_out, pa), "cross": _psnr(cross_out, cross_target),
            "identity": _psnr(pb, pa), "cross_identity": _psnr(pa, cross_target)}


def validation_batch(bank: ImageBank, seed: int, n: int = 32, size: int = 128) -> dict[str, np.ndarray]:
    return make_batch(bank, np.random.default_rng([seed, _VAL_SEED]), n, size)


@torch.no_grad()
def neutral_code(net: DNCMNet, images: list[np.ndarray]) -> torch.Tensor:
    """Mean content code d over whole, unfiltered pictures (the LUT export's default normalisation)."""
    thumb = int(net.arch["thumb"])
    codes = []
    for i in range(0, len(images), 16):
        t = np.stack([thumbnail(img.astype(np.float32) / 255.0, thumb) for img in images[i : i + 16]])
        codes.append(net.codes(torch.from_numpy(t.transpose(0, 3, 1, 2).copy()))[0])
    return torch.cat(codes).mean(0)


def train_step(net: DNCMNet, optim: torch.optim.Optimizer, batch: dict[str, np.ndarray], lr: float,
               consistency_weight: float = CONSISTENCY_WEIGHT, cross_weight: float = CROSS_WEIGHT,
               regulariser: Callable[[], torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """One optimiser step on ``batch`` at learning rate ``lr``; returns the loss parts.

    Shared by central training and federated fine-tuning (:mod:`mvstylizer.fl`), so both optimise
    exactly the same objective. ``regulariser`` adds a term to the optimised loss only (FedProx's
    proximal term); the returned parts stay the plain self-supervised losses.
    """
    for group in optim.param_groups:
        group["lr"] = lr
    parts = losses(net, batch, consistency_weight, cross_weight)
    total = parts["total"] if regulariser is None else parts["total"] + regulariser()
    optim.zero_grad(set_to_none=True)
    total.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    optim.step()
    return parts


def train(config: TrainConfig, *, arch: dict[str, Any] | None = None, consistency_weight: float = CONSISTENCY_WEIGHT,
          cross_weight: float = CROSS_WEIGHT, val_every: int = 250, stop_after: int | None = None) -> Path:
    """Train (or resume) the dncm model; returns the weights path.

    ``stop_after`` ends this run after that many total steps *without* writing weights, as if the
    process were killed right after a checkpoint (the tests use it to check exact resume).
    """
    if config.steps < 1 or config.batch < 1 or config.size < 16:
        raise UserError("training needs steps >= 1, batch >= 1 and size >= 16")
    check_step_pixels(config)
    sources = find_sources(config.data)
    arch = dict(DEFAULT_ARCH, **(arch or {}))
    net = build_net(arch, seed=config.seed)
    out, ckpt_path = plan_outputs(config, WEIGHTS_DIR / WEIGHTS_NAME, default_checkpoint(), sources, model="dncm",
                                  params=net.state_dict().keys())
    if config.threads:
        torch.set_num_threads(config.threads)
    net.train()
    optim = torch.optim.Adam(net.parameters(), lr=config.lr)
    ckpt = Checkpointer(ckpt_path, model="dncm")
    setup = {"arch": net.arch, "steps": config.steps, "batch": config.batch, "size": config.size,
             "seed": config.seed, "lr": config.lr, "consistency_weight": consistency_weight,
             "cross_weight": cross_weight}
    start = 0
    extra: dict[str, Any] = {}
    if config.resume:
        start, extra = ckpt.load(net, optim)
        check_resumed_setup(ckpt.path, extra.get("setup"), setup)
    wall = float(extra.get("wall_s", 0.0))
    loss_ema = extra.get("loss_ema")
    history: list[dict[str, float]] = list(extra.get("history", []))

    bank = ImageBank(sources)
    val = validation_batch(bank, config.seed) if val_every else None
    end = config.steps if stop_after is None else min(config.steps, stop_after)
    t0 = time.perf_counter()
    bar = tqdm(range(start, end), initial=start, total=config.steps, disable=not config.progress,
               desc="dncm", dynamic_ncols=True, mininterval=2.0)
    for step in bar:
        rng = np.random.default_rng([config.seed, step])
        batch = make_batch(bank, rng, config.batch, config.size)
        lr = warmup_cosine(step, config.steps, config.lr, WARMUP, floor=0.05)
        parts = train_step(net, optim, batch, lr, consistency_weight, cross_weight)
        value = float(parts["total"].detach())
        check_finite(value, step + 1)
        loss_ema = value if loss_ema is None else 0.98 * loss_ema + 0.02 * value
        done = step + 1
        bar.set_postfix(loss=f"{loss_ema:.4f}", rec=f"{parts['rec'].item():.4f}", cons=f"{parts['cons'].item():.5f}",
                        refresh=False)
        if val is not None and (done % val_every == 0 or done == config.steps):
            v = evaluate(net, val)
            elapsed = wall + time.perf_counter() - t0
            history.append({"step": done, "loss": round(loss_ema, 5), "wall_s": round(elapsed, 1),
                            **{f"psnr_{k}": round(x, 3) for k, x in v.items()}})
            if config.progress:
                tqdm.write(f"step {done}: loss {loss_ema:.4f}  val PSNR self {v['self']:.2f} cross {v['cross']:.2f} "
                           f"(identity {v['identity']:.2f}) dB  wall {elapsed:.0f}s")
        if done % config.checkpoint_every == 0 or done == end:
            ckpt.save(done, net, optim, {"setup": setup, "wall_s": wall + time.perf_counter() - t0,
                                         "loss_ema": loss_ema, "history": history})
    bar.close()
    wall += time.perf_counter() - t0
    if end < config.steps:
        return ckpt.path

    with torch.no_grad():
        net.neutral_code.copy_(neutral_code(net, bank.images))
    meta = recipe(config, model="dncm", arch=net.arch, consistency_weight=consistency_weight,
                  cross_weight=cross_weight, identity_prob=IDENTITY_PROB, warmup=WARMUP,
                  wall_time_s=round(wall, 3), final_loss=None if loss_ema is None else round(loss_ema, 5),
                  validation=history[-1] if history else None, history=history,
                  sources=[s.name for s in sources], neutral_images=len(bank.images),
                  params=sum(p.numel() for p in net.parameters()))
    return save_weights(net, out, meta)
