"""How the edges' models become one: the aggregation rules the cloud and the experiment offer.

Each rule is an entry of :data:`AGGREGATIONS`: its numpy form (``combine``, used by the in-process
experiment, :mod:`mvstylizer.fl.population`) and, in :mod:`mvstylizer.cloud.strategies`, the Flower
strategy the cloud runs for the same name. Adding a rule is one entry here and one there (a test checks
both registries hold the same names); the CLI reads its ``--strategy`` choices from this one, which
needs no Flower.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Aggregation:
    """``combine(stack, weights, trim_beta)``: the aggregate of E models' values of one parameter
    (``stack``: E x ..., ``weights``: E, summing to 1) as Flower's strategy of that name computes it."""

    name: str
    help: str
    combine: Callable[[np.ndarray, np.ndarray, float], np.ndarray]
    robust: bool  # bounds what one edge can do to the model (poisoned updates)


def _weighted_mean(stack: np.ndarray, weights: np.ndarray, trim_beta: float) -> np.ndarray:
    return np.tensordot(weights, stack, axes=1)


def _median(stack: np.ndarray, weights: np.ndarray, trim_beta: float) -> np.ndarray:
    return np.median(stack, axis=0)


def _trimmed_mean(stack: np.ndarray, weights: np.ndarray, trim_beta: float) -> np.ndarray:
    k = int(trim_beta * len(stack))
    return np.sort(stack, axis=0)[k: len(stack) - k].mean(axis=0)


AGGREGATIONS: dict[str, Aggregation] = {a.name: a for a in (
    Aggregation("fedavg", "mean weighted by the edges' frame counts (FedAvg; FedAvgM with a server lr or momentum)",
                _weighted_mean, robust=False),
    Aggregation("fedprox", "FedAvg's mean, edges training with a proximal term toward the global model (FedProx)",
                _weighted_mean, robust=False),
    Aggregation("trimmed", "per-coordinate mean without the trim-beta tails (FedTrimmedAvg)", _trimmed_mean,
                robust=True),
    Aggregation("median", "per-coordinate median (FedMedian)", _median, robust=True),
)}
