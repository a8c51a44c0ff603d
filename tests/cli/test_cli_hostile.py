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

