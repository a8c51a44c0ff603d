"""Issue 14 item 7: the edge's smaller holes, each with a test that failed on the code before its fix
(docs/EDGE.md, "Threat table", rows 7c-7l)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import shutil
import socket
import subprocess
import threading
import time
import warnings

import httpx
import numpy as np
import pytest
from edge_server import photo_like, serve_edge, serve_in_thread, start_server, stop_server

from mvstylizer.edge.auth import TokenSet, query_token_params, token_weakness
from mvstylizer.edge.ratelimit import AuthFailureConfig, AuthFailureLimiter, RateLimitConfig
from mvstylizer.edge.server.app import create_app
from mvstylizer.edge.server.config import ServerConfig
from mvstylizer.edge.service import EdgeConfig, EdgeService
from mvstylizer.errors import UserError
from mvstylizer.mobile.edge_link import EdgeUnavailable, EmbeddedEdge, FallbackEdge
from mvstylizer.mobile.http_edge import HttpEdge, _is_loopback
from mvstylizer.wire import FRAMES_MEDIA_TYPE, Encoding, encode_frame, pack_frames

OPEN = RateLimitConfig(rate=1e6, burst=10**6)
PHONE, OPS = "phone-token-5f2a9c0e7d1b", "ops-token-8c3e1a7f4b2d9"


def _png(seed: int, h: int = 16, w: int = 16) -> bytes:
    return encode_frame(photo_like(seed, h, w), Encoding("png"))


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _token_file(tmp_path, text: str, mode: int = 0o600):
    f = tmp_path / "tokens"
    f.write_text(text)
    f.chmod(mode)
    return f


# ------------------------------------------------------------------------- 7g: token strength, file mode


def test_weak_tokens_and_open_token_files_are_refused_at_start(tmp_path):
    for weak in ("aaaaaaaaaaaaaaaa", "abababababababab", "passwordpassword", "0000000000000000000000000"):
        assert token_weakness(weak) is not None, weak
        f = _token_file(tmp_path, f"phone {weak}\n")
        with pytest.raises(UserError, match="too weak") as info:
            TokenSet.from_file(f)
        assert weak not in str(info.value) and "secrets.token_urlsafe" in str(info.value)
    for strong in ("alice-token-0123456789", "0123456789abcdef", "kJ3_x9Qp-Lm2ZtR8"):
        assert token_weakness(strong) is None, strong
    f = _token_file(tmp_path, f"phone {PHONE}\n", 0o644)
    with pytest.raises(UserError, match=r"accessible by other users \(permissions 0644\).*chmod 600"):
        TokenSet.from_file(f)
    f.chmod(0o640)
    with pytest.raises(UserError, match="0640"):
        TokenSet.from_file(f)
    f.chmod(0o600)
    assert TokenSet.from_file(f).identify(PHONE) == "phone"


def test_edge_serve_refuses_a_weak_token_and_a_readable_token_file(tmp_path, capsys):
    from mvstylizer.cli import main

    for text, mode, fragment in ((f"phone {'a' * 16}\n", 0o600, "too weak"),
                                 (f"phone {PHONE}\n", 0o644, "chmod 600")):
        f = _token_file(tmp_path, text, mode)
        assert main(["edge", "serve", "--port", "0", "--token-file", str(f)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and fragment in err and "\n" not in err, err


# ------------------------------------------------------------------------- 7f: scopes


def test_token_scopes_third_column_is_optional(tmp_path):
    f = _token_file(tmp_path, f"# old format still works\nphone {PHONE}\nops {OPS} metrics,stylize\n"
                              "lonely-token-0123456789\n")
    tokens = TokenSet.from_file(f)
    assert tokens.lookup(PHONE) == ("phone", frozenset({"stylize"}))
    assert tokens.lookup(OPS) == ("ops", frozenset({"metrics", "stylize"}))
    assert tokens.lookup("lonely-token-0123456789") == ("token-4", frozenset({"stylize"}))
    for text, fragment in ((f"ops {OPS} admin\n", "unknown scope admin"), (f"ops {OPS} a b\n", "expected")):
        with pytest.raises(UserError, match=fragment):
            TokenSet.from_file(_token_file(tmp_path, text))


def test_a_phone_token_cannot_read_metrics():
    tokens = TokenSet.from_tokens({"phone": PHONE, "ops": OPS}, scopes={"ops": ["metrics"]})
    config = ServerConfig(port=0, log_level="warning", tokens=tokens, rate_limit=OPEN)
    with serve_in_thread(create_app(EdgeService(), config)) as url, httpx.Client(base_url=url, timeout=10) as c:
        r = c.get("/v1/metrics", headers=_bearer(PHONE))
        assert r.status_code == 403 and "'metrics' scope" in r.json()["detail"], r.text
        assert "mvstylizer_edge" not in r.text
        assert c.get("/v1/models", headers=_bearer(PHONE)).status_code == 200
        r = c.get("/v1/metrics", headers=_bearer(OPS))
        assert r.status_code == 200 and 'mvstylizer_edge_rejected_total{reason="scope"} 1.0' in r.text
        assert c.get("/v1/models", headers=_bearer(OPS)).status_code == 403  # a scraper cannot stylize
        assert c.post("/v1/styles", content=_png(1), headers={"Content-Type": "image/png", **_bearer(OPS)}
                      ).status_code == 403
        spec = c.get("/openapi.json").json()
        assert "403" in spec["paths"]["/v1/metrics"]["get"]["responses"]


# ------------------------------------------------------------------------- 7e: 401s rate-limited per address


def test_auth_failure_limiter_refills():
    now = [0.0]
    lim = AuthFailureLimiter(AuthFailureConfig(rate=0.5, burst=3), clock=lambda: now[0])
    for _ in range(3):
        assert lim.blocked("a") is None
        lim.failed("a")
    assert lim.blocked("a") == pytest.approx(2.0) and lim.blocked("b") is None
    now[0] = 2.0
    assert lim.blocked("a") is None


def test_401s_are_rate_limited_per_client_address():
    tokens = TokenSet.from_tokens({"phone": PHONE})
    config = ServerConfig(port=0, log_level="warning", tokens=tokens, rate_limit=OPEN,
                          auth_failures=AuthFailureConfig(rate=0.2, burst=5))
    with serve_in_thread(create_app(EdgeService(), config)) as url:
        with httpx.Client(base_url=url, timeout=10) as c:
            codes = [c.get("/v1/models", headers=_bearer(f"guess-{i:016d}")).status_code for i in range(8)]
            assert codes == [401] * 5 + [429] * 3, codes
            r = c.get("/v1/models", headers=_bearer(PHONE))  # the address is blocked before any token check
            assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
            assert "failed authentications" in r.json()["detail"]
            assert c.get("/v1/health").status_code == 200  # liveness is never blocked
        # Another address is not affected (all of 127/8 is loopback on Linux).
        if not _can_bind("127.0.0.2"):
            return
        with httpx.Client(base_url=url, timeout=10,
                          transport=httpx.HTTPTransport(local_address="127.0.0.2")) as other:
            assert other.get("/v1/models", headers=_bearer(PHONE)).status_code == 200
            assert other.get("/v1/models", headers=_bearer("guess-x-0123456789")).status_code == 401


def _can_bind(host: str) -> bool:
    try:
        with socket.socket() as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


# ------------------------------------------------------------------------- 7h: tokens in the query string


def test_query_token_params_finds_names_and_known_values():
    tokens = TokenSet.from_tokens({"phone": PHONE})
    assert query_token_params(b"access_token=abc", tokens) == ["access_token"]
    assert query_token_params(f"style_id=ab12cd34&x={PHONE}", tokens) == ["x"]
    assert query_token_params(b"style_id=ab12cd34&model=dncm&quality=90", tokens) == []


@pytest.mark.network
def test_a_token_in_the_query_string_is_refused_and_never_logged(tmp_path):
    f = _token_file(tmp_path, f"phone {PHONE}\n")
    log = tmp_path / "edge.log"
    with open(log, "wb") as out:
        url, proc = start_server("--token-file", str(f), "--log-level", "info", log=out)
        try:
            for path, params in (("/v1/models", {"access_token": PHONE}),
                                 ("/v1/stylize", {"style_id": "ab12cd34", "token": PHONE})):
                r = httpx.request("POST" if path.endswith("stylize") else "GET", f"{url}{path}", params=params,
                                  timeout=10)
                assert r.status_code == 400, (path, r.text)
                assert "Authorization: Bearer" in r.json()["detail"] and PHONE not in r.text
            # A known token in any other parameter is answered like any value (no oracle), but not logged.
            assert httpx.get(f"{url}/v1/health", params={"t": PHONE}, timeout=10).status_code == 200
            assert httpx.get(f"{url}/v1/models", headers=_bearer(PHONE), timeout=10).status_code == 200
        finally:
            stop_server(proc)
    text = log.read_text(errors="replace")
    assert "GET /v1/models HTTP/1.1" in text  # the access log is on, so the test can see what it logs
    assert PHONE not in text, text
    assert "REDACTED" in text and "credential in its URL query" in text


# ------------------------------------------------------------------------- 7i, 7j: HEAD /v1/health, no CDN


def test_head_health_is_200_and_no_page_loads_a_cdn():
    with serve_in_thread(create_app(EdgeService(), ServerConfig(port=0, log_level="warning"))) as url, \
            httpx.Client(base_url=url, timeout=10) as c:
        r = c.head("/v1/health")
        assert r.status_code == 200 and r.content == b""
        for page in ("/docs", "/redoc", "/docs/oauth2-redirect"):
            assert c.get(page).status_code == 404, page
        spec = c.get("/openapi.json")
        assert spec.status_code == 200 and "cdn" not in spec.text.lower()
        assert "head" in spec.json()["paths"]["/v1/health"]


# ------------------------------------------------------------------------- 7c: shutdown answers 503


class _SlowService(EdgeService):
    delay = 0.0

    def stylize(self, style_id, model, frames):
        time.sleep(self.delay)
        return super().stylize(style_id, model, frames)


@pytest.mark.network
def test_requests_cancelled_at_shutdown_get_503_not_500():
    """SIGTERM with one job running past the grace period and two queued: all three get 503 with
    Retry-After (before: uvicorn's 500 for each, when it cancelled them after the grace period)."""
    service = _SlowService()
    config = ServerConfig(port=0, log_level="critical", workers=1, rate_limit=OPEN, shutdown_grace_s=2.0)
    with serve_edge(service, config, 15) as (app, server, port):
        url = f"http://127.0.0.1:{port}"
        sid = httpx.post(f"{url}/v1/styles", content=_png(1), headers={"Content-Type": "image/png"}).json()["style_id"]
        service.delay = 5.0
        body = pack_frames([_png(2, 12, 12)])

        def post() -> tuple[int, str | None, float]:
            r = httpx.post(f"{url}/v1/stylize", content=body, params={"style_id": sid, "model": "classic"},
                           headers={"Content-Type": FRAMES_MEDIA_TYPE}, timeout=30)
            return r.status_code, r.headers.get("Retry-After"), time.monotonic()

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(post)]
            while app.state.runtime.busy < 1:  # the first is running, the next two will queue
                time.sleep(0.02)
            futures += [pool.submit(post) for _ in range(2)]
            while app.state.runtime.pending < 3:
                time.sleep(0.02)
            t0 = time.monotonic()
            server.should_exit = True
            results = [f.result(timeout=30) for f in futures]
        for status, retry_after, _ in results:
            assert status == 503 and retry_after == "1", results
        assert all(done - t0 < 1.5 for _, _, done in results[1:]), results  # queued: at once
        assert 1.9 < results[0][2] - t0 < 4.5, results  # running: after the grace period, before it ended


@pytest.mark.network
def test_an_upload_still_arriving_at_shutdown_gets_503_not_500():
    """A body trickling in when the grace period ends: 503 with Retry-After, as a running job gets
    (before: uvicorn's plain-text 500 and a traceback in the log)."""
    config = ServerConfig(port=0, log_level="critical", workers=1, rate_limit=OPEN, shutdown_grace_s=1.0)
    with serve_edge(_SlowService(), config, 15) as (_app, server, port):
        sid = httpx.post(f"http://127.0.0.1:{port}/v1/styles", content=_png(1),
                         headers={"Content-Type": "image/png"}).json()["style_id"]
        body = pack_frames([_png(2, 64, 64)])
        with socket.create_connection(("127.0.0.1", port), timeout=20) as phone:
            phone.sendall(b"POST /v1/stylize?style_id=" + sid.encode() + b"&model=classic HTTP/1.1\r\n"
                          b"Host: 127.0.0.1\r\nContent-Type: " + FRAMES_MEDIA_TYPE.encode() + b"\r\nContent-Length: "
                          + str(len(body)).encode() + b"\r\n\r\n" + body[:len(body) // 2])
            time.sleep(0.5)  # the handler is reading the body
            server.should_exit = True
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = phone.recv(4096)
                if not chunk:
                    break
                answer += chunk
    head = answer.split(b"\r\n\r\n")[0].decode("latin-1").lower()
    assert head.startswith("http/1.1 503") and "retry-after: 1" in head and "application/json" in head, answer


@pytest.mark.network
def test_over_the_connection_limit_the_answer_is_json_with_retry_after():
    """Beyond --max-connections uvicorn answered a plain-text 503 without Retry-After (health checks
    too), which the phone counts as a failed try rather than a busy edge."""
    config = ServerConfig(port=0, log_level="critical", workers=1, rate_limit=OPEN, max_connections=3)
    with serve_edge(_SlowService(), config, 15) as (_app, _server_, port):
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/v1/health").status_code == 200
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        try:
            time.sleep(0.3)
            r = httpx.get(f"{url}/v1/health")
            assert r.status_code == 503 and r.headers["retry-after"] == "1", (r.status_code, r.text)
            assert "connection limit" in r.json()["detail"]
        finally:
            for h in held:
                h.close()
        time.sleep(0.3)
        assert httpx.get(f"{url}/v1/health").status_code == 200


# ------------------------------------------------------------------------- 7d: style cache in bytes


def test_style_cache_is_bounded_in_bytes():
    """18 MiB of style uploads kept 788 MB before (64 styles x 12 MiB float32 each): now at most
    max_style_bytes, photos and prepared states together, least recently used dropped first."""
    budget = 40 * 1024**2
    service = EdgeService(EdgeConfig(max_style_bytes=budget))
    assert EdgeConfig().max_style_bytes <= 256 * 1024**2
    h, w = 768, 1024  # 9 MiB each as float32
    ids = []
    for i in range(12):
        img = photo_like(i, h, w)
        ids.append(service.register_style(encode_frame(img, Encoding("jpeg", 80))))
        service.stylize(ids[-1], "classic", [img[:16, :16]])  # a prepared state is counted too
        held = sum(s.image.nbytes for s in service._styles.values())
        assert held <= service.style_cache_bytes <= budget, (i, held, service.style_cache_bytes)
    assert 3 <= len(service._styles) <= 4 and list(service._styles) == ids[-len(service._styles):]
    with pytest.raises(Exception, match="unknown style"):
        service.stylize(ids[0], "classic", [np.zeros((8, 8, 3), np.float32)])  # evicted: the phone re-sends it
    tiny = EdgeService(EdgeConfig(max_style_bytes=1))  # smaller than any style: the newest still works
    sid = tiny.register_style(_png(3))
    assert tiny.stylize(sid, "classic", [photo_like(4, 8, 8)])[0].shape == (8, 8, 3)
    service.swap_model("classic", service._model("classic"))  # dropped states are no longer counted
    assert service.style_cache_bytes == sum(s.image.nbytes for s in service._styles.values())


# ------------------------------------------------------------------------- 7l: _is_loopback


def test_is_loopback_accepts_only_loopback_addresses(caplog):
    for url in ("http://localhost:8400", "http://127.0.0.1:8400", "http://127.1.2.3", "http://[::1]:8400",
                "http://LOCALHOST.", "http://[::ffff:127.0.0.1]:8400"):
        assert _is_loopback(url), url
    for url in ("http://127.attacker.example", "http://127.0.0.1.nip.io", "http://localhost.evil.com",
                "http://10.0.0.1", "http://[::2]", "http://edge:8400", "http://[::ffff:10.0.0.1]"):
        assert not _is_loopback(url), url
    with warnings.catch_warnings(record=True) as caught, caplog.at_level("WARNING", "mvstylizer"):
        warnings.simplefilter("always")
        HttpEdge("http://127.attacker.example:8400", token=PHONE).close()
        HttpEdge("http://[::ffff:127.0.0.1]:8400", token=PHONE).close()
    # One log line (the command line prints it as `warning: ...`), not a Python warning and its source line.
    assert not caught
    assert [r.getMessage() for r in caplog.records] == [
        "sending the edge token over plain HTTP to http://127.attacker.example:8400; use https://"]


# ------------------------------------------------------------------------- 7k: phone, certificate failure


@contextlib.contextmanager
def _tls_server(tmp_path):
    import uvicorn

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(EdgeService(), ServerConfig(port=0)), host="127.0.0.1",
                                           port=port, log_level="critical", ssl_keyfile=str(key),
                                           ssl_certfile=str(cert)))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive()
        time.sleep(0.02)
    try:
        yield f"https://127.0.0.1:{port}", cert
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a test certificate")
@pytest.mark.network
def test_certificate_failure_is_clear_not_retried_and_never_falls_back(tmp_path):
    with _tls_server(tmp_path) as (url, cert):
        with HttpEdge(url, verify=str(cert)) as link:  # trusted: works
            assert link.models()
        t0 = time.monotonic()
        with HttpEdge(url, retries=3, backoff=2.0) as link:  # the system CAs do not trust it
            with pytest.raises(UserError, match="certificate verify failed") as info:
                link.models()
        assert not isinstance(info.value, EdgeUnavailable)  # not "unreachable": no --fallback local
        assert "unreachable" not in str(info.value) and "SSL_CERT_FILE" in str(info.value)
        assert time.monotonic() - t0 < 1.5  # not retried (3 retries with backoff 2 s take >= 7 s)
        notes = []
        with pytest.raises(UserError, match="certificate verify failed"):
            FallbackEdge(HttpEdge(url, retries=3, backoff=2.0), EmbeddedEdge, warn=notes.append).models()
        assert notes == []
