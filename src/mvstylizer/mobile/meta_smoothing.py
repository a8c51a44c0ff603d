"""Learned meta-smoothing on the phone: onnxruntime for the network, OpenCV for full resolution.

The network (trained by ``mvstylizer train smoothing``; design in
:mod:`mvstylizer.models.meta_smoother`) reads the low-resolution stylized key frame, the
low-resolution original and the scale factor, and returns colour maps on a stride-4 grid plus the
frame's global map. Here the grid is resized to the key frame's size (the 15-channel maps the
transform interpolation warps: 12 affine coefficients and a 3-channel detail gain), and
:func:`mvstylizer.colour.affine.render` makes the full-resolution frame. No torch on this path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..colour.affine import Scratch, render, resize_maps
from ..colour.tone_curve import fit_tone_curves, guide
from ..errors import UserError

ONNX_FILE = Path(__file__).parent / "weights" / "meta_smoother.onnx"


@dataclass
class LearnedSmoother:
    """Same interface as :class:`mvstylizer.mobile.smoothing.GuidedUpsampler`."""

    model: Path = ONNX_FILE
    threads: int = 2
    _session: Any = field(default=None, init=False, repr=False)  # an onnxruntime.InferenceSession
    _scratch: Scratch = field(default_factory=Scratch, init=False, repr=False)
    # Keys in flight call :meth:`maps` from several threads; the session is made once, then shared
    # (onnxruntime runs one session from many threads).
    _made: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def _sess(self) -> Any:  # an onnxruntime.InferenceSession (onnxruntime ships no type information)
        with self._made:
            if self._session is None:
                self._session = self._open()
            return self._session

    def _open(self) -> Any:
        import onnxruntime as ort

        if not Path(self.model).is_file():
            raise UserError(f"meta-smoothing model {self.model} is missing; run `mvstylizer train "
                            f"smoothing` to make it, or pass --smoothing guided")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        # ORT's idle workers spin after each run by default, stealing the cores OpenCV's
        # full-resolution passes need next (measured: 36 ms instead of 25 ms per 1080p frame).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(self.model), opts, providers=["CPUExecutionProvider"])

    def maps(self, content_low: np.ndarray, styled_low: np.ndarray, scale: float = 4.0
             ) -> tuple[np.ndarray, np.ndarray]:
        """Local maps (HxWx15: affine coefficients, then detail gain) and the global map (12 floats,
        then the frame's tone curves, 3 x K: the maps take the content seen through those curves)."""
        if content_low.shape != styled_low.shape:
            raise ValueError(f"content {content_low.shape} and stylized {styled_low.shape} sizes differ")
        h, w = content_low.shape[:2]
        if min(h, w) < 8:
            raise ValueError(f"key frame {w}x{h} is too small for meta-smoothing (8 px a side at least)")
        curves = fit_tone_curves(content_low, styled_low)

        def chw(x: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)[None]

        grid, global_map = self._sess().run(None, {
            "styled": chw(styled_low), "content": chw(guide(curves, content_low)),
            "scale": np.array([max(1.0, float(scale))], np.float32)})
        maps = resize_maps(np.ascontiguousarray(grid[0].transpose(1, 2, 0)), w, h)
        return maps, np.concatenate([global_map[0], curves.reshape(-1)])

    def upscale(self, styled_low: np.ndarray, content_low: np.ndarray, content8: np.ndarray) -> np.ndarray:
        """Full-resolution stylized frame (uint8 RGB) at ``content8``'s size."""
        coeffs, global_map = self.maps(content_low, styled_low, content8.shape[1] / content_low.shape[1])
        return render(coeffs, global_map, content_low, content8, self._scratch)



@dataclass(frozen=True)
class SmootherSpec:
    """One meta-smoothing choice: an entry of :data:`SMOOTHERS`. ``build()`` returns the module that
    cleans the edge's output before the key's colour transform is fit to it, or None to fit straight
    to the edge's output (the transform's own regularisation is then the smoothing)."""

    name: str
    help: str
    build: Callable[[], LearnedSmoother | None]


# Adding a smoother is one entry here; the CLI and the config read their choices from it.
SMOOTHERS: dict[str, SmootherSpec] = {s.name: s for s in (
    SmootherSpec("guided", "the key's colour transform fit straight to the edge's output", lambda: None),
    SmootherSpec("learned", "the transform fit to the learned module's cleaned version of the edge's output "
                 "(blotches, halos, JPEG blocks removed first)", LearnedSmoother),
)}
