"""No cache in a home the user did not give: with HOME unset the model cache goes to XDG_CACHE_HOME or a
private folder in the temporary folder, and ONNX Runtime's telemetry never writes its device id under
~/.cache for a command (it did on every run that loaded onnxruntime)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile

import pytest

from mvstylizer.models import vgg_weights
from mvstylizer.models.vgg_weights import cache_dir


@pytest.fixture
def env(monkeypatch, tmp_path):
    for name in ("MVSTYLIZER_CACHE", "XDG_CACHE_HOME", "HOME"):
        monkeypatch.delenv(name, raising=False)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setattr(vgg_weights, "_temp_cache_path", None, raising=False)
    return monkeypatch


def test_home_unset_uses_a_private_folder_in_the_temp_folder(env, tmp_path):
    path = cache_dir()
    assert path.parent == tmp_path / "tmp" and path.is_dir()
    st = path.lstat()
    assert st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o077 == 0
    env.setattr(vgg_weights, "_temp_cache_path", None)
    assert cache_dir() == path  # the next run finds it again


@pytest.mark.parametrize("planted", ["link", "open"])
def test_a_shared_folder_someone_could_write_is_not_used(env, tmp_path, planted):
    shared = tmp_path / "tmp" / f"mvstylizer-cache-{os.getuid()}"
    if planted == "link":  # another user's folder behind a link of that name
        (tmp_path / "theirs").mkdir()
        shared.symlink_to(tmp_path / "theirs")
    else:
        shared.mkdir()
        shared.chmod(0o777)
    path = cache_dir()
    assert path != shared and path.parent == tmp_path / "tmp" and path.is_dir()
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0
    if planted == "link":
        assert not any((tmp_path / "theirs").iterdir())


def test_xdg_cache_home_comes_before_home(env, tmp_path):
    env.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "mvstylizer"
    assert not (tmp_path / "home" / ".cache").exists()
    env.setenv("XDG_CACHE_HOME", "relative/cache")  # invalid by the XDG spec: ignored
    assert cache_dir() == tmp_path / "home" / ".cache" / "mvstylizer"


def test_unusable_xdg_cache_home_is_one_clear_error(env, tmp_path):
    (tmp_path / "file").write_text("x")
    env.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    with pytest.raises(vgg_weights.UserError, match="XDG_CACHE_HOME.*set MVSTYLIZER_CACHE"):
        cache_dir()


def test_a_command_writes_nothing_under_home(tmp_path, clip, style):
    """`mvstylizer stylize --model dncm` (the shipped ONNX graph: no derived files) loads onnxruntime;
    its telemetry made ~/.cache/Microsoft/DeveloperTools/.onnxruntime/{deviceid,onnxruntime.db}."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME", "MVSTYLIZER_CACHE")}
    env.update(HOME=str(home), MVSTYLIZER_CACHE=str(tmp_path / "cache"))
    out = tmp_path / "out.png"
    still = tmp_path / "in.png"
    import cv2

    ok, frame = cv2.VideoCapture(str(clip)).read()
    assert ok and cv2.imwrite(str(still), frame)
    r = subprocess.run([sys.executable, "-m", "mvstylizer.cli", "stylize", str(still), "--style", str(style),
                        "-o", str(out), "--model", "dncm", "-q"], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert out.is_file()
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == []


def test_importing_the_package_keeps_onnxruntime_out_of_home(tmp_path):
    """Library use (no command line): onnxruntime imported after mvstylizer writes nothing under HOME."""
    env = {k: v for k, v in os.environ.items() if k not in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME")}
    env["HOME"] = str(tmp_path)
    r = subprocess.run([sys.executable, "-c", "import mvstylizer, onnxruntime"], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert list(tmp_path.rglob("*")) == []
