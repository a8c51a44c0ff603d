"""Request bodies: content type, size and read time limited, a frame batch checked while it arrives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException, Query, Request
from starlette.requests import ClientDisconnect

from ... import wire
from ...models.registry import resolve_name
from ..service import unknown_style
from .images import checked_size
from .runtime import Runtime


class BodyBytes:
    """The body bytes one request holds against ``ServerConfig.max_body_bytes_in_flight``, taken as they
    arrive (a declared ``Content-Length`` costs nothing until its bytes come) and given back when the
    request is done (:func:`body_bytes`). Event-loop thread only."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.held = 0

    def take(self, n: int) -> None:
        rt = self.rt
        if rt.body_bytes + n > rt.config.max_body_bytes_in_flight:
            rt.metrics.rejected.labels("body_memory").inc()
            raise HTTPException(503, "edge server is receiving too much request data at once; retry later",
                                headers={"Retry-After": "1"})
        rt.body_bytes += n
        self.held += n

    def release(self) -> None:
        self.rt.body_bytes -= self.held
        self.held = 0


async def body_bytes(rt: Runtime) -> AsyncIterator[BodyBytes]:
    """A dependency: this request's :class:`BodyBytes`, released once its answer is ready."""
    held = BodyBytes(rt)
    try:
        yield held
    finally:
        held.release()


Held = Annotated[BodyBytes, Depends(body_bytes)]


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_limited_body(request: Request, rt: Runtime, held: BodyBytes,
                            on_chunk: Callable[[bytes], None] | None = None) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``max_request_bytes``, and
    with 503 when the bodies of all requests together would exceed ``max_body_bytes_in_flight``.

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
                held.take(len(chunk))
                if on_chunk is not None:
                    on_chunk(chunk)
                else:
                    chunks.append(chunk)
    except TimeoutError:
        raise HTTPException(408, f"request body not received within {rt.config.body_timeout_s:g} s") from None
    except ClientDisconnect:  # a phone that lost its network mid-upload, not a server error
        rt.metrics.rejected.labels("client_gone").inc()
        raise HTTPException(499, "client disconnected before its request body arrived") from None
    except asyncio.CancelledError:
        if not rt.shutting_down:
            raise
        # An upload still arriving when the shutdown's grace period ends, as a running job then
        # (Runtime.run): a restart, not a bug, so 503 and not uvicorn's plain-text 500 and traceback.
        raise HTTPException(503, "edge server is shutting down; retry later", headers={"Retry-After": "1"}) from None
    return b"".join(chunks)


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"request body exceeds the edge's limit of {limit} bytes")


def body_of_type(*allowed: str) -> Callable[..., Any]:
    """A dependency: 415 unless the Content-Type is one of ``allowed``, then the size-limited body."""

    async def dependency(request: Request, rt: Runtime, held: Held) -> bytes:
        got = _media_type(request)
        if got not in allowed:
            raise HTTPException(415, f"Content-Type must be {' or '.join(allowed)}, got {got or 'none'!r}")
        return await read_limited_body(request, rt, held)

    return dependency


EncodingName = Literal[tuple(wire.CODECS)]  # type: ignore[valid-type]  # the query's enum, from the registry


@dataclass(frozen=True)
class StylizeQuery:
    """``/v1/stylize``'s query parameters."""

    style_id: str
    model: str
    encoding: wire.Encoding
    collect: bool


def stylize_query(
    style_id: Annotated[str, Query(min_length=8, max_length=64, pattern="^[0-9a-f]+$")],
    rt: Runtime,
    model: Annotated[str, Query(min_length=1, max_length=64, pattern="^[A-Za-z0-9_.:-]+$")] = "default",
    encoding: Annotated[EncodingName, Query()] = "jpeg",  # type: ignore[valid-type]
    quality: Annotated[int, Query(ge=1, le=100)] = 95,
    collect: Annotated[bool, Query(description="opt in: keep these key frames for federated learning")] = False,
) -> StylizeQuery:
    """A dependency: the validated query. :func:`frames_body` depends on it, so a bad query is refused
    (422) before the body is read: FastAPI does not call a dependency whose own dependencies failed."""
    return StylizeQuery(style_id, rt.model_name(model), wire.Encoding(encoding, quality), collect)


Stylize = Annotated[StylizeQuery, Depends(stylize_query)]


async def frames_body(request: Request, rt: Runtime, held: Held, query: Stylize) -> list[bytes]:
    """A dependency: the frame batch, checked header by header *while it arrives*.

    First, before any of the body: the query (422), the content type (415), the model (400) and the
    style (404). Then each ``[u32 length]`` is checked as soon as its 4 bytes are in (frame count <=
    ``max_batch``, no empty frame, no frame longer than the body limit), and each frame's image header
    as soon as the frame is complete (an image, <= ``max_frame_pixels``, the batch <=
    ``max_batch_pixels``), so a bad batch is refused (400/413) before the rest of its body is read, and
    nothing is unpacked twice.
    """
    got = _media_type(request)
    if got != wire.FRAMES_MEDIA_TYPE:
        raise HTTPException(415, f"Content-Type must be {wire.FRAMES_MEDIA_TYPE}, got {got or 'none'!r}")
    cfg = rt.config
    model = query.model
    if not rt.serves(model):  # unknown model: UserError -> 400; not served: 400; both before the body
        raise HTTPException(400, f"model {model!r} is not served by this edge; it serves: "
                                 f"{', '.join(sorted(rt.allowed))}")
    if not rt.service.has_style(query.style_id):  # 404 now, not after the body, its decoding and the model
        raise unknown_style(query.style_id)
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
            w, h = checked_size(blob, f"frame {k}", frame_limit, cfg.min_frame_side,
                                 rt.limits.describe(canonical))
            pixels += w * h
            largest = max(largest, w * h)
            if not rt.limits.batch_fits(canonical, pixels, largest):
                raise HTTPException(413, f"batch too large: frames 0..{k} have {pixels} pixels, beyond what one "
                                         f"worker may hold for model {canonical} (at most {cfg.max_batch_pixels} "
                                         f"pixels per batch; {rt.limits.describe(canonical)}); send fewer frames")

    await read_limited_body(request, rt, held, on_chunk)
    try:
        blobs = parser.finish()
    except ValueError as e:
        raise HTTPException(400, f"malformed frame batch: {e}") from None
    if not blobs:
        raise HTTPException(400, "empty frame batch; send wire.pack_frames of at least one encoded frame")
    return blobs


STYLE_TYPES = tuple(c.media_type for c in wire.CODECS.values())
StyleBody = Annotated[bytes, Depends(body_of_type(*STYLE_TYPES))]
FramesBody = Annotated[list[bytes], Depends(frames_body)]
