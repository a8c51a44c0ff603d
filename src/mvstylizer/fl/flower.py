"""Running Flower's own processes (``flower-superlink``, ``flower-supernode``, ``flwr``): shared by the
cloud's ``mvstylizer cloud serve`` and the edge's ``mvstylizer edge fl-join``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def console_script(name: str) -> str:
    """A Flower console script from this Python's environment (not whatever PATH finds first)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def flower_env(home: Path) -> dict[str, str]:
    """This process's environment for a Flower process whose state lives in ``home``."""
    env = dict(os.environ)
    env["FLWR_HOME"] = str(home)
    env["FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION"] = "1"  # offline machines: never `uv sync`
    env.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    return env


def stop_process(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """Stop a process started with ``start_new_session=True`` and its children (its process group)."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
