"""The cloud's Flower ServerApp: keeps the global dncm model, runs the rounds, versions every result.

``app`` is what a SuperLink runs (``serverapp = "mvstylizer.cloud.server_app:app"`` in the app's
pyproject, see :mod:`mvstylizer.cloud.serve`); its settings come from the run config
(:class:`CloudConfig`, keys spelled with dashes). :func:`make_server_app` builds the same app around
a config object for Flower's simulation engine, which has no run config of its own.

Resume: the registry (:mod:`.registry`) holds every completed round. On start the app continues from
the newest one, so ``num-rounds`` is the *total* the federation should reach: a cloud restarted after
round 3 of 10 runs rounds 4..10 from round 3's model.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp

from ..errors import UserError
from ..fl.anchor import build_anchor
from ..fl.local import BANK_SIDE, FrameBank, LocalConfig, load_base, local_fit, parameter_arrays, set_parameters
from ..models.safeload import params_digest
from .registry import ModelRegistry
from .strategies import Pull, StrategyConfig, build_strategy

log = logging.getLogger("mvstylizer.cloud")


@dataclass
class CloudConfig:
    registry: str = "fl-registry"  # folder of the versioned global models
    num_rounds: int = 3  # total rounds the federation should reach (resume counts done ones)
    round_timeout: float = 600.0  # seconds to wait for the edges' replies in one round
    base_weights: str = ""  # starting model; "" = the shipped dncm weights
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    local: LocalConfig = field(default_factory=LocalConfig)

    def __post_init__(self) -> None:
        if self.num_rounds < 1:
            raise UserError(f"the federation needs at least one round, got {self.num_rounds}")
        if self.round_timeout <= 0:
            raise UserError("round timeout must be > 0 seconds")

    def to_run_config(self) -> dict[str, Any]:
        """Flat, dash-spelled keys (Flower run configs are flat TOML values)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("strategy", "local"):
                prefix = "strategy-" if f.name == "strategy" else "local-"
                for k, v in asdict(value).items():
                    key = "strategy" if (f.name == "strategy" and k == "name") else prefix + k.replace("_", "-")
                    out[key] = v
            else:
                out[f.name.replace("_", "-")] = value
        return out

    @classmethod
    def from_run_config(cls, cfg: dict[str, Any]) -> CloudConfig:
        """The inverse of :meth:`to_run_config`; missing keys keep their defaults."""
        strategy = _from_flat(StrategyConfig, cfg, lambda n: "strategy" if n == "name"
                              else "strategy-" + n.replace("_", "-"))
        local = _from_flat(LocalConfig, cfg, lambda n: "local-" + n.replace("_", "-"))
        top = _from_flat(_TopLevel, cfg, lambda n: n.replace("_", "-"))
        return cls(strategy=strategy, local=local, **asdict(top))


@dataclass
class _TopLevel:
    """CloudConfig's scalar fields alone (for parsing; keep in step with CloudConfig)."""

    registry: str = CloudConfig.registry
    num_rounds: int = CloudConfig.num_rounds
    round_timeout: float = CloudConfig.round_timeout
    base_weights: str = CloudConfig.base_weights


def _from_flat(cls: type, cfg: dict[str, Any], key_of: Any) -> Any:
    """Build dataclass ``cls`` from flat config values, each cast to its field's default type."""
    defaults = cls()
    kwargs = {}
    for f in fields(cls):
        key = key_of(f.name)
        if key in cfg:
            kind = type(getattr(defaults, f.name))
            try:
                kwargs[f.name] = kind(cfg[key])
            except (TypeError, ValueError):
                raise UserError(f"run config {key}={cfg[key]!r} is not a valid {kind.__name__}") from None
    return cls(**kwargs)


def anchor_pull(cfg: CloudConfig, net: Any, done: int) -> Pull | None:
    """The strategy's anchor (``--anchor``) as the guard's pull on named arrays, or None when off.

    The server's own generic steps run the edges' recipe (``cfg.local``), seeded by the absolute round
    (``done`` rounds were completed before this run)."""
    anchor = build_anchor(cfg.strategy.anchor_config(), net, local_fit,
                          lambda frames: FrameBank(frames=frames, max_side=BANK_SIDE))
    if anchor is None:
        return None
    names = [k for k, _ in net.named_parameters()]

    def pull(current: dict[str, np.ndarray], stepped: dict[str, np.ndarray],
             server_round: int) -> dict[str, np.ndarray]:
        out = anchor.apply([current[k] for k in names], [stepped[k] for k in names], done + server_round, cfg.local)
        return dict(zip(names, out, strict=True))

    return pull


def run_federation(grid: Grid, cfg: CloudConfig) -> ModelRegistry:
    """Run the rounds still missing from the registry; every finished round is stored at once."""
    registry = ModelRegistry(Path(cfg.registry))
    net, meta = load_base(Path(cfg.base_weights) if cfg.base_weights else None)
    meta = {k: v for k, v in meta.items() if k != "history"}
    latest = registry.latest()
    # built from the starting model, before a resume loads a later one
    pull = anchor_pull(cfg, net, latest.round if latest is not None else 0)
    if latest is None:
        registry.save(0, net.state_dict(), meta, {"note": "starting model (pre-trained)"},
                      params_sha256=params_digest(parameter_arrays(net)))
        done = 0
    else:
        from ..models.training import load_weights

        load_weights(net, latest.path)
        done = latest.round
        log.info("resuming the federation after round %d (%s)", done, latest.path)
    if done >= cfg.num_rounds:
        log.info("the registry already holds %d rounds; nothing to do", done)
        return registry

    strategy = build_strategy(cfg.strategy, pull)
    # Each round's config carries the local recipe and the absolute round, so edges seed their
    # crops per round and a resumed federation does not replay round 1's batches.
    train_config = ConfigRecord({**cfg.local.to_config(), "round-offset": done})
    eval_config = ConfigRecord({"round-offset": done})

    def store_round(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        if server_round == 0:
            return None
        received = {k: v.numpy() for k, v in arrays.items()}
        set_parameters(net, received)
        absolute = done + server_round
        guard = strategy.last_round
        metrics = {"train": guard.get("train", {}), "updates": guard.get("updates", []),
                   "evaluate": strategy.last_evaluate_aggregate, "edges": strategy.last_evaluate}
        registry.save(absolute, net.state_dict(), meta, metrics, params_sha256=params_digest(received))
        log.info("stored global model of round %d", absolute)
        return None

    strategy.start(grid, ArrayRecord({k: Array(v) for k, v in parameter_arrays(net).items()}),
                   num_rounds=cfg.num_rounds - done, timeout=cfg.round_timeout, train_config=train_config,
                   evaluate_config=eval_config, evaluate_fn=store_round)
    return registry


def make_server_app(cfg: CloudConfig) -> ServerApp:
    """A ServerApp bound to ``cfg`` (for the simulation engine)."""
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        run_federation(grid, cfg)

    return server


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    run_federation(grid, CloudConfig.from_run_config(dict(context.run_config)))
