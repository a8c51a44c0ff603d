"""The ``/v1`` routes: ``public`` (health, no token ever) and ``router`` (every other route, behind the guard)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from ... import wire
from . import jobs
from .bodies import STYLE_TYPES, FramesBody, StyleBody, Stylize
from .config import API_PREFIX
from .guard import Client, guard
from .runtime import Runtime
from .schemas import (
    COMMON_ERRORS,
    GUARD_ERRORS,
    Health,
    ModelInfo,
    ModelList,
    StyleCreated,
    binary_body,
    error_response,
)

public = APIRouter(prefix=API_PREFIX)
router = APIRouter(prefix=API_PREFIX, dependencies=[Depends(guard)], responses=GUARD_ERRORS)


@public.get("/health", response_model=Health, tags=["meta"])
async def health() -> Health:
    return Health(status="ok")


@public.head("/health", tags=["meta"], response_class=Response, responses={200: {"description": "alive"}})
async def health_head() -> Response:
    """Liveness for probes that send HEAD (no body)."""
    return Response(status_code=200, media_type="application/json")


@router.get("/models", response_model=ModelList, tags=["meta"])
async def models(rt: Runtime) -> ModelList:
    # "default" is an alias of this edge's own default model, whichever it serves.
    return ModelList(models=[ModelInfo(**{**m, "aliases": [a for a in m["aliases"] if a != "default"]
                                          + (["default"] if m["name"] == rt.default_model else [])})
                             for m in rt.service.models() if not rt.allowed or m["name"] in rt.allowed])


@router.get("/metrics", tags=["meta"], response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition"}})
async def metrics(rt: Runtime) -> Response:
    body, content_type = rt.metrics.exposition()
    return Response(content=body, media_type=content_type)


@router.post("/styles", response_model=StyleCreated, tags=["stylize"],
             openapi_extra=binary_body(*STYLE_TYPES), responses=COMMON_ERRORS)
async def register_style(rt: Runtime, client: Client, body: StyleBody, request: Request) -> StyleCreated:
    """Register a style photo (raw PNG/JPEG/WebP bytes). Its id is a content hash: re-sending is free."""
    return StyleCreated(style_id=await rt.run(jobs.register_style, rt, body, client=client, request=request))


@router.post("/stylize", tags=["stylize"], response_class=Response,
             openapi_extra=binary_body(wire.FRAMES_MEDIA_TYPE),
             responses={200: {"content": {wire.FRAMES_MEDIA_TYPE: {}},
                              "description": "packed stylized frames, same order and sizes"},
                        404: error_response("unknown style id"), **COMMON_ERRORS})
async def stylize(request: Request, rt: Runtime, client: Client, query: Stylize, body: FramesBody) -> Response:
    """Stylize a batch of key frames; the response holds them in the same order, encoded as asked."""
    calls = [(rt, run, query.style_id, query.model, query.encoding, client if query.collect else None)
             for run in jobs.runs(body, rt.config.chunk_pixels)]
    done = await rt.run_each(jobs.stylize, calls, client=client, request=request)
    return Response(content=b"".join(out for out, _ in done), media_type=wire.FRAMES_MEDIA_TYPE,
                    headers={"X-Frames-Collected": str(sum(kept for _, kept in done))})
