"""``mvstylizer fl simulate``: the federation on Flower's simulation engine, against two baselines.

N virtual edges (Ray actors running :mod:`mvstylizer.edge.fl_client`) each hold one kind of scene
(:mod:`mvstylizer.fl.partitions`); the ServerApp (:mod:`.server_app`) runs R rounds and stores each
round's global model and the edges' held-out metrics in a registry. Then, in this process:

* ``pretrained``: the shipped model, no retraining, scored on each edge's held-out frames;
* ``local_only``: each edge fine-tunes the same pre-trained model on its own frames alone, with the
  very steps (count, seeds, learning rate) it took in the federation, round after round, and is
  scored after every round the same way.

All three are scored by one function (:func:`mvstylizer.fl.local.evaluate_net`) on one fixed batch of
filtered held-out crops per edge, so the numbers are directly comparable.

It lives in ``cloud/``, not ``fl/``, because it runs both sides (the cloud's ServerApp and the edges'
ClientApp); ``fl/`` stays below both, so neither imports back into it.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..fl.local import BANK_SIDE, FrameBank, evaluate_net, held_out_batch, load_base, local_fit
from ..fl.partitions import PartitionSpec, edge_data


@dataclass
class SimConfig:
    edges: int = 3
    rounds: int = 5
    partition: PartitionSpec = field(default_factory=PartitionSpec)
    cloud: Any = None  # a mvstylizer.cloud.server_app.CloudConfig; None = its defaults
    registry: Path | None = None  # default: a temporary folder, removed afterwards

    def __post_init__(self) -> None:
        if self.edges < 1:
            raise UserError(f"--edges must be >= 1, got {self.edges}")
        if self.rounds < 1:
            raise UserError(f"--rounds must be >= 1, got {self.rounds}")


def _backend_config() -> dict[str, Any]:
    cpus = max(1, min(2, os.cpu_count() or 1))
    # One CPU per virtual edge, the ClientApp itself uses one torch thread; quiet Ray logs.
    return {"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {"num_cpus": cpus, "num_gpus": 0, "logging_level": logging.ERROR, "log_to_driver": False}}


def _round_row(scores: dict[int, dict[str, float]]) -> dict[str, Any]:
    per = {str(e): {k: round(v, 5) for k, v in s.items()} for e, s in sorted(scores.items())}
    n = max(1, len(scores))
    return {"per_edge": per, "mean_loss": round(sum(s["loss"] for s in scores.values()) / n, 5),
            "mean_psnr": round(sum(s["psnr"] for s in scores.values()) / n, 4)}


def simulate(cfg: SimConfig, *, client_app: Any = None, log: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Run the federated simulation and the baselines; returns the report (see module docstring)."""
    import torch
    from flwr.simulation import run_simulation

    from ..edge.fl_client import make_client_app
    from .registry import ModelRegistry
    from .server_app import CloudConfig, make_server_app

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    cloud = cfg.cloud or CloudConfig()
    with tempfile.TemporaryDirectory(prefix="mvstylizer-fl-") as tmp:
        registry_dir = Path(cfg.registry) if cfg.registry else Path(tmp) / "registry"
        cloud = CloudConfig(registry=str(registry_dir), num_rounds=cfg.rounds, round_timeout=cloud.round_timeout,
                            base_weights=cloud.base_weights, strategy=cloud.strategy, local=cloud.local)
        cloud.strategy.min_available_nodes = cfg.edges
        cloud.strategy.min_train_nodes = min(cloud.strategy.min_train_nodes, cfg.edges)
        cloud.strategy.min_evaluate_nodes = min(cloud.strategy.min_evaluate_nodes, cfg.edges)
        data = [edge_data(e, cfg.edges, cfg.partition) for e in range(cfg.edges)]
        edges = (f"{e}={d.scene} ({len(d.train)} train / {len(d.held_out)} held out)" for e, d in enumerate(data))
        log(f"edges: {', '.join(edges)}")
        log(f"federated: {cfg.rounds} rounds, strategy {cloud.strategy.name}, Flower simulation engine")
        try:
            run_simulation(server_app=make_server_app(cloud), client_app=client_app or make_client_app(cfg.partition),
                           num_supernodes=cfg.edges, backend_config=_backend_config())
        finally:
            _stop_ray()
        t_fed = time.perf_counter() - t0
        registry = ModelRegistry(registry_dir)
        history = registry.history()
    federated: dict[int, dict[int, dict[str, float]]] = {}
    updates: dict[int, list[dict[str, Any]]] = {}
    for entry in history:
        if entry["round"] == 0:
            continue
        federated[entry["round"]] = {int(m["edge"]): {"loss": m["loss"], "psnr": m["psnr"]}
                                     for m in entry.get("edges", [])}
        updates[entry["round"]] = entry.get("updates", [])
    if len(federated) < cfg.rounds:
        raise UserError(f"the federation stopped after {len(federated)} of {cfg.rounds} rounds; see the log above")

    log("baselines: pre-trained model and local-only training")
    base, _ = load_base(Path(cloud.base_weights) if cloud.base_weights else None)
    batches = [held_out_batch(FrameBank(frames=d.held_out, max_side=BANK_SIDE)) for d in data]
    pretrained = {e: _score(evaluate_net(base, b)) for e, b in enumerate(batches)}
    local_only: dict[int, dict[int, dict[str, float]]] = {r: {} for r in range(1, cfg.rounds + 1)}
    local = cloud.local
    for e, d in enumerate(data):
        net, _ = load_base(Path(cloud.base_weights) if cloud.base_weights else None)
        bank = FrameBank(frames=d.train, max_side=BANK_SIDE)
        for r in range(1, cfg.rounds + 1):  # the edge's federated rounds, without the averaging
            local_fit(net, bank, local, local.steps_for(len(d.train)), round_seed=r)
            local_only[r][e] = _score(evaluate_net(net, batches[e]))
        log(f"  edge {e} ({d.scene}): local-only loss {local_only[cfg.rounds][e]['loss']:.5f}")

    rounds = [{"round": r, "federated": _round_row(federated[r]), "local_only": _round_row(local_only[r]),
               "pretrained": _round_row(pretrained), "updates": updates.get(r, [])}
              for r in range(1, cfg.rounds + 1)]
    final = []
    for e, d in enumerate(data):
        fed, loc, pre = federated[cfg.rounds].get(e), local_only[cfg.rounds][e], pretrained[e]
        row = {"edge": e, "scene": d.scene, "train_frames": len(d.train), "held_out_frames": len(d.held_out),
               "pretrained_loss": round(pre["loss"], 5), "local_only_loss": round(loc["loss"], 5),
               "federated_loss": None if fed is None else round(fed["loss"], 5),
               "pretrained_psnr": round(pre["psnr"], 3), "local_only_psnr": round(loc["psnr"], 3),
               "federated_psnr": None if fed is None else round(fed["psnr"], 3)}
        row["federated_beats_both"] = fed is not None and fed["loss"] < min(pre["loss"], loc["loss"])
        final.append(row)
    return {"edges": cfg.edges, "rounds_run": cfg.rounds,
            "config": {"strategy": asdict(cloud.strategy), "local": asdict(cloud.local),
                       "partition": asdict(cfg.partition)},
            "metric": ("held-out self-supervised loss of dncm_train.losses (lower is better) and PSNR (dB) of "
                       "reproducing a held-out colour-filtered crop from its other filtered version "
                       "(dncm_train.evaluate 'self'), 32 fixed crop pairs per edge"),
            "rounds": rounds, "final": final,
            "federated_beats_both_on_every_edge": all(r["federated_beats_both"] for r in final),
            "wall_s": {"federated": round(t_fed, 1), "total": round(time.perf_counter() - t0, 1)}}


def _score(m: dict[str, float]) -> dict[str, float]:
    return {"loss": m["loss"], "psnr": m["psnr"]}


def _stop_ray() -> None:
    try:
        import ray
    except ImportError:
        return
    if ray.is_initialized():
        ray.shutdown()
