"""The edge when the network or the phone goes away mid-request: a real uvicorn server in a thread,
a raw socket for the phone, so a test can hang up at any point."""

from __future__ import annotations

import resource
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time

import httpx
import numpy as np
import pytest
from edge_server import photo_like, serve_in_thread, start_server, stop_server

from mvstylizer.edge.ratelimit import RateLimitConfig
from mvstylizer.edge.server.app import create_app
from mvstylizer.edge.server.config import ServerConfig
from mvstylizer.edge.service import EdgeService
from mvstylizer.errors import UserError
from mvstylizer.mobile.http_edge import HttpEdge
from mvstylizer.wire import FRAMES_MEDIA_TYPE, Encoding, encode_frame, pack_frames

OPEN = RateLimitConfig(rate=1e6, burst=10**6)


class GatedService(EdgeService):
    """Counts stylize calls; each blocks until ``go`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.go = threading.Event()
        self.started = threading.Event()
        self.calls = 0
        self._lock = threading.Lock()

    def stylize(self, style_id: str, model: str, frames: list[np.ndarray]) -> list[np.ndarray]:
        with self._lock:
            self.calls += 1
        self.started.set()
        assert self.go.wait(30), "the test never let the worker go"
        return frames


def _hang_up(sock: socket.socket) -> None:
    """Close with a reset, as a phone whose process was killed or whose network dropped."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _queue_depth(url: str) -> float:
    text = httpx.get(f"{url}/v1/metrics", timeout=10).text
    depth = next(line for line in text.splitlines() if line.startswith("mvstylizer_edge_queue_depth "))
    return float(depth.split()[1])


@pytest.mark.network
def test_a_batch_whose_phone_hung_up_is_not_run_to_its_end():
    """A batch runs as several jobs; the scheduler dropped a gone client's job only while it waited in
    the queue, and with a worker free the batch's next job started at once: two abandoned 4-frame
    720p batches kept both workers of a real edge busy for ~35 s after their phones had gone."""
    service = GatedService()
    config = ServerConfig(workers=1, rate_limit=OPEN, chunk_pixels=32 * 32)  # one job per frame
    with serve_in_thread(create_app(service, config)) as url:
        style = encode_frame(photo_like(1, 16, 16), Encoding("png"))
        sid = httpx.post(f"{url}/v1/styles", content=style, headers={"Content-Type": "image/png"},
                         timeout=10).json()["style_id"]
        body = pack_frames([encode_frame(photo_like(i, 32, 32), Encoding("png")) for i in range(4)])
        port = int(url.rsplit(":", 1)[1])
        phone = socket.create_connection(("127.0.0.1", port), timeout=10)
        phone.sendall(f"POST /v1/stylize?style_id={sid}&model=mk HTTP/1.1\r\nHost: edge\r\n"
                      f"Content-Type: {FRAMES_MEDIA_TYPE}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        assert service.started.wait(10), "the batch's first job never started"
        _hang_up(phone)
        time.sleep(0.3)  # uvicorn sees the reset
        service.go.set()
        deadline = time.monotonic() + 10
        while _queue_depth(url) > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert service.calls == 1, f"{service.calls} of the gone phone's 4 jobs ran"
        ok = httpx.post(f"{url}/v1/stylize", params={"style_id": sid, "model": "mk"}, timeout=10,
                        content=pack_frames([encode_frame(photo_like(9, 32, 32), Encoding("png"))]),
                        headers={"Content-Type": FRAMES_MEDIA_TYPE})
        assert ok.status_code == 200, ok.text



@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a test certificate")
@pytest.mark.network
def test_idle_sockets_do_not_lock_out_a_tls_edge(tmp_path):
    """asyncio's TLS handed a connection to the edge's protocol only after its handshake, so the
    per-address cap and the header timeout never saw a socket that sent no ClientHello: 300 of them
    past a 200-file limit locked a TLS edge out for asyncio's 60 s handshake timeout, and for as long
    as they were reopened (a plain-HTTP edge closed them in 2 s)."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    trusted = ssl.create_default_context(cafile=str(cert))

    def low_fd_limit() -> None:  # like systemd's default, scaled down so the test needs fewer sockets
        resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))

    url, proc = start_server("--ssl-keyfile", str(key), "--ssl-certfile", str(cert), "--models", "mk",
                             "--header-timeout", "2", scheme="https", verify=trusted, preexec_fn=low_fd_limit)
    idle: list[socket.socket] = []
    try:
        idle = [socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=5) for _ in range(300)]
        time.sleep(0.5)
        t0 = time.monotonic()
        ok = False
        while time.monotonic() - t0 < 20 and not ok:
            try:
                ok = httpx.get(f"{url}/v1/health", timeout=3, verify=trusted).status_code == 200
            except httpx.HTTPError:
                time.sleep(0.2)
        assert ok and time.monotonic() - t0 < 10, time.monotonic() - t0
        with HttpEdge(url, retries=0) as link:  # still a certificate failure, not a dropped connection
            with pytest.raises(UserError, match="certificate verify failed"):
                link.models()
        with HttpEdge(url, verify=str(cert), retries=0) as link:  # requests of every size get through
            sid = link.register_style(np.random.default_rng(0).random((200, 300, 3), dtype=np.float32))
            frames = [photo_like(i, 144, 256) for i in range(3)]
            assert [f.shape for f in link.stylize(sid, "mk", frames)] == [f.shape for f in frames]
        assert proc.poll() is None
    finally:
        for s in idle:
            s.close()
        stop_server(proc)
