"""Weights-only loading of ``.pt`` files: a model file is data, never code.

``torch.load(..., weights_only=False)`` unpickles arbitrary objects, so whoever can write a model file
(the edge polls ``DATA_DIR/models/dncm.pt`` for federated updates) could run code in the process that
loads it. Every ``.pt`` file mvstylizer reads goes through :func:`load_pt`, which uses torch's
restricted unpickler (``weights_only=True``: tensors, dicts, lists, tuples, strings and numbers) and
allows one extra type, ``torch.torch_version.TorchVersion`` (a ``str`` subclass that older weight files
carry in their metadata as ``torch.__version__``). Anything else is refused with :class:`UnsafeModelFile`.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError


class UnsafeModelFile(UserError):
    """A model file that is not loadable as weights only (code, foreign objects, or not a torch file)."""


def load_pt(source: Path | str | bytes) -> Any:
    """Load a ``.pt`` file (a path, or its bytes) with torch's weights-only unpickler, on the CPU."""
    import torch
    from torch.torch_version import TorchVersion

    what = "model bytes" if isinstance(source, (bytes, bytearray)) else str(source)
    f = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else Path(source)
    try:
        with torch.serialization.safe_globals([TorchVersion]):
            return torch.load(f, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # UnpicklingError, RuntimeError (not a zip), EOFError...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UnsafeModelFile(f"{what} is not a weights-only model file ({type(e).__name__}: {first[:300]})") from None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def params_digest(arrays: dict[str, np.ndarray]) -> str:
    """The content hash of a model's parameters as they travel in federated learning.

    sha256 over the names (sorted) and each array as float32 bytes; the cloud records it per round and
    sends it with the global model, the edge checks what it received against it.
    """
    h = hashlib.sha256()
    for k in sorted(arrays):
        h.update(k.encode())
        h.update(np.ascontiguousarray(arrays[k], dtype=np.float32).tobytes())
    return h.hexdigest()
