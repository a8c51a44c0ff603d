"""`bench phone CLIP`: the phone's own work per frame on decoded frames, edge answers replayed."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from mvstylizer.bench.phone import PhoneBenchConfig, run_phone
from mvstylizer.bench.synthetic import write_test_clip
from mvstylizer.cli import main
from mvstylizer.errors import UserError


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("phone") / "pan.mp4"
    write_test_clip(path, width=96, height=64, frames=12, fps=10.0)
    return path


def test_cli_reports_medians_of_every_run(clip, tmp_path):
    out = tmp_path / "phone.json"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        rc = main(["bench", "phone", str(clip), "--model", "reinhard", "--frames", "10", "--repeats", "2",
                   "--json", str(out)])
    assert rc == 0
    r = json.loads(out.read_text())
    assert (r["clip"], r["width"], r["height"], r["frames"], r["model"]) == ("pan.mp4", 96, 64, 10, "reinhard:numpy")
    assert 1 <= r["keys"] <= 10 and len(r["runs"]) == 2
    for run in r["runs"]:
        assert run["wall_ms_per_frame"] > 0 and run["cpu_ms_per_frame"] > 0 and run["select_ms_per_frame"] > 0
        assert run["work_ms_per_frame"] + run["wait_ms_per_frame"] == pytest.approx(run["wall_ms_per_frame"])
    assert min(x["wall_ms_per_frame"] for x in r["runs"]) <= r["median"]["wall_ms_per_frame"] \
        <= max(x["wall_ms_per_frame"] for x in r["runs"])
    assert "| pan.mp4 | 96x64 | 10 /" in stdout.getvalue()


def test_the_edge_is_asked_once_per_key(clip, monkeypatch):
    # Timed runs replay the warm-up's answers: the edge's model never runs inside the clock.
    from mvstylizer.edge.service import EdgeService

    calls = []
    real = EdgeService.stylize
    monkeypatch.setattr(EdgeService, "stylize", lambda self, *a: calls.append(1) or real(self, *a))
    report = run_phone(PhoneBenchConfig(clip, model="reinhard", frames=12, repeats=3))
    assert len(calls) == report.keys and len(report.runs) == 3


def test_bad_input_is_a_user_error(tmp_path, capsys):
    with pytest.raises(UserError):
        run_phone(PhoneBenchConfig(tmp_path / "missing.mp4"))
    assert main(["bench", "phone", str(tmp_path / "missing.mp4")]) != 0
    assert "clip not found" in capsys.readouterr().err
