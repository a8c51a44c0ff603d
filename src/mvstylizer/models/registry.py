"""Names a user can pass to ``--model``, and how each model is built.

Builders import lazily so that listing models, or a phone talking to a remote edge, never imports
heavy frameworks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import UserError
from .base import Stylizer


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    build: Callable[[], Stylizer]


def _reinhard() -> Stylizer:
    from .classic import ReinhardTransfer

    return ReinhardTransfer()


def _mk() -> Stylizer:
    from .classic import MongeKantorovichTransfer

    return MongeKantorovichTransfer()


_SPECS = [
    ModelSpec("mk", "classic, non-DNN: linear Monge-Kantorovich colour transfer in Lab (global)", _mk),
    ModelSpec("reinhard", "classic, non-DNN: Reinhard mean/std colour transfer in Lab (global)", _reinhard),
]
# Until the edge DNN lands, 'classic' is the honest name for the default: a non-DNN transfer.
ALIASES = {"classic": "mk"}
DEFAULT_MODEL = "classic"


def available_models() -> list[ModelSpec]:
    return list(_SPECS)


def resolve_name(name: str) -> str:
    name = ALIASES.get(name, name)
    if name not in {s.name for s in _SPECS}:
        choices = sorted([s.name for s in _SPECS] + list(ALIASES))
        raise UserError(f"unknown model {name!r}; available: {', '.join(choices)}")
    return name


def build_model(name: str) -> Stylizer:
    name = resolve_name(name)
    return next(s for s in _SPECS if s.name == name).build()
