"""Bearer-token authentication for the edge server.

Tokens come from a file (``mvstylizer edge serve --token-file F``), one per line: ``NAME TOKEN``,
``NAME TOKEN SCOPES`` or just ``TOKEN``; blank lines and ``#`` comments are skipped. The name
identifies the phone (or fleet) in rate limits, metrics and the frame store, so a token itself is
never logged or stored. ``SCOPES`` is a comma-separated subset of :data:`SCOPES`; without it a token
has :data:`DEFAULT_SCOPES` (``stylize``: what a phone needs), so a phone's token cannot read
``/v1/metrics``; a Prometheus scraper's line says ``scraper TOKEN metrics``.

The file is checked like ssh checks a private key: it must not be readable or writable by group or
others (POSIX), and every token must be at least :data:`MIN_TOKEN_CHARS` long and not low-entropy
(:func:`token_weakness`); otherwise the server refuses to start with a message naming the line.

Comparison is constant time: the presented token and every known one are hashed to 32 bytes and all
of them are compared with :func:`hmac.compare_digest`, with no early exit, so neither the position
of the first wrong character nor which token matched leaks through timing.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import math
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..wire import bad_token_char

MIN_TOKEN_CHARS = 16  # shorter tokens are guessable; `python -c "import secrets; print(secrets.token_urlsafe())"`
MIN_TOKEN_BITS = 40.0  # Shannon estimate of a token's character mix x its length (token_urlsafe(): ~190)
SCOPES = {
    "stylize": "GET /v1/models, POST /v1/styles, POST /v1/stylize (what a phone needs)",
    "metrics": "GET /v1/metrics (an operator's scraper)",
}
DEFAULT_SCOPES = frozenset({"stylize"})
# Read at most this much of a token file, so a wrong or huge file is refused before it fills memory.
# A line (a short name, token_urlsafe(), scopes) is about 75 bytes, so 100,000 tokens fit: far more than an
# edge hands out. (The phone's file holds one token and is capped at 64 KiB.)
MAX_TOKEN_FILE_BYTES = 8 * 1024**2
_MAKE_ONE = "make one with: python -c \"import secrets; print(secrets.token_urlsafe())\""


def token_weakness(token: str) -> str | None:
    """Why ``token`` is too weak to accept, or None. Catches short tokens and low-entropy ones
    (``aaaaaaaaaaaaaaaa``, ``abababab...``, ``passwordpassword``); a random token of 16+ characters
    from a base64 or hex alphabet passes."""
    n = len(token)
    # HTTP headers arrive as latin-1 and the tokens are kept as UTF-8 digests: a token with other
    # characters could never match, and the phone refuses to send one anyway.
    if bad_token_char(token) is not None:
        return "it has a character that is not printable ASCII (an edge token is printable ASCII without spaces)"
    if n < MIN_TOKEN_CHARS:
        return f"shorter than {MIN_TOKEN_CHARS} characters"
    counts = collections.Counter(token)
    bits = max(0.0, -sum(c * math.log2(c / n) for c in counts.values()))
    if bits < MIN_TOKEN_BITS:
        return (f"low-entropy ({len(counts)} distinct characters, ~{bits:.0f} bits by its character mix; "
                f"at least {MIN_TOKEN_BITS:.0f} needed)")
    for period in range(1, n // 2 + 1):
        if all(token[i] == token[i % period] for i in range(n)):
            return f"a {period}-character string repeated"
    return None


def check_file_permissions(path: Path) -> None:
    """UserError if group or others may read or write the token file (POSIX only), like ssh does for
    a private key: the tokens are the edge's passwords."""
    if os.name != "posix":
        return
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError as e:
        raise UserError(f"cannot read token file {path}: {e.strerror or e}") from None
    if mode & 0o077:
        raise UserError(f"token file {path} is accessible by other users (permissions {mode:04o}); "
                        f"the tokens are passwords: run `chmod 600 {path}`")


@dataclass(frozen=True)
class TokenSet:
    """Known tokens as (name, sha256 digest, scopes) triples; empty means authentication is off."""

    entries: tuple[tuple[str, bytes, frozenset[str]], ...] = ()

    @classmethod
    def from_file(cls, path: Path) -> TokenSet:
        check_file_permissions(Path(path))
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_TOKEN_FILE_BYTES + 1)
            if len(data) > MAX_TOKEN_FILE_BYTES:
                raise UserError(f"token file {path} is larger than {MAX_TOKEN_FILE_BYTES // 1024**2} MiB, more "
                                f"than 100,000 tokens need: is it the right file? (one line per token: "
                                f"NAME TOKEN [SCOPES])")
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"cannot read token file {path}: {getattr(e, 'strerror', None) or e}") from None
        entries: list[tuple[str, bytes, frozenset[str]]] = []
        names: set[str] = set()
        for lineno, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) > 3:
                raise UserError(f"{path}:{lineno}: expected 'NAME TOKEN [SCOPES]' or 'TOKEN'")
            if len(parts) == 1:
                name, token, scopes = f"token-{lineno}", parts[0], DEFAULT_SCOPES
            else:
                name, token = parts[0], parts[1]
                scopes = _parse_scopes(parts[2], f"{path}:{lineno}") if len(parts) == 3 else DEFAULT_SCOPES
            weak = token_weakness(token)
            if weak is not None:  # never echo the token itself
                raise UserError(f"{path}:{lineno}: the token of {name!r} is too weak: {weak}; {_MAKE_ONE}")
            if name in names:
                raise UserError(f"{path}:{lineno}: duplicate name {name!r}")
            names.add(name)
            entries.append((name, _digest(token), scopes))
        if not entries:
            raise UserError(f"token file {path} holds no tokens")
        return cls(tuple(entries))

    @classmethod
    def from_tokens(cls, tokens: Mapping[str, str],
                    scopes: Mapping[str, Iterable[str]] | None = None) -> TokenSet:
        """name -> token (for tests and embedding); ``scopes``: name -> scopes (default
        :data:`DEFAULT_SCOPES`)."""
        scopes = scopes or {}
        return cls(tuple((name, _digest(tok), frozenset(scopes.get(name, DEFAULT_SCOPES)))
                         for name, tok in tokens.items()))

    @property
    def enabled(self) -> bool:
        return bool(self.entries)

    def identify(self, token: str) -> str | None:
        """The name of this token, or None; takes the same time whichever token (if any) matches."""
        found = self.lookup(token)
        return found[0] if found is not None else None

    def lookup(self, token: str) -> tuple[str, frozenset[str]] | None:
        """(name, scopes) of this token, or None; constant work whichever token (if any) matches."""
        presented = _digest(token)
        found: tuple[str, frozenset[str]] | None = None
        for name, digest, scopes in self.entries:
            if hmac.compare_digest(presented, digest):  # no break: constant work per call
                found = (name, scopes)
        return found


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None if absent or another scheme."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


# Query parameters that carry a credential by convention (OAuth's access_token, API keys...).
TOKEN_PARAMS = frozenset({"access_token", "token", "bearer", "bearer_token", "auth", "authorization", "api_key",
                          "apikey", "api-key", "key", "id_token", "jwt", "secret", "password"})


def query_token_params(query: bytes | str, tokens: TokenSet) -> list[str]:
    """Names of the URL query parameters that carry a credential: a conventional name (``access_token``,
    ``token``...) whatever its value, or any parameter whose value is one of ``tokens``. For keeping
    tokens out of the access log only: an answer that depended on it would tell a guesser which of its
    values is a valid token (the server refuses by name and by the request's own token instead)."""
    from urllib.parse import parse_qsl

    if isinstance(query, bytes):
        query = query.decode("latin-1")
    found = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name.strip().lower() in TOKEN_PARAMS:
            found.append(name)
        elif tokens.enabled and len(value) >= MIN_TOKEN_CHARS and tokens.lookup(value.strip()) is not None:
            found.append(name)
    return found


def _parse_scopes(text: str, where: str) -> frozenset[str]:
    scopes = frozenset(x for x in text.split(",") if x)
    unknown = sorted(scopes - SCOPES.keys())
    if unknown or not scopes:
        raise UserError(f"{where}: unknown scope {', '.join(unknown) or repr(text)}; scopes are "
                        f"{', '.join(SCOPES)} (comma-separated, e.g. stylize,metrics)")
    return scopes


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
