"""Connection limits for the edge's uvicorn server.

uvicorn's h11 protocol only times out a connection *after* a response (``timeout_keep_alive``): a
socket that connects and sends nothing, or sends half a request header (slowloris), is held forever,
and ~1,100 of them exhaust a systemd service's 1,024 file descriptors so every new phone gets an empty
reply. :func:`guarded_protocol` returns an ``H11Protocol`` subclass that adds

- a **header timeout**: a new connection (or a kept-alive one after its response) must deliver a
  complete request header within ``header_timeout`` seconds, else it is closed;
- a **per-address cap**: at most ``per_ip`` open connections from one peer address; more are closed
  at once (one warning line per address per minute);
- a **delivery timeout**: an answer the client takes none of for ``write_timeout`` seconds is dropped
  and the connection aborted. asyncio keeps whatever the socket could not take in the transport's
  write buffer, and ``close()`` waits for it to flush: 20 answers never read held 125 MB for good;
- the answer beyond uvicorn's ``limit_concurrency``: JSON with ``Retry-After``, as every other refusal.

The server also sets uvicorn's ``limit_concurrency`` (503 beyond it), ``timeout_keep_alive``,
``h11_max_incomplete_event_size`` (request header size) and raises the process's open-file limit to
its hard limit.
"""

from __future__ import annotations

import logging
import resource
import ssl
import time
from typing import Any

log = logging.getLogger("mvstylizer.edge.connections")


def guarded_protocol(header_timeout: float, per_ip: int, tls: ssl.SSLContext | None = None,
                     write_timeout: float = 30.0) -> type:
    """The protocol class; with ``tls`` it also does the TLS handshake itself (give uvicorn no SSL
    options then): asyncio's own TLS, ``create_server(ssl=...)``, hands a connection to the protocol
    only once its handshake is done, so a socket that never sends a ClientHello escaped both limits
    for asyncio's 60 s handshake timeout (300 of them locked a TLS edge with a 200-file limit out for
    as long as they were kept up). Here the per-address cap applies when the TCP connection is
    accepted, and the handshake must finish within ``header_timeout``."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    open_by_ip: dict[str, int] = {}
    warned: dict[str, float] = {}

    class GuardedH11Protocol(H11Protocol):
        _counted_ip: str | None = None
        _header_timer: Any = None
        _delivery_timer: Any = None
        _delivered = False  # the client took part of the answer since the delivery timer was armed
        _handed = False  # uvicorn's connection_made has run: its connection_lost must run too

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._early: list[bytes] = []
            # uvicorn's own answer over limit_concurrency is a plain-text 503 without Retry-After, which
            # the phone counts as a failure rather than a busy edge: the same limit, answered here.
            limit, self.limit_concurrency = self.limit_concurrency, None
            if limit is not None:
                self.app = _over_limit_guard(self.app, self, limit)

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            peer = transport.get_extra_info("peername")
            ip = str(peer[0]) if isinstance(peer, (tuple, list)) and peer else "unknown"
            if open_by_ip.get(ip, 0) >= per_ip:
                now = time.monotonic()
                if now - warned.get(ip, -1e9) > 60:
                    warned[ip] = now
                    log.warning("connection limit: %s already has %d open connections; closing new ones", ip,
                                per_ip)
                transport.close()
                return
            open_by_ip[ip] = open_by_ip.get(ip, 0) + 1
            self._counted_ip = ip
            if tls is not None:
                # The ClientHello is for start_tls, not for h11. (asyncio's loop only: uvloop starts
                # reading after connection_made whatever it did, hence loop="asyncio" with TLS.)
                transport.pause_reading()
                self._handshake = self.loop.create_task(self._start_tls(transport))
                return
            self._handed = True
            super().connection_made(transport)
            self._arm_header_timer()

        async def _start_tls(self, raw: Any) -> None:
            assert tls is not None
            try:
                transport = await self.loop.start_tls(raw, self, tls, server_side=True,
                                                      ssl_handshake_timeout=header_timeout)
            except Exception:  # noqa: BLE001 - a failed or timed-out handshake: the client's problem
                self._release()
                raw.abort()
                return
            if transport is None or transport.is_closing():
                self._release()
                return
            self._handed = True
            super().connection_made(transport)
            self._arm_header_timer()
            early, self._early = self._early, []
            for data in early:
                super().data_received(data)

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_header_timer()
            if self._delivery_timer is not None:
                self._delivery_timer.cancel()
                self._delivery_timer = None
            self._release()
            if self._handed:  # else: refused by the cap, or lost during the TLS handshake
                self._handed = False
                super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._handed:
                super().data_received(data)
            else:  # decrypted before start_tls has returned to _start_tls: the request's first bytes
                self._early.append(data)

        def _release(self) -> None:
            ip = self._counted_ip
            if ip is not None:
                self._counted_ip = None
                left = open_by_ip.get(ip, 1) - 1
                if left > 0:
                    open_by_ip[ip] = left
                else:
                    open_by_ip.pop(ip, None)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_header_timer()  # the next request's header must come in time too
            if self.transport.get_write_buffer_size():
                self._watch_delivery()

        def pause_writing(self) -> None:
            super().pause_writing()
            self._watch_delivery()

        def resume_writing(self) -> None:
            self._delivered = True  # the buffer went down to the low-water mark: the client reads
            super().resume_writing()

        def _watch_delivery(self) -> None:
            if self._delivery_timer is None:
                self._delivered = False
                self._delivery_timer = self.loop.call_later(write_timeout, self._check_delivery,
                                                            self.transport.get_write_buffer_size())

        def _check_delivery(self, armed_size: int) -> None:
            """Abort the connection if its client took nothing of an answer since the timer was armed;
            a slow reader that takes some in each period keeps it."""
            self._delivery_timer = None
            left = self.transport.get_write_buffer_size()
            if not left:
                return
            if self._delivered or left < armed_size:
                self._watch_delivery()
                return
            log.info("delivery timeout: %s read nothing of its answer in %g s; dropping the %d bytes left",
                     self._counted_ip, write_timeout, left)
            self.transport.abort()  # close() would wait for the client to read, holding the bytes

        def _arm_header_timer(self) -> None:
            self._cancel_header_timer()
            armed_cycle = self.cycle
            self._header_timer = self.loop.call_later(header_timeout, self._header_timed_out, armed_cycle)

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timed_out(self, armed_cycle: Any) -> None:
            self._header_timer = None
            if self.cycle is armed_cycle and not self.transport.is_closing():  # no new request began
                self.transport.close()

    return GuardedH11Protocol


def _over_limit_guard(app: Any, protocol: Any, limit: int) -> Any:
    """``app``, or a JSON 503 with Retry-After while ``protocol``'s server holds ``limit`` connections or
    more, or more than ``limit`` requests in progress (this one counted, as uvicorn counts them)."""

    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or (len(protocol.connections) < limit and len(protocol.tasks) <= limit):
            await app(scope, receive, send)
            return
        log.warning("connection limit: %d open connections; answering 503", len(protocol.connections))
        body = b'{"detail":"edge server is at its connection limit; retry later"}'
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"retry-after", b"1"), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    return guarded


def raise_open_file_limit() -> int:
    """Raise the soft limit on open files to the hard limit; returns the soft limit in force."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        if soft != resource.RLIM_INFINITY and soft < target:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        return soft
    except (ValueError, OSError):
        return -1
