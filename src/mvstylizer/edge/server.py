"""The edge's HTTP API (``mvstylizer edge serve``): a thin FastAPI layer over one ``EdgeService``.

Endpoints, versioned under ``/v1`` (the OpenAPI spec is at ``/openapi.json``, docs at ``/docs``):

- ``GET  /v1/health``  -> ``{"status": "ok"}``
- ``GET  /v1/models``  -> ``{"models": [{"name", "description", "runtimes", "aliases"}, ...]}``
- ``POST /v1/styles``  body: one PNG/JPEG/WebP image -> ``{"style_id": ...}``
- ``POST /v1/stylize?style_id=&model=&encoding=&quality=`` body: ``wire.pack_frames`` of encoded
  frames (``wire.FRAMES_MEDIA_TYPE``) -> packed stylized frames in the requested encoding.

Errors are JSON ``{"detail": "..."}``: 400 bad input, 404 unknown style, 413 too large, 415 wrong
content type, 422 bad query parameters, 503 busy (with ``Retry-After``), 500 a bug (generic message;
the traceback goes to the log and the server keeps serving).

Decoding, stylization and encoding run in a bounded thread pool (``ServerConfig.workers`` threads), never
on the event loop; at most ``max_pending`` requests wait for it, the rest get 503 at once. Every request
body is read through :func:`read_limited_body`, and every image's dimensions are read from its header
before it is decoded, so neither a huge upload nor a decompression bomb can exhaust memory.

Extending: routes live on one ``APIRouter`` and get the service and limits from ``app.state`` through
small dependencies, so auth, rate limits or metrics are a ``dependencies=[...]`` on the router (or a
middleware) away.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, AsyncIterator, Callable, Literal, TypeVar

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from .. import __version__, wire
from ..errors import UserError
from ..models.registry import DEFAULT_MODEL, resolve_name
from .service import EdgeService

log = logging.getLogger("mvstylizer.edge.server")

API_PREFIX = "/v1"
_T = TypeVar("_T")


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8400
    max_request_bytes: int = 64 * 1024 * 1024  # any request body, after which 413
    max_frame_pixels: int = 4096 * 4096  # per image (frames and style photos), read from the header
    max_batch: int = 32  # frames per /v1/stylize request
    max_batch_pixels: int = 48 * 1024 * 1024  # all frames of one request together (~0.6 GB as float32)
    workers: int = 2  # threads running decode + DNN + encode (not uvicorn worker processes)
    max_pending: int = 64  # requests running or waiting for a worker; beyond that 503 + Retry-After
    log_level: str = "info"

    def __post_init__(self) -> None:
        for name in ("max_request_bytes", "max_frame_pixels", "max_batch", "max_batch_pixels", "workers",
                     "max_pending"):
            if getattr(self, name) < 1:
                raise ValueError(f"ServerConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"ServerConfig.port must be 0..65535, got {self.port}")


# ---------------------------------------------------------------- response schemas (for OpenAPI)


class Health(BaseModel):
    status: str


class ModelInfo(BaseModel):
    name: str
    description: str
    runtimes: list[str] = []  # e.g. ["torch", "onnx"]; request one as model=NAME:RUNTIME
    aliases: list[str] = []


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
    413: _error("request, image or batch too large"),
    415: _error("unsupported content type"),
    503: _error("edge busy; retry after the Retry-After header's seconds"),
}


# ---------------------------------------------------------------- per-app state and dependencies


class _Runtime:
    """What a request handler needs: the service, the limits, and the bounded worker pool."""

    def __init__(self, service: EdgeService, config: ServerConfig) -> None:
        self.service = service
        self.config = config
        self.pool: ThreadPoolExecutor | None = None
        self.pending = 0  # only touched on the event loop thread

    def start(self) -> None:
        if self.pool is None:
            self.pool = ThreadPoolExecutor(self.config.workers, thread_name_prefix="edge-worker")

    def stop(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    async def run(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run blocking work in the pool; UserError -> 400, anything unexpected -> logged 500."""
        if self.pending >= self.config.max_pending:
            raise HTTPException(503, "edge server is busy; retry later", headers={"Retry-After": "1"})
        self.start()  # normally done by the lifespan; this keeps create_app usable without one
        assert self.pool is not None
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)
        except (HTTPException, UserError):
            raise
        except Exception:
            log.exception("unexpected error in %s", getattr(fn, "__name__", fn))
            raise HTTPException(500, "internal error on the edge server") from None
        finally:
            self.pending -= 1


def get_runtime(request: Request) -> _Runtime:
    return request.app.state.runtime


Runtime = Annotated[_Runtime, Depends(get_runtime)]


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_limited_body(request: Request, rt: Runtime) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``max_request_bytes``."""
    limit = rt.config.max_request_bytes
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _too_large(limit)
        except ValueError:
            raise HTTPException(400, "invalid Content-Length header") from None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
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


_STYLE_TYPES = tuple(wire.MEDIA_TYPES.values())
StyleBody = Annotated[bytes, Depends(body_of_type(*_STYLE_TYPES))]
FramesBody = Annotated[bytes, Depends(body_of_type(wire.FRAMES_MEDIA_TYPE))]


# ---------------------------------------------------------------- image header sniffing


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG or WebP header without decoding; None if not one of those."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        if len(data) >= 24 and data[12:16] == b"IHDR":
            w, h = struct.unpack_from(">II", data, 16)
            return w, h
        return None
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if len(data) >= 30 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        kind = data[12:16]
        if kind == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
            w, h = struct.unpack_from("<HH", data, 26)
            return w & 0x3FFF, h & 0x3FFF
        if kind == b"VP8L" and data[20] == 0x2F:
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if kind == b"VP8X":
            return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos, n = 2, len(data)
    while pos < n:
        if data[pos] != 0xFF:
            return None
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            return None
        marker = data[pos]
        pos += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a payload
            continue
        if marker in (0xD9, 0xDA) or pos + 2 > n:  # end of image / start of scan before any frame header
            return None
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2:
            return None
        if marker in _JPEG_SOF:
            if pos + 7 > n:
                return None
            h, w = struct.unpack_from(">HH", data, pos + 3)
            return (w, h) if h > 0 else None  # h == 0 (DNL marker) is not worth supporting
        pos += length
    return None


def _checked_decode(blob: bytes, what: str, max_pixels: int):
    size = image_size(blob)
    if size is None:
        raise HTTPException(400, f"{what} is not a PNG, JPEG or WebP image")
    w, h = size
    if w < 1 or h < 1:
        raise HTTPException(400, f"{what} has invalid dimensions {w}x{h}")
    if w * h > max_pixels:
        raise HTTPException(413, f"{what} is {w}x{h}; the edge accepts at most {max_pixels} pixels per image")
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
    _checked_decode(body, "style", rt.config.max_frame_pixels)  # refuse bombs before the service decodes
    return rt.service.register_style(body)


def _stylize(rt: _Runtime, body: bytes, style_id: str, model: str, encoding: wire.Encoding) -> bytes:
    cfg = rt.config
    try:
        blobs = wire.unpack_frames(body)
    except ValueError as e:
        raise HTTPException(400, f"malformed frame batch: {e}") from None
    if not blobs:
        raise HTTPException(400, "empty frame batch; send wire.pack_frames of at least one encoded frame")
    if len(blobs) > cfg.max_batch:
        raise HTTPException(413, f"batch of {len(blobs)} frames; the edge accepts at most {cfg.max_batch}")
    total = 0
    for blob in blobs:  # all headers first: refuse before decoding anything
        size = image_size(blob)
        if size is not None:
            total += size[0] * size[1]
    if total > cfg.max_batch_pixels:
        raise HTTPException(413, f"batch has {total} pixels; the edge accepts at most {cfg.max_batch_pixels}")
    frames = [_checked_decode(b, f"frame {i}", cfg.max_frame_pixels) for i, b in enumerate(blobs)]
    results = rt.service.stylize(style_id, model, frames)
    return wire.pack_frames([wire.encode_frame(r, encoding) for r in results])


def _user_error_status(err: UserError) -> int:
    status = getattr(err, "http_status", None)
    return status if isinstance(status, int) and 400 <= status < 500 else 400


# ---------------------------------------------------------------- routes

router = APIRouter(prefix=API_PREFIX)


@router.get("/health", response_model=Health, tags=["meta"])
async def health() -> Health:
    return Health(status="ok")


@router.get("/models", response_model=ModelList, tags=["meta"])
async def models(rt: Runtime) -> ModelList:
    return ModelList(models=[ModelInfo(**m) for m in rt.service.models()])


@router.post("/styles", response_model=StyleCreated, tags=["stylize"],
             openapi_extra=_binary_body(*_STYLE_TYPES), responses=_COMMON_ERRORS)
async def register_style(rt: Runtime, body: StyleBody) -> StyleCreated:
    """Register a style photo (raw PNG/JPEG/WebP bytes). Its id is a content hash: re-sending is free."""
    return StyleCreated(style_id=await rt.run(_register_style, rt, body))


@router.post("/stylize", tags=["stylize"], response_class=Response,
             openapi_extra=_binary_body(wire.FRAMES_MEDIA_TYPE),
             responses={200: {"content": {wire.FRAMES_MEDIA_TYPE: {}},
                              "description": "packed stylized frames, same order and sizes"},
                        404: _error("unknown style id"), **_COMMON_ERRORS})
async def stylize(
    rt: Runtime,
    body: FramesBody,
    style_id: Annotated[str, Query(min_length=1, max_length=128)],
    model: Annotated[str, Query(min_length=1, max_length=64)] = DEFAULT_MODEL,
    encoding: Annotated[Literal["jpeg", "png", "webp"], Query()] = "jpeg",
    quality: Annotated[int, Query(ge=1, le=100)] = 95,
) -> Response:
    """Stylize a batch of key frames; the response holds them in the same order, encoded as asked."""
    resolve_name(model)  # unknown model -> UserError -> 400, before any decoding
    out = await rt.run(_stylize, rt, body, style_id, model, wire.Encoding(encoding, quality))
    return Response(content=out, media_type=wire.FRAMES_MEDIA_TYPE)


# ---------------------------------------------------------------- app factory and entry point


def create_app(service: EdgeService, config: ServerConfig | None = None) -> FastAPI:
    config = config or ServerConfig()
    runtime = _Runtime(service, config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        try:
            yield
        finally:
            runtime.stop()

    app = FastAPI(title="mvstylizer edge", version=__version__, lifespan=lifespan,
                  description="Stylizes phones' key frames; see mvstylizer.wire for the frame format.")
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

    app.include_router(router)
    return app


def serve(config: ServerConfig, service: EdgeService | None = None) -> None:
    """Run the edge server in the foreground until interrupted (what ``mvstylizer edge serve`` calls).

    The listening socket is bound here, so a taken port or a bad host is a ``UserError``.
    """
    import uvicorn

    sock = _bind(config.host, config.port)
    app = create_app(service or EdgeService(), config)
    server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=sock.getsockname()[1],
                                           log_level=config.log_level, timeout_graceful_shutdown=10))
    log.info("edge server on http://%s:%d (OpenAPI at /openapi.json)", config.host, sock.getsockname()[1])
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


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
