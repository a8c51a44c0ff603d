"""Running the studio: ``serve`` (the ``mvstylizer studio`` command) and ``running`` (a server in a thread).

The socket is bound before uvicorn starts, so a taken port or a bad host is a one-line
:class:`~mvstylizer.errors.UserError` (exit status 2 from the CLI), not a traceback.
"""

from __future__ import annotations

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


def _server(app: Any, config: StudioConfig, log_level: str) -> Any:
    import uvicorn

    class StudioServer(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            app.state.studio.broadcaster.close()  # end the event streams, or they hold the shutdown
            await super().shutdown(sockets)

    return StudioServer(uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=3,
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
        port = sock.getsockname()[1]
        announce(f"mvstylizer studio on {url_of(config.host, port)} (work folder {app.state.studio.workspace.root}; "
                 f"edge: {config.edge or 'in this process'}); Ctrl-C stops it")
        if config.host not in ("127.0.0.1", "localhost", "::1"):
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
