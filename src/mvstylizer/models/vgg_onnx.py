"""The VGG16 trunk on onnxruntime, torch-free: features of the regions model and of the metrics.

The trunk is VGG16 (ImageNet weights, ``models.vgg_weights``) from the input up to relu4_1:

    conv1_1 relu1_1* conv1_2 relu pool | conv2_1 relu2_1* conv2_2 relu pool |
    conv3_1 relu3_1* conv3_2 relu conv3_3 relu pool | conv4_1 relu4_1*

3x3 convolutions with padding 1, 2x2/2 max-pooling (floor), dynamic height and width; the four
starred activations and their Gram matrices (``gram_relu1_1`` ...) are the graph's outputs. The Grams
are computed inside the graph so that they run on the session's own thread pool (numpy's BLAS
threads stall badly on a shared 2-core machine). The graph is written with ``onnx.helper`` once and
cached as ``cache_dir()/vgg16_relu4_1_v2.onnx``; each :class:`VGGFeatures` holds its own session.

``max_side`` (default 512) area-downscales an image whose longer side exceeds it before the trunk:
features are scale dependent, so compare numbers taken at the same ``max_side``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mvstylizer.files import atomic_write_bytes
from mvstylizer.imaging import as_float01, shrink_to

from .vgg_weights import cache_dir, load_vgg16_weights, preprocess

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
CONTENT_LAYER = "relu4_1"
DEFAULT_MAX_SIDE = 512
MIN_SIDE = 8  # three 2x2 poolings before relu4_1: smaller inputs would have no relu4_1 pixels
_ONNX_NAME = "vgg16_relu4_1_v2.onnx"
# (conv layer in vgg_weights.LAYERS, output name if it is one of ours, max-pool after its ReLU)
_TRUNK = (
    ("block1_conv1", "relu1_1", False),
    ("block1_conv2", None, True),
    ("block2_conv1", "relu2_1", False),
    ("block2_conv2", None, True),
    ("block3_conv1", "relu3_1", False),
    ("block3_conv2", None, False),
    ("block3_conv3", None, True),
    ("block4_conv1", "relu4_1", False),
)


def build_trunk_model():
    """The ONNX ModelProto of the VGG16 trunk up to relu4_1 (input ``image``: 1x3xHxW float32)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = load_vgg16_weights()
    nodes, inits = [], []
    x = "image"
    for layer, out_name, pool in _TRUNK:
        w, b = weights[layer]
        inits += [numpy_helper.from_array(w, f"{layer}.w"), numpy_helper.from_array(b, f"{layer}.b")]
        conv = f"{layer}.conv"
        nodes.append(helper.make_node("Conv", [x, f"{layer}.w", f"{layer}.b"], [conv], name=conv,
                                      kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]))
        x = out_name or f"{layer}.relu"
        nodes.append(helper.make_node("Relu", [conv], [x], name=f"{layer}.relu"))
        if pool:
            pooled = f"{layer}.pool"
            nodes.append(helper.make_node("MaxPool", [x], [pooled], name=pooled,
                                          kernel_shape=[2, 2], strides=[2, 2]))
            x = pooled
    # Gram per style layer: F = reshape(x, [C, HW]); G = F F^T / size(x)  (batch is 1, so size = C H W)
    outputs, gram_outputs = [], []
    for layer, out_name, _ in _TRUNK:
        if not out_name:
            continue
        c = weights[layer][0].shape[0]
        outputs.append(helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [1, c, None, None]))
        inits.append(numpy_helper.from_array(np.array([c, -1], np.int64), f"{out_name}.shape2d"))
        g = f"gram_{out_name}"
        nodes += [
            helper.make_node("Reshape", [out_name, f"{out_name}.shape2d"], [f"{g}.f"], name=f"{g}.reshape"),
            helper.make_node("Transpose", [f"{g}.f"], [f"{g}.ft"], name=f"{g}.transpose", perm=[1, 0]),
            helper.make_node("MatMul", [f"{g}.f", f"{g}.ft"], [f"{g}.ffT"], name=f"{g}.matmul"),
            helper.make_node("Size", [out_name], [f"{g}.n"], name=f"{g}.size"),
            helper.make_node("Cast", [f"{g}.n"], [f"{g}.nf"], name=f"{g}.cast", to=TensorProto.FLOAT),
            helper.make_node("Div", [f"{g}.ffT", f"{g}.nf"], [g], name=f"{g}.div"),
        ]
        gram_outputs.append(helper.make_tensor_value_info(g, TensorProto.FLOAT, [c, c]))
    outputs += gram_outputs
    graph = helper.make_graph(
        nodes, "vgg16_relu4_1",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "height", "width"])],
        outputs, initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="mvstylizer.models.vgg_onnx")
    model.ir_version = 8  # readable by every onnxruntime the project allows (>= 1.17)
    onnx.checker.check_model(model)
    return model


def trunk_path() -> Path:
    """Path of the cached trunk .onnx, written (atomically) on first use."""
    path = cache_dir() / _ONNX_NAME
    if not path.is_file():
        atomic_write_bytes(path, build_trunk_model().SerializeToString())
    return path


def downscale(img: np.ndarray, max_side: int | None) -> np.ndarray:
    """Area-downscale so the longer side is at most ``max_side`` (None or already small: unchanged)."""
    if max_side is None:
        return img
    if max_side < MIN_SIDE:
        raise ValueError(f"max_side must be >= {MIN_SIDE}, got {max_side}")
    return shrink_to(img, max_side, min_side=MIN_SIDE)


class VGGFeatures:
    """VGG16 relu1_1..relu4_1 activations of RGB images, on one onnxruntime CPU session.

    ``threads``: intra-op threads for onnxruntime (None: its default, all cores). Not thread-safe
    to share across processes; create one per worker.
    """

    def __init__(self, threads: int | None = None, model_path: str | Path | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads is not None:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        # Idle threads sleep instead of spinning: on a shared machine spinning only steals cores.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        path = Path(model_path) if model_path is not None else trunk_path()
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        names = {o.name for o in self.session.get_outputs()}
        expected = set(STYLE_LAYERS) | {f"gram_{k}" for k in STYLE_LAYERS}
        if names != expected:
            raise ValueError(f"{path} outputs {sorted(names)}, expected {sorted(expected)}")

    # --- features ------------------------------------------------------------------------
    def _run(self, img: np.ndarray, max_side: int | None, names: list[str]) -> list[np.ndarray]:
        rgb = as_float01(img)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"VGG features need HxWx3 RGB images, got shape {rgb.shape}")
        rgb = downscale(np.clip(rgb, 0.0, 1.0), max_side)
        if min(rgb.shape[:2]) < MIN_SIDE:
            raise ValueError(f"images must be at least {MIN_SIDE}x{MIN_SIDE} pixels, got {rgb.shape[1]}x{rgb.shape[0]}")
        return self.session.run(names, {"image": preprocess(rgb)})

    def features(self, img: np.ndarray, max_side: int | None = DEFAULT_MAX_SIDE) -> dict[str, np.ndarray]:
        """``{layer: CxHxW float32}`` for the four layers; ``img`` is HxWx3 RGB in [0,1] (or uint8)."""
        return {k: v[0] for k, v in zip(STYLE_LAYERS, self._run(img, max_side, list(STYLE_LAYERS)), strict=True)}

    __call__ = features

    def grams(self, img: np.ndarray, max_side: int | None = DEFAULT_MAX_SIDE) -> dict[str, np.ndarray]:
        """``{layer: CxC float32 Gram}`` (G = F F^T / (C H W)) for :data:`STYLE_LAYERS`."""
        return dict(zip(STYLE_LAYERS, self._run(img, max_side, [f"gram_{k}" for k in STYLE_LAYERS]), strict=True))

    def features_and_grams(self, img: np.ndarray, max_side: int | None = DEFAULT_MAX_SIDE
                           ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Both of the above from one pass."""
        n = len(STYLE_LAYERS)
        outs = self._run(img, max_side, list(STYLE_LAYERS) + [f"gram_{k}" for k in STYLE_LAYERS])
        return ({k: v[0] for k, v in zip(STYLE_LAYERS, outs[:n], strict=True)},
                dict(zip(STYLE_LAYERS, outs[n:], strict=True)))
