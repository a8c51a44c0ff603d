"""The edge's answers to a second review: decode-cost bombs, unread answers, shutdown with a job
running, token guessing from many addresses, and options that leave no usable frame (docs/EDGE.md)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import signal
import socket
import subprocess
import sys
import time
import zlib

import cv2
import httpx
import numpy as np
import pytest
from edge_server import free_port, photo_like, serve_edge, serve_in_thread

from mvstylizer import wire
from mvstylizer.edge.ratelimit import AuthFailureConfig, AuthFailureLimiter, RateLimitConfig
from mvstylizer.edge.server.app import create_app
from mvstylizer.edge.server.config import ServerConfig
from mvstylizer.edge.service import EdgeService
from mvstylizer.wire import Encoding, encode_frame

OPEN = RateLimitConfig(rate=1e6, burst=10**6)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


# ------------------------------------------------------------------------- PNG text-chunk bombs


@pytest.mark.network
def test_a_png_style_of_many_text_chunks_is_refused_and_a_new_style_is_decoded_once(monkeypatch):
    decoded: list[int] = []
    imdecode = cv2.imdecode

    def counting(*args):
        decoded.append(1)
        return imdecode(*args)

    monkeypatch.setattr(cv2, "imdecode", counting)
    png = encode_frame(photo_like(1, 64, 64), Encoding("png"))
    ztxt = _png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"\x00" * 7_500_000, 9))
    bomb = png[:33] + ztxt * 1000 + png[33:]  # 7 MB; 6-40 s of a worker's time when decoded
    config = ServerConfig(port=0, log_level="warning", rate_limit=OPEN, max_request_bytes=16 << 20)
    with serve_in_thread(create_app(EdgeService(), config)) as url, httpx.Client(base_url=url, timeout=60) as c:
        r = c.post("/v1/styles", content=bomb, headers={"Content-Type": "image/png"})
        assert r.status_code == 400 and "text or colour-profile chunks" in r.json()["detail"], r.text
        assert decoded == []
        assert c.post("/v1/styles", content=png, headers={"Content-Type": "image/png"}).status_code == 200
        assert len(decoded) == 1  # checked and kept from one decode (before: two)
        assert c.post("/v1/styles", content=png, headers={"Content-Type": "image/png"}).status_code == 200
        assert len(decoded) == 1  # a style the edge holds is not decoded again


# ------------------------------------------------------------------------- answers never read


def _wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.network
def test_an_answer_the_client_never_reads_is_dropped():
    """A client that sends requests and never reads the answers: each answer stays in the server's
    memory until the connection goes, which (asyncio's close waits for the flush) was never."""
    config = ServerConfig(port=0, log_level="critical", rate_limit=OPEN, write_timeout_s=1.0,
                          header_timeout_s=3600.0)
    with serve_edge(EdgeService(), config) as (_app, server, port):
        url = f"http://127.0.0.1:{port}"
        sid = httpx.post(f"{url}/v1/styles", content=encode_frame(photo_like(1, 64, 64), Encoding("png")),
                         headers={"Content-Type": "image/png"}).json()["style_id"]
        noise = np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), np.uint8)
        body = wire.pack_frames([encode_frame(noise, Encoding("jpeg", 90))] * 4)  # ~12 MB answer as PNG
        head = (f"POST /v1/stylize?style_id={sid}&model=reinhard&encoding=png HTTP/1.1\r\nHost: x\r\n"
                f"Content-Type: {wire.FRAMES_MEDIA_TYPE}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        with socket.socket() as phone:
            phone.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            phone.connect(("127.0.0.1", port))
            phone.sendall(head + body)
            assert phone.recv(16).startswith(b"HTTP/1.1 200"), "the answer began"
            # The connection is left open and unread; the server drops it once the write has stalled
            # for write_timeout_s (generous margin: the answer itself takes ~1 s to make).
            assert _wait_for(lambda: not server.server_state.connections, 60), "the unread answer is still held"
            phone.settimeout(10)
            got = 0
            with contextlib.suppress(ConnectionResetError):
                while chunk := phone.recv(1 << 16):
                    got += len(chunk)
            assert got < 12_000_000  # cut off, not delivered


# ------------------------------------------------------------------------- shutdown with a job running

_SERVE_WITH_A_STUCK_JOB = """
import sys, threading
from mvstylizer.cli.main import main
from mvstylizer.edge.server import serve
from mvstylizer.edge.service import EdgeService

class Stuck(EdgeService):
    def register_style(self, encoded, decode=None):
        print("job running", flush=True)
        threading.Event().wait(3600)  # a model call nothing can interrupt
        return "never"

serve.EdgeService = Stuck
sys.exit(main(["edge", "serve", "--port", sys.argv[1], "--log-level", "warning"]))
"""


@pytest.mark.network
@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, 130)])
def test_the_server_exits_after_its_grace_period_with_a_job_still_running(sig, status):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", _SERVE_WITH_A_STUCK_JOB, str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        assert _wait_for(lambda: _health(url), 60), "the edge did not start"
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            answer = pool.submit(httpx.post, f"{url}/v1/styles", content=encode_frame(photo_like(1, 16, 16),
                                 Encoding("png")), headers={"Content-Type": "image/png"}, timeout=120)
            assert proc.stdout is not None and proc.stdout.readline() == "job running\n"
            proc.send_signal(sig)
            # Before: the process waited for the job (an hour here); now it goes after the grace period
            # (the interpreter joined a ThreadPoolExecutor's threads at exit, even after a shutdown
            # that did not wait: after Ctrl-C too).
            assert proc.wait(60) == status
            r = answer.result(60)
        assert r.status_code == 503 and r.headers["Retry-After"] == "1", r.text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _health(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v1/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# ------------------------------------------------------------------------- token guessing from many addresses


def _guess(lim: AuthFailureLimiter, address: str, times: int) -> int:
    """Failed authentications ``address`` gets to make before it is blocked, up to ``times``."""
    for n in range(times):
        if lim.blocked(address) is not None:
            return n
        lim.failed(address)
    return times


def test_rotating_addresses_within_a_network_share_its_limit():
    """40 addresses of one /24 made 30 guesses each without a 429: the limit was per exact address."""
    lim = AuthFailureLimiter(AuthFailureConfig(rate=1.0, burst=30), clock=lambda: 0.0)
    guesses = sum(_guess(lim, f"203.0.113.{i}", 30) for i in range(1, 41))
    assert guesses == 30 * 4  # the /24's own limit: four addresses' worth
    assert lim.blocked("203.0.113.200") is not None
    assert lim.blocked("198.51.100.7") is None  # another network is not affected
    v6 = sum(_guess(lim, f"2001:db8:0:1::{i:x}", 30) for i in range(1, 41))  # a subscriber's /64: one address
    assert v6 == 30 and lim.blocked("2001:db8:0:1:ffff::1") is not None
    assert lim.blocked("2001:db8:0:2::1") is None
    assert _guess(lim, "::ffff:203.0.113.9", 1) == 0  # the same IPv4 address, written as IPv6


def test_making_room_in_the_table_does_not_unblock_a_guesser():
    """Failures from new addresses filled the table, and pruning it dropped the oldest entries, the
    blocked ones with them: their guesser got a fresh burst."""
    now = [0.0]
    lim = AuthFailureLimiter(AuthFailureConfig(rate=0.01, burst=3, max_addresses=8), clock=lambda: now[0])
    guessers = [f"192.0.{i}.1" for i in range(1, 9)]  # more than the table holds, with their networks
    for address in guessers:
        now[0] += 1.0
        assert _guess(lim, address, 10) == 3
    for i in range(1, 50):  # then one failure each from other networks
        now[0] += 1.0
        lim.failed(f"10.{i}.0.1")
    assert all(lim.blocked(a) is not None for a in guessers)


# ------------------------------------------------------------------------- smaller: the start line, runtimes


def test_the_start_line_writes_an_ipv6_host_as_a_url_does(monkeypatch, caplog):
    """`--host ::` was announced as http://:::18105."""
    from mvstylizer.edge.server import serve

    class NoServer:
        started = True

        def run(self, sockets):
            return None

    def bind(host: str, port: int) -> socket.socket:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        return sock

    monkeypatch.setattr(serve, "_bind", bind)
    monkeypatch.setattr(serve, "build_server", lambda app, config, port: NoServer())
    with caplog.at_level("INFO", "mvstylizer.edge.server"):
        serve.serve(ServerConfig(host="::", port=0, models=("reinhard",)))
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("edge server on "))
    assert line.startswith("edge server on http://[::]:"), line


def test_an_unknown_runtime_of_a_served_model_is_named_as_such():
    """`model=dncm:bogus` on an edge serving dncm was "unknown model 'dncm:bogus'"."""
    from mvstylizer.edge.metrics import EdgeMetrics
    from mvstylizer.edge.server.runtime import ServerRuntime
    from mvstylizer.errors import UserError

    rt = ServerRuntime(EdgeService(), ServerConfig(models=("dncm",)), EdgeMetrics(set()))
    with pytest.raises(UserError, match="model dncm has no runtime 'bogus'; it has: "):
        rt.serves("dncm:bogus")
    with pytest.raises(UserError, match="unknown model 'bogus:torch'; this edge serves: dncm"):
        rt.serves("bogus:torch")
