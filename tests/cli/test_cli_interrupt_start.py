"""Ctrl-C at any moment of a command's start (the command line loading, the studio importing FastAPI,
its server starting) ends it with status 130 and the one line "interrupted": never a traceback, and
never death by the signal itself.

Three ways it went wrong, each pinned down by a deterministic test, and the real thing timed:

* a KeyboardInterrupt that ended a string ``exec`` (``dataclasses`` build their methods that way while
  modules load) is recorded by CPython as unhandled even when caught, and ``python -m mvstylizer.cli``
  then died by SIGINT at exit (-2) after printing "interrupted";
* NumPy's import turns a KeyboardInterrupt into an ImportError ("...caused by a bad install"), which
  escaped as a traceback: the command groups were loaded before any stop was watched for;
* a Ctrl-C while ``mvstylizer.cli`` itself was being imported was a traceback out of the import.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest


def _run_module(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    """``python -m`` a module made of ``body`` (the way the bug showed), in a fresh interpreter."""
    (tmp_path / "starter.py").write_text(textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    try:
        return subprocess.run([sys.executable, "-m", "starter"], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("still running 60 s after the Ctrl-C")


def test_an_interrupt_inside_a_string_exec_still_exits_130(tmp_path):
    r = _run_module(tmp_path, """
        import sys
        import mvstylizer.cli

        cli = sys.modules["mvstylizer.cli.main"]  # (the package's attribute `main` is the function)

        def build_parser():
            exec("raise KeyboardInterrupt", {})  # as a dataclass being made when Ctrl-C came

        cli.build_parser = build_parser
        sys.exit(cli.main(["models"]))
    """)
    assert (r.returncode, r.stderr) == (130, "interrupted\n")


def test_an_interrupt_a_library_turned_into_another_error_while_loading_is_still_a_stop(tmp_path):
    r = _run_module(tmp_path, """
        import os, signal, sys
        import mvstylizer.cli

        cli = sys.modules["mvstylizer.cli.main"]  # (the package's attribute `main` is the function)

        def build_parser():
            try:  # numpy/__init__.py: any failure of its core import becomes an ImportError
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(1000):  # the handler runs between bytecodes
                    pass
            except KeyboardInterrupt:
                raise ImportError("This is unlikely to be a NumPy issue but will be caused by a bad install")
            raise AssertionError("no KeyboardInterrupt")

        cli.build_parser = build_parser
        sys.exit(cli.main(["models"]))
    """)
    assert (r.returncode, r.stderr) == (130, "interrupted\n")


def test_an_interrupt_while_the_command_line_is_imported_exits_130(tmp_path):
    r = _run_module(tmp_path, """
        import sys, runpy

        class Interrupt:  # Ctrl-C arriving while mvstylizer.cli loads its main module
            def find_spec(self, name, path=None, target=None):
                if name == "mvstylizer.cli.main":
                    raise KeyboardInterrupt
                return None

        sys.meta_path.insert(0, Interrupt())
        runpy.run_module("mvstylizer.cli", run_name="__main__")
    """)
    assert (r.returncode, r.stderr) == (130, "interrupted\n")


_SWALLOW = """
    import os, signal

    def swallow_a_ctrl_c():  # a library that catches the KeyboardInterrupt and carries on
        try:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
        except KeyboardInterrupt:
            return
        raise AssertionError("no KeyboardInterrupt")
"""


def test_an_interrupt_a_library_swallowed_still_stops_the_command(tmp_path):
    r = _run_module(tmp_path, _SWALLOW + """
    import sys
    import mvstylizer.cli
    from mvstylizer.cli import stylize

    def models(args):
        swallow_a_ctrl_c()
        print("the listing")
        return 0

    stylize._models = models
    sys.exit(mvstylizer.cli.main(["models"]))
    """)
    assert (r.returncode, r.stderr) == (130, "interrupted\n")


@pytest.mark.network
def test_studio_does_not_start_serving_after_a_lost_interrupt(tmp_path):
    """A Ctrl-C while the app was built (FastAPI and pydantic at work), swallowed there: the studio used
    to start serving regardless and run on until a second Ctrl-C."""
    r = _run_module(tmp_path, _SWALLOW + """
    import sys
    import mvstylizer.cli
    from mvstylizer.studio import app

    real = app.create_app

    def create_app(*a, **k):
        swallow_a_ctrl_c()
        return real(*a, **k)

    app.create_app = create_app
    sys.exit(mvstylizer.cli.main(["studio", "--port", "0"]))
    """)
    assert (r.returncode, r.stderr, r.stdout) == (130, "interrupted\n", "")


@pytest.mark.slow
@pytest.mark.network
def test_studio_stopped_by_ctrl_c_at_any_moment_of_its_start(tmp_path):
    """The reported case: `python -m mvstylizer.cli studio` and SIGINT 0.3 s to 3 s after the start
    (imports, the app being built, uvicorn starting, then serving). Its temporary work folder goes too."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "MVSTYLIZER_CACHE": str(tmp_path / "cache")}
    results = []
    for delay in (0.3, 0.5, 0.7, 0.9, 1.0, 1.1, 1.2, 1.3, 1.5, 1.8, 2.2, 3.0):
        p = subprocess.Popen([sys.executable, "-m", "mvstylizer.cli", "studio", "--port", "0"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        p.send_signal(signal.SIGINT)
        try:
            _, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
            err = f"(hung) {err}"
        results.append((delay, p.returncode, err))
    assert [r for r in results if r[1:] != (130, "interrupted\n")] == []
    assert list(tmp.glob("mvstylizer-studio-*")) == []
