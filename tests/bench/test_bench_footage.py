"""`bench footage DIR`: end to end on tiny generated clips (reinhard: no DNN), and the per-clip scoring."""

from __future__ import annotations

import contextlib
import io
import json
import math

import cv2
import numpy as np
import pytest

from mvstylizer.bench.compare import ClipScorer, ClipScores
from mvstylizer.bench.footage import TARGETS, ClipResult, FootageReport, find_clips
from mvstylizer.cli import main
from mvstylizer.bench.synthetic import write_test_clip

from helpers import shifted, texture, to8

W, H, FRAMES = 96, 64, 10
CLIP_FIELDS = {
    "clip", "file", "width", "height", "frames", "key_count", "pipeline_seconds", "framewise_seconds",
    "transcode_seconds", "pipeline_over_transcode", "pipeline_over_framewise", "ssim_mean", "ssim_worst",
    "ssim_worst_frame", "psnr_mean", "psnr_worst", "warp_ours", "warp_framewise", "warp_input", "flat_warp_ours",
    "flat_warp_framewise", "flat_warp_input", "warp_pairs", "flat_warp_pairs", "flat_fraction",
    "scene_cuts_skipped", "targets", "framewise_model_seconds", "ssim_raw_mean", "ssim_raw_worst",
    "ssim_encode_floor", "stage_seconds", "key_reasons", "phone_ms_per_frame", "edge_elsewhere_seconds",
    "edge_elsewhere_over_transcode",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """One run over a folder of two good clips (one with a scene cut), a broken one and an index file."""
    root = tmp_path_factory.mktemp("footage")
    clips = root / "clips"
    clips.mkdir()
    write_test_clip(clips / "pan.mp4", width=W, height=H, frames=FRAMES, fps=10.0)
    write_test_clip(clips / "cut.mkv", width=W, height=H, frames=FRAMES, fps=10.0, scene_cut_at=5, seed=3)
    (clips / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    (clips / "INDEX.tsv").write_text("name\tsource\npan\tsynthetic\n")
    out = root / "out.json"
    montage = root / "montage"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        rc = main(["bench", "footage", str(clips), "--model", "reinhard", "--json", str(out),
                   "--montage", str(montage), "--edge-elsewhere", "--edge-latency", "0.05"])
    return {"rc": rc, "json": json.loads(out.read_text()), "montage": montage, "markdown": stdout.getvalue()}


def test_json_has_every_field_per_clip_and_overall(run):
    assert run["rc"] == 0
    r = run["json"]
    assert r["model"] == "reinhard:numpy" and r["style"].endswith("coffee.png") and r["metric_side"] == 640
    assert set(r["targets"]) == set(TARGETS) and r["notes"] and r["machine"]["cpu_count"] >= 1
    assert "mvstylizer" in r["pipeline_cli"] and r["edge_latency"] == 0.05
    good = {c["clip"]: c for c in r["clips"] if "error" not in c}
    assert sorted(good) == ["cut", "pan"]
    for c in good.values():
        assert set(c) == CLIP_FIELDS
        assert (c["width"], c["height"], c["frames"]) == (W, H, FRAMES)
        assert 1 <= c["key_count"] <= FRAMES and 0 <= c["ssim_worst_frame"] < FRAMES
        assert 0.5 < c["ssim_worst"] <= c["ssim_mean"] <= 1 and c["psnr_worst"] <= c["psnr_mean"]
        assert all(c[k] > 0 for k in ("pipeline_seconds", "framewise_seconds", "transcode_seconds"))
        assert c["framewise_seconds"] == pytest.approx(c["framewise_model_seconds"] + c["transcode_seconds"])
        assert set(c["stage_seconds"]) >= {"select", "interpolation", "encode"} and c["phone_ms_per_frame"] > 0
        assert sum(c["key_reasons"].values()) >= 1
        # Frame-by-frame is scored as an encoded video: the encode alone keeps it below its raw frames.
        assert 0.5 < c["ssim_encode_floor"] < 1 and 0.5 < c["ssim_raw_worst"] <= c["ssim_raw_mean"] <= 1
        assert c["pipeline_over_transcode"] == pytest.approx(c["pipeline_seconds"] / c["transcode_seconds"])
        assert c["edge_elsewhere_seconds"] > 0
        assert c["edge_elsewhere_over_transcode"] == pytest.approx(c["edge_elsewhere_seconds"] / c["transcode_seconds"])
        for k in ("warp_ours", "warp_framewise", "warp_input"):
            assert 0 <= c[k] < 0.1
        assert set(c["targets"]) == set(TARGETS)
        assert all(v is None or isinstance(v, bool) for v in c["targets"].values())
        assert c["targets"]["speed"] == (c["pipeline_seconds"] <= c["framewise_seconds"])
    assert good["cut"]["scene_cuts_skipped"] == 1 and good["cut"]["warp_pairs"] == FRAMES - 2
    assert good["pan"]["scene_cuts_skipped"] == 0 and good["pan"]["warp_pairs"] == FRAMES - 1
    o = r["overall"]
    assert (o["clips"], o["ok"], o["failed"]) == (3, 2, 1)
    assert o["mean"]["ssim_mean"] == pytest.approx((good["cut"]["ssim_mean"] + good["pan"]["ssim_mean"]) / 2)
    assert set(o["targets_met"]) == set(TARGETS) and all(0 <= n <= 2 for n in o["targets_met"].values())


def test_a_broken_clip_is_an_error_row_and_the_others_still_run(run):
    (bad,) = [c for c in run["json"]["clips"] if "error" in c]
    assert bad["clip"] == "broken" and bad["file"] == "broken.mp4" and "broken.mp4" in bad["error"]


def test_markdown_table_has_a_row_per_clip_and_overall(run):
    rows = [line for line in run["markdown"].splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| clip | size | frames |")
    assert {row.split(" | ")[0][2:] for row in rows[1:]} == {"broken", "cut", "pan", "**overall** (mean of 2/3 clips)"}
    assert any("error:" in row for row in rows)
    assert all(len(row.split(" | ")) == len(rows[0].split(" | ")) for row in rows)
    assert "Edge elsewhere" in run["markdown"] and "x the transcode" in run["markdown"]


def test_montage_has_three_panels_of_the_worst_frame(run):
    names = sorted(p.name for p in run["montage"].iterdir())
    assert names == ["cut_worst.png", "pan_worst.png"]
    img = cv2.imread(str(run["montage"] / "pan_worst.png"))
    assert img.shape == (H, 3 * W, 3)


def test_clip_selection_and_bad_folders(tmp_path, capsys):
    write_test_clip(tmp_path / "a.mp4", width=W, height=H, frames=3)
    write_test_clip(tmp_path / "b.mov", width=W, height=H, frames=3)
    (tmp_path / ".a.mp4.tmp-1-ab.mp4").write_bytes(b"")  # a crashed writer's leftover is not a clip
    assert [n for n, _ in find_clips(tmp_path)] == ["a", "b"]
    assert [n for n, _ in find_clips(tmp_path, ("b.mov", "a"))] == ["b", "a"]
    assert main(["bench", "footage", str(tmp_path), "--clips", "nope"]) == 2
    assert "no clip named nope" in capsys.readouterr().err
    assert main(["bench", "footage", str(tmp_path / "missing")]) == 2
    assert main(["bench", "footage", str(tmp_path), "--model", "nope"]) == 2


def _frames(n: int = 6) -> list[np.ndarray]:
    """A texture with a flat grey band, moving 2 px right per frame: flow is easy and flat pixels exist."""
    base = texture(H, W, seed=5)
    base[:, : W // 3] = 0.5
    return [to8(shifted(base, 2 * t)) for t in range(n)]


def test_scorer_on_known_answers():
    frames = _frames()
    styled = [to8(np.clip(f.astype(np.float32) / 255 * [1.1, 0.9, 0.7], 0, 1)) for f in frames]

    same = ClipScorer()  # ours == frame-by-frame: perfect fidelity, identical steadiness
    for x, y in zip(frames, styled):
        same.add(x, y, y)
    s = same.result()
    assert s.frames == 6 and s.ssim_mean == pytest.approx(1.0) and s.ssim_worst == pytest.approx(1.0)
    assert math.isinf(s.psnr_mean) and s.warp_pairs == 5 and s.scene_cuts_skipped == 0
    assert s.warp_ours == s.warp_framewise and s.flat_warp_ours == s.flat_warp_framewise
    assert s.flat_warp_pairs == 5 and 0.1 < s.flat_fraction < 0.5
    # A colour transform of a moving clip is as steady as the clip: near 0 in absolute terms (a flow
    # taken the wrong way, or no motion compensation, gave 0.02-0.06 here), and fresh noise in every
    # frame costs about 2 x 3 channels x sigma^2.
    assert s.warp_ours < 1e-4 and s.flat_warp_ours < 1e-4
    noisy = ClipScorer()
    rng = np.random.default_rng(0)
    for x, y in zip(frames, styled):
        noisy.add(x, np.clip(y + rng.normal(0, 0.03 * 255, y.shape), 0, 255).astype(np.uint8), y)
    n = noisy.result()
    assert 0.5 * 6 * 0.03**2 < n.warp_ours < 1.5 * 6 * 0.03**2 and n.warp_framewise < 1e-4
    # One identical frame among differing ones: the clip's mean PSNR is over the differing frames.
    assert math.isfinite(n.psnr_mean)
    mixed = ClipScorer()
    for i, (x, y) in enumerate(zip(frames, styled)):
        mixed.add(x, y if i == 0 else np.clip(y.astype(int) + 3, 0, 255).astype(np.uint8), y)
    assert math.isfinite(mixed.result().psnr_mean) and math.isfinite(mixed.result().psnr_worst)

    unstyled = ClipScorer()  # ours == input: our warping error is the input's
    for x in frames:
        unstyled.add(x, x, x)
    u = unstyled.result()
    assert u.warp_ours == u.warp_input and u.flat_warp_ours == u.flat_warp_input

    damaged = ClipScorer()  # one bad frame: it is the worst, and the montage keeps that frame
    for i, (x, y) in enumerate(zip(frames, styled)):
        ours = 255 - y if i == 3 else y
        damaged.add(x, ours, y)
    d = damaged.result()
    assert d.ssim_worst_frame == 3 and d.ssim_worst < 0.5 < d.ssim_mean
    assert d.warp_ours > d.warp_framewise
    panels = damaged.worst_frames
    assert panels is not None and np.allclose(panels[2], (255 - styled[3]) / 255, atol=1e-6)


def test_targets_are_undefined_without_flat_pixels():
    s = ClipScores(frames=2, ssim_mean=0.97, ssim_worst=0.95, ssim_worst_frame=1, psnr_mean=40.0, psnr_worst=39.0,
                   warp_ours=0.001, warp_framewise=0.002, warp_input=0.001, flat_warp_ours=math.nan,
                   flat_warp_framewise=math.nan, flat_warp_input=math.nan, warp_pairs=1, flat_warp_pairs=0,
                   flat_fraction=0.0, scene_cuts_skipped=0, ssim_raw_mean=0.96, ssim_raw_worst=0.94,
                   ssim_encode_floor=0.97)
    r = ClipResult("c", "c.mp4", W, H, 2, pipeline_seconds=2.5, framewise_model_seconds=1.0, transcode_seconds=1.0,
                   scores=s)
    assert r.targets() == {"warp": True, "flat_warp": None, "ssim_mean": True, "ssim_worst": True, "speed": False}
    report = FootageReport("dir", "style.png", "m", 640, "mvstylizer", [r], {})
    assert report.as_dict()["clips"][0]["flat_warp_ours"] is None  # JSON has no nan
    assert "flat –" in report.markdown() and report.overall()["targets_met"]["flat_warp"] == 0



def test_max_frames_scores_only_the_first_frames(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    write_test_clip(clips / "pan.mp4", width=W, height=H, frames=FRAMES, fps=10.0)
    out = tmp_path / "out.json"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["bench", "footage", str(clips), "--model", "reinhard", "--max-frames", "4", "--repeats", "2",
                     "--json", str(out)]) == 0
    (clip,) = json.loads(out.read_text())["clips"]
    assert clip["frames"] == 4 and clip["key_count"] <= 4
    assert clip["edge_elsewhere_seconds"] is None and clip["edge_elsewhere_over_transcode"] is None


def test_a_folder_where_every_clip_fails_exits_2_with_the_error_rows(tmp_path, style, capsys):
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    out = tmp_path / "out.json"
    assert main(["bench", "footage", str(clips), "--model", "reinhard", "--style", str(style),
                 "--json", str(out)]) == 2
    captured = capsys.readouterr()
    assert "mean of 0/1 clips" in captured.out  # the table is still printed ...
    assert json.loads(out.read_text())["overall"]["ok"] == 0  # ... and the JSON written
    assert captured.err.strip().splitlines()[-1] == (f"error: none of the 1 clip(s) in {clips} could be "
                                                      "benchmarked; see the error rows above")
