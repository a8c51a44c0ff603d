"""An empty file or folder name (`--out "$UNSET"`) is refused as bad input: ``Path("")`` is ".", so
`studio --workdir ""` served from the current folder, `bench clips --out ""` and `bench quality
--out-dir ""` filled it, `cloud serve --state-dir ""` kept its state there and `train --data ""`
trained on it."""

from __future__ import annotations

import pytest

from mvstylizer.cli import main

CASES = [
    ["studio", "--workdir", ""],
    ["bench", "clips", "--out", ""],
    ["bench", "quality", "--out-dir", ""],
    ["bench", "speedup", "--clip", ""],
    ["cloud", "serve", "--state-dir", ""],
    ["edge", "serve", "--token-file", ""],
    ["train", "wct2", "--data", "", "--out", "w.pt"],
    ["train", "smoothing", "--out", "w.pt", "--onnx", ""],
    ["stylize", "in.png", "--style", "s.png", "-o", ""],
    ["export-lut", "--style", "", "-o", "x.cube"],
    ["fl", "simulate", "--json", ""],
]


@pytest.mark.parametrize("argv", CASES, ids=[" ".join(c[:3]) for c in CASES])
def test_an_empty_path_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "expected a file or folder name, got an empty one" in err and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []
