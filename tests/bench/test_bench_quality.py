"""The quality harness (bench/quality.py) on 1 tiny content x 1 tiny style with the classic methods."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from helpers import texture, to8

from mvstylizer.errors import UserError

try:
    from mvstylizer.models.vgg_weights import load_vgg16_weights

    load_vgg16_weights()
except UserError as exc:
    pytest.skip(f"VGG16 weights unavailable: {exc}", allow_module_level=True)

from mvstylizer.bench.quality import HistogramMatch, run_quality

CLASSIC = ["reinhard", "mk", "histmatch"]


def test_histogram_match_adapter():
    content, style = texture(24, 32, seed=0), np.clip(texture(20, 28, seed=1) * [1.0, 0.6, 0.3], 0, 1)
    m = HistogramMatch()
    out = m.stylize(content, m.prepare_style(style))
    assert out.shape == content.shape and out.dtype == np.float32
    # channel-wise means move to the style's
    assert np.abs(out.mean(axis=(0, 1)) - style.mean(axis=(0, 1))).max() < 0.02


def test_run_quality_classic(tmp_path):
    content = to8(texture(48, 72, seed=0))
    style = to8(np.clip(texture(40, 40, seed=5) * np.array([1.0, 0.7, 0.3]) + 0.1, 0, 1))
    json_path = tmp_path / "results" / "quality.json"
    res = run_quality(CLASSIC, json_path, tmp_path / "docs", contents={"tex": content}, styles={"warm": style},
                      key_size=32, metric_side=64, cell_height=48, threads=1)
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(res))
    assert res["config"]["methods"] == CLASSIC and res["config"]["skipped"] == {}
    assert len(res["rows"]) == len(CLASSIC) * 2
    for row in res["rows"]:
        assert row["content"] == "tex" and row["style"] == "warm" and row["way"] in ("direct", "pipeline")
        for k in ("gram", "gram_rel", "content_dist", "ssim_luma", "lab_swd", "swd_rel", "seconds", "s_per_mp"):
            assert math.isfinite(row[k]) and row[k] >= 0, (row["method"], k)
        assert row["ssim_luma"] <= 1.0
        # a colour transfer towards the style gets closer to it than the unchanged input
        assert row["swd_rel"] < 1.0, row
    assert set(res["summary"]) == set(CLASSIC)
    for ways in res["summary"].values():
        assert set(ways) == {"direct", "pipeline"}
        for w in ways.values():
            assert all(math.isfinite(v) for k, v in w.items() if k != "gram_rel_layers")
            assert all(math.isfinite(v) and v >= 0 for v in w["gram_rel_layers"].values())
    ref = res["reference"][0]
    assert ref["gram"] > 0 and ref["lab_swd"] > 0
    md = (tmp_path / "docs" / "QUALITY.md").read_text()
    assert "| reinhard | direct |" in md and "| histmatch | pipeline |" in md
    grid = cv2.imread(str(tmp_path / "docs" / "quality_grid.png"))
    assert grid is not None and grid.shape[0] == 22 + 48 and grid.shape[1] == 64 * (2 + len(CLASSIC))


def test_run_quality_unknown_method(tmp_path):
    with pytest.raises(UserError):
        run_quality(["no-such-model"], None, None, contents={"a": to8(texture(16, 16))},
                    styles={"b": to8(texture(16, 16, seed=1))})


def test_run_quality_skips_a_model_that_does_not_build(monkeypatch):
    import mvstylizer.bench.quality as q

    real_build = q._build

    def build(name):
        if name == "broken":
            raise FileNotFoundError("weights/broken.pt missing")
        return real_build(name)

    monkeypatch.setattr(q, "_method_names", lambda methods: ["mk", "broken"])
    monkeypatch.setattr(q, "_build", build)
    res = q.run_quality(None, None, None, contents={"a": to8(texture(24, 32))},
                        styles={"b": to8(texture(24, 24, seed=1))}, key_size=16, metric_side=32, threads=1)
    assert res["config"]["methods"] == ["mk"]
    assert "weights/broken.pt missing" in res["config"]["skipped"]["broken"]
    assert any("broken" in n for n in res["notes"])
    assert set(res["summary"]) == {"mk"}
