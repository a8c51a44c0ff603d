"""The edge's Flower ClientApp: retrain the dncm model on this edge's opt-in frames.

Where the frames come from:

* deployment (``mvstylizer edge fl-join``): the SuperNode's node config holds ``data-dir``; the
  frames are those of the edge's :class:`~mvstylizer.edge.store.FrameStore` under it. Every 5th
  stored frame (in id order) is held out for evaluation and never trained on.
* simulation: Flower sets ``partition-id`` / ``num-partitions``; the frames are the non-IID scene
  partitions of :mod:`mvstylizer.fl.partitions`.

Frames never leave the edge: replies carry only the model's parameters and a few numbers (frame
count, losses, PSNRs).

Hot swap: with a ``data-dir``, every global model this edge receives is written atomically to
``DATA_DIR/models/dncm.pt`` (the format of ``save_weights``), where a running ``mvstylizer edge serve
--data-dir DATA_DIR`` picks it up (:mod:`.model_sync`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from ..errors import UserError
from ..files import atomic_write_text
from ..fl.local import (
    BANK_SIDE,
    FrameBank,
    LocalConfig,
    evaluate_net,
    held_out_batch,
    load_base,
    local_fit,
    parameter_arrays,
    set_parameters,
    split_held_out,
)
from ..fl.model_file import MODEL_FILE


@dataclass
class EdgeFrames:
    train: list[np.ndarray]
    held_out: list[np.ndarray]
    tag: int  # a number for the metrics (the partition id in simulation, -1 in deployment)


def store_frames(data_dir: Path) -> EdgeFrames:
    """The edge's stored frames, split into training and held-out ones (deterministic: by id order)."""
    from .store import FrameStore  # the opt-in store; imported here so simulation never needs it

    if not data_dir.is_dir():
        raise UserError(f"edge data folder {data_dir} does not exist")
    # Read-only: the server owns the store's quota and its clean-up; opened with ours, it evicted frames.
    with FrameStore(data_dir, read_only=True) as store:
        frames = []
        for fid in sorted(store.ids()):  # ids are content hashes: a fixed order that does not follow arrival
            with contextlib.suppress(KeyError):  # evicted by the server meanwhile, or unreadable
                frames.append(store.load(fid))
    train_idx, held_idx = split_held_out(len(frames))
    return EdgeFrames([frames[i] for i in train_idx], [frames[i] for i in held_idx], -1)


def simulated_frames(context: Context, spec: Any) -> EdgeFrames:
    from ..fl.partitions import edge_data

    pid, parts = int(context.node_config["partition-id"]), int(context.node_config["num-partitions"])
    data = edge_data(pid, parts, spec)
    return EdgeFrames(data.train, data.held_out, pid)


def _digest(arrays: dict[str, np.ndarray]) -> str:
    from ..models.safeload import params_digest

    return params_digest(arrays)


def publish_model(data_dir: Path, net: Any, meta: dict[str, Any], digest: str, server_round: int) -> bool:
    """Write the global model for the local edge server (atomic: temp + rename); False if unchanged.

    The stamp next to it (``models/dncm.json``) holds the parameters' hash (``digest``, the one the
    cloud sent and its registry records) and the sha256 of the file written (``sha256``): the edge
    server swaps a model in only when the file's hash matches the stamp (:mod:`.model_sync`).
    """
    from ..models.safeload import sha256_file
    from ..models.training import save_weights

    target = data_dir / MODEL_FILE
    stamp = target.with_suffix(".json")
    if stamp.is_file() and target.is_file():
        try:
            if json.loads(stamp.read_text()).get("digest") == digest:
                return False
        except (OSError, ValueError):
            pass  # an unreadable stamp: just write the model again
    save_weights(net, target, {**meta, "fl_round": server_round, "fl_digest": digest})
    stamp_text = json.dumps({"digest": digest, "sha256": sha256_file(target), "round": server_round})
    atomic_write_text(stamp, stamp_text + "\n")
    return True


class EdgeTrainer:
    """The ClientApp's work, given where this edge's frames come from."""

    def __init__(self, sim_spec: Any = None) -> None:
        self.sim_spec = sim_spec  # a PartitionSpec in simulation, None when deployed

    def frames(self, context: Context) -> EdgeFrames:
        data_dir = context.node_config.get("data-dir")
        if data_dir:
            return store_frames(Path(str(data_dir)))
        if "partition-id" in context.node_config:
            return simulated_frames(context, self.sim_spec)
        raise UserError("this SuperNode has no data-dir in its node config; start it with mvstylizer edge fl-join")

    def _model(self, msg: Message) -> tuple[Any, dict[str, Any], dict[str, np.ndarray], str]:
        import torch

        torch.set_num_threads(1)  # shared CPUs: one thread trains this net fastest (see models/dncm/__init__.py)
        record = next(iter(msg.content.array_records.values()))
        arrays = {k: v.numpy() for k, v in record.items()}
        digest = _digest(arrays)
        cfg: Mapping[str, Any] = msg.content.config_records.get("config", {})
        expected = cfg.get("model-sha256") if hasattr(cfg, "get") else None
        if expected and expected != digest:  # corrupted or tampered with on the way: never serve it
            raise UserError(f"the global model received does not match the cloud's hash "
                            f"({digest[:12]} != {str(expected)[:12]}); refusing it")
        net, meta = load_base()
        set_parameters(net, arrays)
        return net, {k: v for k, v in meta.items() if k != "history"}, arrays, digest

    def _publish(self, context: Context, net: Any, meta: dict[str, Any], digest: str, rnd: int) -> None:
        data_dir = context.node_config.get("data-dir")
        if data_dir:
            publish_model(Path(str(data_dir)), net, meta, digest, rnd)

    def train(self, msg: Message, context: Context) -> Message:
        cfg: Mapping[str, Any] = msg.content.config_records.get("config", {})
        rnd = int(cfg.get("server-round", 0)) + int(cfg.get("round-offset", 0))
        net, meta, _, digest = self._model(msg)
        # The model this round starts from is the previous round's global model: serve it.
        self._publish(context, net, meta, digest, rnd - 1)
        data = self.frames(context)
        local = LocalConfig.from_config(cfg)
        bank = FrameBank(frames=data.train, max_side=BANK_SIDE)
        metrics = local_fit(net, bank, local, local.steps_for(len(data.train)), round_seed=rnd)
        reply = RecordDict({
            "arrays": ArrayRecord({k: Array(v) for k, v in parameter_arrays(net).items()}),
            "metrics": MetricRecord({"num-examples": len(data.train), **metrics}),
        })
        return Message(content=reply, reply_to=msg)

    def evaluate(self, msg: Message, context: Context) -> Message:
        cfg: Mapping[str, Any] = msg.content.config_records.get("config", {})
        rnd = int(cfg.get("server-round", 0)) + int(cfg.get("round-offset", 0))
        net, meta, _, digest = self._model(msg)
        self._publish(context, net, meta, digest, rnd)
        data = self.frames(context)
        scores = evaluate_net(net, held_out_batch(FrameBank(frames=data.held_out, max_side=BANK_SIDE)))
        reply = RecordDict({"metrics": MetricRecord({"num-examples": len(data.held_out), "edge": data.tag,
                                                     **scores})})
        return Message(content=reply, reply_to=msg)


def make_client_app(sim_spec: Any = None) -> ClientApp:
    trainer = EdgeTrainer(sim_spec)
    client = ClientApp()

    @client.train()
    def train(msg: Message, context: Context) -> Message:
        return trainer.train(msg, context)

    @client.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        return trainer.evaluate(msg, context)

    return client


# What a SuperNode runs (``clientapp = "mvstylizer.edge.fl_client:app"``).
app = make_client_app()
