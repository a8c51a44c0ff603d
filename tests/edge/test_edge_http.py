"""The edge's HTTP API against a real uvicorn server on a loopback port, and the phone's HttpEdge client."""

from __future__ import annotations

import concurrent.futures
import socket
import struct
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
from edge_server import photo_like, serve_in_thread
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mvstylizer.edge.ratelimit import RateLimitConfig
from mvstylizer.edge.server.app import create_app
from mvstylizer.edge.server.config import ServerConfig
from mvstylizer.edge.service import EdgeConfig, EdgeService
from mvstylizer.errors import UserError
from mvstylizer.mobile.edge_link import EmbeddedEdge
from mvstylizer.mobile.http_edge import HttpEdge
from mvstylizer.wire import FRAMES_MEDIA_TYPE, Encoding, encode_frame, image_size, pack_frames

# Small limits so the 413 paths are cheap to reach.
CONFIG = ServerConfig(port=0, max_request_bytes=1 << 20, max_frame_pixels=256 * 256, max_batch=4,
                      max_batch_pixels=3 * 256 * 256, workers=2, log_level="warning",
                      rate_limit=RateLimitConfig(rate=1e6, burst=10**6))  # rate limits: test_edge_security
MAX_STYLES = 3

pytestmark = pytest.mark.network  # a real uvicorn server on loopback (the edge fixture)


@pytest.fixture(scope="module")
def edge():
    """(base_url, service): one real server for the whole module, stopped at the end."""
    service = EdgeService(EdgeConfig(max_styles=MAX_STYLES))
    with serve_in_thread(create_app(service, CONFIG)) as url:
        yield url, service


@pytest.fixture(scope="module")
def url(edge):
    return edge[0]


@pytest.fixture(scope="module")
def raw(url):
    with httpx.Client(base_url=url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def style_id(raw):
    r = raw.post("/v1/styles", content=encode_frame(photo_like(1, 40, 56), Encoding("png")),
                 headers={"Content-Type": "image/png"})
    assert r.status_code == 200, r.text
    return r.json()["style_id"]


def _frames_body(*frames: np.ndarray) -> bytes:
    return pack_frames([encode_frame(f) for f in frames])


def _stylize(raw: httpx.Client, body: bytes, **params):
    params = {"style_id": params.pop("style_id", "x"), **params}
    return raw.post("/v1/stylize", content=body, params=params, headers={"Content-Type": FRAMES_MEDIA_TYPE})


def _scan_bomb() -> bytes:
    """A 64x64 progressive JPEG whose last scan is repeated 100 times (tests/test_wire.py says why)."""
    import cv2

    blob = cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    last = blob.rindex(b"\xff\xda")
    return blob[:last] + blob[last:-2] * 100 + blob[-2:]


def _assert_healthy(raw: httpx.Client) -> None:
    r = raw.get("/v1/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


# ---------------------------------------------------------------------------------------------- basics


def test_health_models_and_openapi(raw, url):
    _assert_healthy(raw)
    r = raw.get("/v1/models")
    assert r.status_code == 200
    assert r.json() == {"models": EdgeService().models()}
    spec = raw.get("/openapi.json").json()
    assert {"/v1/health", "/v1/models", "/v1/styles", "/v1/stylize"} <= set(spec["paths"])
    with HttpEdge(url) as link:
        assert link.models() == EdgeService().models()


def test_http_edge_matches_embedded_edge(url):
    style = photo_like(2, 48, 64)
    frames = [photo_like(3, 36, 52), photo_like(4, 30, 40)]
    for encoding in (Encoding(), Encoding("png")):
        embedded = EmbeddedEdge(encoding)
        want = embedded.stylize(embedded.register_style(style), "classic", frames)
        with HttpEdge(url, encoding) as link:
            sid = link.register_style(style)
            got = link.stylize(sid, "classic", frames)
            assert sid == embedded._service.register_style(encode_frame(style, Encoding("png")))
        assert len(got) == 2
        for g, w, f in zip(got, want, frames, strict=True):
            assert g.shape == w.shape == f.shape and g.dtype == np.float32
            assert np.abs(g - w).max() <= 1.5 / 255
        # Same payloads in both transports; HTTP also counts the 4-byte length prefix of each packed
        # frame and the small JSON answers.
        assert link.bytes_sent == embedded.bytes_sent + 4 * len(frames)
        assert embedded.bytes_received <= link.bytes_received < embedded.bytes_received + 1000


def test_byte_counters_equal_body_sizes(url):
    seen: list[tuple[int, int]] = []

    def record(response: httpx.Response) -> None:
        response.read()
        seen.append((len(response.request.content), len(response.content)))

    link = HttpEdge(url)
    link._client.event_hooks["response"] = [record]
    sid = link.register_style(photo_like(5, 32, 32))
    link.stylize(sid, "reinhard", [photo_like(6, 24, 24), photo_like(7, 20, 28)])
    link.close()
    assert len(seen) == 2
    assert link.bytes_sent == sum(s for s, _ in seen) > 0
    assert link.bytes_received == sum(r for _, r in seen) > 0


def test_large_batches_are_split_to_fit_the_edge(url):
    frames = [photo_like(10 + i, 16, 16) for i in range(CONFIG.max_batch * 2 + 1)]
    with HttpEdge(url, batch_size=CONFIG.max_batch) as link:
        sid = link.register_style(photo_like(8, 16, 16))
        out = link.stylize(sid, "classic", frames)
    assert [o.shape for o in out] == [f.shape for f in frames]


def test_forgotten_style_is_resent(url, raw):
    with HttpEdge(url) as link:
        sid = link.register_style(photo_like(20, 24, 24))
        for seed in range(21, 21 + MAX_STYLES):  # evict it from the edge's LRU cache
            raw.post("/v1/styles", content=encode_frame(photo_like(seed, 8, 8), Encoding("png")),
                     headers={"Content-Type": "image/png"})
        assert _stylize(raw, _frames_body(photo_like(0, 8, 8)), style_id=sid).status_code == 404
        out = link.stylize(sid, "classic", [photo_like(30, 12, 12)])
    assert out[0].shape == (12, 12, 3)


# ---------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "case, status, fragment",
    [
        ("style wrong content type", 415, "Content-Type"),
        ("style garbage", 400, "not an image in any of the edge's encodings (jpeg, png, webp)"),
        ("style corrupt png", 400, "not a decodable image"),
        ("style empty", 400, "empty"),
        ("style too many pixels", 413, "pixels"),
        ("style scan bomb", 400, "scans"),
        ("style body too large", 413, "exceeds"),
        ("frames wrong content type", 415, "Content-Type"),
        ("frames empty", 400, "empty frame batch"),
        ("frames truncated", 400, "truncated"),
        ("frames garbage frame", 400, "frame 1 is not"),
        ("frames scan bomb", 400, "frame 1 is refused: JPEG has more than 64 scans"),
        ("frames too many", 413, "at most 4"),
        ("frames frame too big", 413, "pixels"),
        ("frames batch too big", 413, "pixels"),
        ("frames unknown style", 404, "unknown style id"),
        ("frames unknown model", 400, "unknown model"),
        ("frames missing style id", 422, "style_id"),
        ("frames bad encoding", 422, "encoding"),
        ("frames bad quality", 422, "quality"),
    ],
)
def test_bad_requests_get_4xx_and_server_survives(raw, style_id, case, status, fragment):
    png = {"Content-Type": "image/png"}
    small = photo_like(40, 16, 16)
    frames_ok = _frames_body(small, small)
    sid = {"style_id": style_id}
    if case == "style wrong content type":
        r = raw.post("/v1/styles", content=encode_frame(small), headers={"Content-Type": "text/plain"})
    elif case == "style garbage":
        r = raw.post("/v1/styles", content=b"definitely not an image", headers=png)
    elif case == "style corrupt png":
        r = raw.post("/v1/styles", content=encode_frame(small, Encoding("png"))[:40], headers=png)
    elif case == "style empty":
        r = raw.post("/v1/styles", content=b"", headers=png)
    elif case == "style too many pixels":
        r = raw.post("/v1/styles", content=encode_frame(np.zeros((300, 300, 3), np.uint8), Encoding("png")),
                     headers=png)
    elif case == "style scan bomb":
        r = raw.post("/v1/styles", content=_scan_bomb(), headers={"Content-Type": "image/jpeg"})
    elif case == "style body too large":
        r = raw.post("/v1/styles", content=b"\x89PNG" + bytes(CONFIG.max_request_bytes), headers=png)
    elif case == "frames wrong content type":
        r = raw.post("/v1/stylize", content=frames_ok, params=sid, headers={"Content-Type": "image/jpeg"})
    elif case == "frames empty":
        r = _stylize(raw, b"", **sid)
    elif case == "frames truncated":
        r = _stylize(raw, frames_ok[:-10], **sid)
    elif case == "frames garbage frame":
        r = _stylize(raw, pack_frames([encode_frame(small), b"garbage"]), **sid)
    elif case == "frames scan bomb":
        r = _stylize(raw, pack_frames([encode_frame(small), _scan_bomb()]), **sid)
    elif case == "frames too many":
        r = _stylize(raw, _frames_body(*[small] * (CONFIG.max_batch + 1)), **sid)
    elif case == "frames frame too big":
        r = _stylize(raw, _frames_body(small, np.zeros((260, 260, 3), np.uint8)), **sid)
    elif case == "frames batch too big":
        r = _stylize(raw, _frames_body(*[np.zeros((256, 256, 3), np.uint8)] * 4), **sid)
    elif case == "frames unknown style":
        r = _stylize(raw, frames_ok, style_id="0" * 32)
    elif case == "frames unknown model":
        r = _stylize(raw, frames_ok, model="no-such-model", **sid)
    elif case == "frames missing style id":
        r = raw.post("/v1/stylize", content=frames_ok, headers={"Content-Type": FRAMES_MEDIA_TYPE})
    elif case == "frames bad encoding":
        r = _stylize(raw, frames_ok, encoding="gif", **sid)
    elif case == "frames bad quality":
        r = _stylize(raw, frames_ok, quality="101", **sid)
    else:
        raise AssertionError(case)
    assert r.status_code == status, r.text
    assert fragment in r.text
    _assert_healthy(raw)


def test_http_edge_maps_4xx_to_user_error(url, style_id):
    frame = photo_like(41, 16, 16)
    with HttpEdge(url) as link:
        with pytest.raises(UserError, match="unknown model 'nope'"):
            link.stylize(style_id, "nope", [frame])
        with pytest.raises(UserError, match="unknown style id"):
            link.stylize("f" * 32, "classic", [frame])
        with pytest.raises(UserError, match=r"\(413\).*pixels"):
            link.stylize(style_id, "classic", [np.zeros((300, 300, 3), np.float32)])


def test_unexpected_error_is_a_generic_500_and_server_survives(edge, raw, style_id, monkeypatch):
    _, service = edge

    def boom(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(service, "stylize", boom)
    r = _stylize(raw, _frames_body(photo_like(42, 8, 8)), style_id=style_id)
    assert r.status_code == 500
    assert r.json() == {"detail": "internal error on the edge server"}
    _assert_healthy(raw)
    monkeypatch.undo()
    assert _stylize(raw, _frames_body(photo_like(42, 8, 8)), style_id=style_id).status_code == 200


def test_busy_edge_answers_503_with_retry_after():
    service = EdgeService()
    entered, release = threading.Event(), threading.Event()
    real_stylize = service.stylize

    def slow(*args):
        entered.set()
        release.wait(10)
        return real_stylize(*args)

    service.stylize = slow
    config = ServerConfig(workers=1, max_pending=1, log_level="warning")
    with serve_in_thread(create_app(service, config)) as url, httpx.Client(base_url=url, timeout=10) as raw:
        sid = raw.post("/v1/styles", content=encode_frame(photo_like(50, 8, 8), Encoding("png")),
                       headers={"Content-Type": "image/png"}).json()["style_id"]
        body = _frames_body(photo_like(51, 8, 8))
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            first = pool.submit(_stylize, raw, body, style_id=sid)
            assert entered.wait(5)  # the first request holds the only slot
            r = _stylize(raw, body, style_id=sid)
            assert r.status_code == 503 and r.headers["Retry-After"] == "1"
            _assert_healthy(raw)
            release.set()
            assert first.result().status_code == 200


def test_unreachable_edge_is_a_quick_user_error():
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    with HttpEdge(url, timeout=1.0, retries=1, backoff=0.01) as link:
        with pytest.raises(UserError, match=f"edge server at {url} is unreachable"):
            link.register_style(photo_like(43, 8, 8))
    assert time.monotonic() - t0 < 5
    with pytest.raises(UserError, match="http://"):
        HttpEdge("ftp://example.com")
    # As the connection encodes a host name: these ended as "internal error: UnicodeError".
    for bad in ("http://edge..lan:8400", "http://.edge:8400", f"http://{'a' * 64}.lan"):
        with pytest.raises(UserError, match="not a valid host name"):
            HttpEdge(bad)


def test_retries_honour_retry_after_then_succeed():
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) == 1:
            return httpx.Response(503, headers={"Retry-After": "0"}, json={"detail": "busy"})
        if len(calls) == 2:
            return httpx.Response(429, headers={"Retry-After": "0.01"}, json={"detail": "slow down"})
        return httpx.Response(200, json={"models": [{"name": "m", "description": "d"}]})

    t0 = time.monotonic()
    link = HttpEdge("http://edge.invalid", retries=3, backoff=5.0, transport=httpx.MockTransport(handler))
    # An edge that does not say whether a model is spatially varying is taken to be.
    assert link.models() == [{"name": "m", "description": "d", "runtimes": [], "aliases": [], "spatial": True}]
    assert len(calls) == 3 and time.monotonic() - t0 < 2  # Retry-After wins over the 5 s backoff

    calls.clear()
    link = HttpEdge("http://edge.invalid", retries=2, backoff=0.001,
                    transport=httpx.MockTransport(lambda r: calls.append(r) or httpx.Response(500, text="x")))
    with pytest.raises(UserError, match=r"failed \(500\)"):
        link.models()
    assert len(calls) == 3


def test_client_does_not_import_edge_or_frameworks():
    code = ("import sys, mvstylizer.mobile.http_edge; "
            "bad = [m for m in sys.modules if m.startswith(('mvstylizer.edge', 'torch', 'fastapi', 'uvicorn'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ---------------------------------------------------------------------------------------------- headers


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
@pytest.mark.parametrize("h, w", [(1, 1), (17, 5), (300, 1201)])
def test_image_size_reads_headers(fmt, h, w):
    blob = encode_frame(np.full((h, w, 3), 128, np.uint8), Encoding(fmt, 90))
    assert image_size(blob) == (w, h)


def test_image_size_of_lossless_webp():
    import cv2

    ok, buf = cv2.imencode(".webp", np.zeros((9, 33, 3), np.uint8), [cv2.IMWRITE_WEBP_QUALITY, 101])
    assert ok and image_size(buf.tobytes()) == (33, 9)


@given(st.binary(max_size=64))
def test_image_size_never_crashes(data):
    for prefix in (b"", b"\xff\xd8", b"\x89PNG\r\n\x1a\n", b"RIFF\0\0\0\0WEBPVP8 "):
        size = image_size(prefix + data)
        assert size is None or (size[0] >= 0 and size[1] >= 0)


# ---------------------------------------------------------------------------------------------- fuzz


def _packed(blobs: list[bytes]) -> bytes:
    return b"".join(struct.pack(">I", len(b)) + b for b in blobs)


_fuzz_bodies = st.one_of(
    st.binary(max_size=2048),
    st.lists(st.binary(max_size=256), max_size=6).map(_packed),
    st.lists(st.sampled_from([b"\xff\xd8\xff\xc0\x00\x11\x08\xff\xff\xff\xff", b"\x89PNG\r\n\x1a\n",
                              encode_frame(np.zeros((4, 4, 3), np.uint8))]), max_size=5).map(_packed),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_fuzz_bodies, target=st.sampled_from(["stylize", "styles"]),
       ctype=st.sampled_from([FRAMES_MEDIA_TYPE, "image/png", "image/jpeg", "application/octet-stream"]))
def test_random_bodies_never_cause_5xx(raw, style_id, body, target, ctype):
    if target == "stylize":
        r = raw.post("/v1/stylize", content=body, params={"style_id": style_id},
                     headers={"Content-Type": ctype})
    else:
        r = raw.post("/v1/styles", content=body, headers={"Content-Type": ctype})
    assert r.status_code < 500, r.text


def test_server_still_healthy_at_the_end(raw):
    _assert_healthy(raw)


def test_default_is_the_edges_own_default_model():
    # An edge started with --models mk dncm refused the phone's "default" (stylize without --model) as
    # an unknown model: the alias named regions, which it does not serve.
    from mvstylizer.mobile.edge_link import find_model

    config = ServerConfig(port=0, workers=1, log_level="warning", models=("mk", "dncm"),
                          rate_limit=RateLimitConfig(rate=1e6, burst=10**6))
    with serve_in_thread(create_app(EdgeService(), config)) as url:
        edge = HttpEdge(url)
        try:
            models = edge.models()
            assert find_model(models, "default")["name"] == "mk"
            assert [m["name"] for m in models if "default" in m["aliases"]] == ["mk"]
            sid = edge.register_style(photo_like(1, 40, 56))
            frame = photo_like(2, 32, 48)
            assert np.array_equal(edge.stylize(sid, "default", [frame])[0], edge.stylize(sid, "mk", [frame])[0])
        finally:
            edge.close()
    with serve_in_thread(create_app(EdgeService(), CONFIG)) as url:  # every model: default is regions
        edge = HttpEdge(url)
        try:
            assert find_model(edge.models(), "default")["name"] == "regions"
        finally:
            edge.close()
