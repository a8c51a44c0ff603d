"""Running Flower's own processes (``flower-superlink``, ``flower-supernode``, ``flwr``): shared by the
cloud's ``mvstylizer cloud serve`` and the edge's ``mvstylizer edge fl-join``."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from ..errors import UserError


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


def check_port_free(host: str, port: int) -> None:
    """Refuse a port something already listens on: a SuperLink or SuperNode would fail to bind it (a
    SuperNode with a traceback), and the listener there would answer in its place (a run then failed with
    Flower's "SuperLink unavailable")."""
    if not host.strip():  # binding "" listens everywhere, but no client can be told to reach it
        raise UserError("--host is empty; give 0.0.0.0 to listen on every interface")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As servers bind: a port that only holds closed connections (TIME_WAIT) is free, a listener is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except socket.gaierror as e:  # not "in use": the host names nothing
            raise UserError(f"--host {host} is not a name or address this machine can listen on "
                            f"({e.strerror or e})") from None
        except OSError as e:
            if e.errno == errno.EADDRNOTAVAIL:
                raise UserError(f"--host {host} is not an address of this machine") from None
            raise UserError(f"port {port} on {host} is in use ({e.strerror or e}); stop what listens there "
                            "or choose another --port") from None
