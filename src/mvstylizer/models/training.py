"""What every training script shares: its settings, checkpoints that survive a kill, a progress bar.

A checkpoint holds the model, the optimiser, the step, the RNG state, the model's name and the run's
settings, written atomically every ``checkpoint_every`` steps; ``resume=True`` continues from it
exactly, and only with those settings. The shipped weights are the model's parameters alone, in fp16,
so they stay a few MB.
"""

from __future__ import annotations

import io
import math
import os
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import torch

from ..errors import UserError
from ..files import atomic_write_bytes, check_writable_folder, same_file

WEIGHTS_DIR = Path(__file__).parent / "weights"


MAX_LR = 1.0  # Adam steps are about lr per parameter: above 1 a run only diverges
MAX_SEED = 2**32 - 1  # what numpy and torch both take


MAX_SIZE = 1024  # training crop side, pixels (the recipes train at 112-192)
MAX_BATCH = 256
MAX_BATCH_PIXELS = 32 * 512 * 512  # crops x side^2 per step: 32 of 512 px (the recipes: at most 8 of 128)


def max_threads() -> int:
    """The most torch threads a run may ask for: the machine's CPUs (more only slows it down, and
    tens of thousands fail inside the OpenMP runtime)."""
    return os.cpu_count() or 1


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
    threads: int = 0  # torch threads; 0 = torch's default (the CLI puts the model's recipe in its place)
    progress: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.lr <= MAX_LR:  # also refuses NaN
            raise UserError(f"--lr (learning rate) must be a number > 0 and <= {MAX_LR:g}, got {self.lr}")
        if not 0 <= self.seed <= MAX_SEED:
            raise UserError(f"--seed must be a whole number from 0 to {MAX_SEED}, got {self.seed}")
        if not 0 <= self.threads <= max_threads():
            raise UserError(f"--threads must be from 1 to {max_threads()} (this machine's CPUs), or 0 for the "
                            f"model's recipe; got {self.threads}")
        for flag, value in (("--steps", self.steps), ("--batch", self.batch), ("--size", self.size),
                            ("--checkpoint-every", self.checkpoint_every)):
            if value < 1:
                raise UserError(f"{flag} must be a whole number >= 1, got {value}")
        # Bounds a step's memory before anything is allocated: --size 60000 or --batch 1000000 ended as
        # "internal error: MemoryError" (40 and 183 GiB) or a machine out of memory.
        if self.size > MAX_SIZE:
            raise UserError(f"--size must be at most {MAX_SIZE} pixels, got {self.size}")
        if self.batch > MAX_BATCH:
            raise UserError(f"--batch must be at most {MAX_BATCH}, got {self.batch}")
        written = {"--out": self.out, "--checkpoint": self.checkpoint}
        check_outputs(self, {flag: Path(p) for flag, p in written.items() if p is not None}, inside_data=True)
        if self.out is not None:
            check_replaceable_weights(Path(self.out))
        if self.checkpoint is not None:
            check_replaceable_checkpoint(Path(self.checkpoint))


def check_step_pixels(config: TrainConfig) -> None:
    """Refuse (UserError) a batch of crops that cannot fit in memory together, for the models that train
    on ``--batch`` crops of ``--size`` at once (not smoothing: its pairs, of their own sizes, go through the
    network one at a time)."""
    if (pixels := config.batch * config.size * config.size) > MAX_BATCH_PIXELS:
        raise UserError(f"--batch {config.batch} of --size {config.size} crops is {pixels / 1e6:.0f} "
                        f"megapixels a step; at most {MAX_BATCH_PIXELS / 1e6:.1f} fit in memory (e.g. "
                        f"{MAX_BATCH_PIXELS // (config.size * config.size) or 1} crops of {config.size} px)")


def check_replaceable_weights(path: Path, flag: str = "--out", model: str | None = None,
                              params: Collection[str] | None = None) -> None:
    """Refuse (UserError) an existing ``--out`` that is not a weights file of ours. Replacing a weights file
    is what a run is for (the shipped ones by default), but a video or photo given as ``--out`` by mistake
    would be lost for good, and only its content tells the two apart: any suffix may hold weights. Given
    the run's ``model`` name and its parameter names (``params``), another model's weights file is refused
    too (:func:`_model_of`)."""
    _check_replaceable(path, flag, "a weights file", is_weights, model, params)


def check_replaceable_checkpoint(path: Path, flag: str = "--checkpoint", model: str | None = None,
                                 params: Collection[str] | None = None) -> None:
    """Refuse (UserError) an existing checkpoint path that does not hold a checkpoint of ours: a run
    rewrites its checkpoint every ``--checkpoint-every`` steps (with or without ``--resume``), and a
    user's text file or photo given as ``--checkpoint`` by mistake was replaced without a word. Given
    ``model`` and ``params``, another model's checkpoint is refused too, as for weights."""
    _check_replaceable(path, flag, "a training checkpoint", is_checkpoint, model, params)


def is_weights(blob: Any) -> TypeGuard[dict[str, Any]]:
    """Whether a loaded ``.pt`` holds :func:`save_weights`' layout."""
    return isinstance(blob, dict) and isinstance(blob.get("state_dict"), dict)


def is_checkpoint(blob: Any) -> TypeGuard[dict[str, Any]]:
    """Whether a loaded ``.pt`` holds :meth:`Checkpointer.save`'s layout."""
    return (isinstance(blob, dict) and {"step", "model", "optim", "rng"} <= blob.keys()
            and isinstance(blob["model"], dict) and isinstance(blob["optim"], dict))


def _model_of(blob: dict[str, Any], model: str, params: Collection[str] | None) -> str | None:
    """The model a weights file or checkpoint of ours is of, when it is not ``model`` (None when it is).
    Its recorded name says; a file that records none (the smoothing weights and every checkpoint before
    names were recorded) is ``model``'s if it holds the same parameters."""
    if is_weights(blob):
        meta = blob.get("meta")
        name, state = meta.get("model") if isinstance(meta, dict) else None, blob["state_dict"]
    else:
        name, state = blob.get("model_name"), blob["model"]
    if isinstance(name, str):
        return None if name == model else name
    return None if params is None or set(state) == set(params) else "another model"


def _check_replaceable(path: Path, flag: str, kind: str, ours: Callable[[Any], TypeGuard[dict[str, Any]]],
                       model: str | None = None, params: Collection[str] | None = None) -> None:
    path = Path(path)
    if not os.path.lexists(path):
        return
    if not path.is_file():  # a link to nothing, a device, a pipe (reading one could wait for ever)
        raise UserError(f"{flag} {path} exists and is not {kind}; choose a new name or remove it first")
    from .safeload import load_pt

    try:
        blob = load_pt(path) if _looks_like_torch_zip(path) else None
    except (OSError, UserError):  # UnsafeModelFile: not a torch file, or one holding code
        blob = None
    if not ours(blob):
        raise UserError(f"{flag} {path} exists and is not {kind} written by mvstylizer train, so it is not "
                        "replaced; choose a new name or remove it first")
    # Another model's file is as much a loss: `train dncm --out wct2.pt` replaced the wct2 weights.
    other = _model_of(blob, model, params) if model is not None else None
    if other is not None:
        raise UserError(f"{flag} {path} is {kind} of {other}, not of {model}, so it is not replaced; choose a "
                        "new name or remove it first")


def _looks_like_torch_zip(path: Path) -> bool:
    """Whether ``path`` starts as ``torch.save`` files do (a zip archive): anything else (a video, a text)
    is told apart without handing it to the unpickler, however large it is."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` lies strictly below ``folder`` (both resolved: links and ``..`` count)."""
    p, f = path.resolve(), folder.resolve()
    return p != f and p.is_relative_to(f)


def check_outputs(config: TrainConfig, written: dict[str, Path], sources: Sequence[Path] = (),
                  inside_data: bool = False, made: Collection[str] = ()) -> None:
    """Refuse (UserError), before any work, files a run would write (``{what: path}``) that would destroy
    or collide with something: one of the training files (a ``--data`` entry or, given ``sources``, a file
    found in one: hard and symbolic links count), a path inside a ``--data`` folder (``inside_data``: the
    paths the user chose), two outputs on one file or one below the other (a file cannot be a folder),
    an existing folder, a file where a folder must be made, or a folder that does not exist, but for
    the outputs named in ``made`` (the default checkpoint: the run makes its folder in the cache)."""
    entries = [Path(d) for d in config.data if str(d) != "package"]
    for what, path in written.items():
        if path.is_dir():
            raise UserError(f"{what} {path} is a folder; give a file name")
        folder = path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if folder.exists() and not folder.is_dir():
            raise UserError(f"{what} {path}: {folder} is a file, not a folder")
        # As stylize and export-lut refuse one: a mistyped folder was made, and the weights went there.
        if what not in made and not path.parent.is_dir():
            raise UserError(f"{what} folder does not exist: {path.parent}")
        if folder.is_dir():
            # Found out at the end otherwise, after the whole run: torch.save's "open file failed", an
            # internal error (a read-only folder, /proc, an installed package's weights folder).
            check_writable_folder(folder, what)
        if any(same_file(path, src) for src in [*entries, *sources]):
            raise UserError(f"{what} {path} is one of the training files; choose another path")
        for entry in entries:
            if inside_data and entry.is_dir() and _inside(path, entry):
                harm = " (it would overwrite a file there)" if path.exists() else ""
                raise UserError(f"{what} {path} lies inside the training folder {entry}{harm}; write it elsewhere")
    items = list(written.items())
    for i, (a_what, a) in enumerate(items):
        for b_what, b in items[i + 1 :]:
            if same_file(a, b):
                raise UserError(f"{a_what} and {b_what} must be different files ({a})")
            if _inside(a, b) or _inside(b, a):
                raise UserError(f"{a_what} {a} and {b_what} {b}: one would have to be the other's folder; "
                                "choose paths apart")


def plan_outputs(config: TrainConfig, default_out: Path, default_checkpoint: Path, sources: Sequence[Path],
                 more: dict[str, Path] | None = None, *, model: str,
                 params: Collection[str]) -> tuple[Path, Path]:
    """(weights file, checkpoint file) of a run, its defaults filled in, once :func:`check_outputs` passed
    them, with ``more`` (other files the run writes) and the training files found (``sources``), and an
    existing weights file or checkpoint there is one of ``model`` (whose parameter names are ``params``).
    Every trainer calls it before its first step."""
    out = Path(config.out) if config.out else Path(default_out)
    ckpt = Path(config.checkpoint) if config.checkpoint else Path(default_checkpoint)
    out_flag = "--out" if config.out else "the weights file"
    ckpt_flag = "--checkpoint" if config.checkpoint else "the checkpoint"
    check_outputs(config, {out_flag: out, ckpt_flag: ckpt, **(more or {})}, sources,
                  made=() if config.checkpoint else (ckpt_flag,))
    check_replaceable_weights(out, out_flag, model, params)
    # The default one too: the cache folder is ours, but a file found at its name is not ours to lose.
    check_replaceable_checkpoint(ckpt, ckpt_flag, model, params)
    return out, ckpt


_FLAGS = {"steps": "--steps", "batch": "--batch", "size": "--size", "lr": "--lr", "seed": "--seed"}


def check_resumed_setup(path: Path, recorded: Any, setup: dict[str, Any]) -> None:
    """Refuse (UserError) to resume a checkpoint made with other settings than ``setup``: the run would go
    on under the new ones (another learning-rate schedule, other crops) and label the weights with them,
    a recipe no run followed. A checkpoint that records none (an older mvstylizer's) cannot be checked."""
    if recorded == setup:
        return
    if not isinstance(recorded, dict):
        raise UserError(f"checkpoint {path} does not record the settings it was made with (an older mvstylizer "
                        "wrote it), so it cannot be resumed as the same run; start without --resume")
    differ = [k for k in setup if recorded.get(k) != setup[k]] + [k for k in recorded if k not in setup]
    made = ", ".join(f"{_FLAGS.get(k, k)} {recorded.get(k)}" for k in differ)
    given = ", ".join(f"{_FLAGS.get(k, k)} {setup.get(k)}" for k in differ)
    raise UserError(f"checkpoint {path} was made with {made}, not {given}; resume with the same settings "
                    "or drop --resume")


def check_finite(value: float, step: int) -> None:
    """Stop a run whose loss went NaN or infinite (UserError): nothing more it writes would be of use,
    and the last checkpoint and the weights file stay as they were."""
    if not math.isfinite(value):
        raise UserError(f"training diverged at step {step} (loss {value}); the checkpoint and weights files were "
                        "left as they were; try a lower --lr")


def _finite_state(state: dict[str, Any]) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in state.values() if torch.is_tensor(v) and v.is_floating_point())


class Checkpointer:
    """Saves and restores training state for one run."""

    def __init__(self, path: Path, model: str | None = None) -> None:
        """``model``: the name recorded in the checkpoint, which a run of another model then never replaces."""
        self.path = Path(path)
        self.model = model
        _make_folder(self.path.parent)

    def save(self, step: int, model: torch.nn.Module, optim: torch.optim.Optimizer, extra: dict[str, Any]) -> None:
        if not _finite_state(model.state_dict()):
            raise UserError(f"training diverged by step {step} (the model holds NaN or infinite values); "
                            f"{self.path} was left as it was; try a lower --lr")
        state = {"step": step, "model": model.state_dict(), "optim": optim.state_dict(),
                 "rng": torch.get_rng_state(), "extra": extra, "saved_at": time.time()}
        if self.model is not None:
            state["model_name"] = self.model
        _save(state, self.path)

    def load(self, model: torch.nn.Module, optim: torch.optim.Optimizer) -> tuple[int, dict[str, Any]]:
        """Restore into ``model`` and ``optim``; returns (step, extra). UserError when there is no
        checkpoint: a mistyped path started afresh and, without ``--out``, replaced the shipped weights."""
        if not self.path.is_file():
            raise UserError(f"--resume: no checkpoint at {self.path}; start without --resume, or give the "
                            "--checkpoint the interrupted run wrote")
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
    """Parameters only, fp16, with the training recipe alongside (atomic write). Non-finite weights are
    refused (UserError) and the file at ``path`` is kept."""
    path = Path(path)
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    if not _finite_state(state):  # diverged, or beyond fp16's range: never worth a file, least of all the shipped one
        raise UserError(f"the trained weights hold NaN or infinite values (training diverged: try a lower --lr); "
                        f"{path} was left as it was")
    _make_folder(path.parent)
    _save({"state_dict": state, "meta": meta}, path)
    return path


def _save(obj: Any, path: Path) -> None:
    """``torch.save`` atomically; a failed write (a full disk) is a UserError and ``path`` stays as it was."""
    # Serialised in memory, then written as any file is: torch's own file writer reported a full disk
    # as "[enforce fail at inline_container.cc:672] ... file write failed", without the system's reason.
    data = io.BytesIO()
    torch.save(obj, data)
    try:
        atomic_write_bytes(path, data.getvalue())
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}; it was left as it was") from None


def load_weights(model: torch.nn.Module, path: Path) -> dict[str, Any]:
    """Load fp16 weights saved by :func:`save_weights` into a float32 model; returns the metadata. Another
    model's weights are a UserError; a file of another layout is left to the caller to name."""
    from .safeload import load_pt

    return _load_state(model, load_pt(Path(path)), Path(path))  # weights only: a model file is data, never code


def _load_state(model: torch.nn.Module, blob: dict[str, Any], path: Path) -> dict[str, Any]:
    """:func:`load_weights` of a file already read (``blob``, from ``path``)."""
    meta = dict(blob.get("meta", {}))
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()})
    except RuntimeError:  # another model's parameters: other names or shapes
        of = f"the {meta['model']} model" if isinstance(meta.get("model"), str) else "another model"
        raise UserError(f"{path} holds the weights of {of}, not of this one; give this model's weights "
                        "file") from None
    return meta


def load_trained(path: Path, build: Callable[[Any], torch.nn.Module], missing: str
                 ) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A trained network and its metadata from a :func:`save_weights` file: ``build(arch)`` makes the
    network the file records (its ``meta["arch"]``, None if absent), in eval mode. No file at ``path``
    is a UserError saying ``missing``."""
    from .safeload import load_pt

    if not path.is_file():
        raise UserError(missing)
    blob = load_pt(path)  # read once: the arch to build and the weights to load
    net = build(dict(blob.get("meta", {})).get("arch"))
    meta = _load_state(net, blob, path)
    net.eval()
    return net, meta


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
