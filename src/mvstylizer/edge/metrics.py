"""Prometheus metrics of the edge server (``GET /v1/metrics``, text exposition format).

Each app gets its own ``CollectorRegistry`` (no process-global state), so several servers in one
process (the tests) do not mix their counts. Route labels are the API's route templates or
``other``: a fuzzer or scanner hitting random paths cannot blow up the label cardinality.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class EdgeMetrics:
    def __init__(self, known_paths: set[str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.known_paths = known_paths
        r = self.registry
        self.requests = Counter("mvstylizer_edge_requests", "HTTP requests answered",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("mvstylizer_edge_request_seconds", "HTTP request latency, first byte in to last out",
                                 ["route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.frames = Counter("mvstylizer_edge_frames", "key frames stylized", ["model"], registry=r)
        self.frames_kept = Counter("mvstylizer_edge_frames_collected",
                                   "opted-in key frames handed to the frame store", registry=r)
        self.rejected = Counter("mvstylizer_edge_rejected", "requests refused before any work",
                                ["reason"], registry=r)
        self.queue_depth = Gauge("mvstylizer_edge_queue_depth",
                                 "requests running on or waiting for a DNN worker", registry=r)
        self.workers_busy = Gauge("mvstylizer_edge_workers_busy", "DNN worker threads busy", registry=r)
        self.store_bytes = Gauge("mvstylizer_edge_store_bytes", "bytes in the opt-in frame store", registry=r)

    def bind_queue(self, depth: Callable[[], float], busy: Callable[[], float]) -> None:
        self.queue_depth.set_function(depth)
        self.workers_busy.set_function(busy)

    def route_of(self, path: str) -> str:
        return path if path in self.known_paths else "other"

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Pure ASGI middleware: counts every HTTP response and times it (no BaseHTTPMiddleware overhead)."""

    def __init__(self, app: Any, metrics: EdgeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}  # if the app dies before answering, uvicorn answers 500

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = self.metrics.route_of(scope.get("path", ""))
            method = scope.get("method", "")
            method = method if method in _METHODS else "OTHER"
            self.metrics.requests.labels(method, route, str(status["code"])).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)
