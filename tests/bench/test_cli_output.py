"""Where the CLI's results go (stdout) cannot be written: one `error:` line and exit 2 (a full disk), or
141 (a closed pipe), never `internal error` (70). A command's own OSError is still a bug (70).

(Here with the benchmarks, whose tables and JSON are the CLI's largest stdout.)"""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest

from mvstylizer.cli import main


class _Failing:
    def __init__(self, exc: OSError) -> None:
        self.exc = exc

    def write(self, text: str) -> int:
        raise self.exc

    def flush(self) -> None:
        raise self.exc


@pytest.mark.parametrize("exc", [OSError(errno.ENOSPC, "No space left on device"), OSError(errno.EIO, "I/O error")])
def test_stdout_that_cannot_be_written_is_one_error_line(monkeypatch, capsys, exc):
    monkeypatch.setattr(sys, "stdout", _Failing(exc))
    assert main(["models"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: cannot write output: {exc.strerror}\n"
    assert isinstance(sys.stdout, _Failing)  # put back as it was


def test_a_closed_pipe_is_still_141(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdout", _Failing(BrokenPipeError(errno.EPIPE, "Broken pipe")))
    assert main(["models"]) == 141
    assert capsys.readouterr().err == ""


def test_an_oserror_of_the_command_itself_is_still_an_internal_error(monkeypatch, capsys):
    from mvstylizer.cli import stylize

    def broken(_args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(stylize, "_models", broken)
    assert main(["models"]) == 70
    assert capsys.readouterr().err.startswith("internal error: OSError")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_models_into_dev_full_from_a_shell():
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "mvstylizer.cli", "models"], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr == "error: cannot write output: No space left on device\n"
