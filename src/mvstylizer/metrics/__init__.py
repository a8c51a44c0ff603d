"""Metrics shared by tests, benchmarks and the federated evaluation.

numpy in, float out; images are HxWx3 RGB in [0, 1]. Torch-free: the VGG metrics run an ONNX trunk.
"""

from mvstylizer.metrics.color import lab_swd
from mvstylizer.metrics.image import psnr, ssim, ssim_luma
from mvstylizer.metrics.temporal import WarpErrorMeter, flat_mask, flow_and_mask, warp_error
from mvstylizer.metrics.vgg import VGGFeatures, content_distance, gram_distance

__all__ = [
    "VGGFeatures",
    "WarpErrorMeter",
    "content_distance",
    "flat_mask",
    "flow_and_mask",
    "gram_distance",
    "lab_swd",
    "psnr",
    "ssim",
    "ssim_luma",
    "warp_error",
]
