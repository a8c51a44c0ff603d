"""Running the server (``mvstylizer edge serve``): the listening socket, uvicorn, the graceful shutdown."""

from __future__ import annotations

import logging
import socket
import ssl
from pathlib import Path
from typing import Any, cast

from fastapi import FastAPI

from ...errors import UserError
from ...serving import bind
from ..memory import MIB, MIN_USABLE_FRAME_PIXELS, MemoryLimits, default_budget
from ..service import EdgeService
from .app import create_app
from .config import ServerConfig
from .runtime import ServerRuntime

log = logging.getLogger("mvstylizer.edge.server")  # one logger for the whole server package


def serve(config: ServerConfig, service: EdgeService | None = None) -> None:
    """Run the edge server in the foreground until interrupted (what ``mvstylizer edge serve`` calls).

    The listening socket is bound here, so a taken port or a bad host is a ``UserError``.
    """
    for path in (config.ssl_keyfile, config.ssl_certfile):
        if path is not None and not Path(path).is_file():
            raise UserError(f"TLS file {path} does not exist")
    limits = MemoryLimits(config.memory_budget or default_budget(), config.workers, config.max_frame_pixels,
                          config.max_batch_pixels)
    runtimes = _served_runtimes(config.models)
    _check_usable(limits, runtimes)
    sock = _bind(config.host, config.port)
    app = create_app(service or EdgeService(), config)
    tls = config.ssl_certfile is not None
    from ..connections import raise_open_file_limit

    nofile = raise_open_file_limit()
    server = build_server(app, config, sock.getsockname()[1])
    host = f"[{config.host}]" if ":" in config.host else config.host  # an IPv6 address, as a URL writes it
    log.info("edge server on %s://%s:%d (OpenAPI at /openapi.json)", "https" if tls else "http", host,
             sock.getsockname()[1])
    log.info("connections: at most %d (%d per address), request header within %g s, keep-alive %d s; "
             "open-file limit %d", config.max_connections, config.max_connections_per_ip, config.header_timeout_s,
             config.keep_alive_s, nofile)
    log.info("memory budget %d MiB for %d workers: max pixels per frame %s", limits.budget >> 20, config.workers,
             ", ".join(f"{m} {limits.frame_pixels(m)}" for m in runtimes))
    if not config.tokens.enabled and config.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("no --token-file: anyone who can reach %s may use this edge", config.host)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:  # uvicorn returns normally when its startup fails: a supervisor must see it
        raise UserError("the edge server did not start (its log above says why)")


def _check_usable(limits: MemoryLimits, runtimes: list[str]) -> None:
    """UserError if no served model could take the phone's default key frames within ``limits``."""
    best = max((limits.frame_pixels(m) for m in runtimes), default=MIN_USABLE_FRAME_PIXELS)
    if best >= MIN_USABLE_FRAME_PIXELS:
        return
    budget = f"{limits.budget >> 20} MiB" if limits.budget >= MIB else f"{limits.budget} bytes"
    raise UserError(f"a memory budget of {budget} for {limits.workers} worker(s) leaves at most {best} pixels per "
                    f"frame, less than the phone's {MIN_USABLE_FRAME_PIXELS} (512x512 key frames); give a larger "
                    "--memory-budget (with its unit: 8G, 512M) or fewer --workers")


def build_server(app: FastAPI, config: ServerConfig, port: int) -> Any:
    """The uvicorn server for ``app`` (made by :func:`create_app` with ``config``) on ``port``.

    Its graceful shutdown (SIGTERM) first fails the queued jobs (503 + Retry-After at once), lets the
    running ones finish for ``shutdown_grace_s``, and answers 503 for those still running after it.
    """
    import uvicorn

    from ..connections import guarded_protocol

    runtime: ServerRuntime = app.state.runtime
    tls = _tls_context(config) if config.ssl_certfile is not None else None

    class EdgeServer(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            runtime.begin_shutdown()
            await super().shutdown(sockets)

    return EdgeServer(uvicorn.Config(
        app, host=config.host, port=port, log_level=config.log_level,
        # uvicorn hands it to asyncio.wait_for, which takes any number; its annotation says int.
        timeout_graceful_shutdown=cast(int, config.shutdown_grace_s),
        # TLS is done by the protocol (see guarded_protocol), so uvicorn gets no ssl_* options; on
        # asyncio's loop, which honours a pause_reading in connection_made (uvloop does not).
        http=guarded_protocol(config.header_timeout_s, config.max_connections_per_ip, tls, config.write_timeout_s),
        loop="asyncio" if tls is not None else "auto",
        limit_concurrency=config.max_connections, timeout_keep_alive=config.keep_alive_s,
        h11_max_incomplete_event_size=config.max_header_bytes,
        # Behind no proxy: never trust X-Forwarded-For, or a client could pick its rate-limit identity.
        proxy_headers=False,
    ))


def _tls_context(config: ServerConfig) -> ssl.SSLContext:
    """The server's TLS context, made as uvicorn makes it from ``ssl_keyfile`` / ``ssl_certfile``."""
    from uvicorn.config import SSL_PROTOCOL_VERSION, create_ssl_context

    assert config.ssl_certfile is not None
    try:
        return create_ssl_context(certfile=str(config.ssl_certfile),
                                  keyfile=str(config.ssl_keyfile) if config.ssl_keyfile is not None else None,
                                  password=None, ssl_version=SSL_PROTOCOL_VERSION, cert_reqs=ssl.CERT_NONE,
                                  ca_certs=None, ciphers="TLSv1")
    except (OSError, ssl.SSLError) as e:
        raise UserError(f"cannot use TLS files {config.ssl_certfile} / {config.ssl_keyfile}: {e}") from None


def _served_runtimes(models: tuple[str, ...]) -> list[str]:
    from ...models.registry import available_models

    return [f"{spec.name}:{rt}" for spec in available_models() if not models or spec.name in models
            for rt in spec.runtimes]


def _bind(host: str, port: int) -> socket.socket:
    sock = bind(host, port, backlog=2048)
    sock.set_inheritable(True)
    return sock
