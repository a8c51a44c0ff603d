"""How the edges' models become one: the aggregation rules the cloud and the experiment offer.

Each rule is an entry of :data:`AGGREGATIONS`: its numpy form (``combine``, used by the in-process
experiment, :mod:`mvstylizer.fl.population`) and, in :mod:`mvstylizer.cloud.strategies`, the Flower
strategy the cloud runs for the same name. Adding a rule is one entry here and one there (a test checks
both registries hold the same names); the CLI reads its ``--strategy`` choices from this one, which
needs no Flower.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

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


def fedavgm_step(glob: np.ndarray, agg: np.ndarray, velocity: np.ndarray | None, lr: float, momentum: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """FedAvgM's server step on one array (Hsu et al. 2019, as Flower takes it): ``v = momentum * v +
    (agg - glob)``, new global ``glob + lr * v``; returns (new global, v). With momentum 0, or no
    velocity of the move's shape yet (a first round, a changed model), ``v`` is the move itself."""
    move = agg - glob
    if momentum > 0.0 and velocity is not None and velocity.shape == move.shape:
        move = momentum * velocity + move
    return glob + lr * move, move


def agreement(deltas: Sequence[np.ndarray]) -> np.ndarray:
    """Each update's cosine similarity with the coordinate-wise median of the *other* edges' updates.

    A per-coordinate trim or median bounds how far one edge can drag each weight, but an edge that
    sends its honest update sign-flipped stays inside the honest range on most coordinates and still
    cancels part of the others' progress. Its direction gives it away: it points against what the
    others agree on. The reference is the median of the others (not of all, not their mean), so the
    edge under test cannot pull it, and one bad edge among the others moves it little. This is the
    direction test of FLTrust (Cao et al., NDSS 2021) with the other edges' median in place of a
    server-side root dataset.

    Args:
        deltas: E flattened updates (edge model minus the round's global model), all the same length.

    Returns:
        E cosines in [-1, 1]; NaN for all when E < 3 (with two edges there is no majority to agree with)
        and for an update or reference of zero length.
    """
    n = len(deltas)
    if n < 3:
        return np.full(n, np.nan)
    stack = np.stack([np.asarray(d, np.float64) for d in deltas])
    out = np.empty(n)
    for i in range(n):
        ref = np.median(np.delete(stack, i, axis=0), axis=0)
        denom = float(np.linalg.norm(stack[i]) * np.linalg.norm(ref))
        out[i] = float(stack[i] @ ref) / denom if denom > 0 else np.nan
    return out


@dataclass
class AgreementScreen:
    """Drops the updates of an edge whose agreement (:func:`agreement`), averaged over every round it
    has sent an update in, is below ``min_agreement``.

    One round's agreement is a weak signal here: a few local Adam steps from a fresh optimiser state
    are mostly noise, so honest edges of different scenes score between about -0.2 and 0.5 in a
    round, and a sign-flipping edge now and then scores above zero. Its *mean* over rounds is what
    separates them: honest edges drift above zero, a sign-flipper below. The average has no
    parameter of its own; ``min_agreement`` 0 reads "an edge stays while its updates have agreed with
    the others at least as much as they disagreed". -1 (or less) screens nothing and computes nothing.
    An update whose agreement is undefined (fewer than 3 updates, a zero update) is kept and not
    counted. The median reference assumes an honest majority, so a round never loses a majority to the
    screen: at most (E - 1) // 2 of its E updates are dropped, the lowest means first (in a first
    round every edge may score below zero).
    """

    min_agreement: float = -1.0
    history: dict[Hashable, list[float]] = field(default_factory=dict)  # edge -> its agreement per round

    @property
    def active(self) -> bool:
        """Whether the screen judges anything (its callers need not compute the updates otherwise)."""
        return self.min_agreement > -1.0

    def __call__(self, edges: Sequence[Hashable], deltas: Sequence[np.ndarray]) -> tuple[list[bool], np.ndarray]:
        """(keep, this round's agreement) for the updates ``deltas`` of ``edges`` (flattened, same order).

        Edges are dropped one at a time, the lowest mean first, and the others are judged again without
        it: a sign-flipper in the reference drags down exactly the honest edge whose scenes resemble its
        own, which would otherwise go with it."""
        n = len(deltas)
        cos = np.full(n, np.nan)
        if not self.active:
            return [True] * n, cos
        active = list(range(n))
        cos[active] = agreement(deltas)
        while True:
            means = {i: self._mean(edges[i], cos[i]) for i in active}
            below = [i for i in active if means[i] < self.min_agreement]
            if not below or n - len(active) >= (n - 1) // 2:
                break
            active.remove(min(below, key=means.__getitem__))
            if len(active) >= 3:  # judged again without it (two left would have no majority: keep their scores)
                cos[active] = agreement([deltas[i] for i in active])
        for edge, c in zip(edges, cos, strict=True):
            past = self.history.setdefault(edge, [])
            if not np.isnan(c):
                past.append(float(c))
        return [i in active for i in range(n)], cos

    def _mean(self, edge: Hashable, latest: float) -> float:
        """The edge's mean agreement over its past rounds and ``latest`` (inf with nothing to judge by)."""
        values = [*self.history.get(edge, []), *([] if np.isnan(latest) else [latest])]
        return float(np.mean(values)) if values else np.inf
