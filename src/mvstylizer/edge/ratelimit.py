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

import ipaddress
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
    checked, so guessing tokens runs at ``rate`` per second at most (as fail2ban would for ssh).

    Counted per network too, or one guesser with many addresses got ``burst`` guesses from each (40
    addresses, 1,200 guesses, no 429): an IPv6 /64 (what one subscriber gets) is one address here, and
    an IPv4 /24 gets ``ipv4_net_scale`` times the limits of one address (phones behind neighbouring
    addresses fail now and then, a guesser all the time)."""

    rate: float = 1.0
    burst: int = 30
    max_addresses: int = 10_000
    ipv4_net_scale: int = 4

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1 or self.max_addresses < 1 or self.ipv4_net_scale < 1:
            raise ValueError("AuthFailureConfig needs rate > 0, burst >= 1, max_addresses >= 1, ipv4_net_scale >= 1")


def _counted_as(address: str, ipv4_net_scale: int) -> list[tuple[str, int]]:
    """The keys a failure of ``address`` is counted under, each with the scale of its limits."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # not an IP address (a Unix socket's peer, "unknown"): on its own
        return [(address, 1)]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv6Address):
        return [(str(ipaddress.IPv6Network((ip, 64), strict=False)), 1)]
    return [(str(ip), 1), (str(ipaddress.IPv4Network((ip, 24), strict=False)), ipv4_net_scale)]


@dataclass
class AuthFailureLimiter:
    """Token buckets of failed authentications per peer address and network (event-loop thread only)."""

    config: AuthFailureConfig = field(default_factory=AuthFailureConfig)
    clock: object = time.monotonic
    _buckets: dict[str, tuple[_Bucket, int]] = field(default_factory=dict)  # key -> (bucket, scale)

    def blocked(self, address: str) -> float | None:
        """Seconds until ``address`` may fail again, or None if it may try now."""
        waits = [(1.0 - bucket.tokens) / (self.config.rate * scale)
                 for key, scale in _counted_as(address, self.config.ipv4_net_scale)
                 if (bucket := self._refill(key)) is not None and bucket.tokens < 1.0]
        return max(waits, default=None)

    def failed(self, address: str) -> None:
        """Count one failed authentication of ``address``."""
        keys = _counted_as(address, self.config.ipv4_net_scale)
        new = [key for key, _ in keys if key not in self._buckets]
        if new and len(self._buckets) + len(new) > self.config.max_addresses:
            self._forget(keep={key for key, _ in keys})
        for key, scale in keys:
            bucket = self._refill(key)
            if bucket is None:
                bucket = _Bucket(float(self.config.burst * scale), self.clock())  # type: ignore[operator]
                self._buckets[key] = (bucket, scale)
            bucket.tokens = max(0.0, bucket.tokens - 1.0)

    def _refill(self, key: str) -> _Bucket | None:
        entry = self._buckets.get(key)
        if entry is None:
            return None
        bucket, scale = entry
        bucket.refill(self.clock(), self.config.burst * scale, self.config.rate * scale)  # type: ignore[operator]
        return bucket

    def _forget(self, keep: set[str]) -> None:
        """Make room: drop the buckets that are full again, then, if that is not enough, half of the
        rest, those with the most tokens left first, but never one that is blocked now (forgetting it
        gave its guesser a fresh burst: filling the table with new addresses reset every block), nor
        those of ``keep`` (the address failing now, whose count would start over at each failure)."""
        left: list[tuple[float, str]] = []
        for key in [k for k in self._buckets if k not in keep]:
            bucket = self._refill(key)
            assert bucket is not None
            scale = self._buckets[key][1]
            if bucket.tokens >= self.config.burst * scale:
                del self._buckets[key]
            elif bucket.tokens >= 1.0:
                left.append((bucket.tokens / scale, key))
        if len(self._buckets) >= self.config.max_addresses:
            # Blocked buckets may take the table past max_addresses for a while: each unblocks within
            # 1 / rate seconds (a guesser needs ``burst`` failures to make one), and a later pass drops it.
            for _, key in sorted(left, reverse=True)[: max(1, len(self._buckets) // 2)]:
                del self._buckets[key]
