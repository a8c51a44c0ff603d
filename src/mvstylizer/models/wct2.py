"""WCT2-style photorealistic style transfer: a wavelet-pooling VGG16 encoder, a small trained decoder.

Architecture (after Yoo et al., "Photorealistic Style Transfer via Wavelet Transforms", ICCV 2019,
rebuilt on VGG16 because that is the ImageNet network we can get offline):

* Encoder: the frozen ImageNet VGG16 convolutions conv1_1 .. conv4_1. Each 2x2 max pooling is replaced
  by an orthonormal Haar wavelet split. Its low band, divided by two (= 2x2 average pooling, so the
  frozen ImageNet layers see inputs on the scale they were trained for), feeds the next block; the
  three high bands (horizontal, vertical, diagonal detail) skip straight to the decoder.
* Decoder (trained by us, see ``wct2_train``): mirrored, slimmer than the encoder. Stage 4 maps relu4_1
  to the pooled block-3 features; stages 3 and 2 Haar-unpool the pooled features with the encoder's
  skip bands (exact inverse of the split) and predict the next pooled features; stage 1 unpools and
  predicts RGB. With the skips the decoder only has to invert single conv blocks, so detail (and
  straight edges) come back almost unchanged.
* Stylization: progressive feature transforms, level by level as the decoder climbs back up: the
  content's features at a level are mapped so their mean and covariance become the style's, then the
  decoder stage takes them (with the content's own high bands) to the next level. The high bands are
  never transformed, so no style texture is painted in and edges stay where they were. A linear map in
  a 64..512-dimensional feature space is a spatially varying colour change in the image.
  - Transform: ``"mk"`` (default), the linear Monge-Kantorovich / optimal-transport map between the two
    Gaussians, symmetric, so it moves features least; or ``"wct"``, classic whitening-colouring.
    ``max_gain`` (default 3) caps the MK map's stretch per eigen-direction, so faint content texture
    (wood grain, noise) is not blown up to the style's contrast. ``alpha`` blends with the input.
  - Levels: by default the pooled block-2 and block-1 features (``DEFAULT_LEVELS``). The full WCT2
    progression from relu4_1 (``levels=LEVELS``) works too, but with our short training the deep
    decoder stages reconstruct at ~20 dB (vs ~27-30 dB from block 2) and deep transforms put colour
    blotches across uniform regions: checked on the mate-backgrounds photos.

Numerics: statistics from at most ``_MAX_STAT_SAMPLES`` feature vectors (a regular subsample of big
maps), covariance shrunk towards its diagonal by ``C / (C + N)`` (so tiny feature maps, with fewer
samples than channels, stay well conditioned), a ridge of ``reg`` times the mean eigenvalue, all
eigendecompositions in float64. Content is mirrored at the bottom/right up to a multiple of 8 (at least
16, so relu4_1 is 2x2) and cropped back. ``prepare_style`` stores the style's means and covariances
(and their square roots) per level, so every key frame of a video reuses them.

Two runtimes give the same result (max abs difference ~1e-5): torch (``WCT2Stylizer``) and
onnxruntime (``WCT2OnnxStylizer``), the latter running exported encoder / decoder stages (seven small
graphs with dynamic H, W; ``export_onnx``) with the transforms in numpy between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..files import atomic_path
from .training import WEIGHTS_DIR, load_weights
from .vgg import VGG16Trunk
from .vgg_weights import export_cache_path

WEIGHTS_FILE = WEIGHTS_DIR / "wct2.pt"
LEVELS = ("r4", "p3", "p2", "p1")  # where WCT can run: relu4_1 and the pooled block 3/2/1 features
# The default transforms the pooled block-2 and block-1 features only: on our decoder (trained 45 min on
# 2 cores) the deep stages reconstruct at ~20 dB against ~27-30 dB from block 2, and deep-feature
# transforms paint colour blotches across uniform regions. levels=LEVELS gives the full progressive WCT2.
DEFAULT_LEVELS = ("p2", "p1")
CHANNELS = {"r4": 512, "p3": 256, "p2": 128, "p1": 64}
# typical RMS of the encoder's features on photos (Caffe-scaled VGG inputs), used to normalise the decoder
FEATURE_SCALE = {"r4": 120.0, "p3": 220.0, "p2": 300.0, "p1": 300.0}
_MAX_STAT_SAMPLES = 1 << 15
_MULTIPLE = 8  # three Haar splits


# --------------------------------------------------------------------------------------------------
# Haar wavelet split / merge (orthonormal, exact inverses of each other; exportable to ONNX)

def haar_split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """NxCxHxW (H, W even) -> (low band, high bands concatenated as Nx3CxH/2xW/2), orthonormal."""
    a = x[:, :, 0::2, 0::2]
    b = x[:, :, 0::2, 1::2]
    c = x[:, :, 1::2, 0::2]
    d = x[:, :, 1::2, 1::2]
    ll = (a + b + c + d) * 0.5
    lh = (a - b + c - d) * 0.5
    hl = (a + b - c - d) * 0.5
    hh = (a - b - c + d) * 0.5
    return ll, torch.cat([lh, hl, hh], dim=1)


def haar_merge(ll: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`haar_split`."""
    lh, hl, hh = torch.chunk(high, 3, dim=1)
    a = (ll + lh + hl + hh) * 0.5
    b = (ll - lh + hl - hh) * 0.5
    c = (ll + lh - hl - hh) * 0.5
    d = (ll - lh - hl + hh) * 0.5
    n, ch, h, w = ll.shape
    # pixel_shuffle wants, per channel, the 4 sub-pixels in row-major order (a b / c d)
    stacked = torch.stack([a, b, c, d], dim=2).reshape(n, ch * 4, h, w)
    return F.pixel_shuffle(stacked, 2)


# --------------------------------------------------------------------------------------------------
# Networks

class WaveletEncoder(VGG16Trunk):
    """Frozen VGG16 conv1_1 .. conv4_1 with Haar pooling, in three stages so callers run only what they need.

    ``block12(rgb) -> (p2, h2, p1, h1)``, ``block3(p2) -> (p3, h3)``, ``block4(p3) -> r4``: the pooled
    (2x2 average) block outputs ``p``, the high bands ``h`` of each split (3C channels at the pooled
    resolution) and relu4_1. ``forward(rgb)`` runs all three: ``(r4, p3, p2, p1, h3, h2, h1)``.
    """

    def __init__(self) -> None:
        super().__init__("relu4_1")

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ll, high = haar_split(x)
        return ll * 0.5, high

    def block12(self, rgb: torch.Tensor) -> tuple[torch.Tensor, ...]:
        c = self.convs
        x = F.relu(c[1](F.relu(c[0](self.preprocess(rgb)))))
        p1, h1 = self._split(x)
        p2, h2 = self._split(F.relu(c[3](F.relu(c[2](p1)))))
        return p2, h2, p1, h1

    def block3(self, p2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.convs
        return self._split(F.relu(c[6](F.relu(c[5](F.relu(c[4](p2)))))))

    def block4(self, p3: torch.Tensor) -> torch.Tensor:
        return F.relu(self.convs[7](p3))

    def encode(self, rgb: torch.Tensor) -> tuple[torch.Tensor, ...]:
        p2, h2, p1, h1 = self.block12(rgb)
        p3, h3 = self.block3(p2)
        return self.block4(p3), p3, p2, p1, h3, h2, h1

    # Not the trunk's forward(rgb, outputs) -> dict: the encoder shares VGG16Trunk's layers and
    # preprocessing, not its call, and is never used where a trunk is expected.
    def forward(self, rgb: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        return self.encode(rgb)


class _EncoderPart(nn.Module):
    """One stage of a :class:`WaveletEncoder` as a module of its own (for ONNX export)."""

    def __init__(self, encoder: WaveletEncoder, part: str) -> None:
        super().__init__()
        self.encoder = encoder
        self.part = part

    def forward(self, x: torch.Tensor) -> Any:
        return getattr(self.encoder, self.part)(x)


def _conv(cin: int, cout: int) -> nn.Module:
    return nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3))


class DecoderStage(nn.Module):
    """Optionally Haar-merge ``2 * pooled`` with the skip bands, then conv-ReLU-conv.

    Fixed scales bring VGG's feature magnitudes (hundreds, Caffe 0..255 inputs) to about one inside the
    stage, which lets Adam train all stages at one learning rate.
    """

    def __init__(self, cin: int, mid: int, cout: int, merge: bool, in_scale: float, out_scale: float) -> None:
        super().__init__()
        self.merge = merge
        self.in_scale = float(in_scale)
        self.out_scale = float(out_scale)
        self.conv1 = _conv(cin, mid)
        self.conv2 = _conv(mid, cout)

    def forward(self, x: torch.Tensor, high: torch.Tensor | None = None) -> torch.Tensor:
        if self.merge:
            assert high is not None  # a merging stage always gets its skip band
            x = haar_merge(x * 2.0, high)
        x = self.conv2(F.relu(self.conv1(x * (1.0 / self.in_scale))))
        return x * self.out_scale if self.out_scale != 1.0 else x


class WCT2Decoder(nn.Module):
    """relu4_1 -> p3 -> p2 -> p1 -> RGB; each stage after the first uses the encoder's skip bands."""

    def __init__(self) -> None:
        super().__init__()
        s = FEATURE_SCALE
        self.dec4 = DecoderStage(512, 128, 256, merge=False, in_scale=s["r4"], out_scale=s["p3"])
        self.dec3 = DecoderStage(256, 128, 128, merge=True, in_scale=s["p3"], out_scale=s["p2"])
        self.dec2 = DecoderStage(128, 64, 64, merge=True, in_scale=s["p2"], out_scale=s["p1"])
        self.dec1 = DecoderStage(64, 32, 3, merge=True, in_scale=s["p1"], out_scale=1.0)

    def stage(self, level: str) -> DecoderStage:
        return {"r4": self.dec4, "p3": self.dec3, "p2": self.dec2, "p1": self.dec1}[level]

    def forward(self, r4: torch.Tensor, h3: torch.Tensor, h2: torch.Tensor, h1: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Plain reconstruction: (p3, p2, p1, rgb) predictions."""
        p3 = self.dec4(r4)
        p2 = self.dec3(p3, h3)
        p1 = self.dec2(p2, h2)
        return p3, p2, p1, self.dec1(p1, h1)


# --------------------------------------------------------------------------------------------------
# Whitening-colouring transform (numpy, shared by both runtimes)

@dataclass
class LevelStats:
    mean: np.ndarray  # (C,) float64
    cov: np.ndarray  # (C, C) float64: regularised covariance of the style
    colour: np.ndarray  # (C, C) float64: its square root


@dataclass
class WCT2Style:
    """What ``prepare_style`` caches: per-level style statistics."""

    levels: dict[str, LevelStats] = field(default_factory=dict)


def _samples(feat: np.ndarray) -> np.ndarray:
    """CxHxW -> CxN feature vectors, a regular spatial subsample when the map is large."""
    c, h, w = feat.shape
    step = 1
    while (h // step) * (w // step) > _MAX_STAT_SAMPLES:
        step += 1
    if step > 1:
        feat = feat[:, step // 2 :: step, step // 2 :: step]
    return np.ascontiguousarray(feat).reshape(c, -1)


def _mean_cov(feat: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    x = _samples(feat)
    n = x.shape[1]
    mean = x.mean(axis=1, dtype=np.float64)
    xc = x - mean.astype(np.float32)[:, None]
    cov = (xc @ xc.T).astype(np.float64) / max(n, 1)
    return mean, cov, n


def _eig_reg(cov: np.ndarray, n: int, reg: float) -> tuple[np.ndarray, np.ndarray]:
    """Shrunk, ridged, symmetric eigendecomposition in float64."""
    c = cov.shape[0]
    rho = c / (c + n)
    cov = (1.0 - rho) * cov + rho * np.diag(np.diag(cov))
    ridge = reg * max(float(np.trace(cov)) / c, 1e-6)
    vals, vecs = np.linalg.eigh(cov + ridge * np.eye(c))
    return np.clip(vals, ridge, None), vecs


def style_stats(feat: np.ndarray, reg: float) -> LevelStats:
    mean, cov, n = _mean_cov(feat)
    vals, vecs = _eig_reg(cov, n, reg)
    return LevelStats(mean, (vecs * vals) @ vecs.T, (vecs * np.sqrt(vals)) @ vecs.T)


def feature_transform(feat: np.ndarray, style: LevelStats, alpha: float, reg: float, method: str = "mk",
                      max_gain: float | None = None) -> np.ndarray:
    """Map a CxHxW content feature map so its mean and covariance become the style's.

    ``method="wct"``: whitening-colouring, ``cov_s^1/2 cov_c^-1/2`` (Li et al. 2017). ``"mk"``: the
    linear Monge-Kantorovich (optimal transport) map between the two Gaussians,
    ``cov_c^-1/2 (cov_c^1/2 cov_s cov_c^1/2)^1/2 cov_c^-1/2``: the same target statistics, but of all
    such maps the one that moves features least (symmetric, no rotation between the two eigenbases),
    so structure and local contrast survive better. ``alpha`` blends in feature space,
    ``alpha * T(x) + (1 - alpha) * x``, which is still one affine map.
    """
    c, h, w = feat.shape
    mean, cov, n = _mean_cov(feat)
    vals, vecs = _eig_reg(cov, n, reg)
    inv_half = (vecs / np.sqrt(vals)) @ vecs.T
    if method == "wct":
        t = style.colour @ inv_half
    elif method == "mk":
        half = (vecs * np.sqrt(vals)) @ vecs.T
        mid_vals, mid_vecs = np.linalg.eigh(half @ style.cov @ half)
        mid = (mid_vecs * np.sqrt(np.clip(mid_vals, 0.0, None))) @ mid_vecs.T
        t = inv_half @ mid @ inv_half
        if max_gain is not None:  # t is symmetric positive definite: limit its stretch per direction
            g, u = np.linalg.eigh((t + t.T) * 0.5)
            t = (u * np.clip(g, 1.0 / max_gain, max_gain)) @ u.T
    else:
        raise ValueError(f"unknown feature transform {method!r}")
    offset = alpha * (style.mean - t @ mean)
    t = alpha * t + (1.0 - alpha) * np.eye(c)
    out = t.astype(np.float32) @ feat.reshape(c, -1)
    out += offset.astype(np.float32)[:, None]
    return out.reshape(c, h, w)


# --------------------------------------------------------------------------------------------------
# The model, runtime-independent part

_ENC_OUTPUTS = ("r4", "p3", "p2", "p1", "h3", "h2", "h1")
_SKIP_FOR = {"p3": "h3", "p2": "h2", "p1": "h1"}  # the skip bands a decoder stage takes with this input
_NEXT = {"r4": "p3", "p3": "p2", "p2": "p1", "p1": "rgb"}
_MIN_SIDE = 16  # relu4_1 at least 2x2: the decoder's reflection padding needs it


def pad_to_multiple(img: np.ndarray, multiple: int = _MULTIPLE, min_side: int = _MIN_SIDE) -> np.ndarray:
    """HxWx3 -> 1x3xH'xW' float32, mirrored at the bottom/right so H', W' are multiples of ``multiple``."""
    h, w = img.shape[:2]
    hp = max(min_side, -(-h // multiple) * multiple)
    wp = max(min_side, -(-w // multiple) * multiple)
    x = np.asarray(img, np.float32)
    if (hp, wp) != (h, w):
        x = np.pad(x, ((0, hp - h), (0, wp - w), (0, 0)), mode="symmetric")
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


class _WCT2Base:
    """Progressive WCT around an encoder and a staged decoder; subclasses supply the runtime."""

    name = "wct2"
    description = ("DNN, photorealistic: WCT2-style wavelet-pooling VGG16 encoder + trained decoder, "
                   "progressive feature transforms (spatially varying)")

    def __init__(self, alpha: float = 1.0, reg: float = 1e-2, levels: tuple[str, ...] = DEFAULT_LEVELS,
                 start: str | None = None, method: str = "mk", max_gain: float | None = 3.0,
                 style_side: int = 768) -> None:
        """``levels``: where the feature transform runs; ``start``: the level decoding starts from
        (default: the deepest of ``levels``); ``method``: ``"mk"`` or ``"wct"`` (see
        :func:`feature_transform`); ``max_gain``: optional limit on the MK map's stretch per direction."""
        start = start or next((lv for lv in LEVELS if lv in levels), "p1")
        unknown = set(levels) - set(LEVELS)
        if unknown or start not in LEVELS:
            raise ValueError(f"unknown WCT level(s) {sorted(unknown) or start}; choose from {LEVELS}")
        if any(LEVELS.index(lv) < LEVELS.index(start) for lv in levels):
            raise ValueError(f"WCT levels {levels} include levels deeper than the start level {start!r}")
        if method not in ("mk", "wct"):
            raise ValueError(f"unknown feature transform {method!r}; choose mk or wct")
        self.start = start
        self.method = method
        self.max_gain = max_gain
        self.alpha = float(alpha)
        self.reg = float(reg)
        self.levels = tuple(levels)
        self.style_side = int(style_side)

    # runtime hooks --------------------------------------------------------------------------------
    def _encode(self, x: np.ndarray, depth: str) -> dict[str, np.ndarray]:
        """1x3xHxW -> {name: 1xCxhxw}: block 1-2 outputs, plus block 3 (depth p3) and relu4_1 (depth r4)."""
        raise NotImplementedError

    def _decode(self, level: str, x: np.ndarray, high: np.ndarray | None) -> np.ndarray:  # 1xCxhxw in/out
        raise NotImplementedError

    # the model ------------------------------------------------------------------------------------
    def prepare_style(self, style: np.ndarray) -> WCT2Style:
        """Per-level style means and colouring matrices (computed at most ``style_side`` pixels wide)."""
        h, w = style.shape[:2]
        s = min(1.0, self.style_side / max(h, w))
        # a multiple of 8 by resizing rather than padding, so no mirrored pixels enter the statistics
        hs = max(_MIN_SIDE, round(h * s / _MULTIPLE) * _MULTIPLE)
        ws = max(_MIN_SIDE, round(w * s / _MULTIPLE) * _MULTIPLE)
        img: np.ndarray = np.asarray(style, np.float32)
        if (hs, ws) != (h, w):
            interp = cv2.INTER_AREA if hs * ws < h * w else cv2.INTER_LINEAR
            img = cv2.resize(img, (ws, hs), interpolation=interp)
        feats = self._encode(pad_to_multiple(img), self.start)
        return WCT2Style({lv: style_stats(feats[lv][0], self.reg) for lv in self.levels})

    def _run(self, content: np.ndarray, state: WCT2Style | None) -> np.ndarray:
        if content.ndim != 3 or content.shape[2] != 3:
            raise ValueError(f"content must be HxWx3, got shape {content.shape}")
        h, w = content.shape[:2]
        feats = self._encode(pad_to_multiple(content), self.start)
        level = self.start
        x = feats[level]
        while True:
            if state is not None and level in self.levels:
                x = feature_transform(x[0], state.levels[level], self.alpha, self.reg, self.method,
                                      self.max_gain)[None]
            skip = _SKIP_FOR.get(level)
            x = self._decode(level, x, feats[skip] if skip else None)
            level = _NEXT[level]
            if level == "rgb":
                break
        return np.clip(x[0, :, :h, :w].transpose(1, 2, 0), 0.0, 1.0).astype(np.float32)

    def stylize(self, content: np.ndarray, style_state: WCT2Style) -> np.ndarray:
        return self._run(content, style_state)

    def reconstruct(self, content: np.ndarray) -> np.ndarray:
        """Encoder + decoder with no stylization (how well the decoder inverts the encoder)."""
        return self._run(content, None)


# --------------------------------------------------------------------------------------------------
# torch runtime

def _load_decoder(weights: Path | None) -> tuple[WCT2Decoder, dict[str, Any]]:
    path = Path(weights) if weights is not None else WEIGHTS_FILE
    if not path.is_file():
        raise UserError(f"WCT2 decoder weights {path} are missing: train them with `mvstylizer train wct2`")
    decoder = WCT2Decoder()
    meta = load_weights(decoder, path)
    decoder.requires_grad_(False)
    decoder.eval()
    return decoder, meta


class WCT2Stylizer(_WCT2Base):
    """The WCT2 model on torch (CPU)."""

    def __init__(self, weights: Path | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.weights = Path(weights) if weights is not None else WEIGHTS_FILE
        self.encoder = WaveletEncoder()
        self.decoder, self.meta = _load_decoder(self.weights)

    def _encode(self, x: np.ndarray, depth: str) -> dict[str, np.ndarray]:
        enc = self.encoder
        with torch.inference_mode():
            out = dict(zip(("p2", "h2", "p1", "h1"), enc.block12(torch.from_numpy(x)), strict=True))
            if depth in ("p3", "r4"):
                out["p3"], out["h3"] = enc.block3(out["p2"])
            if depth == "r4":
                out["r4"] = enc.block4(out["p3"])
        return {k: v.numpy() for k, v in out.items()}

    def _decode(self, level: str, x: np.ndarray, high: np.ndarray | None) -> np.ndarray:
        with torch.inference_mode():
            hi = torch.from_numpy(high) if high is not None else None
            return self.decoder.stage(level)(torch.from_numpy(np.ascontiguousarray(x)), hi).numpy()

    def export_onnx(self, path: Path) -> Path:
        return export_onnx(path, self.weights)


# --------------------------------------------------------------------------------------------------
# onnxruntime runtime

ONNX_FILES = {"enc12": "enc12.onnx", "enc3": "enc3.onnx", "enc4": "enc4.onnx",
              "r4": "dec_r4.onnx", "p3": "dec_p3.onnx", "p2": "dec_p2.onnx", "p1": "dec_p1.onnx"}
_OPSET = 17


def export_onnx(path: Path, weights: Path | None = None) -> Path:
    """Write the three encoder and four decoder stages as ONNX graphs (dynamic H, W) into folder ``path``.

    The WCT between them (eigendecompositions) stays in numpy. Uses the TorchScript-based exporter
    (``dynamo=False``): it needs no onnxscript and handles the slicing / pixel-shuffle of the Haar
    transforms with symbolic sizes.
    """
    import warnings

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    decoder, _ = _load_decoder(weights)
    encoder = WaveletEncoder()
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        feats = dict(zip(_ENC_OUTPUTS, encoder(x), strict=True))
    hw = {2: "h", 3: "w"}
    jobs: list[tuple[str, nn.Module, tuple[torch.Tensor, ...], list[str], list[str]]] = [
        ("enc12", _EncoderPart(encoder, "block12"), (x,), ["rgb"], ["p2", "h2", "p1", "h1"]),
        ("enc3", _EncoderPart(encoder, "block3"), (feats["p2"],), ["x"], ["p3", "h3"]),
        ("enc4", _EncoderPart(encoder, "block4"), (feats["p3"],), ["x"], ["r4"])]
    for level in LEVELS:
        skip = _SKIP_FOR.get(level)
        args = (feats[level],) + ((feats[skip],) if skip else ())
        jobs.append((level, decoder.stage(level), args, ["x"] + (["high"] if skip else []), ["y"]))
    for key, module, args, inputs, outputs in jobs:
        target = path / ONNX_FILES[key]
        with warnings.catch_warnings(), atomic_path(target) as tmp:
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, str(tmp), dynamo=False, opset_version=_OPSET,
                              input_names=inputs, output_names=outputs,
                              dynamic_axes={n: hw for n in inputs + outputs})
    return path


class WCT2OnnxStylizer(_WCT2Base):
    """The WCT2 model on onnxruntime: exported encoder / decoder stages, WCT in numpy.

    With no ``onnx_dir`` the graphs are exported once into the cache, keyed by the weights' hash.
    """

    def __init__(self, onnx_dir: Path | None = None, weights: Path | None = None, threads: int | None = None,
                 low_memory: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        import onnxruntime as ort

        if onnx_dir is None:
            weights = Path(weights) if weights is not None else WEIGHTS_FILE
            if not weights.is_file():
                _load_decoder(weights)  # raises the helpful error
            onnx_dir = export_cache_path("wct2", weights, Path(__file__))
            if not all((onnx_dir / f).is_file() for f in ONNX_FILES.values()):
                export_onnx(onnx_dir, weights)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # numpy (BLAS, eigendecompositions) runs between the sessions: ORT's threads must not spin-wait
        # for more work meanwhile, or they starve it (17 s instead of 1 s per 512x288 frame on 2 cores)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # the arena keeps full-HD activations allocated between runs: 2x faster at 1080p, but ~6 GB peak
        # instead of ~2.7 GB (measured); low_memory=True gives them back after each run
        opts.enable_cpu_mem_arena = not low_memory
        self.sessions = {k: ort.InferenceSession(str(Path(onnx_dir) / f), opts, providers=["CPUExecutionProvider"])
                         for k, f in ONNX_FILES.items()}

    def _encode(self, x: np.ndarray, depth: str) -> dict[str, np.ndarray]:
        out = dict(zip(("p2", "h2", "p1", "h1"), self.sessions["enc12"].run(None, {"rgb": x}), strict=True))
        if depth in ("p3", "r4"):
            out["p3"], out["h3"] = self.sessions["enc3"].run(None, {"x": out["p2"]})
        if depth == "r4":
            out["r4"] = self.sessions["enc4"].run(None, {"x": out["p3"]})[0]
        return out

    def _decode(self, level: str, x: np.ndarray, high: np.ndarray | None) -> np.ndarray:
        feed = {"x": np.ascontiguousarray(x, dtype=np.float32)}
        if high is not None:
            feed["high"] = high
        return self.sessions[level].run(None, feed)[0]
