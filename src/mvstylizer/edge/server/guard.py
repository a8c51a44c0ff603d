"""Who may call what: request heads bounded, credentials in the URL refused, bearer auth, scopes,
per-client rate limits."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from ..auth import TOKEN_PARAMS, TokenSet, bearer_token, query_token_params
from ..ratelimit import retry_after_header
from .config import API_PREFIX
from .runtime import Runtime

log = logging.getLogger("mvstylizer.edge.server")  # one logger for the whole server package

# The scope a token needs per route (token file: NAME TOKEN SCOPES); any other guarded route: stylize.
ROUTE_SCOPES = {f"{API_PREFIX}/metrics": "metrics"}


class RequestHeadLimitMiddleware:
    """Pure ASGI: a request target over ``max_bytes`` gets 414, a request line and headers over it 431.

    uvicorn's ``h11_max_incomplete_event_size`` bounds a head only while it is *incomplete*: one that
    arrives in a single read is parsed whatever its size (a 28 KB query to /v1/health got 200 and a
    28,000-character access-log line). The refused request's path and query are shortened in the
    scope, which is what uvicorn's access log prints.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        target = len(scope.get("raw_path") or scope["path"].encode()) + 1 + len(scope.get("query_string", b""))
        head = target + len(scope["method"]) + sum(len(k) + len(v) + 4 for k, v in scope.get("headers", ()))
        if head <= self.max_bytes:
            await self.app(scope, receive, send)
            return
        status, what = (414, "request target (path and query)") if target > self.max_bytes else (431, "request head")
        scope["path"] = scope["path"][:64] + ("..." if len(scope["path"]) > 64 else "")
        scope["query_string"] = b"TRUNCATED" if scope.get("query_string") else b""
        response = JSONResponse({"detail": f"{what} longer than the edge's limit of {self.max_bytes} bytes"},
                                status_code=status)
        await response(scope, receive, send)


class QueryTokenMiddleware:
    """Pure ASGI: a credential in the URL query is refused with 400 before routing. URLs end up in logs,
    proxies and browser histories; tokens belong in the ``Authorization`` header.

    Refused are a parameter with a conventional credential name (``access_token``, ``token``, ``key``...:
    ``auth.TOKEN_PARAMS``) whatever its value, and one whose value is the request's *own* bearer token.
    Never "a value that is some known token": answering 400 for that told a guesser which of its
    values was a valid token, thousands of guesses a second on /v1/health, past the failed-login limit.
    A known token in any other parameter is still kept out of the access log (the query is shown as
    ``REDACTED``, rewritten when the answer starts, which is when uvicorn logs it), but the answer is
    the same as for any other value.
    """

    def __init__(self, app: Any, tokens: TokenSet) -> None:
        self.app = app
        self.tokens = tokens
        self._last_warning = -1e9
        self._quiet = 0  # refusals not logged since the last warning

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or not scope.get("query_string"):
            await self.app(scope, receive, send)
            return
        names = refused_query_params(scope["query_string"], _authorization(scope))
        if names:
            scope["query_string"] = b"REDACTED"  # the access log reads the scope after the response
            self._warn(scope, names)
            response = JSONResponse({"detail": f"credentials in the URL query are refused (parameter "
                                               f"{', '.join(sorted(set(names)))}): URLs are logged; send the "
                                               "token as 'Authorization: Bearer <token>'"}, status_code=400)
            await response(scope, receive, send)
            return
        leaked = query_token_params(scope["query_string"], self.tokens)
        if not leaked:
            await self.app(scope, receive, send)
            return
        self._warn(scope, leaked)

        async def send_redacted(message: dict) -> None:
            if message["type"] == "http.response.start":  # the app has read its query by now
                scope["query_string"] = b"REDACTED"
            await send(message)

        await self.app(scope, receive, send_redacted)

    def _warn(self, scope: dict, names: list[str]) -> None:
        import time

        now = time.monotonic()
        if now - self._last_warning < 60:  # at most one line a minute, however many arrive
            self._quiet += 1
            return
        client = scope.get("client") or ("unknown",)
        log.warning("a request from %s carried a credential in its URL query (parameter %s)%s; if it "
                    "was a real token, it may be in proxies' logs: consider replacing it",
                    client[0], ", ".join(sorted(set(names))),
                    f" ({self._quiet} more since the last such line)" if self._quiet else "")
        self._last_warning, self._quiet = now, 0


def refused_query_params(query: bytes, authorization: str | None) -> list[str]:
    """Names of the query parameters that carry a credential, judged without the token table: a
    conventional credential name, or the request's own bearer token as the value."""
    own = bearer_token(authorization)
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    return [name for name, value in pairs
            if name.strip().lower() in TOKEN_PARAMS or (own is not None and value.strip() == own)]


def _authorization(scope: dict) -> str | None:
    value = next((v for k, v in scope.get("headers", ()) if k.lower() == b"authorization"), None)
    return value.decode("latin-1") if value is not None else None


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
