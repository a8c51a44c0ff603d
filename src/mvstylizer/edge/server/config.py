"""What an edge server is configured with: ``ServerConfig`` and the served models."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...models.registry import resolve_name
from ..auth import TokenSet
from ..ratelimit import AuthFailureConfig, RateLimitConfig

API_PREFIX = "/v1"


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8400
    max_request_bytes: int = 64 * 1024 * 1024  # any request body, after which 413
    # Bytes of request bodies all requests hold together, counted as they arrive and held until the
    # answer; beyond it 503 + Retry-After (24 stalled 63 MiB uploads took the server from 0.8 to 2.7 GB).
    max_body_bytes_in_flight: int = 256 * 1024 * 1024
    max_frame_pixels: int = 4096 * 4096  # per image (frames and style photos), read from the header
    min_frame_side: int = 8  # smaller images are refused (400): VGG-based models need 8 px per side
    max_batch: int = 32  # frames per /v1/stylize request
    max_batch_pixels: int = 48 * 1024 * 1024  # all frames of one request together (~0.6 GB as float32)
    workers: int = 2  # threads running decode + DNN + encode (not uvicorn worker processes)
    # A batch runs as jobs of consecutive frames of at most this many pixels together (a larger frame
    # alone): another client's request then waits for one such job per busy worker, not whole batches.
    chunk_pixels: int = 1024 * 1024
    max_pending: int = 64  # requests running or waiting for a worker; beyond that 503 + Retry-After
    body_timeout_s: float = 60.0  # a request body must arrive within this, else 408 (slow-upload guard)
    log_level: str = "info"
    tokens: TokenSet = field(default_factory=TokenSet)  # empty: no auth (loopback/dev use only)
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    auth_failures: AuthFailureConfig = field(default_factory=AuthFailureConfig)  # 401s per peer address
    models: tuple[str, ...] = ()  # model names this edge serves (canonical, e.g. "dncm"); empty: all
    data_dir: Path | None = None  # opt-in frame store root; None: nothing is ever kept
    store_quota_bytes: int = 2 * 1024**3
    store_client_quota_bytes: int | None = None  # per client (token name); None: a quarter of the quota
    ssl_keyfile: Path | None = None  # both set: HTTPS via uvicorn's ssl options
    ssl_certfile: Path | None = None
    # Working memory the workers may use together (bytes); None: half the machine's (or container's) RAM.
    # Per-model pixel limits follow from it and the measured cost per pixel (edge/memory.py).
    memory_budget: int | None = None
    # Connections: see edge/connections.py and docs/EDGE.md.
    max_connections: int = 1000  # uvicorn limit_concurrency: beyond it new requests get 503
    max_connections_per_ip: int = 64  # more from one peer address are closed at once
    header_timeout_s: float = 10.0  # a connection must send a complete request header within this
    # An answer its client takes none of for this long is dropped, its connection aborted: asyncio would
    # hold the unread bytes for as long as the connection stays open, that is for ever.
    write_timeout_s: float = 30.0
    keep_alive_s: int = 5  # an idle kept-alive connection is closed after this
    max_header_bytes: int = 16 * 1024  # request line + headers: h11_max_incomplete_event_size, then 414/431
    shutdown_grace_s: float = 10.0  # running jobs may finish this long after SIGTERM; then 503

    def __post_init__(self) -> None:
        for name in ("max_request_bytes", "max_body_bytes_in_flight", "max_frame_pixels", "min_frame_side",
                     "max_batch", "max_batch_pixels", "workers", "chunk_pixels", "max_pending", "store_quota_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"ServerConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_body_bytes_in_flight < self.max_request_bytes:
            raise ValueError("ServerConfig.max_body_bytes_in_flight must be >= max_request_bytes, or a body of "
                             "the allowed size could never be received")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"ServerConfig.port must be 0..65535, got {self.port}")
        if self.memory_budget is not None and self.memory_budget < 1:
            raise ValueError(f"ServerConfig.memory_budget must be >= 1 byte, got {self.memory_budget}")
        for name in ("body_timeout_s", "write_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ServerConfig.{name} must be > 0, got {getattr(self, name)}")
        if (self.ssl_keyfile is None) != (self.ssl_certfile is None):
            raise ValueError("ServerConfig needs both ssl_keyfile and ssl_certfile, or neither")


def served_models(names: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Canonical model names for ``--models`` (aliases allowed); UserError for an unknown one."""
    if not names:
        return ()
    return tuple(dict.fromkeys(resolve_name(n).split(":", 1)[0] for n in names))
