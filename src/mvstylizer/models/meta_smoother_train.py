"""Self-supervised training of the learned meta-smoothing module (``mvstylizer train smoothing``).

Each step draws ``batch`` pairs (:mod:`.smoothing_data`): a full-resolution crop of a package photo or
video frame, a random look applied to it at full resolution (target) and to its downscaled copy with
style-transfer and transport artefacts (input), at a random scale factor log-uniform in [1, 8]. The
loss is the log of the mean squared error of the full-resolution output of equation (1) of
:mod:`.meta_smoother` per pair (its PSNR), so training optimises exactly what the benchmark measures.
Pairs come at their own sizes (the low-resolution side is 32-64 px, the full-resolution side up to
512), so the network runs per pair; it is small enough for that to cost little.

Held-out pictures (:data:`HELD_OUT`) never enter training: the benchmark measures on them.
Determinism: step s draws from ``numpy.random.default_rng([seed, s])`` and the learning rate is a
function of s, so ``--resume`` continues an interrupted run exactly.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..colour.tone_curve import fit_tone_curves, guide
from ..errors import UserError
from ..files import atomic_path
from .data import ImageBank, find_sources
from .meta_smoother import ONNX_NAME, WEIGHTS_NAME, build_net, compose, expand, export_onnx
from .smoothing_data import MAX_SCALE, Damage, make_pair
from .training import (
    WEIGHTS_DIR,
    Checkpointer,
    TrainConfig,
    check_finite,
    check_resumed_setup,
    plan_outputs,
    recipe,
    save_weights,
    warmup_cosine,
)

log = logging.getLogger(__name__)

# Pictures the benchmark measures on; never trained on. The package ones exist on every machine, the
# Debian mate-backgrounds ones where installed.
HELD_OUT = ("astronaut.png", "chelsea.png", "GreenMeadow.jpg", "Storm.jpg", "TwoWings.jpg")
MAX_SIDE = 1024
MIN_SIDE = 8  # a smaller picture cannot give a low-resolution crop of 8 pixels at a scale >= 1
WARMUP = 100
# The loss is log(MSE) per pair, i.e. the pair's PSNR: the benchmark averages PSNR over pairs, and a
# plain MSE lets the hardest pairs drown out nearly clean ones, which the net then over-smooths
# (the first shipped module lost 5-9 dB to BGU on nearly clean frames). The floor caps a pair at 60 dB.
MSE_FLOOR = 1e-6


def onnx_path() -> Path:
    """Where the phone side loads the module from (shipped with the package, no torch needed)."""
    return Path(__file__).resolve().parents[1] / "mobile" / "weights" / ONNX_NAME


def default_checkpoint() -> Path:
    from .vgg_weights import cache_dir

    return cache_dir() / "train" / "meta_smoother.ckpt"


def split_sources(sources: list[Path]) -> tuple[list[Path], list[Path]]:
    """(training, held-out) by file name."""
    held = [p for p in sources if p.name in HELD_OUT]
    return [p for p in sources if p.name not in HELD_OUT], held


def random_crop_pair(images: list[np.ndarray], rng: np.random.Generator, damage: Damage,
                     low_side: tuple[int, int] = (32, 64)):
    """One training pair from a random picture, at a random scale and low-resolution crop size."""
    img = images[rng.integers(len(images))]
    h, w = img.shape[:2]
    scale = float(np.exp(rng.uniform(0.0, math.log(MAX_SCALE))))
    # The low-resolution crop must fit inside the picture at this scale; small pictures get small crops.
    most = max(8, int(min(h, w) / scale))
    lh = min(int(rng.integers(*low_side)), most)
    lw = min(int(rng.integers(*low_side)), most)
    fh, fw = min(h, round(lh * scale)), min(w, round(lw * scale))
    y, x = int(rng.integers(0, h - fh + 1)), int(rng.integers(0, w - fw + 1))
    crop = img[y : y + fh, x : x + fw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return make_pair(crop.astype(np.float32) / 255.0, min(MAX_SCALE, fw / lw), rng, damage)


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


def pair_loss(net: torch.nn.Module, pair) -> tuple[torch.Tensor, torch.Tensor]:
    """(training loss, mean squared error) of one pair's full-resolution output."""
    # The guide is the content through the frame's tone curves, computed as the phone computes it.
    curves = fit_tone_curves(pair.content_low, pair.styled_low)
    content_low, styled_low = _t(guide(curves, pair.content_low)), _t(pair.styled_low)
    grid, g = net(styled_low, content_low, torch.tensor([pair.scale], dtype=torch.float32))
    maps, cleaned = expand(grid, content_low)
    out = compose(cleaned, maps[:, 12:], g, content_low, _t(guide(curves, pair.content)))
    mse = F.mse_loss(out, _t(pair.target))
    return torch.log(mse + MSE_FLOOR), mse.detach()


def onnx_for(out: Path | None) -> Path:
    """The ONNX export a run writes next to the torch weights: ``out`` with the suffix ``.onnx``, or the
    shipped graph (:func:`onnx_path`) when ``out`` is the default."""
    return Path(out).with_suffix(".onnx") if out else onnx_path()


# An export of the module is about 110 kB; a file far larger is something else, not read to find out.
_MAX_EXPORT_BYTES = 16 * 1024 * 1024


def is_export(path: Path) -> bool:
    """Whether ``path`` holds an ONNX export of the module (its graph's inputs and outputs, as
    :func:`.meta_smoother.export_onnx` names them)."""
    try:
        if not path.is_file() or path.stat().st_size > _MAX_EXPORT_BYTES:
            return False
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # noqa: BLE001 - OSError, DecodeError, anything a stranger's bytes make of the parser
        return False
    return ([i.name for i in graph.input] == ["styled", "content", "scale"]
            and [o.name for o in graph.output] == ["grid", "global_map"])


def check_onnx_target(onnx: Path, named: bool) -> None:
    """Refuse (UserError) an existing file at the export's path that is not an export of the module: the
    run would replace it. ``named``: the user gave the path (``--onnx``); else it is ``--out``'s name
    with the suffix .onnx, which the user may never have thought of."""
    if not os.path.lexists(onnx) or is_export(onnx):
        return
    if named:
        raise UserError(f"--onnx {onnx} exists and is not an ONNX export of the smoothing module, so it is not "
                        "replaced; choose a new name or remove it first")
    raise UserError(f"{onnx} exists and is not an ONNX export of the smoothing module: train smoothing writes its "
                    "export next to --out (same name, .onnx) and would replace it; name the export with --onnx FILE, "
                    "or choose another --out")


def train(config: TrainConfig, *, arch: dict[str, Any] | None = None, damage: Damage = Damage(),
          onnx: Path | None = None) -> Path:
    """Train (or resume) the module; returns the weights path. The ONNX graph goes to ``onnx``, by default
    next to the weights (:func:`onnx_for`). ``config.size`` plays no part: pairs come at their own sizes.
    An existing file at either path that is not of this kind is refused before any work."""
    if config.out and onnx is None and Path(config.out).suffix.lower() == ".onnx":
        raise UserError(f"--out {config.out}: smoothing writes the torch weights to --out and their ONNX export "
                        "next to it (same name, .onnx); give --out another suffix, such as .pt, or name the "
                        "export with --onnx FILE")
    named = onnx is not None
    onnx = onnx_for(config.out) if onnx is None else Path(onnx)
    check_onnx_target(onnx, named)
    sources = find_sources(config.data)
    net = build_net(arch, seed=config.seed)
    out, ckpt_path = plan_outputs(config, WEIGHTS_DIR / WEIGHTS_NAME, default_checkpoint(), sources,
                                  {"--onnx" if named else "the ONNX file": onnx}, model="smoothing",
                                  params=net.state_dict().keys())
    train_sources, _ = split_sources(sources)
    if not train_sources:
        raise UserError("no training pictures left after holding out the benchmark's pictures")
    if config.threads:
        torch.set_num_threads(config.threads)
    bank = ImageBank(train_sources, max_side=MAX_SIDE)
    images = [img for img in bank.images if min(img.shape[:2]) >= MIN_SIDE]
    if len(images) < len(bank.images):
        log.warning("skipped %d of %d training pictures smaller than %d pixels a side (too small to crop)",
                    len(bank.images) - len(images), len(bank.images), MIN_SIDE)
    if not images:
        raise UserError(f"no training picture is at least {MIN_SIDE}x{MIN_SIDE} pixels")
    optim = torch.optim.Adam(net.parameters(), lr=config.lr)
    ckpt = Checkpointer(ckpt_path, model="smoothing")
    setup = {"steps": config.steps, "batch": config.batch, "lr": config.lr, "seed": config.seed, "arch": arch,
             "damage": vars(damage)}
    start, extra = ckpt.load(net, optim) if config.resume else (0, {})
    if config.resume:
        check_resumed_setup(ckpt.path, extra.get("setup"), setup)
    history: list[dict[str, float]] = list(extra.get("history", []))
    t0 = time.time()
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, disable=not config.progress,
               desc="train smoothing", unit="step")
    running = 0.0
    for step in bar:
        rng = np.random.default_rng([config.seed, step])
        for group in optim.param_groups:
            group["lr"] = warmup_cosine(step, config.steps, config.lr, WARMUP)
        optim.zero_grad(set_to_none=True)
        mses = []
        for _ in range(config.batch):
            loss, mse = pair_loss(net, random_crop_pair(images, rng, damage))
            check_finite(float(loss.detach()), step + 1)
            (loss / config.batch).backward()
            mses.append(float(mse))
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optim.step()
        psnr = float(np.mean([10 * math.log10(1.0 / max(m, 1e-10)) for m in mses]))
        running = psnr if step == start else 0.98 * running + 0.02 * psnr
        bar.set_postfix(psnr=f"{running:.2f}")
        if (step + 1) % 100 == 0:
            history.append({"step": step + 1, "train_psnr": round(running, 3)})
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps:
            ckpt.save(step + 1, net, optim, {"setup": setup, "history": history})
    meta = recipe(config, model="smoothing", size=None, arch=arch, damage=vars(damage),
                  seconds=round(time.time() - t0, 1), history=history, held_out=list(HELD_OUT))
    # The graph is made first and put in place last: a failed export leaves both files as they were, and
    # weights refused as non-finite leave the old graph too (never a new .pt beside an old .onnx on failure).
    with atomic_path(onnx) as onnx_tmp:
        export_onnx(net, onnx_tmp)
        save_weights(net, out, meta)
    return out
