"""Reconstruction training of the WCT2 decoder (the encoder stays frozen ImageNet VGG16).

Self-supervised on plain pictures: random crops from an :class:`ImageBank` go through the wavelet
encoder and back through the decoder, and the loss is

    L1(rgb', rgb)                                               pixels, last stage
  + W_POOLED * sum_k mse(p_k', p_k) / mean(p_k^2)              each other stage's pooled-feature prediction
  + W_PERCEPTUAL * mse(phi(rgb'), phi(rgb)) / mean(phi(rgb)^2)  VGG16 relu1_1 of the last stage's output

with Adam, gradient-norm clipping and a cosine learning-rate decay (after a short warm-up). Every stage
is trained with teacher forcing (the encoder's true features in, the next level's true features out):
that is how the stylizer uses the stages, one level at a time, and it trains all four at once instead of
one after the other (a chained decoder learned next to nothing in its first hundred steps). Checkpoints
hold the decoder, the optimiser, both RNG states and the wall time so far; ``resume=True`` continues
bit-for-bit. Call ``train(TrainConfig(...))``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from .data import ImageBank, find_sources
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
from .vgg import VGG16Trunk
from .wct2 import WaveletEncoder, WCT2Decoder

W_POOLED = 0.1
W_PERCEPTUAL = 0.05
PERCEPTUAL_LAYERS = ("relu1_1",)
WARMUP_STEPS = 50
MIN_LR_FRACTION = 0.05
GRAD_CLIP = 2.0  # global gradient norm; guards against the occasional spike from an odd crop


def default_checkpoint() -> Path:
    from .vgg_weights import cache_dir

    return cache_dir() / "train" / "wct2.ckpt"


def check_size(size: int) -> None:
    """Refuse (UserError) a crop side the decoder cannot rebuild: the wavelet encoder halves it three
    times, and each stage must get back the size the encoder had."""
    if size < 16 or size % 8:
        raise UserError(f"--size {size}: wct2 trains on crops whose side is a multiple of 8, at least 16 "
                        f"(its wavelet encoder halves it three times); try --size {max(16, round(size / 8) * 8)}")


def _nmse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(pred, target) / (target.detach().pow(2).mean() + 1e-6)


def reconstruction_loss(encoder: WaveletEncoder, decoder: WCT2Decoder, trunk: VGG16Trunk,
                        batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Teacher forcing: every decoder stage gets the encoder's true features, as WCT feeds it one level
    at a time (each stage learns to invert its conv block, independently of the others' errors)."""
    with torch.no_grad():
        r4, p3, p2, p1, h3, h2, h1 = encoder(batch)
        target_feats = trunk(batch, PERCEPTUAL_LAYERS)
    pooled = (_nmse(decoder.dec4(r4), p3) + _nmse(decoder.dec3(p3, h3), p2)
              + _nmse(decoder.dec2(p2, h2), p1))
    rgb = decoder.dec1(p1, h1)
    pix = F.l1_loss(rgb, batch)
    feats = trunk(rgb, PERCEPTUAL_LAYERS)
    # sum() types its result as "Tensor | 0" (its start); PERCEPTUAL_LAYERS is never empty.
    perc = cast(torch.Tensor, sum(_nmse(feats[k], target_feats[k]) for k in PERCEPTUAL_LAYERS))
    loss = pix + W_POOLED * pooled + W_PERCEPTUAL * perc
    with torch.no_grad():
        mse = F.mse_loss(rgb.clamp(0, 1), batch).item()
    stats = {"loss": loss.detach().item(), "l1": pix.detach().item(), "pooled": pooled.detach().item(),
             "perc": float(perc.detach()), "psnr_last_stage": 10 * math.log10(1 / max(mse, 1e-12))}
    return loss, stats


def train(config: TrainConfig, stop_after: int | None = None) -> Path:
    """Train the decoder; returns the path of the fp16 weights written (``config.out`` or the shipped file).

    ``stop_after`` ends this session early at that step (after writing a checkpoint, which is then the
    path returned), as if the run had been killed there: ``resume=True`` picks it up.
    """
    check_size(config.size)
    check_step_pixels(config)
    sources = find_sources(config.data)
    # The decoder's parameter names tell its files from another model's. This one is built before the
    # seed is set, so the run's own decoder draws its start from the same random stream as ever.
    out, ckpt_path = plan_outputs(config, WEIGHTS_DIR / "wct2.pt", default_checkpoint(), sources, model="wct2",
                                  params=WCT2Decoder().state_dict().keys())
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    bank = ImageBank(sources)
    encoder = WaveletEncoder()
    trunk = VGG16Trunk(PERCEPTUAL_LAYERS[-1])
    decoder = WCT2Decoder()
    optim = torch.optim.Adam(decoder.parameters(), lr=config.lr)
    ckpt = Checkpointer(ckpt_path, model="wct2")

    setup = {"steps": config.steps, "batch": config.batch, "size": config.size, "lr": config.lr,
             "seed": config.seed}
    step = 0
    extra: dict[str, Any] = {}
    if config.resume:
        step, extra = ckpt.load(decoder, optim)
        check_resumed_setup(ckpt.path, extra.get("setup"), setup)
        rng.bit_generator.state = extra["np_rng"]
    wall = float(extra.get("wall_s", 0.0))
    ema = extra.get("ema_loss")
    last: dict[str, float] = dict(extra.get("last", {}))

    from tqdm import tqdm

    bar = tqdm(total=config.steps, initial=step, disable=not config.progress, desc="wct2", unit="step",
               dynamic_ncols=True)
    t0 = time.perf_counter()
    decoder.train()
    end = config.steps if stop_after is None else min(config.steps, stop_after)
    while step < end:
        for group in optim.param_groups:
            group["lr"] = warmup_cosine(step, config.steps, config.lr, min(WARMUP_STEPS, max(1, config.steps // 10)),
                                          floor=MIN_LR_FRACTION)
        batch = torch.from_numpy(bank.crops(rng, config.batch, config.size).transpose(0, 3, 1, 2).copy())
        loss, last = reconstruction_loss(encoder, decoder, trunk, batch)
        check_finite(last["loss"], step + 1)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(decoder.parameters(), GRAD_CLIP)
        optim.step()
        step += 1
        ema = last["loss"] if ema is None else 0.98 * ema + 0.02 * last["loss"]
        bar.update(1)
        bar.set_postfix(loss=f"{last['loss']:.4f}", ema=f"{ema:.4f}", pooled=f"{last['pooled']:.3f}",
                        psnr=f"{last['psnr_last_stage']:.2f}")
        if step % config.checkpoint_every == 0 or step == end:
            now = time.perf_counter()
            wall, t0 = wall + now - t0, now
            ckpt.save(step, decoder, optim, {"setup": setup, "np_rng": rng.bit_generator.state, "wall_s": wall,
                                             "ema_loss": ema, "last": last})
    bar.close()
    if step < config.steps:
        return ckpt.path
    wall += time.perf_counter() - t0
    decoder.eval()
    meta = recipe(config, model="wct2", wall_time_s=round(wall, 3), final_loss=last.get("loss"),
                  final_loss_ema=ema, final_pooled_nmse=last.get("pooled"),
                  final_psnr_last_stage=last.get("psnr_last_stage"), loss=(
                      f"L1 + {W_POOLED}*pooled-feature nMSE + {W_PERCEPTUAL}*VGG16 {'+'.join(PERCEPTUAL_LAYERS)} nMSE"),
                  sources=len(bank.images), threads=torch.get_num_threads(),
                  schedule=f"Adam, warm-up {WARMUP_STEPS}, cosine to {MIN_LR_FRACTION}*lr, grad clip {GRAD_CLIP}")
    return save_weights(decoder, out, meta)


if __name__ == "__main__":  # python -m mvstylizer.models.wct2_train [steps batch size threads]
    import sys

    a = [int(v) for v in sys.argv[1:]]
    cfg = TrainConfig(data=["package"], steps=a[0] if a else 2000, batch=a[1] if len(a) > 1 else 4,
                      size=a[2] if len(a) > 2 else 192, threads=a[3] if len(a) > 3 else 2, resume=True)
    print(train(cfg))
