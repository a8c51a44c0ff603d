"""What every training script shares: its settings, checkpoints that survive a kill, a progress bar.

A checkpoint holds the model, the optimiser, the step and the RNG state, written atomically every
``checkpoint_every`` steps; ``resume=True`` continues from it exactly. The shipped weights are the
model's parameters alone, in fp16, so they stay a few MB.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..files import atomic_path
from ..video.formats import same_file

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass
class TrainConfig:
    data: list[str] = field(default_factory=lambda: ["package"])  # folders/files, or "package" media
    steps: int = 2000
    batch: int = 4
    size: int = 192  # training crop side, pixels
    lr: float = 1e-3
    seed: int = 0
    checkpoint: Path | None = None  # default: <cache>/train/<model>.ckpt
    checkpoint_every: int = 100
    resume: bool = False
    out: Path | None = None  # default: the shipped weights file of the model
    threads: int = 0  # torch threads; 0 = torch's default
    progress: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.lr < math.inf:
            raise UserError(f"learning rate must be a finite number > 0, got {self.lr}")
        if self.seed < 0 or self.threads < 0:
            raise UserError(f"seed and threads must be >= 0, got {self.seed} and {self.threads}")
        written = {"--out": self.out, "--checkpoint": self.checkpoint}
        for flag, path in written.items():
            if path is not None and path.parent.exists() and not path.parent.is_dir():
                raise UserError(f"{flag} {path}: {path.parent} is a file, not a folder")
        if self.out is not None and self.checkpoint is not None and same_file(self.out, self.checkpoint):
            raise UserError("--out and --checkpoint must be different files")
        for flag, path in written.items():
            if path is not None and any(same_file(path, Path(d)) for d in self.data if d != "package"):
                raise UserError(f"{flag} {path} is one of the training files; choose another path")


class Checkpointer:
    """Saves and restores training state for one run."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        _make_folder(self.path.parent)

    def save(self, step: int, model: torch.nn.Module, optim: torch.optim.Optimizer, extra: dict[str, Any]) -> None:
        state = {"step": step, "model": model.state_dict(), "optim": optim.state_dict(),
                 "rng": torch.get_rng_state(), "extra": extra, "saved_at": time.time()}
        with atomic_path(self.path) as tmp:
            torch.save(state, tmp)

    def load(self, model: torch.nn.Module, optim: torch.optim.Optimizer) -> tuple[int, dict[str, Any]]:
        """Restore into ``model`` and ``optim``; returns (step, extra). (0, {}) when there is no checkpoint."""
        if not self.path.is_file():
            return 0, {}
        from .safeload import load_pt

        state = load_pt(self.path)  # weights only: a checkpoint is data, never code
        try:
            model.load_state_dict(state["model"])
            optim.load_state_dict(state["optim"])
            torch.set_rng_state(state["rng"])
            return int(state["step"]), dict(state["extra"])
        except (KeyError, TypeError, ValueError, RuntimeError) as e:  # another model's, or not a checkpoint
            raise UserError(f"{self.path} is not a training checkpoint of this model "
                            f"({type(e).__name__}); start without --resume or give its own --checkpoint") from None


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file where a folder should be, no permission
        raise UserError(f"cannot make the folder {folder}: {e.strerror or e}") from None


def save_weights(model: torch.nn.Module, path: Path, meta: dict[str, Any]) -> Path:
    """Parameters only, fp16, with the training recipe alongside (atomic write)."""
    path = Path(path)
    _make_folder(path.parent)
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": state, "meta": meta}, tmp)
    return path


def load_weights(model: torch.nn.Module, path: Path) -> dict[str, Any]:
    """Load fp16 weights saved by :func:`save_weights` into a float32 model; returns the metadata."""
    from .safeload import load_pt

    blob = load_pt(Path(path))  # weights only: a model file is data, never code
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()})
    return dict(blob.get("meta", {}))


def recipe(config: TrainConfig, **more: Any) -> dict[str, Any]:
    """The settings a weights file was trained with, for its metadata and the docs."""
    d = asdict(config)
    d = {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items() if k not in ("progress", "resume")}
    d.update(more)
    d["torch"] = torch.__version__
    return d


def warmup_cosine(step: int, steps: int, base: float, warmup: int, floor: float = 0.0) -> float:
    """Learning rate at ``step`` of ``steps``: linear warm-up over ``warmup`` steps, then cosine decay from
    ``base`` to ``floor * base`` at the last step. A pure function of the step, so a resumed run follows
    the same schedule exactly. Every trainer of the package uses it, with its own recipe's numbers."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, steps - warmup))
    return base * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t)))
