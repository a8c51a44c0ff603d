"""The edge's HTTP API (``mvstylizer edge serve``): a thin FastAPI layer over one ``EdgeService``.

Endpoints, versioned under ``/v1`` (the OpenAPI spec is at ``/openapi.json``):

- ``GET|HEAD /v1/health`` -> ``{"status": "ok"}`` (never needs a token: liveness probes)
- ``GET  /v1/models``  -> ``{"models": [{"name", "description", "runtimes", "aliases"}, ...]}``
  (only the models this edge serves, ``--models``)
- ``POST /v1/styles``  body: one PNG/JPEG/WebP image -> ``{"style_id": ...}``
- ``POST /v1/stylize?style_id=&model=&encoding=&quality=&collect=`` body: ``wire.pack_frames`` of
  encoded frames (``wire.FRAMES_MEDIA_TYPE``) -> packed stylized frames in the requested encoding.
  ``collect=true`` is the phone's opt-in: the key frames are kept in the frame store (``--data-dir``);
  the ``X-Frames-Collected`` response header says how many were.
- ``GET  /v1/metrics`` -> Prometheus text exposition (requests, latency, queue depth, frames).

With a token file every route but health needs ``Authorization: Bearer <token>`` (401 otherwise;
after too many 401s from one address, 429 before any token is checked) whose scopes include the
route's (403 otherwise: ``metrics`` for /v1/metrics, ``stylize`` for the rest). A token in the URL
query is refused (400) and redacted from the access log. There is no ``/docs`` page (Swagger UI
loads its scripts from a CDN); the spec is at ``/openapi.json``.
Errors are JSON ``{"detail": "..."}``: 400 bad input, 401 no or unknown token, 404 unknown style,
408 body too slow, 413 too large, 415 wrong content type, 422 bad query parameters, 429 this client
over its rate or concurrency limit and 503 the edge over its queue limit (both with ``Retry-After``),
500 a bug (generic message; the traceback goes to the log and the server keeps serving).

Decoding, stylization and encoding run in a bounded thread pool (``ServerConfig.workers`` threads), never
on the event loop; at most ``max_pending`` requests wait for it, the rest get 503 at once. Every request
body is read through :func:`read_limited_body`, and every image's dimensions are read from its header
before it is decoded, so neither a huge upload nor a decompression bomb can exhaust memory.

Per request, in this order: auth (401) -> per-client rate and concurrency limit (429) -> content type
(415) -> body size and read time (413/408) -> queue slot (503) -> header checks and decoding in a
worker. A slow uploader therefore holds no worker, and one client cannot fill the queue. Routes get
the service and limits from ``app.state`` through small dependencies (no module-level state).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, AsyncIterator, Callable, Literal, TypeVar

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from .. import __version__, wire
from ..errors import UserError
from ..models.registry import DEFAULT_MODEL, resolve_name
from .auth import TokenSet, bearer_token, query_token_params
from .memory import MemoryLimits, default_budget
from .metrics import EdgeMetrics, MetricsMiddleware
from .ratelimit import AuthFailureConfig, AuthFailureLimiter, RateLimitConfig, RateLimiter, retry_after_header
from .scheduler import ClientGone, FairScheduler, ShuttingDown
from .service import EdgeService
from .store import FrameStore, StoreFull

log = logging.getLogger("mvstylizer.edge.server")

API_PREFIX = "/v1"
_T = TypeVar("_T")


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8400
    max_request_bytes: int = 64 * 1024 * 1024  # any request body, after which 413
    max_frame_pixels: int = 4096 * 4096  # per image (frames and style photos), read from the header
    min_frame_side: int = 8  # smaller images are refused (400): VGG-based models need 8 px per side
    max_batch: int = 32  # frames per /v1/stylize request
    max_batch_pixels: int = 48 * 1024 * 1024  # all frames of one request together (~0.6 GB as float32)
    workers: int = 2  # threads running decode + DNN + encode (not uvicorn worker processes)
    max_pending: int = 64  # requests running or waiting for a worker; beyond that 503 + Retry-After
    body_timeout_s: float = 60.0  # a request body must arrive within this, else 408 (slow-upload guard)
    log_level: str = "info"
    tokens: TokenSet = field(default_factory=TokenSet)  # empty: no auth (loopback/dev use only)
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    auth_failures: AuthFailureConfig = field(default_factory=AuthFailureConfig)  # 401s per peer address
    models: tuple[str, ...] = ()  # model names this edge serves (canonical, e.g. "dncm"); empty: all
    data_dir: Path | None = None  # opt-in frame store root; None: nothing is ever kept
    store_quota_bytes: int = 2 * 1024**3
    store_client_quota_bytes: int | None = None  # per client (token name); None: a quarter of the quota
    ssl_keyfile: Path | None = None  # both set: HTTPS via uvicorn's ssl options
    ssl_certfile: Path | None = None
    # Working memory the workers may use together (bytes); None: half the machine's (or container's) RAM.
    # Per-model pixel limits follow from it and the measured cost per pixel (edge/memory.py).
    memory_budget: int | None = None
    # Connections (issue 14 item 2): see edge/connections.py and docs/EDGE.md.
    max_connections: int = 1000  # uvicorn limit_concurrency: beyond it new requests get 503
    max_connections_per_ip: int = 64  # more from one peer address are closed at once
    header_timeout_s: float = 10.0  # a connection must send a complete request header within this
    keep_alive_s: int = 5  # an idle kept-alive connection is closed after this
    max_header_bytes: int = 16 * 1024  # h11_max_incomplete_event_size
    shutdown_grace_s: float = 10.0  # running jobs may finish this long after SIGTERM; then 503

    def __post_init__(self) -> None:
        for name in ("max_request_bytes", "max_frame_pixels", "min_frame_side", "max_batch", "max_batch_pixels", "workers",
                     "max_pending", "store_quota_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"ServerConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"ServerConfig.port must be 0..65535, got {self.port}")
        if self.memory_budget is not None and self.memory_budget < 1:
            raise ValueError(f"ServerConfig.memory_budget must be >= 1 byte, got {self.memory_budget}")
        if self.body_timeout_s <= 0:
            raise ValueError(f"ServerConfig.body_timeout_s must be > 0, got {self.body_timeout_s}")
        if (self.ssl_keyfile is None) != (self.ssl_certfile is None):
            raise ValueError("ServerConfig needs both ssl_keyfile and ssl_certfile, or neither")


def served_models(names: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Canonical model names for ``--models`` (aliases allowed); UserError for an unknown one."""
    if not names:
        return ()
    return tuple(dict.fromkeys(resolve_name(n).split(":", 1)[0] for n in names))


# ---------------------------------------------------------------- response schemas (for OpenAPI)


class Health(BaseModel):
    status: str


class ModelInfo(BaseModel):
    name: str
    description: str
    runtimes: list[str] = []  # e.g. ["torch", "onnx"]; request one as model=NAME:RUNTIME
    aliases: list[str] = []
    # False for a global colour transform (every pixel's output depends on its colour alone): the
    # phone then keeps a key as one colour function and needs no spatial grid for its neighbours.
    spatial: bool = True


class ModelList(BaseModel):
    models: list[ModelInfo]


class StyleCreated(BaseModel):
    style_id: str


def _binary_body(*media_types: str) -> dict[str, Any]:
    schema = {"type": "string", "format": "binary"}
    return {"requestBody": {"required": True,
                            "content": {m: {"schema": schema} for m in media_types}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"type": "object",
                                                         "properties": {"detail": {"type": "string"}}}}}}


_COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("bad input (undecodable image, malformed batch, unknown model)"),
    408: _error("request body not received in time"),
    413: _error("request, image or batch too large"),
    415: _error("unsupported content type"),
    503: _error("edge busy; retry after the Retry-After header's seconds"),
}
# Every guarded route can answer these (declared on the router so the OpenAPI spec lists them).
_GUARD_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("bad input, e.g. a bearer token in the URL query (send it in the Authorization header)"),
    401: _error("missing or unknown bearer token"),
    403: _error("the token's scopes do not include this route's"),
    429: _error("this client is over its rate or concurrency limit, or its address over its failed "
                "authentications; retry after Retry-After seconds"),
}
# The scope a token needs per route (token file: NAME TOKEN SCOPES); any other guarded route: stylize.
ROUTE_SCOPES = {f"{API_PREFIX}/metrics": "metrics"}


# ---------------------------------------------------------------- per-app state and dependencies


class _Runtime:
    """What a request handler needs: the service, the limits, the bounded worker pool, the store."""

    def __init__(self, service: EdgeService, config: ServerConfig, metrics: EdgeMetrics) -> None:
        self.service = service
        self.config = config
        self.metrics = metrics
        self.limiter = RateLimiter(config.rate_limit)
        self.auth_failures = AuthFailureLimiter(config.auth_failures)
        self.shutting_down = False
        self.scheduler: FairScheduler | None = None
        self.pending = 0  # only touched on the event loop thread
        self.busy = 0  # workers running a job; touched from worker threads, hence the lock
        self._busy_lock = threading.Lock()
        self.store: FrameStore | None = None
        self.store_failed = False  # the store could not be opened: collection is off for this run
        self.allowed = frozenset(config.models)  # empty: every model
        self.limits = MemoryLimits(config.memory_budget or default_budget(), config.workers,
                                   config.max_frame_pixels, config.max_batch_pixels)
        metrics.bind_queue(lambda: self.pending, lambda: self.busy)

    def start(self) -> None:
        if self.scheduler is None:
            # In flight per client <= workers (issue 14 item 3): one client cannot hold every worker
            # *and* a queue behind them; the round robin serves the other clients' jobs in between.
            self.scheduler = FairScheduler(self.config.workers,
                                           min(self.config.rate_limit.max_inflight, self.config.workers))
        if self.store is None and self.config.data_dir is not None and not self.store_failed:
            self.store = open_store(self.config)
            self.store_failed = self.store is None
            if self.store is not None:
                self.metrics.store_bytes.set(self.store.total_bytes)

    def begin_shutdown(self) -> None:
        """The server starts its graceful shutdown: queued jobs get 503 now, running ones may finish
        within the grace period (after it, :meth:`run` answers 503 for them too)."""
        self.shutting_down = True
        if self.scheduler is not None:
            self.scheduler.stop_accepting()

    def stop(self) -> None:
        self.shutting_down = True
        if self.scheduler is not None:
            self.scheduler.close()
            self.scheduler = None
        if self.store is not None:
            self.store.close()
            self.store = None

    def serves(self, model: str) -> bool:
        return not self.allowed or resolve_name(model).split(":", 1)[0] in self.allowed

    def _tracked(self, fn: Callable[..., _T], *args: Any) -> _T:
        with self._busy_lock:
            self.busy += 1
        try:
            return fn(*args)
        finally:
            with self._busy_lock:
                self.busy -= 1

    async def run(self, fn: Callable[..., _T], *args: Any, client: str = "", request: Request | None = None) -> _T:
        """Run blocking work on a worker, fairly among clients (:class:`FairScheduler`).

        503 when the queue is full or the edge is shutting down; UserError -> 400; anything unexpected
        -> logged 500. Work of a client that disconnects while it waits is dropped unrun.
        """
        if self.pending >= self.config.max_pending:
            self.metrics.rejected.labels("queue_full").inc()
            raise HTTPException(503, "edge server is busy; retry later", headers={"Retry-After": "1"})
        self.start()  # normally done by the lifespan; this keeps create_app usable without one
        assert self.scheduler is not None
        self.pending += 1
        try:
            return await self.scheduler.submit(client, self._tracked, fn, *args,
                                               disconnected=request.is_disconnected if request is not None else None)
        except (HTTPException, UserError):
            raise
        except ShuttingDown:
            raise HTTPException(503, "edge server is shutting down; retry later",
                                headers={"Retry-After": "1"}) from None
        except ClientGone:
            self.metrics.rejected.labels("client_gone").inc()
            raise HTTPException(499, "client disconnected; request dropped") from None
        except asyncio.CancelledError:
            if not self.shutting_down:
                raise
            # uvicorn cancels what is still running when the shutdown grace period ends; without this
            # the client would get uvicorn's 500 for what is a restart, not a bug.
            raise HTTPException(503, "edge server is shutting down; retry later",
                                headers={"Retry-After": "1"}) from None
        except Exception:
            log.exception("unexpected error in %s", getattr(fn, "__name__", fn))
            raise HTTPException(500, "internal error on the edge server") from None
        finally:
            self.pending -= 1


def open_store(config: ServerConfig) -> FrameStore | None:
    """The opt-in frame store, or None with one warning if it cannot be used (disk full, a corrupt
    index, no permission...): the edge then serves with collection off rather than not at all."""
    assert config.data_dir is not None
    client_quota = config.store_client_quota_bytes or max(1, config.store_quota_bytes // 4)
    try:
        return FrameStore(config.data_dir, config.store_quota_bytes, client_quota_bytes=client_quota)
    except Exception as e:  # noqa: BLE001 - an optional feature must never stop the edge
        log.warning("frame store %s unusable (%s: %s); serving with data collection OFF (collect=true "
                    "requests get X-Frames-Collected: 0)", config.data_dir, type(e).__name__, e)
        return None


class QueryTokenMiddleware:
    """Pure ASGI: a bearer token in the URL query (``?access_token=...``, or any parameter holding a
    known token) is refused with 400 before routing, and the query is replaced by ``REDACTED`` in the
    request scope, which is what uvicorn's access log prints. URLs end up in logs, proxies and
    browser histories; tokens belong in the ``Authorization`` header."""

    def __init__(self, app: Any, tokens: TokenSet) -> None:
        self.app = app
        self.tokens = tokens
        self._last_warning = -1e9
        self._quiet = 0  # refusals not logged since the last warning

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or not scope.get("query_string"):
            await self.app(scope, receive, send)
            return
        names = query_token_params(scope["query_string"], self.tokens)
        if not names:
            await self.app(scope, receive, send)
            return
        scope["query_string"] = b"REDACTED"  # the access log reads the scope after the response
        self._warn(scope, names)
        response = JSONResponse({"detail": f"credentials in the URL query are refused (parameter "
                                           f"{', '.join(sorted(set(names)))}): URLs are logged; send the token "
                                           "as 'Authorization: Bearer <token>'"}, status_code=400)
        await response(scope, receive, send)

    def _warn(self, scope: dict, names: list[str]) -> None:
        import time

        now = time.monotonic()
        if now - self._last_warning < 60:  # at most one line a minute, however many arrive
            self._quiet += 1
            return
        client = scope.get("client") or ("unknown",)
        log.warning("refused a request from %s carrying a credential in its URL query (parameter %s)%s; if it "
                    "was a real token, it may be in proxies' logs: consider replacing it",
                    client[0], ", ".join(sorted(set(names))),
                    f" ({self._quiet} more since the last such line)" if self._quiet else "")
        self._last_warning, self._quiet = now, 0


def get_runtime(request: Request) -> _Runtime:
    return request.app.state.runtime


Runtime = Annotated[_Runtime, Depends(get_runtime)]


async def guard(request: Request, rt: Runtime) -> AsyncIterator[str]:
    """Auth (failed attempts limited per address), the token's scope, then the per-client
    rate/concurrency limit; yields the client's name for the request."""
    tokens = rt.config.tokens
    address = request.client.host if request.client else "unknown"
    if tokens.enabled:
        wait = rt.auth_failures.blocked(address)
        if wait is not None:  # before the token is looked at: guessing runs at the configured rate at most
            rt.metrics.rejected.labels("auth_rate_limit").inc()
            raise HTTPException(429, "too many failed authentications from this address; retry later",
                                headers={"Retry-After": retry_after_header(wait)})
        token = bearer_token(request.headers.get("authorization"))
        found = tokens.lookup(token) if token is not None else None
        if found is None:
            rt.auth_failures.failed(address)
            rt.metrics.rejected.labels("auth").inc()
            raise HTTPException(401, "missing or unknown bearer token" if token is None else "unknown bearer token",
                                headers={"WWW-Authenticate": "Bearer"})
        client, scopes = found
        route = request.scope.get("route")
        needed = ROUTE_SCOPES.get(getattr(route, "path", request.url.path), "stylize")
        if needed not in scopes:
            rt.metrics.rejected.labels("scope").inc()
            raise HTTPException(403, f"this token (client {client!r}) lacks the {needed!r} scope; give it in the "
                                     f"token file's third column, e.g. 'NAME TOKEN {needed}'")
    else:
        client = address
    wait = rt.limiter.acquire(client)
    if wait is not None:
        rt.metrics.rejected.labels("rate_limit").inc()
        raise HTTPException(429, "too many requests from this client; slow down",
                            headers={"Retry-After": retry_after_header(wait)})
    try:
        yield client
    finally:
        rt.limiter.release(client)


Client = Annotated[str, Depends(guard)]


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_limited_body(request: Request, rt: Runtime,
                            on_chunk: Callable[[bytes], None] | None = None) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``max_request_bytes``.

    With ``on_chunk`` every chunk is handed to it as it arrives (it may raise HTTPException to refuse
    the request there and then) and nothing is kept: the result is then ``b""``.
    """
    limit = rt.config.max_request_bytes
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _too_large(limit)
        except ValueError:
            raise HTTPException(400, "invalid Content-Length header") from None
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(rt.config.body_timeout_s):  # a trickling upload is cut off, not waited on
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                if on_chunk is not None:
                    on_chunk(chunk)
                else:
                    chunks.append(chunk)
    except TimeoutError:
        raise HTTPException(408, f"request body not received within {rt.config.body_timeout_s:g} s") from None
    return b"".join(chunks)


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"request body exceeds the edge's limit of {limit} bytes")


def body_of_type(*allowed: str) -> Callable[..., Any]:
    """A dependency: 415 unless the Content-Type is one of ``allowed``, then the size-limited body."""

    async def dependency(request: Request, rt: Runtime) -> bytes:
        got = _media_type(request)
        if got not in allowed:
            raise HTTPException(415, f"Content-Type must be {' or '.join(allowed)}, got {got or 'none'!r}")
        return await read_limited_body(request, rt)

    return dependency


async def frames_body(request: Request, rt: Runtime) -> list[bytes]:
    """A dependency: the frame batch, checked header by header *while it arrives* (issue 14 item 4).

    Each ``[u32 length]`` is checked as soon as its 4 bytes are in (frame count <= ``max_batch``, no
    empty frame, no frame longer than the body limit), and each frame's image header as soon as the
    frame is complete (an image, <= ``max_frame_pixels``, the batch <= ``max_batch_pixels``), so a bad
    batch is refused (400/413) before the rest of its body is read, and nothing is unpacked twice.
    """
    got = _media_type(request)
    if got != wire.FRAMES_MEDIA_TYPE:
        raise HTTPException(415, f"Content-Type must be {wire.FRAMES_MEDIA_TYPE}, got {got or 'none'!r}")
    cfg = rt.config
    model = request.query_params.get("model") or DEFAULT_MODEL
    if not rt.serves(model):  # unknown model: UserError -> 400; not served: 400; both before the body
        raise HTTPException(400, f"model {model!r} is not served by this edge; it serves: "
                                 f"{', '.join(sorted(rt.allowed))}")
    canonical = resolve_name(model)
    frame_limit = rt.limits.frame_pixels(canonical)
    parser = wire.FrameBatchParser(max_frames=cfg.max_batch, max_frame_bytes=cfg.max_request_bytes)
    pixels = largest = 0

    def on_chunk(chunk: bytes) -> None:
        nonlocal pixels, largest
        try:
            done = parser.feed(chunk)
        except wire.BatchTooLarge as e:
            raise HTTPException(413, f"frame batch refused: {e}; the edge accepts at most {cfg.max_batch} "
                                     "frames per request") from None
        except ValueError as e:
            raise HTTPException(400, f"malformed frame batch: {e}") from None
        for k, blob in enumerate(done, len(parser.frames) - len(done)):
            w, h = _checked_size(blob, f"frame {k}", frame_limit, cfg.min_frame_side,
                                 rt.limits.describe(canonical))
            pixels += w * h
            largest = max(largest, w * h)
            if not rt.limits.batch_fits(canonical, pixels, largest):
                raise HTTPException(413, f"batch too large: frames 0..{k} have {pixels} pixels, beyond what one "
                                         f"worker may hold for model {canonical} (at most {cfg.max_batch_pixels} "
                                         f"pixels per batch; {rt.limits.describe(canonical)}); send fewer frames")

    await read_limited_body(request, rt, on_chunk)
    try:
        blobs = parser.finish()
    except ValueError as e:
        raise HTTPException(400, f"malformed frame batch: {e}") from None
    if not blobs:
        raise HTTPException(400, "empty frame batch; send wire.pack_frames of at least one encoded frame")
    return blobs


_STYLE_TYPES = tuple(c.media_type for c in wire.CODECS.values())
EncodingName = Literal[tuple(wire.CODECS)]  # type: ignore[valid-type]  # the query's enum, from the registry
StyleBody = Annotated[bytes, Depends(body_of_type(*_STYLE_TYPES))]
FramesBody = Annotated[list[bytes], Depends(frames_body)]


def _checked_size(blob: bytes, what: str, max_pixels: int, min_side: int = 1,
                  why: str = "") -> tuple[int, int]:
    """(width, height) from the image header; 400 if not an image or under ``min_side``, 413 beyond
    ``max_pixels`` (``why``: how that limit was derived, for the message)."""
    size = wire.image_size(blob)
    if size is None:
        raise HTTPException(400, f"{what} is not an image in any of the edge's encodings ({', '.join(wire.CODECS)})")
    w, h = size
    if w < 1 or h < 1:
        raise HTTPException(400, f"{what} has invalid dimensions {w}x{h}")
    if min(w, h) < min_side:
        raise HTTPException(400, f"{what} is {w}x{h}; the edge needs at least {min_side} pixels per side")
    if w * h > max_pixels:
        raise HTTPException(413, f"{what} is {w}x{h} ({w * h} pixels); the edge accepts at most {max_pixels} "
                                 f"pixels per image{' (' + why + ')' if why else ''}")
    return w, h


def _checked_decode(blob: bytes, what: str, max_pixels: int, min_side: int = 1, why: str = ""):
    """Header check, decode, then a check of the decoded size (a header that lies is caught too)."""
    _checked_size(blob, what, max_pixels, min_side, why)
    try:
        frame = wire.decode_frame(blob)
    except ValueError:
        raise HTTPException(400, f"{what} is not a decodable image") from None
    if frame.shape[0] * frame.shape[1] > max_pixels:  # header and payload disagree
        raise HTTPException(413, f"{what} decodes to more than {max_pixels} pixels")
    return frame


# ---------------------------------------------------------------- work done in the pool


def _register_style(rt: _Runtime, body: bytes) -> str:
    if not body:
        raise HTTPException(400, "empty body; send the style photo's encoded bytes")
    _checked_decode(body, "style", rt.limits.style_pixels(), rt.config.min_frame_side,
                    f"style photos, memory budget {rt.limits.budget >> 20} MiB / {rt.limits.workers} workers")
    return rt.service.register_style(body)


def _stylize(rt: _Runtime, blobs: list[bytes], style_id: str, model: str, encoding: wire.Encoding,
             collect_for: str | None = None) -> tuple[bytes, int]:
    """Stylize a batch (its headers already checked by :func:`frames_body`); with ``collect_for`` (the
    client's name) also keep the decoded frames. Returns the packed results and how many were kept.
    """
    cfg = rt.config
    limit = rt.limits.frame_pixels(resolve_name(model))
    frames = [_checked_decode(b, f"frame {i}", limit, cfg.min_frame_side) for i, b in enumerate(blobs)]
    results = rt.service.stylize(style_id, model, frames)
    rt.metrics.frames.labels(resolve_name(model).split(":", 1)[0]).inc(len(frames))
    kept = _collect(rt, frames, collect_for) if collect_for is not None else 0
    return wire.pack_frames([wire.encode_frame(r, encoding) for r in results]), kept


def _collect(rt: _Runtime, frames: list[np.ndarray], client: str) -> int:
    """Keep opted-in frames in the store; a store failure (disk full...) never fails the stylize call."""
    store = rt.store
    if store is None:
        return 0
    kept = 0
    try:
        for f in frames:
            # decode_frame gives k/255 exactly, so this recovers the uploaded 8-bit pixels bit for bit.
            store.add((f * 255.0 + 0.5).astype(np.uint8), client)
            kept += 1
    except StoreFull as e:
        log.warning("frame store %s: not keeping %d frame(s) of %s: %s", store.root, len(frames) - kept, client, e)
    except Exception as e:  # noqa: BLE001 - one line per failing insert, never a traceback per request
        log.warning("frame store %s: could not keep %d frame(s) of %s (%s: %s)", store.root,
                    len(frames) - kept, client, type(e).__name__, e)
    rt.metrics.frames_kept.inc(kept)
    with contextlib.suppress(Exception):
        rt.metrics.store_bytes.set(store.total_bytes)
    return kept


def _user_error_status(err: UserError) -> int:
    status = getattr(err, "http_status", None)
    return status if isinstance(status, int) and 400 <= status < 500 else 400


# ---------------------------------------------------------------- routes

public = APIRouter(prefix=API_PREFIX)
router = APIRouter(prefix=API_PREFIX, dependencies=[Depends(guard)], responses=_GUARD_ERRORS)


@public.get("/health", response_model=Health, tags=["meta"])
async def health() -> Health:
    return Health(status="ok")


@public.head("/health", tags=["meta"], response_class=Response, responses={200: {"description": "alive"}})
async def health_head() -> Response:
    """Liveness for probes that send HEAD (no body)."""
    return Response(status_code=200, media_type="application/json")


@router.get("/models", response_model=ModelList, tags=["meta"])
async def models(rt: Runtime) -> ModelList:
    return ModelList(models=[ModelInfo(**m) for m in rt.service.models()
                             if not rt.allowed or m["name"] in rt.allowed])


@router.get("/metrics", tags=["meta"], response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition"}})
async def metrics(rt: Runtime) -> Response:
    body, content_type = rt.metrics.exposition()
    return Response(content=body, media_type=content_type)


@router.post("/styles", response_model=StyleCreated, tags=["stylize"],
             openapi_extra=_binary_body(*_STYLE_TYPES), responses=_COMMON_ERRORS)
async def register_style(rt: Runtime, client: Client, body: StyleBody, request: Request) -> StyleCreated:
    """Register a style photo (raw PNG/JPEG/WebP bytes). Its id is a content hash: re-sending is free."""
    return StyleCreated(style_id=await rt.run(_register_style, rt, body, client=client, request=request))


@router.post("/stylize", tags=["stylize"], response_class=Response,
             openapi_extra=_binary_body(wire.FRAMES_MEDIA_TYPE),
             responses={200: {"content": {wire.FRAMES_MEDIA_TYPE: {}},
                              "description": "packed stylized frames, same order and sizes"},
                        404: _error("unknown style id"), **_COMMON_ERRORS})
async def stylize(
    request: Request,
    rt: Runtime,
    client: Client,
    body: FramesBody,
    style_id: Annotated[str, Query(min_length=8, max_length=64, pattern="^[0-9a-f]+$")],
    model: Annotated[str, Query(min_length=1, max_length=64, pattern="^[A-Za-z0-9_.:-]+$")] = DEFAULT_MODEL,
    encoding: Annotated[EncodingName, Query()] = "jpeg",
    quality: Annotated[int, Query(ge=1, le=100)] = 95,
    collect: Annotated[bool, Query(description="opt in: keep these key frames for federated learning")] = False,
) -> Response:
    """Stylize a batch of key frames; the response holds them in the same order, encoded as asked."""
    if not rt.serves(model):  # unknown model -> UserError -> 400, before any decoding
        raise HTTPException(400, f"model {model!r} is not served by this edge; it serves: "
                                 f"{', '.join(sorted(rt.allowed))}")
    out, kept = await rt.run(_stylize, rt, body, style_id, model, wire.Encoding(encoding, quality),
                             client if collect else None, client=client, request=request)
    return Response(content=out, media_type=wire.FRAMES_MEDIA_TYPE,
                    headers={"X-Frames-Collected": str(kept)})


# ---------------------------------------------------------------- app factory and entry point


def create_app(service: EdgeService, config: ServerConfig | None = None) -> FastAPI:
    config = config or ServerConfig()
    known = {f"{API_PREFIX}{p}" for p in ("/health", "/models", "/metrics", "/styles", "/stylize")}
    metrics = EdgeMetrics(known)
    runtime = _Runtime(service, config, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        watcher = None
        if config.data_dir is not None:  # federated learning: serve each global model fl-join writes there
            from .model_sync import ModelWatcher, SyncConfig

            watcher = ModelWatcher(service, SyncConfig(Path(config.data_dir))).start()
        try:
            yield
        finally:
            if watcher is not None:
                watcher.stop()
            runtime.stop()

    # No /docs or /redoc: FastAPI's pages load Swagger UI / ReDoc scripts from a CDN, i.e. code from a
    # third party in the browser of whoever opens the edge's docs. The spec stays at /openapi.json.
    app = FastAPI(title="mvstylizer edge", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Stylizes phones' key frames; see mvstylizer.wire for the frame format. "
                              "Open /openapi.json in any OpenAPI viewer.")
    app.state.runtime = runtime
    app.state.config = config
    app.state.service = service

    @app.exception_handler(UserError)
    async def _user_error(request: Request, exc: UserError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=_user_error_status(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error on the edge server"}, status_code=500)

    app.include_router(public)
    app.include_router(router)
    app.add_middleware(QueryTokenMiddleware, tokens=config.tokens)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: counts the refusals above too
    _add_security_scheme(app, config.tokens.enabled)
    return app


def _add_security_scheme(app: FastAPI, enabled: bool) -> None:
    """Declare the bearer auth in the OpenAPI spec (the guard reads the header itself)."""
    if not enabled:
        return
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = original()
            spec.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {
                "type": "http", "scheme": "bearer"}
            for path, ops in spec.get("paths", {}).items():
                if path != f"{API_PREFIX}/health":
                    for op in ops.values():
                        op["security"] = [{"bearer": []}]
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def serve(config: ServerConfig, service: EdgeService | None = None) -> None:
    """Run the edge server in the foreground until interrupted (what ``mvstylizer edge serve`` calls).

    The listening socket is bound here, so a taken port or a bad host is a ``UserError``.
    """
    for path in (config.ssl_keyfile, config.ssl_certfile):
        if path is not None and not Path(path).is_file():
            raise UserError(f"TLS file {path} does not exist")
    sock = _bind(config.host, config.port)
    app = create_app(service or EdgeService(), config)
    tls = config.ssl_certfile is not None
    from .connections import raise_open_file_limit

    nofile = raise_open_file_limit()
    server = build_server(app, config, sock.getsockname()[1])
    log.info("edge server on %s://%s:%d (OpenAPI at /openapi.json)", "https" if tls else "http", config.host,
             sock.getsockname()[1])
    limits = MemoryLimits(config.memory_budget or default_budget(), config.workers, config.max_frame_pixels,
                          config.max_batch_pixels)
    log.info("connections: at most %d (%d per address), request header within %g s, keep-alive %d s; "
             "open-file limit %d", config.max_connections, config.max_connections_per_ip, config.header_timeout_s,
             config.keep_alive_s, nofile)
    log.info("memory budget %d MiB for %d workers: max pixels per frame %s", limits.budget >> 20, config.workers,
             ", ".join(f"{m} {limits.frame_pixels(m)}" for m in _served_runtimes(config.models)))
    if not config.tokens.enabled and config.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("no --token-file: anyone who can reach %s may use this edge", config.host)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def build_server(app: FastAPI, config: ServerConfig, port: int) -> Any:
    """The uvicorn server for ``app`` (made by :func:`create_app` with ``config``) on ``port``.

    Its graceful shutdown (SIGTERM) first fails the queued jobs (503 + Retry-After at once), lets the
    running ones finish for ``shutdown_grace_s``, and answers 503 for those still running after it.
    """
    import uvicorn

    from .connections import guarded_protocol

    runtime: _Runtime = app.state.runtime
    tls = config.ssl_certfile is not None

    class EdgeServer(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            runtime.begin_shutdown()
            await super().shutdown(sockets)

    return EdgeServer(uvicorn.Config(
        app, host=config.host, port=port, log_level=config.log_level,
        timeout_graceful_shutdown=config.shutdown_grace_s,
        http=guarded_protocol(config.header_timeout_s, config.max_connections_per_ip),
        limit_concurrency=config.max_connections, timeout_keep_alive=config.keep_alive_s,
        h11_max_incomplete_event_size=config.max_header_bytes,
        ssl_keyfile=str(config.ssl_keyfile) if tls else None,
        ssl_certfile=str(config.ssl_certfile) if tls else None,
        # Behind no proxy: never trust X-Forwarded-For, or a client could pick its rate-limit identity.
        proxy_headers=False,
    ))


def _served_runtimes(models: tuple[str, ...]) -> list[str]:
    from ..models.registry import available_models

    return [f"{spec.name}:{rt}" for spec in available_models() if not models or spec.name in models
            for rt in spec.runtimes]


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise UserError(f"cannot serve on {host}:{port}: {e}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        raise UserError(f"cannot serve on {host}:{port}: {e.strerror or e}") from None
    sock.set_inheritable(True)
    return sock
