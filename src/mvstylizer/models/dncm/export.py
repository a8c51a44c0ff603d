"""Export the trained encoder as the ONNX graph the core install runs (``python -m mvstylizer.models.dncm``)."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import onnx
import torch

from ...files import atomic_path
from . import weights as weight_files
from .network import load_net


def export_onnx(path: str | os.PathLike[str], weights: Path | None = None) -> Path:
    """Write the encoder as ONNX: input ``thumb`` (1 x 3 x S x S, RGB in [0,1]); outputs
    ``content_matrix`` = d . Q_n and ``style_matrix`` = r . Q_s (each 1 x k x 3).

    The image-independent lift parameters (A, a of both modules), the neutral code and the
    architecture travel in the model's metadata (``dncm`` key, JSON), so the ONNX file alone is enough
    to stylise and to export LUTs without torch.
    """
    net, meta = load_net(weights)
    nm, sm = net.norm_map, net.style_map

    class _Export(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, thumb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            d, r = self.net.codes(thumb)
            return nm.matrix(d), sm.matrix(r)

    s = int(net.arch["thumb"])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {
        "arch": net.arch,
        "A_n": nm.A.detach().numpy().tolist(), "a_n": nm.a.detach().numpy().tolist(),
        "A_s": sm.A.detach().numpy().tolist(), "a_s": sm.a.detach().numpy().tolist(),
        "neutral_matrix": (net.neutral_code @ nm.Q).detach().numpy().tolist(),
        "trained": {k: meta.get(k) for k in ("wall_time_s", "final_loss", "steps", "seed") if k in meta},
        # Which weights this graph holds: a shipped graph whose hash no longer matches dncm.pt is stale.
        "weights_sha256": weight_files.sha256(Path(weights) if weights is not None else weight_files.default_weights()),
    }
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Export().eval(), (torch.rand(1, 3, s, s),), str(tmp), dynamo=False,
                          input_names=["thumb"], output_names=["content_matrix", "style_matrix"], opset_version=17)
        model = onnx.load(str(tmp))
        entry = model.metadata_props.add()
        entry.key, entry.value = "dncm", json.dumps(extra)
        onnx.save(model, str(tmp))
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m mvstylizer.models.dncm [OUT]``: (re)make the shipped encoder graph from the shipped
    weights (needs torch: ``pip install 'mvstylizer[train]'``). Run it after ``mvstylizer train dncm``."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else weight_files.shipped_onnx()
    export_onnx(out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) from {weight_files.default_weights()}")
    return 0
