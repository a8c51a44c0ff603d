"""A real `mvstylizer edge serve` process for tests: start it on a free port, wait for health, stop it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(*extra: str, scheme: str = "http", verify=True, env: dict | None = None,
                 log=subprocess.DEVNULL, preexec_fn=None, timeout: float = 60.0) -> tuple[str, subprocess.Popen]:
    """(url, process) of a server started with ``extra`` options, once /v1/health answers 200.
    ``log``: where its output goes (a file object merges stderr into it)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mvstylizer.cli", "edge", "serve", "--port", str(port), *extra],
                            stdout=log, stderr=subprocess.STDOUT if log is not subprocess.DEVNULL else log, env=env,
                            preexec_fn=preexec_fn)
    url = f"{scheme}://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/v1/health", timeout=1, verify=verify).status_code == 200:
                return url, proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("edge server did not start")
        time.sleep(0.1)


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
