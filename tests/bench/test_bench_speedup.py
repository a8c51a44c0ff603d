"""`bench speedup` / `bench sweep`: the JSON has the headline keys with sane values (no timing asserts)."""

from __future__ import annotations

import json
import math

import pytest

from mvstylizer.bench.speedup import BenchConfig, run_speedup, sample_pairs
from mvstylizer.bench.sweep import SweepConfig, run_sweep
from mvstylizer.cli import main
from mvstylizer.errors import UserError
from mvstylizer.mobile.pipeline import StylizeConfig

PACKAGE = ("astronaut.png", "coffee.png")
HEADLINE = ("resolution", "speedup", "ssim_vs_framewise", "psnr_vs_framewise", "warp_error",
            "warp_error_framewise", "warp_error_input", "peak_rss_mb")


def _config() -> StylizeConfig:
    """The classic model with guided smoothing: fast."""
    return StylizeConfig(model="mk", smoothing="guided")


def _bench(**kw) -> BenchConfig:
    cfg = dict(clip="camera", resolution="96x64", frames=10, framewise_sample=3, isolate=False,
               sources=PACKAGE, stylize=_config())
    cfg.update(kw)
    return BenchConfig(**cfg)


def _sane(r: dict) -> None:
    for key in HEADLINE:
        assert r[key] is not None, key
    assert r["speedup"] > 0 and r["peak_rss_mb"] > 10
    assert 0.5 < r["ssim_vs_framewise"] <= 1.0 and r["psnr_vs_framewise"] > 20
    for key in ("warp_error", "warp_error_framewise", "warp_error_input"):
        assert 0 <= r[key] < 0.1 and math.isfinite(r[key])
    assert set(r["stage_seconds"]) >= {"decode", "select", "edge", "smoothing", "interpolation", "encode"}
    assert 1 <= r["key_count"] <= r["frames"]
    assert r["machine"]["cpu_count"] >= 1


def test_speedup_on_a_camera_clip_with_exact_flow():
    r = run_speedup(_bench())
    _sane(r)
    assert (r["resolution"], r["width"], r["height"], r["frames"]) == ("96x64", 96, 64, 10)
    assert r["model"] == "mk:numpy" and r["warp_flow"].startswith("exact")
    assert r["framewise_extrapolated"] is True and r["framewise_sampled_frames"] == 6
    assert r["warp_pairs"] == 2 and r["warp_pairs_across_cut_skipped"] == 1  # pair (4, 5) straddles the cut
    assert r["all_pairs_scored"] == 8 and r["warp_error_all_pairs"] is not None
    assert r["edge_dnn_seconds"] is not None and r["edge_transport_seconds"] >= 0
    assert r["clip"]["scenes"][0]["source"] == "astronaut.png"


def test_speedup_on_a_real_clip_uses_dis_and_runs_every_frame_when_the_sample_covers_it():
    r = run_speedup(_bench(clip="bikes", frames=6, framewise_sample=3, all_pairs=False))
    _sane(r)
    assert r["warp_flow"].startswith("DIS") and r["framewise_extrapolated"] is False
    assert r["clip"]["source"] == "bikes.mp4" and "warp_error_all_pairs" not in r


def test_cli_speedup_runs_the_pipeline_in_a_child_and_writes_json(tmp_path, capsys):
    out = tmp_path / "speedup.json"
    rc = main(["bench", "speedup", "--resolution", "96x64", "--frames", "8", "--model", "mk",
               "--framewise-sample", "2", "--no-all-pairs", "--smoothing", "guided", "--json", str(out)])
    assert rc == 0
    r = json.loads(out.read_text())
    _sane(r)
    assert "child" in r["peak_rss_scope"]
    assert main(["bench", "speedup", "--clip", str(tmp_path / "nope.mp4")]) == 2
    assert "neither" in capsys.readouterr().err


def test_sweep_points_and_plots(tmp_path):
    r = run_sweep(SweepConfig(bench=_bench(frames=8, framewise_sample=2, all_pairs=False),
                              axes=("gap", "interp", "smoothing"), gaps=(2, 4), plots=tmp_path))
    ran = [p for p in r["points"] if "skipped" not in p]
    assert [(p["axis"], p["value"]) for p in ran][:4] == [("gap", 2), ("gap", 4), ("interp", "warp"),
                                                          ("interp", "transform")]
    assert ran[0]["key_count"] > ran[1]["key_count"]
    for p in ran:
        assert 0.5 < p["ssim_vs_framewise"] <= 1 and p["speedup"] > 0 and p["warp_error"] >= 0
    assert r["warp_error_framewise"] is not None
    for axis in ("gap", "interp"):
        assert (tmp_path / f"sweep_{axis}.png").stat().st_size > 1000


def test_sample_pairs():
    assert sample_pairs(100, 4) == [0, 33, 65, 98]
    assert sample_pairs(6, 3) == [0, 2, 4]
    assert sample_pairs(5, 3) == [0, 2, 3]
    with pytest.raises(UserError):
        sample_pairs(1, 2)
