"""VGG16 style and content distances on the ONNX trunk of :mod:`mvstylizer.models.vgg_onnx`.

Definitions (F_l: the C_l x (H_l W_l) activation matrix of layer l for the image, after the optional
area downscale to ``max_side``, preprocessing by ``vgg_weights.preprocess``: BGR, 0..255, minus the
ImageNet mean):

    Gram:              G_l = F_l F_l^T / (C_l H_l W_l)
    gram_distance:     mean over l in {relu1_1, relu2_1, relu3_1, relu4_1} of ||G_l(out) - G_l(style)||_F^2
    content_distance:  mean over channels and positions of (F_relu4_1(out) - F_relu4_1(content))^2

With this normalisation each layer's term is 1/4 of Gatys et al.'s E_l with N_l M_l replaced by
C_l H_l W_l, so it does not depend on image size; the two images of ``gram_distance`` may differ in
size, those of ``content_distance`` must not. Units are (preprocessed activation)^2 for content and
(activation^2)^2 for style: compare numbers within the project, not across papers.

``max_side`` (default 512) area-downscales an image whose longer side exceeds it before the trunk:
features are scale dependent, so compare numbers taken at the same ``max_side``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mvstylizer.models.vgg_onnx import CONTENT_LAYER, DEFAULT_MAX_SIDE, STYLE_LAYERS, VGGFeatures


def gram(feat: np.ndarray) -> np.ndarray:
    """Normalised Gram matrix G = F F^T / (C H W) of a CxHxW activation, in numpy (float64 CxC).

    The reference for the graph's own Gram outputs (:meth:`VGGFeatures.grams`), which are faster.
    """
    c = feat.shape[0]
    f = feat.reshape(c, -1).astype(np.float64)
    return f @ f.T / float(f.size)


def gram_distance_between(grams_a: Mapping[str, np.ndarray], grams_b: Mapping[str, np.ndarray]) -> float:
    """Mean over :data:`STYLE_LAYERS` of the squared Frobenius distance of two images' Grams."""
    return float(np.mean([np.sum((grams_a[k].astype(np.float64) - grams_b[k]) ** 2) for k in STYLE_LAYERS]))


def content_distance_between(feat_a: np.ndarray, feat_b: np.ndarray) -> float:
    """Mean squared difference of two same-shape activations (float64 accumulation)."""
    if feat_a.shape != feat_b.shape:
        raise ValueError(f"content features differ in shape: {feat_a.shape} vs {feat_b.shape} "
                         "(content_distance needs images of the same size)")
    d = feat_a.astype(np.float64) - feat_b.astype(np.float64)
    return float(np.mean(d * d))


def gram_distance(output: np.ndarray, style: np.ndarray, max_side: int | None = DEFAULT_MAX_SIDE,
                  vgg: VGGFeatures | None = None) -> float:
    """Style distance of ``output`` to ``style``: mean over relu1_1..relu4_1 of ||G(out) - G(style)||_F^2.

    G = F F^T / (C H W). Sizes may differ. Pass ``vgg`` to reuse a session across calls (creating one
    costs a few hundred ms).
    """
    vgg = vgg or VGGFeatures()
    return gram_distance_between(vgg.grams(output, max_side), vgg.grams(style, max_side))


def content_distance(output: np.ndarray, content: np.ndarray, max_side: int | None = DEFAULT_MAX_SIDE,
                     vgg: VGGFeatures | None = None) -> float:
    """Content distance: mean squared difference of relu4_1 activations; same-size images."""
    if np.shape(output)[:2] != np.shape(content)[:2]:
        raise ValueError(f"content_distance needs images of the same size, got {np.shape(output)} "
                         f"and {np.shape(content)}")
    vgg = vgg or VGGFeatures()
    return content_distance_between(vgg.features(output, max_side)[CONTENT_LAYER],
                                    vgg.features(content, max_side)[CONTENT_LAYER])
