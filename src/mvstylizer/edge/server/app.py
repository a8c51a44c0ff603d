"""``create_app``: one FastAPI app over one ``EdgeService``, with its state, routes, middleware and error handlers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ... import __version__
from ...errors import UserError
from ..metrics import EdgeMetrics, MetricsMiddleware
from ..service import EdgeService
from .config import API_PREFIX, ServerConfig
from .guard import QueryTokenMiddleware, RequestHeadLimitMiddleware
from .routes import public, router
from .runtime import ServerRuntime

log = logging.getLogger("mvstylizer.edge.server")  # one logger for the whole server package


def _user_error_status(err: UserError) -> int:
    status = getattr(err, "http_status", None)
    return status if isinstance(status, int) and 400 <= status < 500 else 400


def create_app(service: EdgeService, config: ServerConfig | None = None) -> FastAPI:
    config = config or ServerConfig()
    known = {f"{API_PREFIX}{p}" for p in ("/health", "/models", "/metrics", "/styles", "/stylize")}
    metrics = EdgeMetrics(known)
    runtime = ServerRuntime(service, config, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        watcher = None
        if config.data_dir is not None:  # federated learning: serve each global model fl-join writes there
            from ..model_sync import ModelWatcher, SyncConfig

            watcher = ModelWatcher(service, SyncConfig(Path(config.data_dir))).start()
        try:
            yield
        finally:
            if watcher is not None:
                watcher.stop()
            runtime.stop()

    # No /docs or /redoc: FastAPI's pages load Swagger UI / ReDoc scripts from a CDN, i.e. code from a
    # third party in the browser of whoever opens the edge's docs. The spec stays at /openapi.json.
    # No slash redirects: "POST /v1/stylize/" was a 307 to a URL built from the Host header (an open
    # redirect, before auth, not JSON); now it is the JSON 404 of any unknown path.
    app = FastAPI(title="mvstylizer edge", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  redirect_slashes=False,
                  description="Stylizes phones' key frames; see mvstylizer.wire for the frame format. "
                              "Open /openapi.json in any OpenAPI viewer.")
    app.state.runtime = runtime
    app.state.config = config
    app.state.service = service

    @app.exception_handler(UserError)
    async def _user_error(request: Request, exc: UserError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=_user_error_status(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer, each error once: /v1/stylize's query is a dependency of the route and of
        # its body's reader, and FastAPI reported every bad query parameter twice.
        unique: dict[str, Any] = {}
        for err in jsonable_encoder(exc.errors()):
            unique.setdefault(repr(sorted((k, repr(v)) for k, v in err.items())), err)
        return JSONResponse({"detail": list(unique.values())}, status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error on the edge server"}, status_code=500)

    app.include_router(public)
    app.include_router(router)
    app.add_middleware(QueryTokenMiddleware, tokens=config.tokens)
    app.add_middleware(RequestHeadLimitMiddleware, max_bytes=config.max_header_bytes)  # before any parsing
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
