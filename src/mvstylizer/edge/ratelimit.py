"""Per-client rate limiting and fairness for the edge server.

Two limits per client (a token's name, or the peer address when auth is off):

- a token bucket of ``rate`` requests per second with bursts of ``burst``: beyond it, 429 with a
  Retry-After saying when the next request would be accepted;
- at most ``max_inflight`` requests of one client running or queued at once, so one phone firing many
  big batches cannot take every worker slot and stall the others (also 429).

State lives in one :class:`RateLimiter` per app (no globals) and is only touched from the event loop
thread, so it needs no lock. The table of clients is bounded: idle, full buckets are dropped first.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RateLimitConfig:
    rate: float = 50.0  # sustained requests per second per client (a phone sends ~1 per key frame)
    burst: int = 100  # requests a client may send at once after being idle
    max_inflight: int = 8  # requests of one client running or waiting for a worker
    max_clients: int = 10_000  # clients tracked; beyond it idle ones are forgotten

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1 or self.max_inflight < 1 or self.max_clients < 1:
            raise ValueError("RateLimitConfig needs rate > 0, burst >= 1, max_inflight >= 1, max_clients >= 1")


@dataclass
class _Bucket:
    tokens: float
    stamp: float
    inflight: int = 0

    def refill(self, now: float, burst: int, rate: float) -> None:
        """Add the tokens earned since the last look, up to ``burst``."""
        self.tokens = min(float(burst), self.tokens + (now - self.stamp) * rate)
        self.stamp = now


@dataclass
class RateLimiter:
    config: RateLimitConfig = field(default_factory=RateLimitConfig)
    clock: object = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def acquire(self, client: str) -> float | None:
        """Take one request slot for ``client``: None if allowed, else seconds to wait before retrying.

        An allowed request must be paired with :meth:`release` when it finishes.
        """
        now = self.clock()  # type: ignore[operator]
        bucket = self._buckets.get(client)
        if bucket is None:
            self._make_room(now)
            bucket = self._buckets[client] = _Bucket(float(self.config.burst), now)
        bucket.refill(now, self.config.burst, self.config.rate)
        if bucket.inflight >= self.config.max_inflight:
            return 1.0
        if bucket.tokens < 1.0:
            return (1.0 - bucket.tokens) / self.config.rate
        bucket.tokens -= 1.0
        bucket.inflight += 1
        return None

    def release(self, client: str) -> None:
        bucket = self._buckets.get(client)
        if bucket is not None and bucket.inflight > 0:
            bucket.inflight -= 1

    def __len__(self) -> int:
        return len(self._buckets)

    def _make_room(self, now: float) -> None:
        if len(self._buckets) < self.config.max_clients:
            return
        full_after = self.config.burst / self.config.rate  # an idle bucket this old is full again
        idle = [k for k, b in self._buckets.items() if b.inflight == 0 and now - b.stamp >= full_after]
        for k in idle:
            del self._buckets[k]
        if len(self._buckets) >= self.config.max_clients:  # still full: forget the least recently seen idle
            victims = sorted((b.stamp, k) for k, b in self._buckets.items() if b.inflight == 0)
            for _, k in victims[: max(1, len(victims) // 2)]:
                del self._buckets[k]


def retry_after_header(seconds: float) -> str:
    """Retry-After takes whole seconds; round up so a client that obeys it is accepted. At most a day
    (a rate near zero made the wait infinite, and ``ceil`` of it a 500 for every refusal)."""
    return str(max(1, math.ceil(min(seconds, 86400.0)))) if not math.isnan(seconds) else "1"


@dataclass(frozen=True)
class AuthFailureConfig:
    """Failed authentications (401s) allowed per peer address: ``burst`` at once, then ``rate`` per
    second. Beyond it the address gets 429 for every request that needs a token, *before* its token is
    checked, so guessing tokens runs at ``rate`` per second at most (as fail2ban would for ssh)."""

    rate: float = 1.0
    burst: int = 30
    max_addresses: int = 10_000

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1 or self.max_addresses < 1:
            raise ValueError("AuthFailureConfig needs rate > 0, burst >= 1, max_addresses >= 1")


@dataclass
class AuthFailureLimiter:
    """Token bucket of failed authentications per peer address (event-loop thread only)."""

    config: AuthFailureConfig = field(default_factory=AuthFailureConfig)
    clock: object = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def blocked(self, address: str) -> float | None:
        """Seconds until ``address`` may fail again, or None if it may try now."""
        bucket = self._refill(address)
        if bucket is None or bucket.tokens >= 1.0:
            return None
        return (1.0 - bucket.tokens) / self.config.rate

    def failed(self, address: str) -> None:
        """Count one failed authentication of ``address``."""
        bucket = self._refill(address)
        if bucket is None:
            if len(self._buckets) >= self.config.max_addresses:
                self._forget_full()
            bucket = self._buckets[address] = _Bucket(float(self.config.burst), self.clock())  # type: ignore[operator]
        bucket.tokens = max(0.0, bucket.tokens - 1.0)

    def _refill(self, address: str) -> _Bucket | None:
        bucket = self._buckets.get(address)
        if bucket is not None:
            bucket.refill(self.clock(), self.config.burst, self.config.rate)  # type: ignore[operator]
        return bucket

    def _forget_full(self) -> None:
        now = self.clock()  # type: ignore[operator]
        full_after = self.config.burst / self.config.rate
        for k in [k for k, b in self._buckets.items() if now - b.stamp >= full_after]:
            del self._buckets[k]
        if len(self._buckets) >= self.config.max_addresses:  # still full: forget the oldest half
            for _, k in sorted((b.stamp, k) for k, b in self._buckets.items())[: len(self._buckets) // 2 or 1]:
                del self._buckets[k]
