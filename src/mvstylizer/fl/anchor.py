"""The server's anchor: what keeps the global model from drifting away from generic content.

Edges hold a few scene kinds each; averaging their updates round after round pulls the generic
starting model toward those kinds and away from everything else (docs/FL.md: the federated model is
worse than no retraining on an edge that has not joined). The cloud legitimately owns the generic
source the starting model was trained on (package media, ``dncm_train``'s ``package`` data), so after
each round's server step it can pull the new global model a fraction ``weight`` toward a trusted
target of its own:

* ``generic``: the round's global model after ``steps`` local steps on the generic source's training
  part, i.e. one more, trusted participant with weight ``weight`` whose update is not scaled by the
  server lr and never passes the trim;
* ``start``: the starting model itself (a proximal pull: every round shrinks the drift by ``weight``).

``new = (1 - weight) * stepped + weight * target``, the same in the experiment
(:func:`mvstylizer.fl.population.federate`) and in the cloud (:class:`mvstylizer.cloud.strategies.UpdateGuard`).
A kind is one entry of :data:`ANCHORS`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UserError
from .local import BANK_SIDE, LocalConfig

Params = list[np.ndarray]  # a model's trainable parameters, in ``net.parameters()`` order
Target = Callable[[Params, int, LocalConfig], Params]  # (round's global, round, local recipe) -> target
GENERIC_VIDEO_STRIDE = 10  # as dncm_train's ImageBank: a long clip does not drown the photos


@dataclass(frozen=True)
class AnchorConfig:
    kind: str = "none"  # a key of ANCHORS, or none
    weight: float = 0.0  # share of the target in the new global model
    steps: int = 6  # generic: the server's steps per round (about one edge's)

    def __post_init__(self) -> None:
        if self.kind != "none" and self.kind not in ANCHORS:
            raise UserError(f"unknown anchor {self.kind!r}; choose none or one of {', '.join(ANCHORS)}")
        if not 0.0 <= self.weight < 1.0 or self.steps < 1:
            raise UserError("anchor weight must be in [0, 1) and anchor steps >= 1")
        if self.kind != "none" and self.weight == 0.0:  # it would pull by nothing, without a word
            raise UserError(f"anchor {self.kind} needs an anchor weight above 0 (--anchor-weight; 0.4 in docs/FL.md)")


def params_of(net: Any) -> Params:
    return [p.detach().cpu().numpy().astype(np.float64, copy=True) for p in net.parameters()]


def load_params(net: Any, arrays: Params) -> None:
    import torch

    with torch.no_grad():
        for p, a in zip(net.parameters(), arrays, strict=True):
            p.copy_(torch.from_numpy(np.asarray(a, np.float32)))


def generic_split(max_side: int = BANK_SIDE) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The generic source the shipped dncm was trained on (``data.package_sources``), as (train,
    validation) frames: a clip's first three quarters / last quarter, a photo's left three quarters /
    right quarter. The anchor trains on the first part only; the second measures drift in tuning."""
    from ..imaging import shrink_to
    from ..models.data import package_sources
    from ..video.formats import VIDEO_EXTS
    from ..video.image import read_image
    from ..video.reader import VideoReader

    train: list[np.ndarray] = []
    val: list[np.ndarray] = []
    for src in package_sources():
        if src.suffix.lower() in VIDEO_EXTS:
            with VideoReader(src) as r:
                frames = [shrink_to(f.rgb8, max_side) for f in r.frames() if f.index % GENERIC_VIDEO_STRIDE == 0]
            cut = max(1, int(len(frames) * 0.75))
            train += frames[:cut]
            val += frames[cut:]
        else:
            img = shrink_to((read_image(src) * 255 + 0.5).astype(np.uint8), max_side)
            cut = int(img.shape[1] * 0.75)
            train.append(np.ascontiguousarray(img[:, :cut]))
            val.append(np.ascontiguousarray(img[:, cut:]))
    return train, val


def _start(cfg: AnchorConfig, net: Any, fit: Callable[..., Any], bank: Callable[[list[np.ndarray]], Any]) -> Target:
    start = params_of(net)
    return lambda glob, server_round, local: start


def _generic(cfg: AnchorConfig, net: Any, fit: Callable[..., Any], bank: Callable[[list[np.ndarray]], Any]) -> Target:
    frames = bank(generic_split()[0])
    work = copy.deepcopy(net)

    def target(glob: Params, server_round: int, local: LocalConfig) -> Params:
        load_params(work, glob)
        fit(work, frames, local, cfg.steps, round_seed=server_round)
        return params_of(work)

    return target


@dataclass(frozen=True)
class AnchorKind:
    help: str
    # (config, the starting model, the task's fit, frames -> bank) -> the per-round target
    build: Callable[[AnchorConfig, Any, Callable[..., Any], Callable[[list[np.ndarray]], Any]], Target]


ANCHORS: dict[str, AnchorKind] = {
    "generic": AnchorKind("a trusted server update: the round's model after --anchor-steps steps on the generic "
                          "package media the starting model was trained on", _generic),
    "start": AnchorKind("a proximal pull toward the starting model", _start),
}


@dataclass
class ServerAnchor:
    cfg: AnchorConfig
    target: Target

    def apply(self, glob: Params, stepped: Params, server_round: int, local: LocalConfig) -> Params:
        """The new global model: ``stepped`` (after the server step from ``glob``) pulled toward the target."""
        w = self.cfg.weight
        goal = self.target(glob, server_round, local)
        return [(1.0 - w) * np.asarray(s, np.float64) + w * t for s, t in zip(stepped, goal, strict=True)]


def build_anchor(cfg: AnchorConfig, net: Any, fit: Callable[..., Any],
                 bank: Callable[[list[np.ndarray]], Any]) -> ServerAnchor | None:
    """The anchor for a federation starting from ``net`` (None when off); ``fit`` and ``bank`` are the
    task's (:class:`mvstylizer.fl.tasks.Task`), so the server's step is the edges' step."""
    if cfg.kind == "none" or cfg.weight == 0.0:
        return None
    return ServerAnchor(cfg, ANCHORS[cfg.kind].build(cfg, net, fit, bank))
