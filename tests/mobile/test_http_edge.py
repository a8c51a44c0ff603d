"""The phone's HTTP client against answers no honest edge sends (a mock transport plays the edge)."""

from __future__ import annotations

import contextlib
import gzip
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest

from mvstylizer.errors import UserError
from mvstylizer.mobile.edge_link import EdgeUnavailable
from mvstylizer.mobile.http_edge import HttpEdge, _parse_retry_after
from mvstylizer.wire import Encoding, encode_frame, pack_frames


def _edge(handler: Callable[[httpx.Request], httpx.Response], **kw) -> HttpEdge:
    return HttpEdge("http://edge.test", transport=httpx.MockTransport(handler), backoff=0.0, **kw)


def _styles_then(answer: Callable[[httpx.Request], httpx.Response]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/styles":
            return httpx.Response(200, json={"style_id": "s1"})
        return answer(request)
    return handler


def test_retry_after_that_is_not_a_finite_number_is_ignored():
    assert _parse_retry_after("nan") is None and _parse_retry_after("inf") is None
    assert _parse_retry_after("2") == 2.0
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503, headers={"Retry-After": "nan"}, json={"detail": "busy"})

    with pytest.raises(EdgeUnavailable, match="503"):  # retried with its own backoff, then gave up
        _edge(handler, retries=2).models()
    assert len(calls) == 3


def test_a_body_that_does_not_match_its_content_encoding_is_a_malformed_answer():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=b"not gzip at all")

    with pytest.raises(UserError, match="malformed"):
        _edge(handler).models()


def test_a_gzip_answer_is_read():
    body = gzip.compress(b'{"models": [{"name": "mk", "description": "d"}]}')

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
                              content=body)

    assert [m["name"] for m in _edge(handler).models()] == ["mk"]


def test_an_answer_frame_bigger_than_the_key_is_refused_before_it_is_decoded(monkeypatch):
    huge = encode_frame(np.zeros((2000, 2000, 3), np.float32), Encoding("png"))  # a few kB of PNG
    decoded = []
    import mvstylizer.mobile.http_edge as http_edge

    monkeypatch.setattr(http_edge, "decode_frame", lambda b: decoded.append(b) or np.zeros((1, 1, 3)))
    edge = _edge(_styles_then(lambda r: httpx.Response(200, content=pack_frames([huge]))))
    sid = edge.register_style(np.zeros((16, 16, 3), np.float32))
    with pytest.raises(UserError, match="malformed stylized frame batch"):
        edge.stylize(sid, "mk", [np.zeros((24, 32, 3), np.float32)])
    assert decoded == []


def test_an_edge_that_trickles_its_answer_is_cut_off_at_the_timeout():
    def trickle() -> Iterator[bytes]:
        for _ in range(20):
            time.sleep(0.1)
            yield b" "

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=trickle())

    start = time.monotonic()
    with pytest.raises(EdgeUnavailable, match="did not answer in time"):
        _edge(handler, timeout=0.3, retries=0).models()
    assert time.monotonic() - start < 1.5  # the whole answer would take 2 s


def test_an_edge_url_that_is_not_a_url_is_a_user_error():
    with pytest.raises(UserError, match="not valid"):
        HttpEdge("https://exa\x00mple")
    for port in (0, 99999):  # httpx takes these, then the connection fails as if the edge refused it
        with pytest.raises(UserError, match=f"has port {port}; a port is 1..65535"):
            HttpEdge(f"http://127.0.0.1:{port}")


def test_a_slow_edge_whose_answer_completes_is_not_cut_off():
    """The deadline runs from the answer's headers, and the chunk that completes the body counts even
    if it comes just after it: the edge's own time (queue, model) is not charged to it."""
    body = b'{"models": [{"name": "mk", "description": "d"}]}'

    def slow() -> Iterator[bytes]:
        yield body[:10]
        time.sleep(0.4)  # past the 0.3 s deadline, but it completes the answer
        yield body[10:]

    def handler(request: httpx.Request) -> httpx.Response:
        time.sleep(0.5)  # the edge thinks longer than the timeout before it answers
        return httpx.Response(200, headers={"Content-Length": str(len(body))}, content=slow())

    assert [m["name"] for m in _edge(handler, timeout=0.3, retries=0).models()] == ["mk"]


def test_an_answer_frame_with_an_orientation_tag_is_read_as_stored():
    # Frames on the wire are pixels as stored (wire.decode_frame): an EXIF orientation tag in an answer
    # is not followed, so the frame keeps the size its header gives and that the phone asked for
    # (followed, a tagged 32x24 answer decoded to 24x32 and the batch was refused as malformed).
    import cv2

    frame = np.zeros((24, 32, 3), np.uint8)
    frame[:, :16] = 200
    ok, jpeg = cv2.imencode(".jpg", frame)
    data = bytearray(jpeg.tobytes())
    # An EXIF APP1 segment right after SOI with orientation 6 (rotate 90): header 32x24, shown 24x32.
    orientation = b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00"
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01" + orientation + b"\x00" * 4
    app1 = b"\xff\xe1" + (len(tiff) + 8).to_bytes(2, "big") + b"Exif\x00\x00" + tiff
    rotated = bytes(data[:2]) + app1 + bytes(data[2:])
    assert cv2.imdecode(np.frombuffer(rotated, np.uint8), cv2.IMREAD_COLOR).shape[:2] == (32, 24)
    edge = _edge(_styles_then(lambda r: httpx.Response(200, content=pack_frames([rotated]))))
    sid = edge.register_style(np.zeros((16, 16, 3), np.float32))
    (out,) = edge.stylize(sid, "mk", [np.zeros((24, 32, 3), np.float32)])
    assert out.shape == (24, 32, 3) and out[:, :12].mean() > 0.7 > 0.1 > out[:, 20:].mean()


def test_answers_are_asked_uncompressed_and_a_gzip_bomb_is_cut_off():
    bomb = gzip.compress(bytes(64 * 1024 * 1024), 9)  # 64 KB that decodes to 64 MiB (1.5 MB -> 1.5 GB seen)
    asked = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers.get("accept-encoding"))
        return httpx.Response(200, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
                              content=bomb)

    with pytest.raises(UserError, match=r"malformed answer \(longer than the 4194304 bytes"):
        _edge(handler).models()
    assert asked == ["identity"]  # and not retried: the same edge would send the same


def test_an_endless_answer_is_cut_off_at_its_size_limit():
    sent = []

    def endless() -> Iterator[bytes]:
        for _ in range(64):  # 64 MiB without a Content-Length (1.5 GB seen, held for 200 s)
            sent.append(1)
            yield bytes(1024 * 1024)

    with pytest.raises(UserError, match="longer than"):
        _edge(lambda r: httpx.Response(200, content=endless())).models()
    assert len(sent) <= 5


def test_a_frame_answer_is_limited_by_the_frames_sent():
    long_answer = pack_frames([bytes(5 * 1024 * 1024)])  # 24x32 frames need far less
    edge = _edge(_styles_then(lambda r: httpx.Response(200, content=long_answer)))
    sid = edge.register_style(np.zeros((16, 16, 3), np.float32))
    with pytest.raises(UserError, match="longer than"):
        edge.stylize(sid, "mk", [np.zeros((24, 32, 3), np.float32)])


@pytest.mark.parametrize("status", [200, 400])
def test_json_nested_deeper_than_the_stack_is_a_malformed_answer(status):
    nested = b"[" * 200_000  # was "internal error: RecursionError", exit code 70
    edge = _edge(lambda r: httpx.Response(status, content=nested, headers={"Content-Type": "application/json"}))
    with pytest.raises(UserError, match="malformed JSON answer" if status == 200 else r"refused the request \(400\)"):
        edge.models()


@pytest.mark.parametrize("token, where", [("é", 1), ("tökén", 2), ("a b", 2), ("tab\there", 4), ("x\n", 2)])
def test_a_token_that_cannot_go_in_a_header_is_a_user_error_naming_its_source(token, where):
    with pytest.raises(UserError, match=f"token file t.txt has .* at position {where}; .*printable ASCII"):
        HttpEdge("http://127.0.0.1:9", token=token, token_source="token file t.txt")
    with pytest.raises(UserError, match="^the edge token has"):
        HttpEdge("http://127.0.0.1:9", token=token)


def test_a_bad_token_from_the_environment_names_the_variable(monkeypatch):
    monkeypatch.setenv("MVSTYLIZER_EDGE_TOKEN", "é")
    with pytest.raises(UserError, match=r"^\$MVSTYLIZER_EDGE_TOKEN has a character that is not printable ASCII"):
        HttpEdge("http://127.0.0.1:9", token="é")
    with pytest.raises(UserError, match="must be a string"):
        HttpEdge("http://127.0.0.1:9", token=5)  # type: ignore[arg-type]


def test_a_good_token_is_sent_as_a_bearer_header():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        return httpx.Response(200, json={"models": []})

    _edge(handler, token="Ab0-._~+/=!#$%").models()
    assert seen == ["Bearer Ab0-._~+/=!#$%"]


def test_a_closed_link_opens_a_new_connection_pool_on_its_next_request():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"models": [{"name": "mk", "description": "d"}]})

    edge = _edge(handler)
    with edge:
        assert [m["name"] for m in edge.models()] == ["mk"]
    assert [m["name"] for m in edge.models()] == ["mk"]  # after close(): as EmbeddedEdge, it still works
    edge.close()
    edge.close()  # twice is harmless
    with edge:
        assert [m["name"] for m in edge.models()] == ["mk"]


def test_credentials_in_the_edge_url_are_refused_and_never_printed():
    # httpx sent them as Basic auth in place of the bearer token, and every error line showed them.
    with pytest.raises(UserError, match="credentials") as e, warnings.catch_warnings():
        warnings.simplefilter("error")  # the plain-HTTP token warning would print the URL too
        HttpEdge("http://phone:s3cret@edge.test:8400", token="Ab0-._~+/=!#$%")
    assert "s3cret" not in str(e.value)
    with pytest.raises(UserError) as e:
        HttpEdge("ftp://phone:s3cret@edge.test")
    assert "s3cret" not in str(e.value)


@pytest.mark.parametrize("variable, value", [
    ("ALL_PROXY", "socks5://127.0.0.1:1080"),  # socksio is an optional extra of httpx
    ("HTTP_PROXY", "ftp://proxy.test"),
    ("HTTPS_PROXY", "http://proxy.test:notaport"),
])
def test_a_proxy_from_the_environment_that_httpx_cannot_use_is_a_user_error(monkeypatch, variable, value):
    if variable == "ALL_PROXY":
        try:
            import socksio  # noqa: F401
            pytest.skip("socksio is installed: a SOCKS proxy is usable")
        except ImportError:
            pass
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "NO_PROXY",
                 "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, value)
    with pytest.raises(UserError, match=f"proxy set in {variable}"):
        HttpEdge("http://edge.test:8400").models()


def _socket_edge(serve: Callable[[socket.socket], None]) -> Iterator[str]:
    """A one-thread TCP server that hands each connection to ``serve``; yields its URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(65536)
                    serve(conn)
                except OSError:
                    pass

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_an_edge_that_trickles_its_answers_head_is_cut_off_at_the_timeout():
    """httpx times each read, so a head sent a byte at a time was read for as long as the edge kept
    it up (h11 takes up to 16 KiB of head: hours at a byte a second)."""
    def serve(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        for byte in b"X-Slow: a\r\n" * 10:
            conn.sendall(bytes([byte]))
            time.sleep(0.05)

    for url in _socket_edge(serve):
        start = time.monotonic()
        with pytest.raises(EdgeUnavailable, match="did not answer in time"):
            HttpEdge(url, timeout=0.5, retries=0).models()
        assert time.monotonic() - start < 2.5  # the whole head would take 5 s


def test_the_edges_time_before_its_answer_is_not_charged_to_the_answer():
    body = b'{"models": [{"name": "mk", "description": "d"}]}'

    def serve(conn: socket.socket) -> None:
        time.sleep(0.6)  # the edge's queue and model: bounded per read, not by the answer's deadline
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n" % len(body))
        time.sleep(0.3)
        conn.sendall(body)

    for url in _socket_edge(serve):
        assert [m["name"] for m in HttpEdge(url, timeout=1.0, retries=0).models()] == ["mk"]


def test_a_busy_edge_that_says_when_to_come_back_is_waited_out_not_given_up_on():
    """Phones behind one address share the edge's in-flight limit: 20 of them with 3 keys out each had
    one give up with "kept refusing for load (429)" after 4 answers, ~3 s, while the edge served the rest."""
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) <= 6:
            status = 429 if len(calls) % 2 else 503
            return httpx.Response(status, headers={"Retry-After": "0.01"}, json={"detail": "slow down"})
        return httpx.Response(200, json={"models": [{"name": "mk", "description": "d"}]})

    assert [m["name"] for m in _edge(handler, retries=1).models()] == ["mk"]
    assert len(calls) == 7


@pytest.mark.parametrize("retry_after, patient", [
    ("0.05", 5),  # each wait is charged at least 1 s of load_wait
    ("0", 0), ("-5", 0), ("Mon, 01 Jan 2001 00:00:00 GMT", 0),  # no "when": counted retries only
])
def test_waiting_out_a_busy_edge_ends_after_load_wait(retry_after, patient):
    calls: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        return httpx.Response(429, headers={"Retry-After": retry_after}, json={"detail": "slow down"})

    start = time.monotonic()
    with pytest.raises(EdgeUnavailable, match="kept refusing for load"):
        _edge(handler, retries=1, load_wait=5.5).models()
    assert time.monotonic() - start < 3
    assert len(calls) == patient + 2


def _send_key(edge: HttpEdge, errors: list[BaseException]) -> None:
    """One key frame to ``edge``, as a pipeline's key thread sends it; what it ended with into ``errors``."""
    try:
        edge.stylize("ab" * 16, "mk", [np.zeros((16, 16, 3), np.float32)])
    except BaseException as e:  # noqa: BLE001 - what the key thread ended with
        errors.append(e)


@pytest.mark.parametrize("retries", [3, 0])  # 0: woken on its last attempt, still not EdgeUnavailable
def test_close_ends_the_requests_in_flight_at_once(retries):
    """A cancelled run (Ctrl-C) waits for its keys in flight: against an edge that never answered,
    each held the phone for its whole read timeout, then its retries."""
    hung_up = threading.Event()

    def serve(conn: socket.socket) -> None:
        hung_up.wait(10)  # reads the request, never answers

    for url in _socket_edge(serve):
        edge = HttpEdge(url, timeout=20, retries=retries)
        errors: list[BaseException] = []

        def key() -> None:
            _send_key(edge, errors)

        thread = threading.Thread(target=key)
        thread.start()
        time.sleep(0.5)  # the request is out, waiting for its answer
        start = time.monotonic()
        edge.close()
        thread.join(5)
        hung_up.set()
        assert not thread.is_alive() and time.monotonic() - start < 2
        assert len(errors) == 1 and type(errors[0]) is UserError and "abandoned" in str(errors[0])


def test_close_ends_a_wait_for_a_busy_edge():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, headers={"Retry-After": "20"}, json={"detail": "busy"})

    edge = _edge(handler)
    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: errors.append(pytest.raises(UserError, edge.models).value))
    thread.start()
    time.sleep(0.3)
    start = time.monotonic()
    edge.close()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - start < 2
    assert "abandoned" in str(errors[0])


def test_an_https_url_to_a_plain_http_port_is_one_clear_error_at_once():
    """Was retried 4 times and then 'unreachable: [SSL: WRONG_VERSION_NUMBER] wrong version number',
    an EdgeUnavailable, so --fallback local hid the wrong URL behind a warning."""
    accepted: list[int] = []

    def serve(conn: socket.socket) -> None:  # the ClientHello is read; a plain HTTP server answers 400
        accepted.append(1)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    for url in _socket_edge(serve):
        with pytest.raises(UserError, match="does not speak TLS") as e:
            HttpEdge(url.replace("http://", "https://"), retries=3, backoff=0.5).models()
        assert not isinstance(e.value, EdgeUnavailable) and len(accepted) == 1


@pytest.mark.parametrize("location", ["https://other.test/v1/models", "/v1/models", None])
def test_a_redirect_is_not_followed_and_says_so(location):
    """Was 'edge server refused the request (301): <html>...', as if the edge had refused it."""
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(301, headers={"Location": location} if location else {}, text="<html>moved</html>")

    with pytest.raises(UserError, match=r"redirect \(301\) to .* not followed") as e:
        _edge(handler).models()
    assert calls == ["http://edge.test/v1/models"] and "refused" not in str(e.value)
    if location:
        assert location in str(e.value)


def test_an_unreachable_edge_behind_a_proxy_from_the_environment_names_the_proxy(monkeypatch):
    """'unreachable: [Errno 111] Connection refused' sent users to check an edge that was up, when it
    was the proxy in HTTP_PROXY that refused."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "NO_PROXY",
                 "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    dead = socket.create_server(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()  # nothing listens there now
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    with pytest.raises(EdgeUnavailable, match="through the proxy set in HTTP_PROXY"):
        HttpEdge("http://edge.test:8400", retries=0).models()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with pytest.raises(EdgeUnavailable) as e:  # not proxied: no note
        HttpEdge(f"http://127.0.0.1:{port}", retries=0).models()
    assert "proxy" not in str(e.value)


def test_abort_ends_the_requests_in_flight_and_refuses_later_ones():
    """close() lets a later request open a new pool, so a cancelled run's key thread took the next
    queued key to the same hung edge and the run waited out its timeout and retries anyway."""
    hung_up = threading.Event()
    accepted: list[int] = []

    def serve(conn: socket.socket) -> None:
        accepted.append(1)
        hung_up.wait(10)

    for url in _socket_edge(serve):
        edge = HttpEdge(url, timeout=20, retries=3)
        errors: list[BaseException] = []

        def key() -> None:
            _send_key(edge, errors)

        first = threading.Thread(target=key)
        first.start()
        time.sleep(0.5)
        start = time.monotonic()
        edge.abort()
        first.join(5)
        key()  # the next key, after the abort
        hung_up.set()
        assert not first.is_alive() and time.monotonic() - start < 2
        assert [type(e) for e in errors] == [UserError, UserError] and all("abandoned" in str(e) for e in errors)
        assert len(accepted) == 1  # the later request never went out


def test_fallback_edge_forwards_abort_to_its_primary():
    from mvstylizer.mobile.edge_link import FallbackEdge

    calls: list[str] = []

    class Primary:
        bytes_sent = bytes_received = 0
        max_in_flight = 3

        def abort(self) -> None:
            calls.append("abort")

    FallbackEdge(Primary()).abort()  # type: ignore[arg-type]
    assert calls == ["abort"]


def _down_for(down_for: float, failure):
    """A handler that answers, then gives ``failure(request)`` for ``down_for`` seconds, then answers
    again; returns it and its list of calls."""
    calls: list[float] = []
    down: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        if len(calls) > 1 and (not down or time.monotonic() - down[0] < down_for):
            down.append(time.monotonic())
            return failure(request)
        return httpx.Response(200, json={"models": [{"name": "mk", "description": ""}]})

    return handler, calls


def _restarting(down_for: float, error: type[Exception] = httpx.ConnectError):
    """An edge restarting: ``error`` for ``down_for`` seconds."""
    def fail(request: httpx.Request) -> httpx.Response:
        raise error("the edge is restarting", request=request)

    return _down_for(down_for, fail)


def test_an_edge_that_restarts_mid_run_is_waited_for():
    """A deploy drains the edge for up to ~10 s, then starts it again: the counted retries (here
    none) gave up first, and every phone's run was lost."""
    handler, calls = _restarting(2.5)
    edge = _edge(handler, retries=0, reconnect=10.0)
    edge.models()  # it answered once
    start = time.monotonic()
    assert edge.models()[0]["name"] == "mk"
    assert 2.0 < time.monotonic() - start < 6.0


@pytest.mark.parametrize("case", ["never answered", "no patience", "timeouts"])
def test_waiting_for_a_restart_needs_an_edge_that_answered_and_a_refused_connection(case):
    handler, calls = _restarting(60.0, httpx.ReadTimeout if case == "timeouts" else httpx.ConnectError)
    edge = _edge(handler, retries=0, reconnect=0.0 if case == "no patience" else 10.0)
    if case == "never answered":
        handler(httpx.Request("GET", "http://edge.test/"))  # the edge's first answer went to someone else
    else:
        edge.models()
    start = time.monotonic()
    with pytest.raises(EdgeUnavailable):
        edge.models()
    assert time.monotonic() - start < 1.0


def test_a_restarted_edge_gets_fresh_retries_for_its_first_answers():
    """Back from a restart, one 502 from the edge (or its proxy) is retried like any other."""
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) in (2, 3):
            raise httpx.ConnectError("restarting", request=request)
        if len(calls) == 4:
            return httpx.Response(502, json={"detail": "warming up"})
        return httpx.Response(200, json={"models": [{"name": "mk", "description": ""}]})

    edge = _edge(handler, retries=1, reconnect=10.0)
    edge.models()
    assert edge.models()[0]["name"] == "mk" and len(calls) == 5


def test_a_web_page_in_place_of_an_edge_is_named_not_dumped():
    """A URL that reaches some other web server: the error line asked nothing and held its HTML."""
    page = "<!DOCTYPE HTML>\n<html><head><title>Error response</title></head><body>404</body></html>"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text=page, headers={"Content-Type": "text/html;charset=utf-8"})

    with pytest.raises(UserError) as e:
        _edge(handler).models()
    assert "is this URL an mvstylizer edge server?" in str(e.value) and "<html" not in str(e.value)


def _proxy_for_restarting_edge(down_for: float, status: int):
    """A reverse proxy's answers for an edge that is down for ``down_for`` seconds: ``status``, without
    Retry-After."""
    return _down_for(down_for, lambda request: httpx.Response(
        status, text="<html><body>upstream down</body></html>", headers={"Content-Type": "text/html"}))


@pytest.mark.parametrize("status", [502, 503, 504])
def test_an_edge_that_restarts_behind_a_proxy_is_waited_for(status):
    """Behind a reverse proxy a restart is a 502/503/504, not a refused connection: it got only the
    counted retries (~3.5 s), and the run was lost to a restart that took a few seconds."""
    handler, calls = _proxy_for_restarting_edge(2.5, status)
    edge = _edge(handler, retries=1, reconnect=10.0)
    edge.models()  # it answered once
    assert edge.models()[0]["name"] == "mk"
    assert len(calls) > 3  # beyond the counted retries


@pytest.mark.parametrize("case", ["never answered", "no patience"])
def test_a_proxy_failure_is_waited_out_only_for_an_edge_that_answered(case):
    handler, calls = _proxy_for_restarting_edge(60.0, 502)
    edge = _edge(handler, retries=1, reconnect=0.0 if case == "no patience" else 10.0)
    if case == "never answered":
        handler(httpx.Request("GET", "http://edge.test/"))  # the edge's first answer went to someone else
    else:
        edge.models()
    with pytest.raises(EdgeUnavailable) as e:
        edge.models()
    assert len(calls) == 3  # the first answer and the counted tries
    if case == "no patience":  # not "is this URL an mvstylizer edge server?": it was, a moment ago
        assert "answered earlier but now fails with 502" in str(e.value) and "is this URL" not in str(e.value)


@pytest.mark.parametrize(("url", "why"), [
    ("http://127.0.0.1:8400/v1", "has a path or query"),  # was: /v1/v1/models, a 404 blaming the edge
    ("http://127.0.0.1:8400/v1/models", "has a path or query"),
    ("http://127.0.0.1:8400/?token=x", "has a path or query"),
    ("http://127.0.0.1:8400#edge", "has a path or query"),
    ("http:///v1", "has no host"),  # was: an empty name looked up four times
    ("http://:8400", "has no host"),
])
def test_an_edge_url_with_more_or_less_than_an_address_is_refused_up_front(url, why):
    with pytest.raises(UserError, match=why) as e:
        HttpEdge(url)
    if "path" in why:
        assert "give only the address, http://127.0.0.1:8400 " in str(e.value)
    HttpEdge("http://127.0.0.1:8400/").close()  # a trailing slash is still the address alone


def test_a_hung_edge_is_unreachable_after_one_short_first_try(monkeypatch):
    """An edge that accepts connections and never answers: its model list was tried 4 times for the
    whole timeout (60 s), so `--fallback local` started after ~4.5 minutes."""
    from mvstylizer.mobile import http_edge

    monkeypatch.setattr(http_edge, "_FIRST_CONTACT_TIMEOUT", 0.5)
    with socket.create_server(("127.0.0.1", 0), backlog=16) as listener:  # the kernel accepts; nobody answers
        edge = HttpEdge(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=2.0, retries=3, backoff=0.0)
        with pytest.raises(EdgeUnavailable, match=r"did not answer in time \(ReadTimeout; 0.5 s for its first"):
            edge.models()
        listener.settimeout(0.5)
        tries = 0
        with contextlib.suppress(TimeoutError):
            while True:
                listener.accept()[0].close()
                tries += 1
    assert tries == 1
