"""The ImageNet VGG16 convolution trunk in torch, built from the weights of ``vgg_weights``.

Inputs are RGB tensors in [0,1] (Nx3xHxW); the Keras/Caffe preprocessing (BGR, 0..255, minus the
ImageNet mean) happens inside, so callers never see it. Padding is zero padding, as in the original
network, and pooling is 2x2 max pooling unless a subclass (the wavelet encoder of ``wct2``) replaces it.
The trunk is frozen: its parameters never require gradients.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .vgg_weights import LAYERS, MEAN_BGR, load_vgg16_weights

# relu names in the usual style-transfer spelling -> the Keras layer whose output they are
RELU_NAMES = {
    "relu1_1": "block1_conv1", "relu1_2": "block1_conv2",
    "relu2_1": "block2_conv1", "relu2_2": "block2_conv2",
    "relu3_1": "block3_conv1", "relu3_2": "block3_conv2", "relu3_3": "block3_conv3",
    "relu4_1": "block4_conv1", "relu4_2": "block4_conv2", "relu4_3": "block4_conv3",
    "relu5_1": "block5_conv1", "relu5_2": "block5_conv2", "relu5_3": "block5_conv3",
}
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


def _block(name: str) -> int:
    return int(name[5])  # "block3_conv2" -> 3


class VGG16Trunk(nn.Module):
    """VGG16 convolutions up to (and including) the relu ``last`` (default relu4_1), frozen.

    ``forward(rgb, outputs)`` returns ``{relu name: feature}`` for the requested relus.
    """

    mean_bgr: torch.Tensor  # a buffer (register_buffer below)

    def __init__(self, last: str = "relu4_1") -> None:
        super().__init__()
        if last not in RELU_NAMES:
            raise ValueError(f"unknown VGG16 layer {last!r}")
        weights = load_vgg16_weights()
        stop = LAYERS.index(RELU_NAMES[last]) + 1
        self.layer_names = LAYERS[:stop]
        self.convs = nn.ModuleList()
        for name in self.layer_names:
            w, b = weights[name]
            conv = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], padding=w.shape[2] // 2)
            assert conv.bias is not None  # Conv2d's default bias=True
            with torch.no_grad():
                conv.weight.copy_(torch.from_numpy(w))
                conv.bias.copy_(torch.from_numpy(b))
            self.convs.append(conv)
        # RGB [0,1] -> BGR 0..255 minus mean, as one per-channel affine map on the flipped channels
        self.register_buffer("mean_bgr", torch.from_numpy(MEAN_BGR.copy()).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def preprocess(self, rgb: torch.Tensor) -> torch.Tensor:
        return rgb.flip(1) * 255.0 - self.mean_bgr

    def pool(self, x: torch.Tensor, level: int) -> torch.Tensor:
        """Down-sampling after block ``level`` (1..4); max pooling as in VGG16."""
        return F.max_pool2d(x, 2, 2)

    def forward(self, rgb: torch.Tensor, outputs: Iterable[str] = STYLE_LAYERS) -> dict[str, torch.Tensor]:
        wanted = {RELU_NAMES[o]: o for o in outputs}
        out: dict[str, torch.Tensor] = {}
        x = self.preprocess(rgb)
        block = 1
        for name, conv in zip(self.layer_names, self.convs, strict=True):
            if _block(name) != block:
                x = self.pool(x, block)
                block = _block(name)
            x = F.relu(conv(x))
            if name in wanted:
                out[wanted[name]] = x
                if len(out) == len(wanted):
                    break
        return out


_SHARED: dict[str, VGG16Trunk] = {}


def vgg16_trunk(last: str = "relu4_1") -> VGG16Trunk:
    """A process-wide shared, frozen trunk (building one reads the cached weights once)."""
    if last not in _SHARED:
        _SHARED[last] = VGG16Trunk(last)
    return _SHARED[last]
