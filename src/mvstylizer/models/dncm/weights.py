"""Which weights and encoder graph dncm runs: the shipped files, and whether a graph matches its weights."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

WEIGHTS_NAME = "dncm.pt"
ONNX_NAME = "dncm.onnx"  # the shipped weights' encoder graph, made by `python -m mvstylizer.models.dncm`
_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def default_weights() -> Path:
    # The folder is training.WEIGHTS_DIR, not imported from there: that module imports torch, which
    # the ONNX path must not pay for (~1 s of every run's start).
    return _WEIGHTS_DIR / WEIGHTS_NAME


def shipped_onnx() -> Path:
    """The ONNX graph of the shipped weights (see :func:`~.export.export_onnx`); loaded without torch."""
    return _WEIGHTS_DIR / ONNX_NAME


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def onnx_weights_hash(path: Path) -> str | None:
    """The ``weights_sha256`` an :func:`~.export.export_onnx` graph records (None if absent), read with onnx
    without loading the weights' tensors."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for entry in model.metadata_props:
        if entry.key == "dncm":
            return json.loads(entry.value).get("weights_sha256")
    return None
