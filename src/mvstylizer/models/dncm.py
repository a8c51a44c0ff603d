"""Learned colour mapping, Neural-Preset style (Ke et al., CVPR 2023): ``dncm``.

How it works
------------
A small CNN encoder (ours, trained from scratch by :mod:`.dncm_train`) looks at a 128x128 thumbnail
of an image and predicts two k x k matrices (k = 16): ``d``, which *removes* the image's colour style
(nDNCM, "normalisation"), and ``r``, which *applies* it (sDNCM, "stylisation"). Transferring the style
of image S onto content C is then a per-pixel colour map at full resolution::

    z = nDNCM(C, d_C)        # C's colours in a style-free space
    y = sDNCM(z, r_S)        # rendered with S's colour style

The paper's DNCM is ``DNCM(I, T) = I . P . T . Q`` with learned P (3 x k) and Q (k x 3). Taken
literally that product is one 3x3 matrix per image (P.T.Q), which cannot express the tone curves,
lifted blacks, split toning or exposure roll-offs that photographic looks are made of. We keep the
structure but make P a learned *pointwise lift*::

    DNCM(I, T) = phi(I) . T . Q,    phi(x) = [x_r, x_g, x_b, 1, tanh(x . A + a)]   (k features)

so each image's transform is a smooth nonlinear colour function from a learned 16-function basis,
still global (a pixel's output depends only on its own colour, never its position or the image size),
cheap (two small matmuls and a tanh per pixel) and exportable as a 3D LUT. The encoder sees only the
thumbnail, so the cost of the network does not grow with resolution.

Inference paths
---------------
* :class:`DNCMStylizer`: torch encoder, per-pixel map in torch.
* :class:`DNCMOnnxStylizer`: encoder in ONNX Runtime, per-pixel map as a tiny ORT graph; no torch.
  The encoder's graph for the shipped weights ships beside them (``weights/dncm.onnx``, made by
  ``python -m mvstylizer.models.dncm``, which needs torch: ``pip install 'mvstylizer[train]'``), so
  the core install runs dncm without torch; other weights are exported once into the cache (torch).
  The fast path: see "Measured" below.
* :func:`export_cube`: a 33^3 ``.cube`` LUT of the content-normalise-then-stylise map, for DaVinci
  Resolve, Premiere, FFmpeg's ``lut3d``.

Measured (shipped weights; 2 shared CPU cores, so timings are indicative)
-------------------------------------------------------------------------
* Encoder: 4x4/4 patchify stem (32) + 3 stages (48, 96, 128) of two 3x3 convs, global pool + colour
  mean/std/covariance + 16 quantiles of R, G, B, R-G, B-G, MLP 256 -> 2 x 16 x 16. 672,512
  parameters, 1.36 MB fp16. Thumbnail 128 (not 256: chosen for CPU training cost, 256 not measured).
* Training: ``train(TrainConfig(data=["package"], steps=8000, batch=8, size=128, lr=1e-3, seed=0,
  threads=1))``: 1325 s wall, final loss (EMA) 0.0299. One torch thread: with other jobs on the
  two cores, two threads ran the encoder's backward ~28x slower (OpenMP spin contention).
* Filter transfer (content = a photo, style = the same photo under a held-out random filter, target =
  the filtered photo): 37.5 dB on skimage's stereo_motorcycle (never seen in training; 16 filters),
  MK 39.5, doing nothing 29.1. Validation crops: 34.0 dB, MK 33.3. MK is very strong when content
  and style share their content; the model is the one that also learned a style-free space.
* Palette transfer, 4 skimage photos x 12 mate nature photos: Lab SWD to the style 6.58 (MK 5.70,
  input 30.1; the model wins 31% of pairs); luminance SSIM to the content 0.809 (MK 0.743): closer
  to the style's colours than the input by far, a little less than MK, and keeps more contrast.
* Ablations, 1500 steps each: the paper's linear DNCM (+offset, k=4) 30.7 dB validation vs 32.5
  with the tanh lift; the quantile features +0.2 dB.
* 1920x1080, one thread: :class:`DNCMOnnxStylizer` 121 ms (encoder 12 + ORT colour map 109);
  :class:`DNCMStylizer` (torch) 431 ms; the same map in numpy 2.9 s (OpenBLAS's tall-skinny sgemm;
  ``np.einsum`` would be ~0.75 s). Two threads were slower on the busy box.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import UserError

WEIGHTS_NAME = "dncm.pt"
ONNX_NAME = "dncm.onnx"  # the shipped weights' encoder graph, made by `python -m mvstylizer.models.dncm`
DEFAULT_ARCH: dict[str, Any] = {"k": 16, "thumb": 128, "stem": 32, "widths": [48, 96, 128], "hidden": 256,
                                "quantiles": 16}
_CHUNK = 1 << 20  # pixels per block in the per-pixel map: bounds memory at 4K, stays cache friendly


def default_weights() -> Path:
    # The folder is training.WEIGHTS_DIR, not imported from there: that module imports torch, which
    # the ONNX path must not pay for (~1 s of every run's start).
    return Path(__file__).parent / "weights" / WEIGHTS_NAME


def shipped_onnx() -> Path:
    """The ONNX graph of the shipped weights (see :func:`export_onnx`); loaded without torch."""
    return Path(__file__).parent / "weights" / ONNX_NAME


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def thumbnail(img: np.ndarray, size: int) -> np.ndarray:
    """The encoder's view of an image: ``size`` x ``size`` float32 RGB, area-averaged (aspect ignored:
    only colour statistics and coarse semantics matter). Training crops go through the same call."""
    img = np.ascontiguousarray(img, dtype=np.float32)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise UserError(f"expected an HxWx3 RGB image, got shape {img.shape}")
    if img.shape[:2] != (size, size):
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return np.clip(img, 0.0, 1.0)


# --------------------------------------------------------------------------------------------
# The per-pixel colour map in numpy (shared by the ONNX stylizer, the LUT export and the tests)
# --------------------------------------------------------------------------------------------


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
    for i in range(0, len(flat), _CHUNK):
        z = map_colours_np(flat[i : i + _CHUNK], lift_n, m_n)
        y = map_colours_np(z, lift_s, m_s)
        np.clip(y, 0.0, 1.0, out=out[i : i + _CHUNK])
    return out.reshape(shape)


# --------------------------------------------------------------------------------------------
# The network (torch is imported lazily so the ONNX path never needs it)
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _torch_modules():  # noqa: ANN202 - returns classes defined against torch
    import torch
    from torch import nn

    class ColourMap(nn.Module):
        """One DNCM module: phi(x) . T . Q with phi = [x, 1, tanh(x A + a)]."""

        def __init__(self, k: int) -> None:
            super().__init__()
            m = k - 4  # tanh ridges; filled by reset() from the network's seeded generator
            self.A = nn.Parameter(torch.zeros(3, m))
            self.a = nn.Parameter(torch.zeros(m))
            self.Q = nn.Parameter(torch.zeros(k, 3))

        def reset(self, gen: torch.Generator) -> None:
            with torch.no_grad():
                self.A.copy_(torch.randn(self.A.shape, generator=gen) * 2.0)
                self.a.copy_(-self.A.sum(0) * 0.5)
                q = torch.zeros_like(self.Q)
                q[:3] = torch.eye(3)
                self.Q.copy_(q + torch.randn(self.Q.shape, generator=gen) * 0.01)

        def phi(self, x: torch.Tensor) -> torch.Tensor:
            ones = torch.ones_like(x[..., :1])
            return torch.cat([x, ones, torch.tanh(x @ self.A + self.a)], dim=-1)

        def matrix(self, t: torch.Tensor) -> torch.Tensor:
            """T (B x k x k) -> the k x 3 matrix applied to phi."""
            return t @ self.Q

        def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            """x: B x N x 3, t: B x k x k -> B x N x 3."""
            return self.phi(x) @ self.matrix(t)

        def apply(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
            """Inference form for N x 3 colours and one k x 3 matrix m: phi(x) . m without building
            phi (about 1.5x faster at 1080p)."""
            h = torch.tanh(torch.addmm(self.a, x, self.A))
            return torch.addmm(m[3], x, m[:3]).addmm_(h, m[4:])

    class Encoder(nn.Module):
        """Thumbnail -> (d, r): patchify stem, strided 3x3 convs, global average pool + colour moments, MLP heads."""

        def __init__(self, k: int, stem: int, widths: list[int], hidden: int, quantiles: int) -> None:
            super().__init__()
            self.quantiles = quantiles
            # A 4x4/4 "patchify" stem (cheap on CPU, where tiny 3-channel convs at full thumbnail
            # resolution dominate the cost), then stride-2 stages of two 3x3 convs each.
            layers: list[nn.Module] = [nn.Conv2d(3, stem, 4, stride=4), nn.LeakyReLU(0.1)]
            cin = stem
            for w in widths:
                layers += [nn.Conv2d(cin, w, 3, stride=2, padding=1), nn.LeakyReLU(0.1),
                           nn.Conv2d(w, w, 3, padding=1), nn.LeakyReLU(0.1)]
                cin = w
            self.features = nn.Sequential(*layers)
            self.k = k
            self.mlp = nn.Sequential(nn.Linear(cin + 9 + 5 * quantiles, hidden), nn.LeakyReLU(0.1),
                                     nn.Linear(hidden, hidden), nn.LeakyReLU(0.1))
            self.head = nn.Linear(hidden, 2 * k * k)
            with torch.no_grad():
                self.head.weight.mul_(0.05)
                eye = torch.eye(k).flatten()
                self.head.bias.copy_(torch.cat([eye, eye]))

        def forward(self, thumb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """thumb: B x 3 x S x S in [0,1] -> d, r (B x k x k)."""
            x = thumb * 2.0 - 1.0
            mean = x.mean(dim=(2, 3))
            var = (x * x).mean(dim=(2, 3)) - mean * mean
            std = torch.sqrt(var.clamp_min(0.0) + 1e-6)
            # Colour covariance off-diagonals: how channels move together (casts, saturation).
            xc = x - mean[:, :, None, None]
            cov = torch.stack([(xc[:, 0] * xc[:, 1]).mean(dim=(1, 2)), (xc[:, 0] * xc[:, 2]).mean(dim=(1, 2)),
                               (xc[:, 1] * xc[:, 2]).mean(dim=(1, 2))], dim=1)
            f = self.features(x).mean(dim=(2, 3))
            stats = [f, mean, std, cov]
            if self.quantiles:
                # Tone-curve shape, directly: quantiles of R, G, B and of two opponent axes.
                flat = x.flatten(2)
                chans = torch.cat([flat, flat[:, 0:1] - flat[:, 1:2], flat[:, 2:3] - flat[:, 1:2]], dim=1)
                srt = torch.sort(chans, dim=2).values
                n = srt.shape[2]
                idx = [min(n - 1, int((i + 0.5) * n / self.quantiles)) for i in range(self.quantiles)]
                stats.append(srt[:, :, idx].flatten(1))
            h = self.mlp(torch.cat(stats, dim=1))
            out = self.head(h).view(-1, 2, self.k, self.k)
            return out[:, 0], out[:, 1]

    class DNCMNet(nn.Module):
        def __init__(self, k: int, thumb: int, stem: int, widths: list[int], hidden: int, quantiles: int,
                     seed: int = 0) -> None:
            super().__init__()
            self.arch = {"k": k, "thumb": thumb, "stem": stem, "widths": list(widths), "hidden": hidden,
                         "quantiles": quantiles}
            torch.manual_seed(seed)
            self.encoder = Encoder(k, stem, list(widths), hidden, quantiles)
            self.norm_map = ColourMap(k)
            self.style_map = ColourMap(k)
            gen = torch.Generator().manual_seed(seed)
            self.norm_map.reset(gen)
            self.style_map.reset(gen)
            # The content code used when a LUT is exported without a content reference: the mean d over
            # the unfiltered training photos (set at the end of training; identity until then).
            self.register_buffer("neutral_code", torch.eye(k))

        def codes(self, thumbs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.encoder(thumbs)

        def normalise(self, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
            return self.norm_map(x, d)

        def stylise(self, z: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
            return self.style_map(z, r)

    return ColourMap, Encoder, DNCMNet


def build_net(arch: dict[str, Any] | None = None, seed: int = 0):  # noqa: ANN201
    """A fresh (untrained) network with the given architecture."""
    _, _, net_cls = _torch_modules()
    a = dict(DEFAULT_ARCH, **(arch or {}))
    return net_cls(k=a["k"], thumb=a["thumb"], stem=a["stem"], widths=a["widths"], hidden=a["hidden"],
                   quantiles=a["quantiles"], seed=seed)


def load_net(path: Path | None = None):  # noqa: ANN201
    """(net, meta) from a weights file written by :func:`mvstylizer.models.training.save_weights`."""
    import torch

    from .safeload import load_pt
    from .training import load_weights

    path = Path(path) if path is not None else default_weights()
    if not path.is_file():
        raise UserError(f"no trained dncm weights at {path}; train them with: mvstylizer train dncm --data package")
    blob = load_pt(path)  # weights only: a model file is data, never code
    meta = dict(blob.get("meta", {}))
    net = build_net(meta.get("arch"))
    load_weights(net, path)
    net.eval()
    return net, meta


# --------------------------------------------------------------------------------------------
# Stylizers
# --------------------------------------------------------------------------------------------


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
            for i in range(0, flat.shape[0], _CHUNK):
                z = nm.apply(flat[i : i + _CHUNK], m_n)
                torch.clamp(sm.apply(z, m_s), 0.0, 1.0, out=out[i : i + _CHUNK])
        return out.numpy().reshape(content.shape)


def export_onnx(path: str | os.PathLike[str], weights: Path | None = None) -> Path:
    """Write the encoder as ONNX: input ``thumb`` (1 x 3 x S x S, RGB in [0,1]); outputs
    ``content_matrix`` = d . Q_n and ``style_matrix`` = r . Q_s (each 1 x k x 3).

    The image-independent lift parameters (A, a of both modules), the neutral code and the
    architecture travel in the model's metadata (``dncm`` key, JSON), so the ONNX file alone is enough
    to stylise and to export LUTs without torch.
    """
    import onnx
    import torch

    from ..files import atomic_path

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
        "weights_sha256": _sha256(Path(weights) if weights is not None else default_weights()),
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


@dataclass
class DNCMOnnxStylizer:
    """The same model on ONNX Runtime alone (no torch at run time once the file exists): the encoder
    from :func:`export_onnx`, the per-pixel map as a second, tiny ORT graph built in memory from the
    lift parameters stored in the file's metadata (:func:`colour_map_onnx`).

    ``onnx_path`` defaults to the graph shipped with the package (:func:`shipped_onnx`) when it holds
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
            w = Path(self.weights) if self.weights is not None else default_weights()
            if not w.is_file():
                raise UserError(f"no trained dncm weights at {w}; "
                                "train them with: mvstylizer train dncm --data package")
            path = shipped_onnx()
            if not path.is_file() or _onnx_weights_hash(path) != _sha256(w):
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
        f32 = lambda v: np.asarray(v, np.float32)  # noqa: E731
        self.lift_n = LiftParams(f32(extra["A_n"]), f32(extra["a_n"]))
        self.lift_s = LiftParams(f32(extra["A_s"]), f32(extra["a_s"]))
        self.neutral_matrix = f32(extra["neutral_matrix"])
        k = int(extra["arch"]["k"])
        self._map = ort.InferenceSession(colour_map_onnx(self.lift_n, self.lift_s, k), opts,
                                         providers=["CPUExecutionProvider"])
        self.onnx_path = path

    @staticmethod
    def _export_to_cache(weights: Path) -> Path:
        from .vgg_weights import export_cache_path

        path = export_cache_path("dncm", weights, Path(__file__)) / "dncm.onnx"
        if not path.is_file():
            try:
                import torch  # noqa: F401 - only to say what is missing, before the export needs it
            except ModuleNotFoundError:
                raise UserError(f"dncm weights {weights} have no shipped ONNX graph, and exporting one needs "
                                "PyTorch: pip install 'mvstylizer[train]'") from None
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
        step = 2 * _CHUNK  # a whole 1080p frame per call; bounded memory at 4K
        parts = [self._map.run(None, {"pixels": flat[i : i + step], **feeds})[0] for i in range(0, len(flat), step)]
        return (parts[0] if len(parts) == 1 else np.concatenate(parts)).reshape(shape)

    def stylize(self, content: np.ndarray, style_state: DNCMStyle) -> np.ndarray:
        return self.map_colours(content, self.content_matrix(content), style_state)


def _onnx_weights_hash(path: Path) -> str | None:
    """The ``weights_sha256`` an :func:`export_onnx` graph records (None if absent), read with onnx
    without loading the weights' tensors."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for entry in model.metadata_props:
        if entry.key == "dncm":
            return json.loads(entry.value).get("weights_sha256")
    return None


# --------------------------------------------------------------------------------------------
# .cube export
# --------------------------------------------------------------------------------------------


def cube_grid(size: int) -> np.ndarray:
    """The size^3 x 3 lattice colours in .cube order: red varies fastest, then green, then blue."""
    idx = np.arange(size, dtype=np.float32) / (size - 1)
    b, g, r = np.meshgrid(idx, idx, idx, indexing="ij")
    return np.stack([r, g, b], axis=-1).reshape(-1, 3)


def export_cube(style: np.ndarray | str | os.PathLike[str], path: str | os.PathLike[str],
                content: np.ndarray | str | os.PathLike[str] | None = None, size: int = 33,
                model: DNCMStylizer | DNCMOnnxStylizer | None = None, title: str | None = None) -> Path:
    """Write the style's colour transform as a ``size``^3 Adobe/Resolve ``.cube`` 3D LUT (atomic).

    A LUT is one fixed colour function, while the model adapts its normalisation (nDNCM) to every
    content frame. So:

    * ``content`` given: the LUT is exactly the model's map for that content (normalise with the
      content's own code d, stylise with the style's code r): applying it to that content reproduces
      ``stylize`` up to LUT interpolation. Use a representative frame of the footage.
    * ``content`` None: the normalisation is the *neutral code* stored with the weights: the mean of d
      over the unfiltered training photos. Because nDNCM is linear in d, that is the average of the
      normalisations the model applies to ordinary, ungraded photos: the honest "typical footage"
      choice. It cannot remove a cast specific to your footage (the per-frame model can).
      Measured against the per-frame model on 4 styles: mean abs 10.9/255 on a typical photo
      (stereo_motorcycle), 20-30/255 on strongly coloured ones (chelsea, coffee), 63/255 on an
      astronomy image. Averaging the output maps instead of the codes was only ~8% closer. So pass
      a representative frame whenever there is one.

    Through FFmpeg's ``lut3d`` (tetrahedral) on 8-bit input, a content-referenced LUT matches
    ``stylize`` to 0.5/255 mean, 2/255 at the 99th percentile.
    """
    from ..files import atomic_path
    from ..video.image import read_image

    if size < 2 or size > 256:
        raise UserError(f"LUT size must be in 2..256, got {size}")

    def _img(v: Any) -> np.ndarray:
        return read_image(v) if isinstance(v, (str, os.PathLike)) else np.asarray(v, np.float32)

    model = model or DNCMOnnxStylizer()
    style_state = model.prepare_style(_img(style))
    m_n = model.content_matrix(None if content is None else _img(content))
    lut = model.map_colours(cube_grid(size), m_n, style_state)
    norm = "content code of the given reference frame" if content is not None else \
        "neutral code (mean content code over unfiltered training photos)"
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="ascii", newline="\n") as f:
            f.write(f'TITLE "{(title or "mvstylizer dncm").replace(chr(34), "")}"\n')
            f.write(f"# mvstylizer dncm colour transfer; normalisation: {norm}\n")
            f.write(f"LUT_3D_SIZE {size}\n")
            f.write("DOMAIN_MIN 0.0 0.0 0.0\nDOMAIN_MAX 1.0 1.0 1.0\n")
            np.savetxt(f, lut, fmt="%.6f")
    return path


def parse_cube(path: str | os.PathLike[str]) -> tuple[int, np.ndarray]:
    """(size, size^3 x 3 table in file order) from a .cube file; for tests and tools."""
    size, rows = None, []
    for line in Path(path).read_text(encoding="ascii").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith(("TITLE", "DOMAIN_")):
            continue
        if line.startswith("LUT_3D_SIZE"):
            size = int(line.split()[1])
            continue
        rows.append([float(v) for v in line.split()])
    if size is None:
        raise UserError(f"{path} has no LUT_3D_SIZE line")
    table = np.asarray(rows, np.float32)
    if table.shape != (size**3, 3):
        raise UserError(f"{path}: expected {size**3} rows of 3 values, found {table.shape}")
    return size, table


def main(argv: list[str] | None = None) -> int:
    """``python -m mvstylizer.models.dncm [OUT]``: (re)make the shipped encoder graph from the shipped
    weights (needs torch: ``pip install 'mvstylizer[train]'``). Run it after ``mvstylizer train dncm``."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else shipped_onnx()
    export_onnx(out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) from {default_weights()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
