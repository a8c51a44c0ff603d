"""Edge servers for tests: a real `mvstylizer edge serve` process (start on a free port, wait for
health, stop), an app served by uvicorn in a thread, and photo-like frames to send them."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import numpy as np


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


def photo_like(seed: int, h: int, w: int) -> np.ndarray:
    """A smooth, photo-like RGB frame (noise alone makes JPEG sizes and colour stats unrealistic)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(0.2, 0.8, 3).astype(np.float32)
    img = base + 0.25 * np.stack([np.sin(xx / (7 + 3 * c) + c) * np.cos(yy / (5 + 2 * c)) for c in range(3)], -1)
    img += rng.normal(0, 0.02, img.shape).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32)


@contextlib.contextmanager
def serve_edge(service, config, join_seconds: float = 30.0):
    """(app, uvicorn server, port): the edge app of ``service`` served in a thread as `edge serve` runs
    it (its own uvicorn settings from ``config``), stopped at the end."""
    from mvstylizer.edge.server.app import create_app
    from mvstylizer.edge.server.serve import build_server

    app = create_app(service, config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = build_server(app, config, port)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.02)
    try:
        yield app, server, port
    finally:
        server.should_exit = True
        thread.join(join_seconds)
        sock.close()
    assert not thread.is_alive()


@contextlib.contextmanager
def serve_in_thread(app):
    """Serve ``app`` with uvicorn on a free loopback port in a background thread; yields the base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "edge server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        assert not thread.is_alive()
