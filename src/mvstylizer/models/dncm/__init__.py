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

from .colour_map import DEFAULT_ARCH, LiftParams, map_colours_np, thumbnail, transfer_np
from .lut import cube_grid, export_cube, parse_cube
from .runtime import DNCMOnnxStylizer, DNCMStyle, DNCMStylizer
from .weights import ONNX_NAME, WEIGHTS_NAME, default_weights, shipped_onnx

# The torch-backed parts (``network``: build_net, load_net; ``export``: export_onnx) are imported from
# their modules, so that importing this package never imports torch.
__all__ = ["DEFAULT_ARCH", "ONNX_NAME", "WEIGHTS_NAME", "DNCMOnnxStylizer", "DNCMStyle", "DNCMStylizer",
           "LiftParams", "cube_grid", "default_weights", "export_cube", "map_colours_np", "parse_cube",
           "shipped_onnx", "thumbnail", "transfer_np"]
