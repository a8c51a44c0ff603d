"""Benchmarks refuse, before they run, outputs they could not write: a run that found out when it wrote
its plots, montages or tables lost every result with an internal error."""

from __future__ import annotations

import numpy as np
import pytest

from mvstylizer.bench.synthetic import write_test_clip
from mvstylizer.cli import main

# root may create files anywhere but here: the kernel's own folders refuse new files
UNWRITABLE = "/proc/1"


def _err(capsys) -> str:
    return capsys.readouterr().err


def test_sweep_refuses_a_plot_folder_it_cannot_write(capsys):
    code = main(["bench", "sweep", "--model", "mk", "--in-process", "--resolution", "160x120", "--frames", "4",
                 "--axes", "gap", "--gaps", "2", "--plots", UNWRITABLE])
    assert code == 2 and _err(capsys).startswith(f"error: --plots folder is not writable: {UNWRITABLE}")


def test_a_file_given_as_an_output_folder_is_named_as_a_file(tmp_path, capsys):
    f = tmp_path / "clip.mp4"
    f.write_bytes(b"x")
    assert main(["bench", "quality", "--methods", "mk", "--out-dir", str(f)]) == 2
    assert _err(capsys).strip() == f"error: --out-dir {f} is a file, not a folder"


@pytest.mark.parametrize("command", [["phone"], ["footage", "FOLDER", "--style"]])
def test_a_folder_given_as_an_input_file_is_named_as_a_folder(tmp_path, capsys, command):
    args = ["bench", *[str(tmp_path) if a == "FOLDER" else a for a in command], str(tmp_path)]
    (tmp_path / "a.mp4").write_bytes(b"")  # footage: a folder with a clip name, so the style is reached
    assert main(args) == 2
    assert f"{tmp_path} is a folder, not a file" in _err(capsys)


def test_footage_refuses_an_unwritable_montage_folder_before_any_clip(tmp_path, capsys):
    (tmp_path / "clips").mkdir()
    code = main(["bench", "footage", str(tmp_path / "clips"), "--montage", UNWRITABLE])
    assert code == 2 and _err(capsys).startswith(f"error: --montage folder is not writable: {UNWRITABLE}")


def test_a_refused_footage_run_makes_no_montage_folder(tmp_path, capsys):
    montage = tmp_path / "montage"
    assert main(["bench", "footage", str(tmp_path / "missing"), "--montage", str(montage)]) == 2
    assert "missing is not a folder" in _err(capsys) and not montage.exists()


def _pair_folder(root, with_dpst: bool):
    import cv2

    pair = root / "pairs" / "01"
    pair.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("content.jpg", "style.jpg", *(("dpst.jpg",) if with_dpst else ())):
        cv2.imwrite(str(pair / name), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    for name in ("content_mask.png", "style_mask.png"):
        cv2.imwrite(str(pair / name), np.zeros((48, 64, 3), np.uint8))
    return root / "pairs"


@pytest.mark.parametrize("written", ["QUALITY.md", "photoreal_grid.png"])
def test_photoreal_refuses_a_report_that_is_one_of_its_own_outputs(tmp_path, capsys, written):
    pairs = _pair_folder(tmp_path, with_dpst=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "QUALITY.md").write_text("# Quality\n\nkept\n")
    code = main(["bench", "photoreal", str(pairs), "--methods", "input", "--out-dir", str(out),
                 "--json", str(out / written)])
    assert code == 2 and "would overwrite" in _err(capsys)
    assert (out / "QUALITY.md").read_text() == "# Quality\n\nkept\n"


def test_photoreal_with_nothing_to_score_fails_and_keeps_the_tables(tmp_path, capsys):
    pairs = _pair_folder(tmp_path, with_dpst=False)  # dpst asked, but no pair has DPST's result
    out = tmp_path / "out"
    out.mkdir()
    (out / "QUALITY.md").write_text("# Quality\n\nkept\n")
    code = main(["bench", "photoreal", str(pairs), "--methods", "dpst", "--out-dir", str(out)])
    assert code == 2 and "no method could be scored: dpst" in _err(capsys)
    assert (out / "QUALITY.md").read_text() == "# Quality\n\nkept\n" and not (out / "photoreal_grid.png").exists()


def test_photoreal_names_its_missing_folder_before_its_output_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no docs/ here: the default --out-dir is missing too
    assert main(["bench", "photoreal", "no_such_dir"]) == 2
    assert "benchmark folder no_such_dir does not exist" in _err(capsys)


def test_smoothing_refuses_a_crops_name_that_is_not_an_image(tmp_path, capsys):
    code = main(["bench", "smoothing", "--looks", "1", "--methods", "bicubic", "--crops", str(tmp_path / "c.txt")])
    assert code == 2 and "not an image name" in _err(capsys)


def test_compare_on_a_one_frame_clip_is_refused_not_a_nan_report(tmp_path, capsys, style):
    clip = tmp_path / "one.mp4"
    write_test_clip(clip, width=64, height=48, frames=1)
    report = tmp_path / "r.json"
    code = main(["bench", "compare", str(clip), "--style", str(style), "--model", "mk", "--json", str(report)])
    assert code == 2 and "needs at least 2" in _err(capsys) and not report.exists()


def test_sweep_refuses_a_report_that_is_one_of_its_plots(tmp_path, capsys):
    code = main(["bench", "sweep", "--model", "mk", "--in-process", "--resolution", "160x120", "--frames", "4",
                 "--axes", "gap", "--gaps", "2", "--plots", str(tmp_path), "--json", str(tmp_path / "sweep_gap.png")])
    assert code == 2 and "would overwrite" in _err(capsys)
    assert not list(tmp_path.iterdir())
