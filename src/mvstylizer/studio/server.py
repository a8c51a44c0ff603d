"""Running the studio: ``serve`` (the ``mvstylizer studio`` command) and ``running`` (a server in a thread).

The socket is bound before uvicorn starts, so a taken port or a bad host is a one-line
:class:`~mvstylizer.errors.UserError` (exit status 2 from the CLI), not a traceback.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .. import serving
from .config import StudioConfig

log = logging.getLogger("mvstylizer.studio")


def bind(host: str, port: int) -> socket.socket:
    return serving.bind(host, port, in_use_hint="; is another studio running? pick another --port")


def url_of(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"


class _Stopping:
    """Answers the requests still running when a stopping server cancels them (a few seconds after
    Ctrl-C or SIGTERM: an upload arriving, a preview) with a JSON 503, where uvicorn printed a
    55-line traceback for each and sent a text/plain 500."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.stopping = False

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        started = False

        async def tracked(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            if not self.stopping or scope["type"] != "http":
                raise
            if not started:  # else the response just ends: the connection closes as the server stops
                from fastapi.responses import JSONResponse

                refusal = JSONResponse({"error": "the studio is stopping: this request was cut off; start the studio "
                                                 "again and retry"}, status_code=503, headers={"Connection": "close"})
                await refusal(scope, receive, send)


def _server(app: Any, config: StudioConfig, log_level: str) -> Any:
    import uvicorn

    served = _Stopping(app)

    class StudioServer(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            served.stopping = True
            app.state.studio.broadcaster.close()  # end the event streams, or they hold the shutdown
            await super().shutdown(sockets)

    return StudioServer(uvicorn.Config(served, log_level=log_level, timeout_graceful_shutdown=3,
                                       proxy_headers=False, access_log=False))


def serve(config: StudioConfig, *, log_level: str = "warning",
          announce: Callable[[str], None] = lambda line: print(line, flush=True),
          before_run: Callable[[], None] | None = None) -> None:
    """Run the studio in the foreground until Ctrl-C / SIGTERM. ``before_run`` is called just before
    uvicorn takes over the signals (the command line raises there a stop that came while the app was
    being built and was lost on the way)."""
    from .app import create_app

    sock = bind(config.host, config.port)
    try:
        app = create_app(config)
        server = _server(app, config, log_level)
        if before_run is not None:
            before_run()
        bound, port = sock.getsockname()[:2]
        announce(f"mvstylizer studio on {url_of(config.host, port)} (work folder {app.state.studio.workspace.root}; "
                 f"edge: {config.edge or 'in this process'}); Ctrl-C stops it")
        if not ipaddress.ip_address(bound).is_loopback:  # as bound: 127.0.0.2 and 127.1 are this machine too
            log.warning("the studio has no log-in: anyone who can reach %s:%d can use it", config.host, port)
        server.run(sockets=[sock])
    finally:
        sock.close()


@contextmanager
def running(config: StudioConfig, **app_options: Any) -> Iterator[str]:
    """A studio on a free port in a background thread (tests, screenshots); yields its URL."""
    from .app import create_app

    sock = bind(config.host, 0)
    app = create_app(config, **app_options)
    server = _server(app, config, "warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="studio-server", daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the studio server did not start")
            threading.Event().wait(0.02)
        yield url_of(config.host, sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
