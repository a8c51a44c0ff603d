"""Bearer-token authentication for the edge server.

Tokens come from a file (``mvstylizer edge serve --token-file F``), one per line: ``NAME TOKEN`` or just
``TOKEN``; blank lines and ``#`` comments are skipped. The name identifies the phone (or fleet) in
rate limits, metrics and the frame store, so a token itself is never logged or stored.

Comparison is constant time: the presented token and every known one are hashed to 32 bytes and all
of them are compared with :func:`hmac.compare_digest`, with no early exit, so neither the position
of the first wrong character nor which token matched leaks through timing.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

MIN_TOKEN_CHARS = 16  # shorter tokens are guessable; `python -c "import secrets; print(secrets.token_urlsafe())"`


@dataclass(frozen=True)
class TokenSet:
    """Known tokens as (name, sha256 digest) pairs; empty means authentication is off."""

    entries: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def from_file(cls, path: Path) -> TokenSet:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"cannot read token file {path}: {getattr(e, 'strerror', None) or e}") from None
        entries: list[tuple[str, bytes]] = []
        names: set[str] = set()
        for lineno, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) > 2:
                raise UserError(f"{path}:{lineno}: expected 'NAME TOKEN' or 'TOKEN'")
            token = parts[-1]
            name = parts[0] if len(parts) == 2 else f"token-{lineno}"
            if len(token) < MIN_TOKEN_CHARS:
                raise UserError(f"{path}:{lineno}: token shorter than {MIN_TOKEN_CHARS} characters")
            if name in names:
                raise UserError(f"{path}:{lineno}: duplicate name {name!r}")
            names.add(name)
            entries.append((name, _digest(token)))
        if not entries:
            raise UserError(f"token file {path} holds no tokens")
        return cls(tuple(entries))

    @classmethod
    def from_tokens(cls, tokens: dict[str, str]) -> TokenSet:
        """name -> token (for tests and embedding)."""
        return cls(tuple((name, _digest(tok)) for name, tok in tokens.items()))

    @property
    def enabled(self) -> bool:
        return bool(self.entries)

    def identify(self, token: str) -> str | None:
        """The name of this token, or None; takes the same time whichever token (if any) matches."""
        presented = _digest(token)
        found: str | None = None
        for name, digest in self.entries:
            if hmac.compare_digest(presented, digest):  # no break: constant work per call
                found = name
        return found


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None if absent or another scheme."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
