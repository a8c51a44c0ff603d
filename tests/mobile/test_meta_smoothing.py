"""Learned meta-smoothing: the data it trains on, the torch/ONNX/OpenCV paths agreeing, the shipped
module beating the classic baselines on a held-out picture, training and the benchmark."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from mvstylizer.bench.smoothing import bgu, bicubic, guided, run_smoothing
from mvstylizer.metrics import psnr
from mvstylizer.colour.affine import fit_global_affine, fit_local_affine, render, to_rgb8
from mvstylizer.mobile.meta_smoothing import ONNX_FILE, LearnedSmoother
from mvstylizer.colour.tone_curve import KNOTS, curve_lut, fit_tone_curves, guide, identity_curves
from mvstylizer.models.meta_smoother import build_net, compose, expand, export_onnx
from mvstylizer.models.smoothing_data import Damage, make_pair
from mvstylizer.video.image import read_image

from helpers import texture

CLEAN = Damage(blend_prob=0.0, clean_prob=1.0, clean_jpeg_quality=(100, 101))


def _chw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


@pytest.fixture(scope="module")
def perturbed_net():
    """A net with non-trivial weights (the fresh one starts as a plain guided filter)."""
    net = build_net(seed=3)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return net.eval()


def test_pairs_are_reproducible_and_sized_by_scale():
    img = texture(90, 160, seed=1)
    a = make_pair(img, 2.7, np.random.default_rng(7))
    b = make_pair(img, 2.7, np.random.default_rng(7))
    assert np.array_equal(a.styled_low, b.styled_low) and np.array_equal(a.target, b.target)
    assert a.styled_low.shape == (33, 59, 3) and a.target.shape == img.shape
    assert a.scale == pytest.approx(160 / 59)
    with pytest.raises(ValueError):
        make_pair(img, 9.0, np.random.default_rng(0))


def test_clean_pair_input_is_the_downscaled_target():
    """Without damage the input is the look applied at low resolution: close to the downscaled target."""
    img = cv2.GaussianBlur(texture(128, 128, seed=2), (0, 0), 2.0)
    pair = make_pair(img, 4.0, np.random.default_rng(3), CLEAN)
    low_target = cv2.resize(pair.target, pair.styled_low.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert psnr(pair.styled_low, low_target) > 30


def test_damage_hurts():
    img = texture(128, 128, seed=4)
    clean = make_pair(img, 2.0, np.random.default_rng(1), CLEAN)
    hurt = make_pair(img, 2.0, np.random.default_rng(1), Damage(blotch=0.2, noise=0.05, blend_prob=0.0, clean_prob=0.0))
    assert np.array_equal(clean.target, hurt.target)  # the same look; only the damage differs
    assert psnr(hurt.styled_low, clean.styled_low) < 35


@pytest.mark.parametrize("hw", [(72, 128), (61, 97)])
def test_onnx_graph_matches_torch(perturbed_net, tmp_path, hw):
    path = export_onnx(perturbed_net, tmp_path / "m.onnx")
    rng = np.random.default_rng(0)
    styled, content = (rng.random((*hw, 3), dtype=np.float32) for _ in range(2))
    smoother = LearnedSmoother(model=path)
    maps, g = smoother.maps(content, styled, scale=2.7)
    curves = fit_tone_curves(content, styled)
    guide_low = _chw(guide(curves, content))  # the net sees the content through the frame's curves
    with torch.no_grad():
        grid, g_t = perturbed_net(_chw(styled), guide_low, torch.tensor([2.7]))
        maps_t, _ = expand(grid, guide_low)
    assert maps.shape == (*hw, 15) and g.shape == (12 + curves.size,)
    np.testing.assert_allclose(g[:12], g_t[0].numpy(), atol=1e-4)
    np.testing.assert_array_equal(g[12:], curves.reshape(-1))
    np.testing.assert_allclose(maps, maps_t[0].permute(1, 2, 0).numpy(), atol=1e-3)


def test_phone_render_matches_training_composition(perturbed_net, tmp_path):
    """render() (OpenCV, phone) and compose() (torch, training) are the same equation (1)."""
    smoother = LearnedSmoother(model=export_onnx(perturbed_net, tmp_path / "m.onnx"))
    full = cv2.GaussianBlur(texture(150, 260, seed=5), (0, 0), 1.0)
    pair = make_pair(full, 2.6, np.random.default_rng(2))
    full8 = to_rgb8(full)
    out = smoother.upscale(pair.styled_low, pair.content_low, full8)
    curves = fit_tone_curves(pair.content_low, pair.styled_low)
    with torch.no_grad():
        c_low = _chw(guide(curves, pair.content_low))
        grid, g = perturbed_net(_chw(pair.styled_low), c_low, torch.tensor([full.shape[1] / pair.content_low.shape[1]]))
        maps, cleaned = expand(grid, c_low)
        ref = compose(cleaned, maps[:, 12:], g, c_low, _chw(guide(curves, full8.astype(np.float32) / 255)))[0]
    ref8 = to_rgb8(ref.permute(1, 2, 0).numpy())
    assert np.abs(out.astype(int) - ref8.astype(int)).max() <= 2


def test_unit_gain_render_is_the_classic_render():
    rng = np.random.default_rng(0)
    low = rng.random((20, 30, 3), dtype=np.float32)
    styled = low * 0.8 + 0.1 * rng.random((20, 30, 3), dtype=np.float32)  # stays inside [0, 1]
    coeffs = fit_local_affine(low, styled)
    g = fit_global_affine(low, styled)
    full8 = to_rgb8(cv2.resize(low, (75, 50)))
    with_gain = np.concatenate([coeffs, np.ones((20, 30, 3), np.float32)], axis=2)
    classic, learned = render(coeffs, g, low, full8), render(with_gain, g, low, full8)
    assert np.abs(classic.astype(int) - learned.astype(int)).max() <= 1
    # Identity tone curves in the global map change nothing but the guide's rounding to 8 bits.
    curved = render(with_gain, np.concatenate([g, identity_curves().reshape(-1)]), low, full8)
    assert np.abs(classic.astype(int) - curved.astype(int)).max() <= 2


def test_tone_curves_recover_a_nonlinear_look():
    rng = np.random.default_rng(0)
    content = rng.random((60, 80, 3), dtype=np.float32)
    mix = np.array([[0.9, 0.1, 0.0], [0.0, 1.0, 0.0], [0.1, 0.0, 0.8]], np.float32)
    curved = np.stack([content[..., 0] ** 2.2, np.sqrt(content[..., 1]), content[..., 2]], axis=-1)
    styled = curved @ mix.T + 0.05
    curves = fit_tone_curves(content, styled)
    assert curves.shape == (3, KNOTS) and np.all(np.diff(curves, axis=1) > 0)
    assert curves[:, 0] == pytest.approx(0.0) and curves[:, -1] == pytest.approx(1.0)
    g = guide(curves, content)
    fit = fit_global_affine(g, styled).reshape(3, 4)
    assert psnr(np.clip(g @ fit[:, :3].T + fit[:, 3], 0, 1), np.clip(styled, 0, 1)) > 40
    linear = fit_global_affine(content, styled).reshape(3, 4)
    assert psnr(np.clip(content @ linear[:, :3].T + linear[:, 3], 0, 1), np.clip(styled, 0, 1)) < 35
    # The 8-bit table is the curve itself at every level.
    levels = np.arange(256, dtype=np.float32).reshape(16, 16, 1).repeat(3, axis=2) / 255
    grid = np.linspace(0, 1, KNOTS)
    expected = np.stack([np.interp(levels[..., j], grid, curves[j]) for j in range(3)], axis=-1)
    np.testing.assert_allclose(guide(curves, levels), expected, atol=1e-6)
    np.testing.assert_allclose(curve_lut(curves)[:, 0], expected.reshape(256, 3), atol=1e-6)


def test_tone_curves_of_flat_or_tiny_frames_stay_valid():
    for content, styled in ((np.full((8, 8, 3), 0.5, np.float32), np.full((8, 8, 3), 0.2, np.float32)),
                            (np.zeros((9, 9, 3), np.float32), np.ones((9, 9, 3), np.float32))):
        curves = fit_tone_curves(content, styled)
        assert np.all(np.isfinite(curves)) and np.all(np.diff(curves, axis=1) > 0)


def test_classic_baselines_are_exact_for_a_global_map():
    full = cv2.GaussianBlur(texture(96, 128, seed=6), (0, 0), 1.5)
    m = np.array([[0.8, 0.1, 0.0], [0.0, 0.9, 0.1], [0.1, 0.0, 0.7]], np.float32)
    target = np.clip(full @ m.T + 0.05, 0, 1)
    low = cv2.resize(full, (32, 24), interpolation=cv2.INTER_AREA)
    styled_low = np.clip(low @ m.T + 0.05, 0, 1)
    full8, t8 = to_rgb8(full), to_rgb8(target)
    assert psnr(guided(styled_low, low, full8), t8) > 40
    assert psnr(bgu(styled_low, low, full8), t8) > 40
    assert psnr(bicubic(styled_low, low, full8), t8) < psnr(guided(styled_low, low, full8), t8)


def test_shipped_module_beats_classic_baselines_on_held_out_picture(package_media):
    """The committed weights, on a picture training never saw, at a non-integer and a large scale."""
    assert ONNX_FILE.is_file()
    full = read_image(package_media("astronaut.png"))
    full8 = to_rgb8(full)
    smoother = LearnedSmoother()
    for scale, seed in ((2.7, 11), (8.0, 12)):
        pair = make_pair(full, scale, np.random.default_rng(seed), Damage(clean_prob=0.0))
        t8 = to_rgb8(pair.target)
        ours = psnr(smoother.upscale(pair.styled_low, pair.content_low, full8), t8)
        for baseline in (bicubic, guided, bgu):
            assert ours > psnr(baseline(pair.styled_low, pair.content_low, full8), t8), baseline.__name__
    # A clean stylization (JPEG transport only) must not be smoothed away: the first module lost here.
    pair = make_pair(full, 4.0, np.random.default_rng(13), Damage(clean_prob=1.0))
    t8 = to_rgb8(pair.target)
    ours = psnr(smoother.upscale(pair.styled_low, pair.content_low, full8), t8)
    assert ours > max(psnr(b(pair.styled_low, pair.content_low, full8), t8) for b in (guided, bgu))


def test_phone_side_imports_no_torch():
    code = ("import sys; from mvstylizer.mobile.meta_smoothing import LearnedSmoother; import numpy as np;"
            "s = LearnedSmoother(); m, g = s.maps(np.random.rand(40, 60, 3).astype('f4'),"
            " np.random.rand(40, 60, 3).astype('f4'), 3.3); assert m.shape == (40, 60, 15);"
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_train_command_writes_weights_and_onnx(tmp_path):
    data = tmp_path / "pics"
    data.mkdir()
    for i in range(2):
        cv2.imwrite(str(data / f"p{i}.png"), (texture(300, 320, seed=i) * 255).astype(np.uint8))
    out = tmp_path / "ms.pt"
    ckpt = tmp_path / "ms.ckpt"
    cmd = [sys.executable, "-m", "mvstylizer.cli", "train", "smoothing", "--data", str(data), "--steps", "3",
           "--batch", "2", "--out", str(out), "--checkpoint", str(ckpt), "-q"]
    subprocess.run(cmd, check=True, capture_output=True)
    assert out.is_file() and out.with_suffix(".onnx").is_file() and ckpt.is_file()
    maps, _ = LearnedSmoother(model=out.with_suffix(".onnx")).maps(
        np.random.rand(16, 24, 3).astype(np.float32), np.random.rand(16, 24, 3).astype(np.float32), 2.0)
    assert np.isfinite(maps).all()


def test_bench_smoothing_small():
    pic = cv2.GaussianBlur(texture(96, 128, seed=9), (0, 0), 1.0)
    result = run_smoothing(looks=1, timing_repeats=1, pictures={"tex": pic}, scales=(2.0, 4.0),
                           time_sizes={"small": (256, 144)})
    assert set(result["summary"]) == {"damaged", "transport_only"}
    for per_method in result["summary"].values():
        assert set(per_method) == {"bicubic", "guided", "bgu", "learned"}
        for per_scale in per_method.values():
            assert set(per_scale) == {"2.0", "4.0"}
            assert all(np.isfinite(v["psnr"]) and 0 < v["ssim"] <= 1 for v in per_scale.values())
    assert all(result["ms_per_frame"][m]["small"] > 0 for m in result["summary"]["damaged"])
    json.dumps(result)


def test_bench_smoothing_scores_a_given_module_file(perturbed_net, tmp_path):
    model = export_onnx(perturbed_net, tmp_path / "other.onnx")
    pic = cv2.GaussianBlur(texture(64, 96, seed=10), (0, 0), 1.0)
    result = run_smoothing(looks=1, timing_repeats=1, pictures={"tex": pic}, scales=(2.0,),
                           time_sizes={"small": (128, 72)}, methods=("learned",), model=model)
    assert result["learned_model"] == str(model) and set(result["summary"]["damaged"]) == {"learned"}
    shipped = run_smoothing(looks=1, timing_repeats=1, pictures={"tex": pic}, scales=(2.0,),
                            time_sizes={"small": (128, 72)}, methods=("learned",))
    assert shipped["summary"]["damaged"]["learned"] != result["summary"]["damaged"]["learned"]
