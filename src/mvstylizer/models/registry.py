"""Names a user can pass to ``--model``, and how each model is built.

A DNN can run on two runtimes, PyTorch and onnxruntime: ``--model wct2`` uses the model's default
runtime (the faster on a 2-core CPU, per ``mvstylizer bench runtime``), ``wct2:torch`` or
``wct2:onnx`` picks one. Builders import lazily so that listing models, or a phone talking to a
remote edge, never imports a framework.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from .base import Stylizer


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    # runtime -> "module:Class" under mvstylizer.models (imported only when built), or the class or
    # factory itself (a model kept outside the package); the first runtime is the default
    runtimes: dict[str, str | Callable[..., Stylizer]]
    # Whether a pixel's output depends on where it is, not only on its colour (see edge ModelInfo).
    spatial: bool = False
    # Shown but not recommended: misses the photorealism target of `mvstylizer bench photoreal`.
    experimental: bool = False

    @property
    def default_runtime(self) -> str:
        return next(iter(self.runtimes))


# Adding a model is one entry here (its module under models/, or the class itself); the CLI, the edge
# and the benchmarks list and build models from this registry.
MODELS: dict[str, ModelSpec] = {s.name: s for s in (
    ModelSpec("regions", "region-aware colour transfer: VGG16 feature regions matched to the style's, "
              "Monge-Kantorovich per region, locally affine output (like Deep Photo Style Transfer, "
              "without masks; spatially varying)",
              {"numpy": "regions:RegionTransfer"}, spatial=True),
    ModelSpec("wct2", "DNN: VGG16 encoder with Haar wavelet skips + our decoder, optimal-transport feature "
              "transforms at the block-2/1 levels (WCT2-style, spatially varying)",
              {"onnx": "wct2:WCT2OnnxStylizer", "torch": "wct2:WCT2Stylizer"}, spatial=True, experimental=True),
    ModelSpec("dncm", "DNN: learned colour mapping (Neural-Preset-style DNCM), global and resolution-free; "
              "exports .cube LUTs",
              {"onnx": "dncm:DNCMOnnxStylizer", "torch": "dncm:DNCMStylizer"}),
    ModelSpec("mk", "classic, non-DNN: linear Monge-Kantorovich colour transfer in Lab (global)",
              {"numpy": "classic:MongeKantorovichTransfer"}, experimental=True),
    ModelSpec("reinhard", "classic, non-DNN: Reinhard mean/std colour transfer in Lab (global)",
              {"numpy": "classic:ReinhardTransfer"}, experimental=True),
)}
# "default" lets a phone ask for whatever its edge ships as the default, without knowing its models.
DEFAULT_MODEL = "regions"
ALIASES = {"classic": "mk", "default": DEFAULT_MODEL}


def available_models() -> list[ModelSpec]:
    return list(MODELS.values())


def _split(name: str) -> tuple[ModelSpec, str]:
    base, _, runtime = name.partition(":")
    base = ALIASES.get(base, base)
    spec = MODELS.get(base)
    if spec is None:
        raise UserError(f"unknown model {name!r}; available: {', '.join(model_names())}")
    runtime = runtime or spec.default_runtime
    if runtime not in spec.runtimes:
        raise UserError(f"model {spec.name} has no runtime {runtime!r}; it has: {', '.join(spec.runtimes)}")
    return spec, runtime


def aliases_of(name: str) -> list[str]:
    return sorted(a for a, target in ALIASES.items() if target == name)


def model_names() -> list[str]:
    """Every accepted ``--model`` value."""
    names = set(ALIASES)
    for s in MODELS.values():
        names.add(s.name)
        if len(s.runtimes) > 1:
            names.update(f"{s.name}:{r}" for r in s.runtimes)
    return sorted(names)


def resolve_name(name: str) -> str:
    """Canonical ``name:runtime`` of a ``--model`` value (UserError if unknown)."""
    spec, runtime = _split(name)
    return f"{spec.name}:{runtime}"


# Networks that training and federated learning fine-tune: name -> "module:function" under
# mvstylizer.models, a loader that takes a weights file (None: the shipped or trained default) and
# returns (torch module, meta). A trainable model joins federated learning by one entry here and one
# task in fl/tasks.py (how to fine-tune and score it).
TRAINABLE: dict[str, str] = {
    "dncm": "dncm.network:load_net",
    "meta_smoother": "meta_smoother:load_net",
}


def build_model(name: str, weights: Path | None = None) -> tuple[Any, dict[str, Any]]:
    """The trainable network ``name`` (a torch module, in eval mode) from ``weights`` and the meta saved
    with it. Needs PyTorch (a UserError naming the extra without it)."""
    target = TRAINABLE.get(name)
    if target is None:
        raise UserError(f"no trainable model {name!r}; trainable: {', '.join(TRAINABLE)}")
    module, function = target.split(":")
    try:
        loader = getattr(importlib.import_module(f"{__package__}.{module}"), function)
    except ImportError as exc:
        from ..extras import missing_extra

        err = missing_extra(exc, f"training {name}")
        if err is None:
            raise
        raise err from None
    net, meta = loader(weights)
    return net, meta


def create_model(name: str, **kwargs: Any) -> Stylizer:
    """The model a ``--model`` value names, built with ``kwargs`` (its constructor's: e.g. ``weights=``
    for dncm, ``config=`` for regions). A model whose runtime needs something the core install leaves
    out (PyTorch for wct2 and dncm:torch) raises a UserError naming the extra."""
    spec, runtime = _split(name)
    target = spec.runtimes[runtime]
    if callable(target):
        return target(**kwargs)
    module, cls = target.split(":")
    try:
        return getattr(importlib.import_module(f"{__package__}.{module}"), cls)(**kwargs)
    except ImportError as exc:
        from ..extras import missing_extra

        err = missing_extra(exc, f"model {spec.name}:{runtime}")
        if err is None:
            raise
        raise err from None
