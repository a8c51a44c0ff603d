"""Where an edge keeps the global model federated learning gives it: the one file contract.

``mvstylizer edge fl-join`` (edge/fl_client.py) writes each global model it receives here, in the
model's own weights format, with a sha256 stamp beside it; ``mvstylizer edge serve --data-dir``
(edge/model_sync.py) polls the same path and hot-swaps what lands. Both sides take the path from here.
"""

from __future__ import annotations

from pathlib import Path

# The model federated learning retrains today: the only edge model with learned weights that
# edges fine-tune (regions has none; wct2 is experimental).
FEDERATED_MODEL = "dncm"


def model_file(model: str = FEDERATED_MODEL) -> Path:
    """The global model's path relative to an edge's data folder, e.g. ``models/dncm.pt``."""
    return Path("models") / f"{model}.pt"


MODEL_FILE = model_file()
