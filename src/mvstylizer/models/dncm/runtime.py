"""dncm's stylizers: :class:`DNCMOnnxStylizer` (ONNX Runtime alone, the default) and
:class:`DNCMStylizer` (torch, ``dncm:torch``). Both digest a style once and map colours per pixel."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import UserError
from . import weights as weight_files
from .colour_map import CHUNK, LiftParams, colour_map_onnx, thumbnail, transfer_np


@dataclass
class DNCMStyle:
    """A style digested once: its code r (k x k) and the sDNCM matrix r . Q_s (k x 3)."""

    code: np.ndarray
    matrix: np.ndarray


class DNCMStylizer:
    """Neural-Preset-style learned colour mapping (torch). Global and resolution-free."""

    name = "dncm"
    description = ("learned colour mapping (Neural-Preset DNCM, nonlinear lift): a small CNN reads a "
                   "128px thumbnail, the colour map runs per pixel at full resolution (global)")

    def __init__(self, weights: Path | None = None) -> None:
        import torch

        from .network import load_net

        self._torch = torch
        self.net, self.meta = load_net(weights)
        self.thumb = int(self.net.arch["thumb"])
        self.k = int(self.net.arch["k"])
        p = self.net.norm_map, self.net.style_map
        self.lift_n = LiftParams(p[0].A.detach().numpy().copy(), p[0].a.detach().numpy().copy())
        self.lift_s = LiftParams(p[1].A.detach().numpy().copy(), p[1].a.detach().numpy().copy())
        self.q_n = p[0].Q.detach().numpy().copy()
        self.q_s = p[1].Q.detach().numpy().copy()
        self.neutral_code = self.net.neutral_code.detach().numpy().copy()

    def codes(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(d, r) for an image: its normalisation and style codes, each k x k."""
        t = self._torch.from_numpy(thumbnail(img, self.thumb).transpose(2, 0, 1)[None].copy())
        with self._torch.inference_mode():
            d, r = self.net.codes(t)
        return d[0].numpy().copy(), r[0].numpy().copy()

    def prepare_style(self, style: np.ndarray) -> DNCMStyle:
        _, r = self.codes(style)
        return DNCMStyle(code=r, matrix=r @ self.q_s)

    def content_matrix(self, content: np.ndarray | None) -> np.ndarray:
        """d . Q_n for a content image; the learned neutral normalisation when ``content`` is None."""
        d = self.neutral_code if content is None else self.codes(content)[0]
        return d @ self.q_n

    def map_colours(self, pixels: np.ndarray, content_matrix: np.ndarray, style: DNCMStyle) -> np.ndarray:
        """The per-pixel transfer for any ...x3 array of colours (numpy reference implementation)."""
        return transfer_np(pixels, self.lift_n, content_matrix, self.lift_s, style.matrix)

    def stylize(self, content: np.ndarray, style_state: DNCMStyle) -> np.ndarray:
        torch = self._torch
        m_n = torch.from_numpy(self.content_matrix(content).astype(np.float32))
        m_s = torch.from_numpy(style_state.matrix.astype(np.float32))
        flat = torch.from_numpy(np.ascontiguousarray(content, dtype=np.float32).reshape(-1, 3))
        out = torch.empty_like(flat)
        nm, sm = self.net.norm_map, self.net.style_map
        with torch.inference_mode():
            for i in range(0, flat.shape[0], CHUNK):
                z = nm.map_matrix(flat[i : i + CHUNK], m_n)
                torch.clamp(sm.map_matrix(z, m_s), 0.0, 1.0, out=out[i : i + CHUNK])
        return out.numpy().reshape(content.shape)


@dataclass
class DNCMOnnxStylizer:
    """The same model on ONNX Runtime alone (no torch at run time once the file exists): the encoder
    from :func:`~.export.export_onnx`, the per-pixel map as a second, tiny ORT graph built in memory from the
    lift parameters stored in the file's metadata (:func:`~.colour_map.colour_map_onnx`).

    ``onnx_path`` defaults to the graph shipped with the package (:func:`~.weights.shipped_onnx`) when it holds
    the weights asked for (``weights`` None, or the shipped ``dncm.pt``); otherwise to a file in the
    cache, exported from ``weights`` with torch on first use (keyed by the weights' hash, so
    retrained weights get a fresh export).
    """

    onnx_path: Path | None = None
    weights: Path | None = None
    threads: int = 0
    name: str = "dncm-onnx"
    description: str = "learned colour mapping (dncm) on ONNX Runtime: encoder and per-pixel map"
    _session: Any = field(default=None, init=False, repr=False)
    _map: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        import onnxruntime as ort

        path = self.onnx_path
        if path is None:
            w = Path(self.weights) if self.weights is not None else weight_files.default_weights()
            if not w.is_file():
                raise UserError(f"no trained dncm weights at {w}; "
                                "train them with: mvstylizer train dncm --data package")
            path = weight_files.shipped_onnx()
            if not path.is_file() or weight_files.onnx_weights_hash(path) != weight_files.sha256(w):
                path = self._export_to_cache(w)
        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
        # Idle ORT workers spin-wait after each run by default. In an embedded edge the phone's numpy
        # and OpenCV work runs right after, and the spinning stole its cores (a key's colour fit
        # took ~47 ms instead of ~6 ms on two cores).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        extra = json.loads(self._session.get_modelmeta().custom_metadata_map["dncm"])
        self.thumb = int(extra["arch"]["thumb"])

        def f32(v: Any) -> np.ndarray:
            return np.asarray(v, np.float32)

        self.lift_n = LiftParams(f32(extra["A_n"]), f32(extra["a_n"]))
        self.lift_s = LiftParams(f32(extra["A_s"]), f32(extra["a_s"]))
        self.neutral_matrix = f32(extra["neutral_matrix"])
        k = int(extra["arch"]["k"])
        self._map = ort.InferenceSession(colour_map_onnx(self.lift_n, self.lift_s, k), opts,
                                         providers=["CPUExecutionProvider"])
        self.onnx_path = path

    @staticmethod
    def _export_to_cache(weights: Path) -> Path:
        from ..vgg_weights import export_cache_path

        # Keyed by the exporter's source too; read as a file, since importing it needs torch.
        path = export_cache_path("dncm", weights, Path(__file__).with_name("export.py")) / "dncm.onnx"
        if not path.is_file():
            try:
                import torch  # noqa: F401 - only to say what is missing, before the export needs it
            except ModuleNotFoundError:
                raise UserError(f"dncm weights {weights} have no shipped ONNX graph, and exporting one needs "
                                "PyTorch: pip install 'mvstylizer[train]'") from None
            from .export import export_onnx

            export_onnx(path, weights)
        return path

    def _matrices(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = thumbnail(img, self.thumb).transpose(2, 0, 1)[None].copy()
        m_n, m_s = self._session.run(None, {"thumb": t})
        return m_n[0], m_s[0]

    def prepare_style(self, style: np.ndarray) -> DNCMStyle:
        _, m_s = self._matrices(style)
        return DNCMStyle(code=np.empty((0, 0), np.float32), matrix=m_s)

    def content_matrix(self, content: np.ndarray | None) -> np.ndarray:
        return self.neutral_matrix if content is None else self._matrices(content)[0]

    def map_colours(self, pixels: np.ndarray, content_matrix: np.ndarray, style: DNCMStyle) -> np.ndarray:
        shape = pixels.shape
        flat = np.ascontiguousarray(pixels, dtype=np.float32).reshape(-1, 3)
        feeds = {"content_matrix": np.ascontiguousarray(content_matrix, dtype=np.float32),
                 "style_matrix": np.ascontiguousarray(style.matrix, dtype=np.float32)}
        step = 2 * CHUNK  # a whole 1080p frame per call; bounded memory at 4K
        parts = [self._map.run(None, {"pixels": flat[i : i + step], **feeds})[0] for i in range(0, len(flat), step)]
        return (parts[0] if len(parts) == 1 else np.concatenate(parts)).reshape(shape)

    def stylize(self, content: np.ndarray, style_state: DNCMStyle) -> np.ndarray:
        return self.map_colours(content, self.content_matrix(content), style_state)
