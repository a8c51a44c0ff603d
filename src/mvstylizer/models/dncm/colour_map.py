"""The per-pixel colour map: a numpy reference and the same maths as a tiny ONNX graph.

Shared by the ONNX stylizer, the LUT export and the tests; the torch form is in :mod:`.network`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ...errors import UserError

DEFAULT_ARCH: dict[str, Any] = {"k": 16, "thumb": 128, "stem": 32, "widths": [48, 96, 128], "hidden": 256,
                                "quantiles": 16}
CHUNK = 1 << 20  # pixels per block in the per-pixel map: bounds memory at 4K, stays cache friendly


def thumbnail(img: np.ndarray, size: int) -> np.ndarray:
    """The encoder's view of an image: ``size`` x ``size`` float32 RGB, area-averaged (aspect ignored:
    only colour statistics and coarse semantics matter). Training crops go through the same call."""
    img = np.ascontiguousarray(img, dtype=np.float32)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise UserError(f"expected an HxWx3 RGB image, got shape {img.shape}")
    if img.shape[:2] != (size, size):
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return np.clip(img, 0.0, 1.0)


@dataclass(frozen=True)
class LiftParams:
    """The fixed (image-independent) part of one DNCM module: phi's A (3 x m) and a (m)."""

    A: np.ndarray
    a: np.ndarray


def map_colours_np(px: np.ndarray, lift: LiftParams, m: np.ndarray) -> np.ndarray:
    """phi(px) . M for an N x 3 float32 array, M = T . Q (k x 3). No clipping."""
    h = px @ lift.A
    h += lift.a
    np.tanh(h, out=h)
    out = h @ m[4:]
    out += px @ m[:3]
    out += m[3]
    return out


def transfer_np(pixels: np.ndarray, lift_n: LiftParams, m_n: np.ndarray, lift_s: LiftParams,
                m_s: np.ndarray) -> np.ndarray:
    """Normalise with (lift_n, m_n) then stylise with (lift_s, m_s); any ...x3 array, clipped to [0,1]."""
    shape = pixels.shape
    flat = np.ascontiguousarray(pixels, dtype=np.float32).reshape(-1, 3)
    out = np.empty_like(flat)
    m_n, m_s = m_n.astype(np.float32), m_s.astype(np.float32)
    for i in range(0, len(flat), CHUNK):
        z = map_colours_np(flat[i : i + CHUNK], lift_n, m_n)
        y = map_colours_np(z, lift_s, m_s)
        np.clip(y, 0.0, 1.0, out=out[i : i + CHUNK])
    return out.reshape(shape)


def colour_map_onnx(lift_n: LiftParams, lift_s: LiftParams, k: int) -> bytes:
    """An ONNX graph of the per-pixel transfer: inputs ``pixels`` (N x 3), ``content_matrix`` and
    ``style_matrix`` (k x 3); output the clipped colours (N x 3). Same maths as :func:`transfer_np`;
    ONNX Runtime's vectorised tanh makes it several times faster than numpy at 1080p."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array([v], np.int64), n)
             for v, n in [(0, "i0"), (3, "i3"), (4, "i4"), (k, "ik")]]
    inits += [numpy_helper.from_array(np.array(0, np.float32), "zero"),
              numpy_helper.from_array(np.array(1, np.float32), "one")]
    nodes = []
    for p, x, m, lift in (("n_", "pixels", "content_matrix", lift_n), ("s_", "n_out", "style_matrix", lift_s)):
        inits += [numpy_helper.from_array(lift.A.astype(np.float32), p + "A"),
                  numpy_helper.from_array(lift.a.astype(np.float32), p + "a")]
        nodes += [
            helper.make_node("MatMul", [x, p + "A"], [p + "xa"]),
            helper.make_node("Add", [p + "xa", p + "a"], [p + "pre"]),
            helper.make_node("Tanh", [p + "pre"], [p + "h"]),
            helper.make_node("Slice", [m, "i0", "i3", "i0"], [p + "m_lin"]),
            helper.make_node("Slice", [m, "i3", "i4", "i0"], [p + "m_one"]),
            helper.make_node("Slice", [m, "i4", "ik", "i0"], [p + "m_tanh"]),
            helper.make_node("MatMul", [x, p + "m_lin"], [p + "y_lin"]),
            helper.make_node("MatMul", [p + "h", p + "m_tanh"], [p + "y_tanh"]),
            helper.make_node("Add", [p + "y_lin", p + "y_tanh"], [p + "y"]),
            helper.make_node("Add", [p + "y", p + "m_one"], [p + "out"]),
        ]
    nodes.append(helper.make_node("Clip", ["s_out", "zero", "one"], ["colours"]))
    graph = helper.make_graph(
        nodes, "dncm_colour_map",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("content_matrix", TensorProto.FLOAT, [k, 3]),
         helper.make_tensor_value_info("style_matrix", TensorProto.FLOAT, [k, 3])],
        [helper.make_tensor_value_info("colours", TensorProto.FLOAT, ["N", 3])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 10)
    onnx.checker.check_model(model)
    return model.SerializeToString()
