"""Aggregation for the cloud: Flower's own strategies, behind a guard that vets every update.

* ``fedavg`` (default): :class:`flwr.serverapp.strategy.FedAvg`, weighted by the edges' frame counts;
  with ``server_lr`` != 1 or ``server_momentum`` > 0 it is Flower's
  :class:`~flwr.serverapp.strategy.FedAvgM` (the averaged update times ``server_lr``, with momentum).
  With N edges of different scenes, the plain average moves the model by 1/N of each edge's own
  update; ``server_lr`` N applies the sum.
* ``fedprox``: :class:`~flwr.serverapp.strategy.FedProx`; it sends ``proximal-mu`` and the edges add
  mu/2 * ||w - w_global||^2 to their loss (:func:`mvstylizer.fl.local.local_fit`).
* ``trimmed`` / ``median``: :class:`~flwr.serverapp.strategy.FedTrimmedAvg` /
  :class:`~flwr.serverapp.strategy.FedMedian`, coordinate-wise robust aggregation (a minority of bad
  edges cannot drag a weight arbitrarily far). With ``server_lr`` != 1 or ``server_momentum`` > 0 (and
  for ``fedprox``) the guard takes FedAvgM's server step on the aggregate instead: the global model
  moves ``server_lr`` times the aggregate's move plus momentum (docs/FL.md: trimmed mean
  with server lr 1.5 is what the population experiment chose on validation data).

Whatever the strategy, :class:`UpdateGuard` wraps it. Before aggregation it drops any reply whose
arrays are missing, misnamed, misshaped or not finite, whose frame count is not a positive finite
number, or whose update (reply - current global) has an L2 norm above ``reject_norm``; it then scales
any update longer than ``clip_norm`` back to that length (update-norm clipping, off at 0). A poisoned
edge can therefore neither put a NaN into the global model nor move it by more than ``clip_norm``
times its aggregation weight. If every reply of a round is rejected, the global model stays as it was.
(Flower's ``DifferentialPrivacyServerSideFixedClipping`` also clips, but it adds noise and skips
the whole round when any edge fails, which is the opposite of what a dropout needs.)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg, FedAvgM, FedMedian, FedProx, FedTrimmedAvg, Strategy

from ..errors import UserError
from ..fl.aggregation import AGGREGATIONS, AgreementScreen, fedavgm_step
from ..fl.anchor import AnchorConfig

log = logging.getLogger("mvstylizer.cloud")

WEIGHT_KEY = "num-examples"
# Most frames an edge may say it trained or evaluated on. An edge's frame store holds key frames its
# phones sent; a count past this is a lie or a bug, and two edges claiming 1e308 made the weights' sum
# infinite, every share 0 and the stored global model all zeros.
MAX_EXAMPLES = 10_000_000
# How the guard names the records of the replies it hands on: Flower refuses to aggregate replies
# whose record names or metric keys differ, and ended the whole run on one odd reply.
ARRAYS, METRICS = "arrays", "metrics"


@dataclass
class StrategyConfig:
    name: str = "fedavg"
    proximal_mu: float = 0.01  # fedprox only
    trim_beta: float = 0.2  # trimmed only: fraction cut at each end per coordinate
    server_lr: float = 1.0  # step size on the aggregate's move (for fedavg: Flower's FedAvgM when != 1)
    server_momentum: float = 0.0  # FedAvgM's server momentum, on any aggregate
    clip_norm: float = 0.0  # update-norm clipping; 0 = off
    reject_norm: float = 100.0  # an update this long is an attack or a bug, never a round of training
    min_agreement: float = -1.0  # drop an edge whose mean agreement with the others is lower (AgreementScreen); -1 off
    fraction_train: float = 1.0
    fraction_evaluate: float = 1.0
    min_train_nodes: int = 2
    min_evaluate_nodes: int = 2
    min_available_nodes: int = 2
    anchor: str = "none"  # the server's pull toward generic content after each round (fl.anchor.ANCHORS)
    anchor_weight: float = 0.0
    anchor_steps: int = 6  # anchor generic: the server's own steps on the generic source per round

    def __post_init__(self) -> None:
        self.anchor_config()  # refuses an unknown kind or a weight outside [0, 1)
        if self.name not in AGGREGATIONS:
            raise UserError(f"unknown strategy {self.name!r}; choose one of {', '.join(sorted(AGGREGATIONS))}")
        if not (0 <= self.clip_norm < math.inf and 0 < self.reject_norm < math.inf):  # NaN fails too
            raise UserError("clip norm must be >= 0 and the reject norm > 0")
        if not -1.0 <= self.min_agreement < 1.0:
            raise UserError(f"minimum agreement must be a cosine in [-1, 1), got {self.min_agreement}")
        if not 0.0 <= self.trim_beta < 0.5:
            raise UserError(f"trim beta must be in [0, 0.5), got {self.trim_beta}")
        if not (0 < self.server_lr < math.inf and 0.0 <= self.server_momentum < 1.0):
            raise UserError("server learning rate must be > 0 and server momentum in [0, 1)")
        if min(self.min_train_nodes, self.min_available_nodes) < 1 or self.min_evaluate_nodes < 0:
            raise UserError("minimum node counts must be >= 1")

    def anchor_config(self) -> AnchorConfig:
        return AnchorConfig(self.anchor, self.anchor_weight, self.anchor_steps)


def _fedavg(cfg: StrategyConfig, common: dict[str, Any]) -> Strategy:
    if cfg.server_lr != 1.0 or cfg.server_momentum > 0.0:
        return FedAvgM(server_learning_rate=cfg.server_lr, server_momentum=cfg.server_momentum, **common)
    return FedAvg(**common)


# The Flower strategy behind each aggregation rule of fl.aggregation.AGGREGATIONS (same names).
FLOWER_STRATEGIES: dict[str, Callable[[StrategyConfig, dict[str, Any]], Strategy]] = {
    "fedavg": _fedavg,
    "fedprox": lambda cfg, common: FedProx(proximal_mu=cfg.proximal_mu, **common),
    "trimmed": lambda cfg, common: FedTrimmedAvg(beta=cfg.trim_beta, **common),
    "median": lambda cfg, common: FedMedian(**common),
}


# (round's global, new global after the server step, round) -> the new global pulled toward an anchor
Pull = Callable[[dict[str, np.ndarray], dict[str, np.ndarray], int], dict[str, np.ndarray]]


def build_strategy(cfg: StrategyConfig, pull: Pull | None = None) -> UpdateGuard:
    common: dict[str, Any] = {"fraction_train": cfg.fraction_train, "fraction_evaluate": cfg.fraction_evaluate,
              "min_train_nodes": cfg.min_train_nodes, "min_evaluate_nodes": cfg.min_evaluate_nodes,
              "min_available_nodes": cfg.min_available_nodes, "weighted_by_key": WEIGHT_KEY}
    inner = FLOWER_STRATEGIES[cfg.name](cfg, common)
    # FedAvgM applies the server step itself; for the others the guard scales the aggregate's move.
    step, momentum = (1.0, 0.0) if cfg.name == "fedavg" else (cfg.server_lr, cfg.server_momentum)
    return UpdateGuard(inner, clip_norm=cfg.clip_norm, reject_norm=cfg.reject_norm, server_lr=step, pull=pull,
                       min_agreement=cfg.min_agreement, server_momentum=momentum)


def _finite_metrics(msg: Message) -> bool:
    for record in msg.content.metric_records.values():
        for value in record.values():
            values = value if isinstance(value, list) else [value]
            if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
                return False
    return True


def _plausible_weight(weight: object) -> bool:
    return isinstance(weight, (int, float)) and not isinstance(weight, bool) and 1 <= weight <= MAX_EXAMPLES


def _common_metrics(replies: list[Message]) -> list[Message]:
    """The replies with their one MetricRecord named ``METRICS`` and holding only the keys every reply
    has (the weight among them: each was checked for it), so that one edge's extra or missing metric
    is dropped instead of ending the run in Flower's consistency check."""
    if not replies:
        return replies
    records = [next(iter(r.content.metric_records.items())) for r in replies]
    keys = set.intersection(*(set(rec.keys()) for _, rec in records))
    for reply, (name, rec) in zip(replies, records, strict=True):
        del reply.content[name]
        reply.content[METRICS] = MetricRecord({k: v for k, v in rec.items() if k in keys})
    return replies


def _with_digest(config: ConfigRecord, arrays: dict[str, np.ndarray]) -> ConfigRecord:
    """``config`` plus ``model-sha256``: the content hash of the global model sent with it.

    The edge checks the arrays it receives against it and records it next to the model file it
    publishes for its server (``mvstylizer.edge.fl_client``); the registry records the same hash per
    round (``params_sha256`` in round.json), so an operator can tell which round an edge serves.
    """
    from ..models.safeload import params_digest

    return ConfigRecord({**dict(config), "model-sha256": params_digest(arrays)})


class UpdateGuard(Strategy):
    """Vets and clips the edges' updates, then hands the survivors to ``strategy``."""

    def __init__(self, strategy: Strategy, clip_norm: float = 0.0, reject_norm: float = 100.0,
                 server_lr: float = 1.0, pull: Pull | None = None, min_agreement: float = -1.0,
                 server_momentum: float = 0.0) -> None:
        self.strategy = strategy
        self.screen = AgreementScreen(min_agreement)  # remembers each node's agreement across rounds
        self.pull = pull  # the server's anchor (fl.anchor), applied after the server step
        self.clip_norm = clip_norm
        self.reject_norm = reject_norm
        # FedAvgM's step (fl.aggregation.fedavgm_step, as fl.population.ServerOpt takes it); the velocity
        # lives as long as this process
        self.server_lr = server_lr
        self.server_momentum = server_momentum
        self.velocity: dict[str, np.ndarray] = {}
        self.current: dict[str, np.ndarray] = {}
        self.last_round: dict[str, Any] = {}  # what the last aggregate_train did, for the registry
        self.last_evaluate: list[dict[str, Any]] = []  # each edge's held-out metrics, last round
        self.last_evaluate_aggregate: dict[str, Any] = {}

    def summary(self) -> None:
        log.info("update guard: reject non-finite/malformed updates and norms > %g; clip norm %s",
                 self.reject_norm, self.clip_norm or "off")
        self.strategy.summary()

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        self.current = {k: v.numpy() for k, v in arrays.items()}
        return self.strategy.configure_train(server_round, arrays, _with_digest(config, self.current), grid)

    def vet(self, reply: Message) -> tuple[bool, str, float]:
        """(accepted, reason, update norm before clipping); clips the reply's arrays in place."""
        if reply.has_error():
            return False, f"error: {reply.error.reason}", math.nan
        content = reply.content
        if len(content.array_records) != 1 or len(content.metric_records) != 1:
            return False, "expected one ArrayRecord and one MetricRecord", math.nan
        metrics = next(iter(content.metric_records.values()))
        weight = metrics.get(WEIGHT_KEY)
        if not _plausible_weight(weight):
            return False, f"bad {WEIGHT_KEY} {weight!r} (1..{MAX_EXAMPLES})", math.nan
        if not _finite_metrics(reply):
            return False, "non-finite metrics", math.nan
        key, record = next(iter(content.array_records.items()))
        if set(record.keys()) != set(self.current):
            return False, "parameter names differ from the global model", math.nan
        deltas: dict[str, np.ndarray] = {}
        for name, base in self.current.items():
            try:
                value = record[name].numpy()
            except Exception:  # noqa: BLE001 - undecodable bytes are a malformed update like any other
                return False, f"undecodable array {name}", math.nan
            if value.shape != base.shape:
                return False, f"{name} has shape {value.shape}, expected {base.shape}", math.nan
            if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
                return False, f"{name} holds {value.dtype}, not numbers", math.nan
            value = value.astype(np.float64)
            if not np.all(np.isfinite(value)):
                return False, f"non-finite values in {name}", math.nan
            deltas[name] = value - base
        norm = math.sqrt(sum(float(np.sum(d * d)) for d in deltas.values()))
        if not math.isfinite(norm) or norm > self.reject_norm:
            return False, f"update norm {norm:.3g} > {self.reject_norm:g}", norm
        scale = self.clip_norm / norm if self.clip_norm and norm > self.clip_norm else 1.0
        del content[key]
        content[ARRAYS] = ArrayRecord({name: Array(np.asarray(self.current[name] + scale * deltas[name],
                                                              dtype=self.current[name].dtype))
                                       for name in self.current})
        return True, ("clipped" if scale < 1.0 else "ok"), norm

    def _delta(self, reply: Message) -> np.ndarray:
        """A vetted reply's update (its model minus the round's global), flattened in the global's order."""
        record = next(iter(reply.content.array_records.values()))
        return np.concatenate([(record[k].numpy().astype(np.float64) - v).ravel() for k, v in self.current.items()])

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        accepted, report = [], []
        for reply in replies:
            ok, reason, norm = self.vet(reply)
            node = reply.metadata.src_node_id
            report.append({"node": int(node), "accepted": ok, "reason": reason,
                           "update_norm": None if math.isnan(norm) else round(norm, 6)})
            if ok:
                accepted.append(reply)
            else:
                log.warning("round %d: rejected the update from node %d (%s)", server_round, node, reason)
        # A screen that is off needs no update decoded and flattened.
        deltas = [self._delta(r) for r in accepted] if self.screen.active else [np.empty(0)] * len(accepted)
        keep, cos = self.screen([int(r.metadata.src_node_id) for r in accepted], deltas)
        for entry, reply, ok, c in zip([e for e in report if e["accepted"]], accepted, keep, cos, strict=True):
            entry["agreement"] = None if math.isnan(c) else round(float(c), 4)
            if not ok:
                mean = float(np.mean(self.screen.history[entry["node"]]))
                entry.update(accepted=False, reason=f"mean agreement {mean:.3f} < {self.screen.min_agreement:g}")
                log.warning("round %d: dropped the update from node %d (%s)", server_round,
                            reply.metadata.src_node_id, entry["reason"])
        accepted = [r for r, ok in zip(accepted, keep, strict=True) if ok]
        self.last_round = {"round": server_round, "updates": report}
        if not accepted:
            return None, None  # Strategy.start keeps the previous global model
        arrays, metrics = self.strategy.aggregate_train(server_round, _common_metrics(accepted))
        velocity = self.velocity
        if arrays is not None and (self.server_lr != 1.0 or self.server_momentum > 0.0):
            steps = {k: fedavgm_step(self.current[k], a.numpy().astype(np.float64), self.velocity.get(k),
                                     self.server_lr, self.server_momentum) for k, a in arrays.items()}
            if self.server_momentum > 0.0:
                velocity = {k: v for k, (_, v) in steps.items()}
            arrays = ArrayRecord({k: Array(np.asarray(new, dtype=self.current[k].dtype))
                                  for k, (new, _) in steps.items()})
        if arrays is not None and self.pull is not None:
            pulled = self.pull(self.current, {k: a.numpy() for k, a in arrays.items()}, server_round)
            arrays = ArrayRecord({k: Array(np.asarray(v, dtype=self.current[k].dtype)) for k, v in pulled.items()})
        if arrays is not None and not all(np.all(np.isfinite(a.numpy())) for a in arrays.values()):
            log.error("round %d: aggregate is not finite; keeping the previous global model", server_round)
            return None, metrics
        self.velocity = velocity  # only a step that was taken moves the momentum
        metrics = metrics if metrics is not None else MetricRecord()
        metrics["accepted-updates"] = len(accepted)
        metrics["rejected-updates"] = len(report) - len(accepted)
        self.last_round["train"] = dict(metrics)
        return arrays, metrics

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        digested = _with_digest(config, {k: v.numpy() for k, v in arrays.items()})
        return self.strategy.configure_evaluate(server_round, arrays, digested, grid)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        good = _common_metrics([r for r in replies if not r.has_error() and _finite_metrics(r)
                                and len(r.content.metric_records) == 1
                                and _plausible_weight(next(iter(r.content.metric_records.values())).get(WEIGHT_KEY))])
        self.last_evaluate = [{"node": int(r.metadata.src_node_id),
                               **{k: v for rec in r.content.metric_records.values() for k, v in rec.items()}}
                              for r in good]
        aggregate = self.strategy.aggregate_evaluate(server_round, good) if good else None
        # "edge" is an edge's label, not a quantity: its weighted mean means nothing.
        self.last_evaluate_aggregate = {k: v for k, v in (aggregate or {}).items() if k != "edge"}
        return aggregate
