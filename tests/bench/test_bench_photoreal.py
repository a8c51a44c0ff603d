"""`bench photoreal` end to end on a tmp folder of 2 tiny synthetic pairs (DPST's folder layout)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import texture, to8

from mvstylizer.bench.photoreal import SECTION, pair_folders, replace_section, run_photoreal
from mvstylizer.bench.quality import _kept_sections
from mvstylizer.cli import main
from mvstylizer.errors import UserError

METHODS = ["input", "dpst", "reinhard"]


def _write(path: Path, rgb8: np.ndarray) -> None:
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb8, cv2.COLOR_RGB2BGR))


def _mask(h: int, w: int, split: int) -> np.ndarray:
    m = np.zeros((h, w, 3), np.uint8)
    m[:split] = (255, 0, 0)
    m[split:] = (0, 0, 255)
    return m


def make_pairs(root: Path) -> Path:
    """Two pairs: content/style with two regions each, masks, and a 'dpst' result (a regional
    recolour); pair 03's dpst.jpg is larger than its content and its content is 90 px wide."""
    for k, (name, w) in enumerate((("01", 64), ("03", 90))):
        d = root / name
        d.mkdir(parents=True)
        h = 48
        content = texture(h, w, seed=k)
        style = np.empty((40, 56, 3), np.float32)
        style[:16] = np.clip([0.9, 0.5, 0.2] + 0.1 * texture(16, 56, seed=10 + k), 0, 1)
        style[16:] = np.clip([0.2, 0.1, 0.4] + 0.1 * texture(24, 56, seed=20 + k), 0, 1)
        dpst = content.copy()
        dpst[: h // 2] = np.clip(0.3 * content[: h // 2] + [0.6, 0.35, 0.1], 0, 1)
        dpst[h // 2:] = np.clip(0.3 * content[h // 2:] + [0.1, 0.05, 0.3], 0, 1)
        if name == "03":
            dpst = cv2.resize(dpst, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
        _write(d / "content.jpg", to8(content))
        _write(d / "style.jpg", to8(style))
        _write(d / "dpst.jpg", to8(dpst))
        _write(d / "content_mask.png", _mask(h, w, h // 2))
        _write(d / "style_mask.png", _mask(40, 56, 16))
    (root / "README.txt").write_text("not a pair")
    (root / "empty").mkdir()
    return root


@pytest.fixture()
def pairs_dir(tmp_path) -> Path:
    return make_pairs(tmp_path / "bench")


def test_run_photoreal_writes_section_png_json(pairs_dir, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    quality = docs / "QUALITY.md"
    quality.write_text("# Quality\n\nother bench's text\n")
    json_path = tmp_path / "results" / "photoreal.json"
    lines: list[str] = []
    res = run_photoreal(pairs_dir, METHODS, max_side=80, json_path=json_path, out_dir=docs, cell_height=48,
                        command="mvstylizer bench photoreal DIR --methods input dpst reinhard", log=lines.append)
    assert lines and json.loads(json_path.read_text()) == json.loads(json.dumps(res))
    cfg = res["config"]
    assert cfg["pairs"] == ["01", "03"] and cfg["methods"] == METHODS and cfg["skipped"] == {}
    assert cfg["folder"] == "bench" and str(tmp_path) not in json_path.read_text()  # no local paths
    assert len(res["rows"]) == 2 * len(METHODS)
    for row in res["rows"]:
        for k in ("region_palette", "global_palette", "photoreal_db", "ssim_luma", "clipped",
                  "region_palette_sw1", "global_palette_sw1"):
            assert row[k] is not None and math.isfinite(row[k]) and row[k] >= 0, (row["method"], k)
        assert (row["seconds"] is None) == (row["method"] != "reinhard")
    s = res["summary"]
    assert s["input"]["ssim_luma"] == pytest.approx(1.0) and s["input"]["n"] == 2 and s["input"]["n_region"] == 2
    # the regional "dpst" result is closer to the style region by region than the unchanged input
    assert s["dpst"]["region_palette"] < 0.5 * s["input"]["region_palette"]
    assert s["reinhard"]["global_palette"] < s["input"]["global_palette"]
    assert s["reinhard"]["seconds_median"] > 0
    # content 90 px wide capped at 80; dpst.jpg resized to the content's size, both noted
    assert res["pair_info"]["03"]["content_size"] == [80, 43]
    assert any("03: dpst.jpg 180x96 resized" in n for n in res["notes"])
    assert any("03: content 90x48 downscaled" in n for n in res["notes"])

    text = quality.read_text()
    assert text.startswith("# Quality\n\nother bench's text\n")
    assert text.count(f"<!-- {SECTION}:begin -->") == 1 and text.count(f"<!-- {SECTION}:end -->") == 1
    assert "mvstylizer bench photoreal DIR --methods input dpst reinhard" in text
    assert "| *input, unchanged* | 2 |" in text and "| DPST (published) | 2 |" in text and "| reinhard | 2 |" in text
    assert "photoreal_grid.png" in text
    png = docs / "photoreal_grid.png"
    img = cv2.imread(str(png))
    assert img is not None and png.stat().st_size < 1_500_000
    assert img.shape[1] == 72 * 4  # content, style, dpst, reinhard columns, 3:2 cells of 48 px
    assert img.shape[0] == 22 + 2 * 48  # header + one row per pair

    # a second run replaces the section, keeps the rest
    run_photoreal(pairs_dir, ["input"], pairs=["01"], out_dir=docs, cell_height=48)
    text2 = quality.read_text()
    assert text2.startswith("# Quality\n\nother bench's text\n") and text2.count(f"<!-- {SECTION}:begin -->") == 1
    assert "| reinhard |" not in text2 and "1 pairs" in text2


def test_replace_section_and_quality_keeps_it():
    body = "## S\n\nnumbers"
    t = replace_section("", "photoreal", body)
    assert t == "<!-- photoreal:begin -->\n## S\n\nnumbers\n<!-- photoreal:end -->\n"
    t2 = replace_section("# Top\n" + t + "tail\n", "photoreal", "new")
    assert t2 == "# Top\n<!-- photoreal:begin -->\nnew\n<!-- photoreal:end -->\ntail\n"


def test_quality_markdown_rewrite_keeps_marked_sections(tmp_path):
    p = tmp_path / "QUALITY.md"
    p.write_text("# old quality\n\n<!-- photoreal:begin -->\nkeep me\n<!-- photoreal:end -->\n")
    assert _kept_sections(p) == "\n<!-- photoreal:begin -->\nkeep me\n<!-- photoreal:end -->\n"
    assert _kept_sections(tmp_path / "missing.md") == ""


def test_pair_folders_errors(pairs_dir, tmp_path):
    assert [p.name for p in pair_folders(pairs_dir)] == ["01", "03"]
    assert [p.name for p in pair_folders(pairs_dir, ["03"])] == ["03"]
    with pytest.raises(UserError, match="does not exist"):
        pair_folders(tmp_path / "nope")
    with pytest.raises(UserError, match="no pairs in"):
        pair_folders(pairs_dir / "empty")
    with pytest.raises(UserError, match="no pair 05"):
        pair_folders(pairs_dir, ["05"])
    with pytest.raises(UserError, match="unknown model"):
        run_photoreal(pairs_dir, ["input", "no-such-model"])


def test_cli_bench_photoreal(pairs_dir, tmp_path, capsys):
    docs = tmp_path / "out"
    docs.mkdir()
    rc = main(["bench", "photoreal", str(pairs_dir), "--methods", "input", "dpst", "--pairs", "01",
               "--out-dir", str(docs), "--json", str(tmp_path / "r.json")])
    out, err = capsys.readouterr()
    assert rc == 0 and "| DPST (published) | 1 |" in out and "01" in err
    assert (docs / "QUALITY.md").is_file() and (docs / "photoreal_grid.png").is_file()
    assert json.loads((tmp_path / "r.json").read_text())["config"]["methods"] == ["input", "dpst"]
    assert "--pairs 01" in (docs / "QUALITY.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["DIR_MISSING"], "does not exist"),
    (["EMPTY"], "no pairs in"),
    (["PAIRS", "--out-dir", "NO_DOCS"], "--out-dir folder does not exist"),
])
def test_cli_bench_photoreal_bad_input(pairs_dir, tmp_path, capsys, args, message):
    subst = {"DIR_MISSING": str(tmp_path / "missing"), "EMPTY": str(pairs_dir / "empty"),
             "PAIRS": str(pairs_dir), "NO_DOCS": str(tmp_path / "no-docs")}
    argv = ["bench", "photoreal", *[subst.get(a, a) for a in args]]
    if "--out-dir" not in argv:
        argv += ["--out-dir", str(tmp_path)]
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and message in err and "Traceback" not in err


def test_encode_png_reduces_colours_only_above_the_limit():
    from mvstylizer.bench.photoreal import encode_png

    img = to8(texture(64, 96, seed=4))
    data, how = encode_png(img)
    assert how == "lossless"
    back = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert (back == img).all()
    size = len(data)
    data6, how6 = encode_png(img, limit=size - 1)
    assert how6.startswith("channels rounded to") and len(data6) < size
    back6 = cv2.imdecode(np.frombuffer(data6, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert np.abs(back6.astype(int) - img).max() <= 4
    _, how_p = encode_png(img, limit=10)
    assert how_p == "256-colour palette"
