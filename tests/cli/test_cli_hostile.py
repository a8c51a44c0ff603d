"""The command line under hostile conditions: a signal before the command starts, closed standard
streams, odd output paths."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _python(code: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          timeout=60, **kwargs)


def test_ctrl_c_while_the_commands_are_imported_is_one_line_and_130():
    # Importing the command groups (numpy, OpenCV, the registries) takes most of a second after the
    # console script starts; a Ctrl-C then printed a traceback of the import machinery. The finder
    # below raises KeyboardInterrupt exactly where the SIGINT used to land.
    result = _python("""
        import sys

        class CtrlC:
            def find_spec(self, name, path=None, target=None):
                if name == "mvstylizer.cli.stylize":
                    raise KeyboardInterrupt
                return None

        sys.meta_path.insert(0, CtrlC())
        from mvstylizer.cli import main  # the console script's first line
        sys.exit(main(["models"]))
        """)
    assert result.returncode == 130, result.stderr
    assert result.stderr.strip() == "interrupted"


def test_sigterm_is_not_swallowed_by_code_that_catches_exception(monkeypatch):
    # tqdm wraps the start of its monitor thread in `except Exception`: a SIGTERM landing there was
    # dropped with a warning and the video was finished and written, exit 0.
    import os
    import signal
    import time

    from mvstylizer.cli import main
    from mvstylizer.cli import stylize as group

    def swallowing(_args) -> int:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)  # the handler runs here
        except Exception:  # noqa: BLE001 - what the library code on the way does
            pass
        print("finished anyway")
        return 0

    monkeypatch.setattr(group, "_models", swallowing)
    assert main(["models"]) == 143
