"""Listening sockets for the project's HTTP servers (the edge, the studio), bound before uvicorn starts.

Binding first makes a taken port or a bad host a one-line :class:`~mvstylizer.errors.UserError` (exit
status 2 from the CLI) instead of a traceback from inside uvicorn, and lets ``--port 0`` report the
port it got.
"""

from __future__ import annotations

import errno
import socket

from .errors import UserError


def bind(host: str, port: int, *, backlog: int = 128, in_use_hint: str = "") -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (``port`` 0: any free one); ``in_use_hint`` is added
    to the message when the port is taken."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise UserError(f"cannot serve on {host}:{port}: {e.strerror or e}") from None
    except UnicodeError:  # the resolver's IDNA encoding: "edge..lan", a part over 63 characters
        raise UserError(f"cannot serve on {host}:{port}: {host!r} is not a valid host name") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(backlog)
    except OSError as e:
        sock.close()
        hint = in_use_hint if e.errno == errno.EADDRINUSE else ""
        raise UserError(f"cannot serve on {host}:{port}: {e.strerror or e}{hint}") from None
    return sock
