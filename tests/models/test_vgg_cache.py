"""Where the model cache goes: MVSTYLIZER_CACHE or ~/.cache/mvstylizer, and one clear error when neither works."""

from __future__ import annotations

import os

import pytest

from mvstylizer.errors import UserError
from mvstylizer.models.vgg_weights import cache_dir


@pytest.fixture
def env(monkeypatch):
    monkeypatch.delenv("MVSTYLIZER_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)  # else the cache is there, not under HOME
    return monkeypatch


def test_cache_env_folder_is_created(env, tmp_path):
    env.setenv("MVSTYLIZER_CACHE", str(tmp_path / "a" / "b"))
    assert cache_dir() == tmp_path / "a" / "b" and (tmp_path / "a" / "b").is_dir()


def test_cache_env_naming_a_file_is_a_user_error(env, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    for value in (str(f), os.devnull):
        env.setenv("MVSTYLIZER_CACHE", value)
        with pytest.raises(UserError, match=f"MVSTYLIZER_CACHE={value} is not a folder"):
            cache_dir()


@pytest.mark.parametrize("below", ["file", "missing-proc"])
def test_cache_env_that_cannot_be_created_is_a_user_error(env, tmp_path, below):
    if below == "file":
        (tmp_path / "file").write_text("x")
        value = str(tmp_path / "file" / "cache")  # a folder inside a file: ENOTDIR
    else:
        if not os.path.isdir("/proc/1"):
            pytest.skip("no /proc")
        value = "/proc/1/x"  # procfs refuses new entries, even to root
    env.setenv("MVSTYLIZER_CACHE", value)
    with pytest.raises(UserError, match=f"MVSTYLIZER_CACHE={value}: cannot create the folder"):
        cache_dir()


def test_cache_under_home(env, tmp_path):
    env.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "mvstylizer" and cache_dir().is_dir()


def test_empty_home_is_a_user_error_and_creates_nothing(env):
    env.setenv("HOME", "")
    existed = os.path.lexists("/.cache/mvstylizer")
    with pytest.raises(UserError, match="HOME is empty.*set MVSTYLIZER_CACHE"):
        cache_dir()
    assert os.path.lexists("/.cache/mvstylizer") == existed


def test_missing_home_is_a_user_error_and_is_not_created(env, tmp_path):
    home = tmp_path / "nonexistent"
    env.setenv("HOME", str(home))
    with pytest.raises(UserError, match=f"HOME={home} is not a folder.*set MVSTYLIZER_CACHE"):
        cache_dir()
    assert not home.exists()


def test_cache_env_wins_over_a_bad_home(env, tmp_path):
    env.setenv("HOME", "")
    env.setenv("MVSTYLIZER_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
