"""The phone's HTTP client for a remote edge server (``mvstylizer stylize --edge URL``).

Speaks the ``/v1`` API of ``mvstylizer.edge.server`` with the shared wire format, so its results and
byte counts match ``EmbeddedEdge``'s. Deliberately light: numpy, httpx and ``mvstylizer.wire`` only,
never the edge package or a model framework.
"""

from __future__ import annotations

import contextlib
import email.utils
import ipaddress
import logging
import math
import os
import random
import re
import socket
import ssl
import threading
import time
from collections import OrderedDict
from typing import Any

import httpcore
import httpx
import numpy as np

from .. import __version__
from ..errors import UserError
from ..wire import (
    FRAMES_MEDIA_TYPE,
    Encoding,
    bad_token_char,
    decode_frame,
    encode_frame,
    image_size,
    pack_frames,
    unpack_frames,
)
from .edge_link import REMOTE_IN_FLIGHT, EdgeUnavailable

_RETRY_STATUS = {429, 500, 502, 503, 504}
# What a reverse proxy answers when the edge behind it is down (503 with a Retry-After is the edge's own
# "busy"): after the edge has answered, these are its restart, as a refused connection is without a proxy.
_GATEWAY_STATUS = {502, 503, 504}
_MAX_RETRY_AFTER = 30.0  # never sleep longer than this on a server's Retry-After
_RECONNECT_STEP = 1.0  # seconds between tries to reach an edge that went away after answering
# The first request to an edge (its model list, a tiny answer) gets this long, once: a hung edge (it
# accepts, never answers) held a run for 4 timeouts of 60 s before `--fallback local` could start.
_FIRST_CONTACT_TIMEOUT = 10.0
_KEEP_STYLES = 4  # style uploads kept to re-send if the edge forgot them (restart, LRU eviction)
# Answers are read into memory, so each has a size limit: a JSON answer (model list, style id, an
# error) a few MB, a frame batch what its frames can take (_answer_limit). A 1.5 MB gzip bomb took the
# phone to 3.2 GB, a 1.5 GB stream without Content-Length to 1.6 GB.
_MAX_JSON_ANSWER = 4 * 1024 * 1024
# What httpx reads for proxies (trust_env), either case.
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
_USERINFO = re.compile(r"(//)[^/@\s]*@")

log = logging.getLogger(__name__)


# The answer deadline of the request this thread is making (see _DeadlineStream): ``budget`` seconds
# from the answer's first byte; None outside HttpEdge._send.
_ANSWER = threading.local()


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose reads of an answer end ``_ANSWER.budget`` seconds after its first byte.

    httpx's timeouts bound each read, not an answer: an edge (or a middlebox) that sends its status
    line and then a header byte every second is never timed out by them, and h11 waits for up to
    16 KiB of head, so the phone hung for hours. The clock starts at the first byte read after the
    last write, so the edge's own time (queue, model) and a proxy's CONNECT or SOCKS reply are not
    charged to it."""

    def __init__(self, stream: httpcore.NetworkStream, live: _LiveSockets) -> None:
        self._stream = stream
        self._live = live
        live.add(self)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        budget = getattr(_ANSWER, "budget", None)
        if budget is None:
            return self._stream.read(max_bytes, timeout)
        deadline = getattr(_ANSWER, "deadline", None)
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise httpcore.ReadTimeout(f"answer not complete within {budget:g} s")
            timeout = left if timeout is None else min(timeout, left)
        data = self._stream.read(max_bytes, timeout)
        if data and deadline is None:
            _ANSWER.deadline = time.monotonic() + budget
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        _ANSWER.deadline = None
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._live.discard(self)
        self._stream.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        self._live.discard(self)  # the TLS stream below takes over the same socket
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, timeout), self._live)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _LiveSockets:
    """The open connections of one client's pools, so :meth:`HttpEdge.close` can wake the threads
    blocked on them: closing a socket does not end another thread's ``recv`` on Linux, a shutdown does."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: set[_DeadlineStream] = set()

    def add(self, stream: _DeadlineStream) -> None:
        with self._lock:
            self._streams.add(stream)

    def discard(self, stream: _DeadlineStream) -> None:
        with self._lock:
            self._streams.discard(stream)

    def shutdown(self) -> None:
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            sock = stream.get_extra_info("socket")
            if isinstance(sock, socket.socket):
                with contextlib.suppress(OSError):
                    # socket.socket's own: an SSLSocket's would drop its TLS state under a reading thread
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, backend: httpcore.NetworkBackend, live: _LiveSockets) -> None:
        self._backend = backend
        self._live = live

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._backend.connect_tcp(host, port, timeout, local_address, socket_options),
                               self._live)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._backend.connect_unix_socket(path, timeout, socket_options), self._live)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def _bound_answers(client: httpx.Client, live: _LiveSockets) -> httpx.Client:
    """Give every connection pool of ``client`` (direct and each proxy's) :class:`_DeadlineBackend`.

    httpx has no option for it, so this reaches into its transports; one it does not recognise (an
    injected transport, another httpx) keeps httpx's per-read timeouts only, and :meth:`HttpEdge.close`
    cannot wake its requests."""
    for transport in [client._transport, *client._mounts.values()]:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.NetworkBackend) and not isinstance(backend, _DeadlineBackend):
            pool._network_backend = _DeadlineBackend(backend, live)  # type: ignore[union-attr]
    return client


class _LinkClosed(Exception):
    """:meth:`HttpEdge.close` was called while this request was in flight or waiting to retry."""


class _AnswerTooLarge(Exception):
    """An answer longer than the limit its request allows."""


def _answer_limit(shapes: list[tuple[int, ...]]) -> int:
    """Bytes a stylized batch of frames of these (height, width) may take: an 8-bit RGB frame encodes to
    at most ~1.4x its raw size (JPEG q100 of noise; PNG ~1.0x), plus room for headers and packing."""
    return sum(2 * 3 * h * w + 64 * 1024 for h, w, *_ in shapes)


class HttpEdge:
    """An ``EdgeLink`` over HTTP: one pooled ``httpx.Client``, retries with backoff, byte counters.

    ``bytes_sent`` / ``bytes_received`` count the request / response bodies of every exchange that got
    an answer: the frames and style photo as ``EmbeddedEdge`` counts them, plus the model list, the
    edge's JSON answers and the batches' framing (headers and TLS are not counted).
    Transient failures (connection errors, timeouts, 429 and 5xx) are retried ``retries`` times with
    exponential backoff, honouring ``Retry-After``; anything still failing becomes a ``UserError``. A
    429 or 503 with a ``Retry-After`` is a busy edge, not a failing one: it is waited out, without
    counting as a retry, for up to ``load_wait`` seconds from the first such refusal. Once the edge
    has answered, a connection it refuses or drops after the retries (or, behind a reverse proxy, a
    502, 504 or 503 without ``Retry-After``) is tried again every second for up to ``reconnect``
    seconds from the first such failure (an edge restarting; 0: no more tries), before
    ``EdgeUnavailable``; timeouts are not. Until it has answered, the model list gets at most
    :data:`_FIRST_CONTACT_TIMEOUT` seconds, once: an edge that accepts and never answers is unreachable.
    Large batches are split into requests of at most ``batch_size`` frames / ``batch_bytes`` bytes,
    which keeps them inside the edge's default limits.

    ``token`` is sent as ``Authorization: Bearer``: printable ASCII without whitespace, else a
    ``UserError`` naming ``token_source`` (e.g. ``"token file t.txt"``) if given. ``collect=True`` is
    the user's opt-in to let the edge keep the key frames for federated learning
    (``frames_collected`` counts what it kept).
    ``verify`` is httpx's: True (system CAs, or ``SSL_CERT_FILE``), a CA bundle path, or an SSLContext.
    ``max_in_flight``: key frames a pipeline may have at this edge at once (one thread each; the
    client and its connection pool are shared): their network time overlaps, and the edge's fair
    scheduler runs them side by side or in turn.
    An edge that cannot be reached, or still fails after the retries, raises ``EdgeUnavailable``. A TLS
    certificate this phone does not trust is a plain ``UserError`` at once ("certificate verify
    failed ..."): not retried, and never a reason for ``--fallback local`` (it may be an attack).
    """

    def __init__(
        self,
        url: str,
        encoding: Encoding = Encoding(),
        timeout: float = 60.0,
        retries: int = 3,
        *,
        backoff: float = 0.5,
        batch_size: int = 16,
        batch_bytes: int = 16 * 1024 * 1024,
        connect_timeout: float | None = None,
        token: str | None = None,
        collect: bool = False,
        verify: Any = True,
        transport: httpx.BaseTransport | None = None,
        max_in_flight: int = REMOTE_IN_FLIGHT,
        token_source: str | None = None,
        load_wait: float = 60.0,
        reconnect: float = 30.0,
    ) -> None:
        if token:
            _check_token(token, token_source)
        url = url.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise UserError(f"edge URL must start with http:// or https://, got {_redact(url)!r}")
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as e:
            raise UserError(f"edge URL {_redact(url)!r} is not valid: {_redact(str(e))}") from None
        if not parsed.host:  # "http:///v1": httpx then looked up an empty name, four times
            raise UserError(f"edge URL {_redact(url)!r} has no host; give the edge server's address, e.g. "
                            "http://192.168.1.20:8400")
        try:  # as the connection will encode it: "edge..lan" ended as "internal error: UnicodeError"
            parsed.host.encode("idna")
        except UnicodeError:
            raise UserError(f"edge URL {_redact(url)!r} has host {parsed.host!r}, which is not a valid host name "
                            "(an empty part between dots, or one over 63 characters)") from None
        if parsed.port is not None and not 1 <= parsed.port <= 65535:  # httpx takes any number and the
            # connection then fails as "refused", four times, which blames the edge
            raise UserError(f"edge URL {_redact(url)!r} has port {parsed.port}; a port is 1..65535")
        if parsed.userinfo:
            # httpx would send them as Basic auth *instead of* the bearer token (a 401 that blames the
            # token), and every error line would print the password.
            raise UserError(f"edge URL {_redact(url)!r} has credentials in it (user:password@); the edge "
                            "takes a bearer token: --edge-token-file or MVSTYLIZER_EDGE_TOKEN")
        if parsed.path not in ("", "/") or parsed.query or parsed.fragment:
            # The client adds /v1/... itself: "http://h:8400/v1" asked for /v1/v1/models, a 404 that
            # blamed the edge.
            root = f"{parsed.scheme}://{parsed.netloc.decode('ascii')}"
            raise UserError(f"edge URL {_redact(url)!r} has a path or query after the server's address; give "
                            f"only the address, {root} (the client adds /v1/... itself)")
        if retries < 0 or timeout <= 0 or batch_size < 1 or batch_bytes < 1 or max_in_flight < 1:
            raise ValueError("HttpEdge needs retries >= 0, timeout > 0, batch_size >= 1, batch_bytes >= 1, "
                             "max_in_flight >= 1")
        self.url = url
        self.encoding = encoding
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes
        self.collect = collect
        self.max_in_flight = max_in_flight
        self.load_wait = load_wait
        self.reconnect = reconnect
        self._answered = False  # the edge has answered this link once: a later outage is a restart
        self.bytes_sent = 0
        self.bytes_received = 0
        self.frames_collected = 0
        self._count = threading.Lock()  # the counters and the style cache, shared by the threads in flight
        self._styles: OrderedDict[str, bytes] = OrderedDict()
        connect = min(timeout, 10.0) if connect_timeout is None else connect_timeout
        # identity: a compressed answer could expand past its size limit within a single chunk.
        headers = {"User-Agent": f"mvstylizer/{__version__}", "Accept-Encoding": "identity"}
        if token:
            if url.startswith("http://") and not _is_loopback(url):
                # Not refused (a trusted LAN is a valid deployment), but worth knowing: one line, as the
                # command line's other warnings (warnings.warn printed a line of this file's source too).
                log.warning("sending the edge token over plain HTTP to %s; use https://", url)
            headers["Authorization"] = f"Bearer {token}"
        if isinstance(verify, (str, os.PathLike)):  # a CA bundle, e.g. a self-signed edge's certificate
            try:
                verify = ssl.create_default_context(cafile=os.fspath(verify))
            except (OSError, ssl.SSLError) as e:
                raise UserError(f"cannot use CA file {verify}: {e}") from None
        self._client_options = dict(base_url=url, timeout=httpx.Timeout(timeout, connect=connect), headers=headers,
                                    verify=verify, transport=transport)
        self._reopen = threading.Lock()
        self._live = _LiveSockets()
        self._closed = threading.Event()  # set by close(): wakes the requests in flight, then replaced
        self._aborted = False
        self._client = self._new_client(self._live)

    # ------------------------------------------------------------------ EdgeLink

    def models(self) -> list[dict]:
        data = self._json(self._request("GET", "/v1/models", first_contact=not self._answered))
        try:
            return [{"name": str(m["name"]), "description": str(m["description"]),
                     "runtimes": [str(r) for r in m.get("runtimes", [])],
                     "aliases": [str(a) for a in m.get("aliases", [])],
                     # An edge too old to say is taken as spatially varying: the safe assumption.
                     "spatial": bool(m.get("spatial", True))} for m in data["models"]]
        except (KeyError, TypeError):
            raise self._malformed("model list") from None

    def register_style(self, style: np.ndarray) -> str:
        blob = encode_frame(style, Encoding("png"))  # lossless, like EmbeddedEdge: same style, same id
        style_id = self._upload_style(blob)
        with self._count:
            self._styles[style_id] = blob
            self._styles.move_to_end(style_id)
            while len(self._styles) > _KEEP_STYLES:
                self._styles.popitem(last=False)
        return style_id

    def stylize(self, style_id: str, model: str, frames: list[np.ndarray]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        batch: list[bytes] = []
        shapes: list[tuple[int, ...]] = []
        for frame in frames:
            blob = encode_frame(frame, self.encoding)
            if batch and (len(batch) >= self.batch_size or sum(map(len, batch)) + len(blob) > self.batch_bytes):
                out += self._stylize_batch(style_id, model, batch, shapes)
                batch, shapes = [], []
            batch.append(blob)
            shapes.append(frame.shape[:2])
        if batch:
            out += self._stylize_batch(style_id, model, batch, shapes)
        return out

    def close(self) -> None:
        """Close the connection pool. Requests in flight (from other threads) end at once with a
        ``UserError``, rather than after their timeouts and retries: a cancelled run (Ctrl-C) waits for
        its keys in flight. A closed link still works: its next request opens a new pool (as
        ``EmbeddedEdge`` keeps working after ``close``), so an object that holds it can be reused."""
        with self._reopen:
            closed, self._closed = self._closed, threading.Event()
            live, self._live = self._live, _LiveSockets()
            client = self._client
        closed.set()
        live.shutdown()
        client.close()

    def abort(self) -> None:
        """:meth:`close` for good: the requests in flight end at once, and every later one too, with a
        ``UserError``. For a run being cancelled: its key threads would otherwise take the next queued
        key to a new connection, and the run would wait out that request's timeout and retries."""
        self._aborted = True
        self.close()

    def __enter__(self) -> HttpEdge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _upload_style(self, blob: bytes) -> str:
        data = self._json(self._request("POST", "/v1/styles", content=blob,
                                        headers={"Content-Type": "image/png"}))
        style_id = data.get("style_id") if isinstance(data, dict) else None
        if not isinstance(style_id, str) or not style_id:
            raise self._malformed("style registration")
        return style_id

    def _stylize_batch(self, style_id: str, model: str, blobs: list[bytes],
                       shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
        params = {"style_id": style_id, "model": model,
                  "encoding": self.encoding.format, "quality": str(self.encoding.quality)}
        if self.collect:
            params["collect"] = "true"
        body = pack_frames(blobs)
        headers = {"Content-Type": FRAMES_MEDIA_TYPE}
        limit = max(_answer_limit(shapes), _MAX_JSON_ANSWER)  # an error answer is JSON
        resp = self._request("POST", "/v1/stylize", content=body, headers=headers, params=params,
                             raise_4xx=False, max_bytes=limit)
        with self._count:
            ours = self._styles.get(style_id)
        if resp.status_code == 404 and ours is not None:
            # The edge forgot the style (restarted, or evicted it); it is ours, so send it again.
            self._upload_style(ours)
            resp = self._request("POST", "/v1/stylize", content=body, headers=headers, params=params,
                                 raise_4xx=False, max_bytes=limit)
        self._raise_for_status(resp)
        try:
            collected = min(max(int(resp.headers.get("X-Frames-Collected", "0")), 0), len(shapes))
        except ValueError:
            collected = 0
        with self._count:
            self.frames_collected += collected
        try:
            blobs_back = unpack_frames(resp.content)
        except ValueError:
            raise self._malformed("stylized frame batch") from None
        # Sizes from the headers first: a frame that decodes to far more pixels than was sent (a tiny
        # PNG can claim 8000 x 8000) is refused before it costs the phone its memory.
        sizes = [image_size(b) for b in blobs_back]
        expected = [(s[1], s[0]) for s in shapes]
        if sizes != expected:
            raise self._malformed(f"stylized frame batch ({len(blobs_back)} frames for {len(shapes)} sent, "
                                  f"sizes {sizes[:3]} for {expected[:3]})")
        try:
            results = [decode_frame(b) for b in blobs_back]
        except ValueError:
            raise self._malformed("stylized frame batch") from None
        if [r.shape[:2] for r in results] != list(shapes):  # e.g. a JPEG whose EXIF turns it on its side
            raise self._malformed(f"stylized frame batch (decoded sizes {[r.shape[:2] for r in results][:3]})")
        return results

    def _request(self, method: str, path: str, *, content: bytes | None = None,
                 headers: dict[str, str] | None = None, params: dict[str, str] | None = None,
                 raise_4xx: bool = True, max_bytes: int = _MAX_JSON_ANSWER,
                 first_contact: bool = False) -> httpx.Response:
        """One exchange with retries (see the class). ``first_contact``: nothing has been heard from the
        edge yet, so a request that times out (after at most :data:`_FIRST_CONTACT_TIMEOUT` s) is an
        unreachable edge at once."""
        timeout = min(self.timeout, _FIRST_CONTACT_TIMEOUT) if first_contact else self.timeout
        attempt = 0  # failures so far; waits the edge asked for with Retry-After do not count
        refused_since: float | None = None
        down_since: float | None = None  # first failure to reach an edge that had answered before
        charged = 0.0  # the patience those waits used: at least 1 s each, so a tiny one cannot make a storm
        closed = self._closed
        if self._aborted:  # read after `closed`, as abort() sets it before close() replaces the event
            raise self._abandoned()
        while True:
            last = attempt == self.retries
            try:
                if closed.is_set():
                    raise _LinkClosed
                resp = self._send(method, path, content, headers, params, max_bytes, timeout)
            except _LinkClosed:
                raise self._abandoned() from None
            except RuntimeError:  # httpx: "the client has been closed", if close() came just before the send
                if closed.is_set():
                    raise self._abandoned() from None
                raise
            except httpx.DecodingError:  # e.g. "Content-Encoding: gzip" on a body that is not
                raise self._malformed("answer (its Content-Encoding does not match its body)") from None
            except _AnswerTooLarge:  # not retried: the same edge would send the same again
                raise self._malformed(f"answer (longer than the {max_bytes} bytes this request can need)") from None
            except httpx.TransportError as e:  # timeouts are transport errors too
                if self.url.startswith("https://") and _not_tls(e):
                    # Deterministic: retrying would only delay the same answer, and --fallback local
                    # would hide a wrong URL (or a stripped TLS connection) behind a warning.
                    raise UserError(f"edge server at {self.url} does not speak TLS on that port (it answered in "
                                    "plain text); if it is served without --ssl-certfile, use http://") from None
                cert = _certificate_failure(e)
                if cert is not None:
                    # Not "unreachable": the edge answered with a certificate this phone does not trust.
                    # Retrying cannot fix that, and falling back to local would hide a possible attack.
                    raise UserError(
                        f"edge server at {self.url}: TLS certificate verify failed: {cert}; if the edge uses a "
                        "private CA or a self-signed certificate, trust it with SSL_CERT_FILE=cert.pem") from None
                if closed.is_set():  # close() woke it: not the edge's failure, and not worth a retry
                    raise self._abandoned() from None
                if last and self._answered and not isinstance(e, httpx.TimeoutException):
                    # An edge that answered before and now refuses connections is most likely
                    # restarting (a deploy drains for up to ~10 s, then starts): the counted retries
                    # (~3.5 s) gave up first and every phone's run was lost. A hung edge (timeouts)
                    # gets no such patience: each attempt already waited a whole timeout.
                    down_since = down_since if down_since is not None else time.monotonic()
                    if self._wait_to_reconnect(down_since, closed):
                        continue
                if first_contact and isinstance(e, httpx.TimeoutException):
                    raise EdgeUnavailable(f"edge server at {self.url} did not answer in time ({type(e).__name__}; "
                                          f"{timeout:g} s for its first answer){self._via_proxy()}") from None
                if last:
                    what = (f"did not answer in time ({type(e).__name__})" if isinstance(e, httpx.TimeoutException)
                            else f"is unreachable: {_describe(e)}")
                    tries = f"(after {attempt + 1} attempt(s))"
                    raise EdgeUnavailable(f"edge server at {self.url} {what} {tries}{self._via_proxy()}") from None
                self._sleep(attempt, None, closed)
                attempt += 1
                continue
            gateway = _is_gateway_failure(resp)
            if not gateway:
                self._answered = True
                if down_since is not None:  # back after a restart: a fresh count of retries for what it answers
                    down_since, attempt, last = None, 0, self.retries == 0
            with self._count:
                self.bytes_sent += len(content or b"")
                self.bytes_received += len(resp.content)
            if resp.status_code in (429, 503):
                # A busy edge that says when to come back is not failing: phones sharing an address
                # (a NAT, or an edge without tokens) share its in-flight limit, and 20 of them with 3 keys
                # out each had one give up after ~3 s of 429s while the edge served the rest.
                refused_since = time.monotonic() if refused_since is None else refused_since
                delay = _parse_retry_after(resp.headers.get("Retry-After"))
                # Not for 0, a negative value or a date already past (a skewed clock): those say
                # nothing about when, so they get the counted retries' backoff.
                if (delay is not None and delay > 0 and charged + max(delay, 1.0) <= self.load_wait
                        and time.monotonic() + delay - refused_since <= self.load_wait):
                    charged += max(delay, 1.0)
                    closed.wait(min(delay, _MAX_RETRY_AFTER) * (1 + 0.25 * random.random()))
                    continue
            if resp.status_code in _RETRY_STATUS and not last:
                self._sleep(attempt, resp.headers.get("Retry-After"), closed)
                attempt += 1
                continue
            if gateway and self._answered:
                # Behind a reverse proxy a restarting edge is a 502/503/504, not a refused connection:
                # the same patience, or a short restart ended the run after the counted retries (~3.5 s).
                down_since = down_since if down_since is not None else time.monotonic()
                if self._wait_to_reconnect(down_since, closed):
                    continue
                raise EdgeUnavailable(
                    f"edge server at {self.url} answered earlier but now fails with {resp.status_code} "
                    f"{resp.reason_phrase or ''} (after {self.reconnect:g} s of tries): the edge behind the "
                    f"proxy is down{self._via_proxy()}")
            if raise_4xx or resp.status_code >= 500:
                self._raise_for_status(resp)
            return resp

    def _send(self, method: str, path: str, content: bytes | None, headers: dict[str, str] | None,
              params: dict[str, str] | None, max_bytes: int, timeout: float) -> httpx.Response:
        """One attempt, its whole answer (head and body) read within ``timeout`` seconds of its first
        byte (:class:`_DeadlineStream`; with a transport it cannot reach, the body within ``timeout`` of
        the head): httpx's own timeouts bound each read, so an edge sending a byte every few seconds
        would otherwise hold the phone. (The upload and the edge's own time stay bounded per read, as
        before.) An answer (once decoded) longer than ``max_bytes`` raises :class:`_AnswerTooLarge` as
        soon as that is known."""
        _ANSWER.budget, _ANSWER.deadline = timeout, None
        try:
            return self._exchange(method, path, content, headers, params, max_bytes, timeout)
        finally:
            _ANSWER.budget = None

    def _exchange(self, method: str, path: str, content: bytes | None, headers: dict[str, str] | None,
                  params: dict[str, str] | None, max_bytes: int, timeout: float) -> httpx.Response:
        client = self._open_client()
        limits = client.timeout if timeout == self.timeout else httpx.Timeout(timeout, connect=client.timeout.connect)
        with client.stream(method, path, content=content, headers=headers, params=params, timeout=limits) as resp:
            deadline = time.monotonic() + timeout
            try:
                expected = int(resp.headers.get("content-length", "-1"))
            except ValueError:
                expected = -1
            if expected > max_bytes:
                raise _AnswerTooLarge
            body = bytearray()
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise _AnswerTooLarge
                complete = resp.num_bytes_downloaded == expected  # a last chunk just late still counts
                if time.monotonic() > deadline and not complete:
                    raise httpx.ReadTimeout(f"answer not complete within {timeout:g} s", request=resp.request)
        # The body is decoded already: the new response must not claim an encoding or a length.
        kept = [(k, v) for k, v in resp.headers.multi_items()
                if k.lower() not in ("content-encoding", "content-length")]
        return httpx.Response(resp.status_code, headers=kept, content=bytes(body), request=resp.request)

    def _open_client(self) -> httpx.Client:
        """The pooled client, opened again if :meth:`close` closed it."""
        with self._reopen:
            if self._client.is_closed:
                self._client = self._new_client(self._live)
            return self._client

    def _new_client(self, live: _LiveSockets) -> httpx.Client:
        try:
            return _bound_answers(httpx.Client(**self._client_options), live)
        except (ImportError, ValueError, httpx.InvalidURL) as e:
            # httpx reads HTTP(S)_PROXY / ALL_PROXY here: a socks:// proxy without socksio installed,
            # or a proxy URL it cannot parse, would otherwise end the run as an internal error.
            names = [k for k in _PROXY_VARIABLES if os.environ.get(k)]
            if not names:
                raise
            raise UserError(f"cannot use the proxy set in {', '.join(names)} to reach the edge server at "
                            f"{self.url}: {_redact(str(e))}; fix or unset it, or exclude the edge host with "
                            "NO_PROXY") from None

    def _raise_for_status(self, resp: httpx.Response) -> None:
        if resp.is_success:
            return
        detail = _detail(resp)
        if resp.status_code == 429:
            raise EdgeUnavailable(f"edge server at {self.url} kept refusing for load (429): {detail}")
        if resp.status_code == 401:
            raise UserError(f"edge server at {self.url} refused the token (401): {detail}; "
                            "pass a valid one with --edge-token-file or MVSTYLIZER_EDGE_TOKEN")
        if 300 <= resp.status_code < 400:
            # Not followed (httpx's default): the token would go wherever the redirect points.
            where = _redact(resp.headers.get("Location", "")[:200]) or "nowhere"
            raise UserError(f"edge server at {self.url} answered with a redirect ({resp.status_code}) to {where}, "
                            "which is not followed; if that is the edge, pass its URL with --edge")
        if resp.status_code < 500:
            raise UserError(f"edge server refused the request ({resp.status_code}): {detail}")
        raise EdgeUnavailable(f"edge server at {self.url} failed ({resp.status_code}): {detail}")

    def _wait_to_reconnect(self, down_since: float, closed: threading.Event) -> bool:
        """Wait a step before trying again an edge that went away at ``down_since`` after answering;
        False, without waiting, once ``reconnect`` seconds have gone by since then."""
        left = self.reconnect - (time.monotonic() - down_since)
        if left <= 0:
            return False
        closed.wait(min(_RECONNECT_STEP, left))
        return True

    def _sleep(self, attempt: int, retry_after: str | None, closed: threading.Event) -> None:
        delay = _parse_retry_after(retry_after)
        if delay is None:
            delay = self.backoff * (2**attempt) * (0.5 + random.random())  # jitter spreads retries
        closed.wait(min(max(delay, 0.0), _MAX_RETRY_AFTER))

    def _json(self, resp: httpx.Response) -> Any:
        try:
            return resp.json()
        except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than Python's stack
            raise self._malformed("JSON answer") from None

    def _via_proxy(self) -> str:
        """A note for an unreachable edge when httpx goes through a proxy from the environment: it is the
        proxy that refused or timed out, which the error alone does not say."""
        try:
            client = self._client
            proxied = client._transport_for_url(httpx.URL(self.url)) is not client._transport
        except Exception:  # noqa: BLE001 - httpx internals; without them, no note
            return ""
        if not proxied:
            return ""
        names = [k for k in _PROXY_VARIABLES if os.environ.get(k)]
        return f"; through the proxy set in {', '.join(names) or 'the environment'} (NO_PROXY=host to bypass it)"

    def _abandoned(self) -> UserError:
        # Not EdgeUnavailable: a run being cancelled must not fall back to the in-process edge.
        return UserError(f"request to the edge server at {self.url} abandoned: the link was closed")

    def _malformed(self, what: str) -> UserError:
        return UserError(f"edge server at {self.url} sent a malformed {what}; is it an mvstylizer edge?")


def _redact(text: str) -> str:
    """``text`` with the credentials of any ``scheme://user:password@host`` in it replaced by ``***``."""
    return _USERINFO.sub(lambda m: m.group(1) + "***@", text)


def _check_token(token: object, source: str | None) -> None:
    """Refuse a token that cannot go in an HTTP header: it must be printable ASCII without whitespace
    (RFC 6750's bearer tokens are narrower still). ``source`` names where it came from, e.g.
    ``"token file /x"``; unknown, the environment variable is named if the token is its value."""
    if source is None:
        source = ("$MVSTYLIZER_EDGE_TOKEN" if token == os.environ.get("MVSTYLIZER_EDGE_TOKEN")
                  else "the edge token")
    if not isinstance(token, str):
        raise UserError(f"{source} must be a string, got {type(token).__name__}")
    bad = bad_token_char(token)
    if bad is not None:  # the token itself is a secret: say where the problem is, not what it is
        what = "whitespace" if token[bad].isspace() else "a character that is not printable ASCII"
        raise UserError(f"{source} has {what} at position {bad + 1}; an edge token is printable ASCII "
                        "without spaces")


def _is_loopback(url: str) -> bool:
    """True only for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1, and 127/8 mapped into IPv6 as
    ``::ffff:127.0.0.1``), never for a name like ``127.attacker.example``, which DNS may point anywhere."""
    host = httpx.URL(url).host.rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1, which Python's is_loopback denies
    return address.is_loopback


def _certificate_failure(e: BaseException) -> str | None:
    """The reason if ``e`` (or what caused it) is a failed TLS certificate verification, else None."""
    seen: set[int] = set()
    cause: BaseException | None = e
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause.verify_message or str(cause)
        cause = cause.__cause__ or cause.__context__
    text = str(e)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return text
    return None


def _not_tls(e: BaseException) -> bool:
    """Whether ``e`` (or what caused it) is OpenSSL reading something that is not TLS where the server's
    first TLS record should be: a plain HTTP server's answer, e.g."""
    seen: set[int] = set()
    cause: BaseException | None = e
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLError) and cause.reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST"):
            return True
        cause = cause.__cause__ or cause.__context__
    return "WRONG_VERSION_NUMBER" in str(e)


def _is_gateway_failure(resp: httpx.Response) -> bool:
    """Whether ``resp`` is a proxy's answer for an edge it cannot reach, not the edge's own."""
    return resp.status_code in _GATEWAY_STATUS and not (resp.status_code == 503 and resp.headers.get("Retry-After"))


def _detail(resp: httpx.Response) -> str:
    try:
        detail = resp.json().get("detail")
    except (ValueError, AttributeError, RecursionError):
        detail = None
    if isinstance(detail, list):  # FastAPI's validation errors: [{"loc": [...], "msg": ...}, ...]
        parts = []
        for d in detail:
            if isinstance(d, dict):
                loc = ".".join(str(x) for x in d.get("loc", []) if x not in ("query", "body"))
                parts.append(f"{loc}: {d.get('msg', '')}" if loc else str(d.get("msg", "")))
        detail = "; ".join(parts) or None
    if detail is None:
        if "html" in resp.headers.get("content-type", "").lower():  # a web server's page, not an edge's answer
            return f"{resp.reason_phrase or 'an error'}, as a web page; is this URL an mvstylizer edge server?"
        detail = " ".join(resp.text[:200].split()) or resp.reason_phrase
    return str(detail)


def _describe(e: httpx.TransportError) -> str:
    cause: BaseException | None = e
    while cause is not None and cause.__cause__ is not None and cause.__cause__ is not cause:
        cause = cause.__cause__
    msg = str(e) or type(e).__name__
    root = str(cause) if cause is not None and cause is not e else ""
    return f"{msg} ({root})" if root and root not in msg else msg


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        delay = float(value)
        return delay if math.isfinite(delay) else None  # "nan" or "inf" would reach time.sleep
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()
