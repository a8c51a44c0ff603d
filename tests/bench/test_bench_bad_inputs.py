"""`bench clips`, `bench smoothing`, `bench compare/speedup/sweep/phone`: input they cannot use is one
`error:` line (exit 2) that names the problem, before any work; never an OpenCV or onnxruntime error."""

from __future__ import annotations

import pytest

from mvstylizer.bench.clips import MAX_SIDE, make_clips, parse_resolution
from mvstylizer.cli import main
from mvstylizer.errors import UserError


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("text", ["99999x99999", f"{MAX_SIDE + 1}x64", f"64x{MAX_SIDE + 1}", "15x64",
                                  "1" * 40 + "x64", "٩٦x٦٤"])
def test_a_resolution_beyond_the_limits_is_refused(text):
    with pytest.raises(UserError, match=f"16 to {MAX_SIDE} pixels a side"):
        parse_resolution(text)


def test_the_largest_resolution_is_accepted():
    assert parse_resolution(f"{MAX_SIDE}x{MAX_SIDE}") == (MAX_SIDE, MAX_SIDE)


def test_cli_clips_refuses_a_huge_resolution_before_writing(tmp_path, capsys):
    assert main(["bench", "clips", "--out", str(tmp_path), "--resolution", "99999x99999", "--clips", "camera"]) == 2
    assert "unknown resolution '99999x99999'" in _one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_cli_clips_says_when_out_is_a_file(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("keep")
    assert main(["bench", "clips", "--out", str(afile), "--resolution", "96x64", "--clips", "camera"]) == 2
    assert f"--out {afile} is a file, not a folder" in _one_error_line(capsys)
    assert afile.read_text() == "keep"
    with pytest.raises(UserError, match="does not exist"):
        make_clips("96x64", tmp_path / "missing", kinds=("camera",))


@pytest.mark.parametrize("content", [b"", b"\x89PNG not a model", b"x" * 69])
def test_cli_smoothing_refuses_a_model_onnxruntime_cannot_load(tmp_path, capsys, content):
    model = tmp_path / "tiny.png"
    model.write_bytes(content)
    assert main(["bench", "smoothing", "--model", str(model), "--methods", "learned"]) == 2
    err = _one_error_line(capsys)
    assert f"meta-smoothing model {model} cannot be loaded by onnxruntime" in err


def test_smoothing_refuses_an_onnx_model_that_is_not_a_smoothing_module(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    from mvstylizer.bench.smoothing import open_learned

    with pytest.raises(UserError, match="not a meta-smoothing module"):
        open_learned(path)


@pytest.fixture
def photo(tmp_path, style):
    path = tmp_path / "photo.png"
    path.write_bytes(style.read_bytes())
    return path


@pytest.mark.parametrize("argv, what", [
    (lambda p, s: ["bench", "compare", p, "--style", s, "--model", "reinhard"], "input"),
    (lambda p, s: ["bench", "speedup", "--clip", p, "--style", s, "--model", "reinhard"], "--clip"),
    (lambda p, s: ["bench", "sweep", "--clip", p, "--style", s, "--model", "reinhard"], "--clip"),
    (lambda p, s: ["bench", "phone", p, "--style", s, "--model", "reinhard"], "clip"),
], ids=["compare", "speedup", "sweep", "phone"])
def test_an_image_given_as_the_clip_is_named_as_such(photo, style, capsys, argv, what):
    assert main([str(a) for a in argv(photo, style)]) == 2
    err = _one_error_line(capsys)
    assert err.startswith(f"error: {what} {photo} is an image, not a video; give a video file (")
    assert "/tmp" not in err.replace(str(photo), "")  # nothing about an internal temporary file
