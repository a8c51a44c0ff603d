"""`mvstylizer bench compare` (the pipeline against frame-by-frame on one video) and `bench runtime`
(each DNN's runtimes side by side), on tiny inputs."""

from __future__ import annotations

import json

import pytest

from mvstylizer.cli import main


def test_bench_compare_scores_the_pipeline_against_frame_by_frame(tmp_path, clip, style, capsys):
    out = tmp_path / "compare.json"
    assert main(["bench", "compare", str(clip), "--style", str(style), "--model", "reinhard", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == r
    assert (r["width"], r["height"], r["frames"], r["model"], r["interp"]) == (96, 64, 16, "reinhard", "transform")
    assert 1 <= r["key_count"] <= r["frames"]
    assert r["pipeline_seconds"] > 0 and r["framewise_seconds"] > 0
    assert r["speedup"] == pytest.approx(r["framewise_seconds"] / r["pipeline_seconds"])
    # A global model: the pipeline reproduces frame-by-frame closely and is no less steady than the input.
    assert 0.9 < r["ssim_vs_framewise"] <= 1.0 and r["psnr_vs_framewise"] > 25
    assert 0 <= r["warp_error"] <= 2 * r["warp_error_framewise"] + 1e-4


def test_bench_compare_refuses_an_unknown_model_before_any_work(tmp_path, clip, style, capsys):
    assert main(["bench", "compare", str(clip), "--style", str(style), "--model", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


def test_bench_runtime_times_each_runtime_side_by_side(monkeypatch, package_media):
    pytest.importorskip("torch")
    from mvstylizer.bench import runtime
    from mvstylizer.models.registry import available_models

    package_media("coffee.png")  # skips without scikit-image's photos
    monkeypatch.setattr(runtime, "SIZES", {"key 64x48": (64, 48)})
    monkeypatch.setattr(runtime, "available_models", lambda: [s for s in available_models() if s.name == "dncm"])
    r = runtime.run_runtime(repeats=1)
    assert {(row["model"], row["runtime"]) for row in r["rows"]} == {("dncm", "onnx"), ("dncm", "torch")}
    assert all(row["ms key 64x48"] > 0 for row in r["rows"])
    assert r["fastest_at_key_size"]["dncm"] in ("onnx", "torch")
