"""`bench ... --json FILE` (and `bench smoothing --crops`) never replace one of the run's inputs: the
command is refused before any work and the input keeps its bytes."""

from __future__ import annotations

import pytest

from mvstylizer.cli import main

KINDS = {"video": "in.mp4", "style": "style.png", "model": "m.onnx", "clip": "clips/a.mp4", "pair": "p/01/style.jpg"}


@pytest.fixture
def files(tmp_path):
    made = {}
    for kind, name in KINDS.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"input " + kind.encode())
        made[kind] = path
    return made


CASES = [
    ("compare-style", lambda f: ["bench", "compare", f["video"], "--style", f["style"], "--json", f["style"]], "style"),
    ("compare-input", lambda f: ["bench", "compare", f["video"], "--style", f["style"], "--json", f["video"]], "video"),
    ("phone-clip", lambda f: ["bench", "phone", f["video"], "--json", f["video"]], "video"),
    ("phone-style", lambda f: ["bench", "phone", f["video"], "--style", f["style"], "--json", f["style"]], "style"),
    ("speedup-clip", lambda f: ["bench", "speedup", "--clip", f["video"], "--json", f["video"]], "video"),
    ("speedup-style", lambda f: ["bench", "speedup", "--style", f["style"], "--json", f["style"]], "style"),
    ("sweep-clip", lambda f: ["bench", "sweep", "--clip", f["video"], "--json", f["video"]], "video"),
    ("footage-clip", lambda f: ["bench", "footage", f["clip"].parent, "--json", f["clip"]], "clip"),
    ("footage-style", lambda f: ["bench", "footage", f["clip"].parent, "--style", f["style"], "--json", f["style"]],
     "style"),
    ("smoothing-json", lambda f: ["bench", "smoothing", "--model", f["model"], "--json", f["model"]], "model"),
    ("smoothing-crops", lambda f: ["bench", "smoothing", "--model", f["model"], "--crops", f["model"]], "model"),
    ("photoreal-pair", lambda f: ["bench", "photoreal", f["pair"].parent.parent, "--json", f["pair"]], "pair"),
]


@pytest.mark.parametrize("argv, kept", [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_a_report_that_would_replace_an_input_is_refused_before_any_work(files, capsys, argv, kept):
    assert main([str(a) for a in argv(files)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "would overwrite" in err and len(err.strip().splitlines()) == 1
    assert files[kept].read_bytes() == b"input " + kept.encode()
