"""Per-app state (``app.state.runtime``): the service, the limits, the fair worker pool, the frame store.

Routes get it through the :data:`Runtime` dependency; there is no module-level state.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request

from ...errors import UserError
from ...models.registry import DEFAULT_MODEL, resolve_name
from ..memory import MemoryLimits, default_budget
from ..metrics import EdgeMetrics
from ..ratelimit import AuthFailureLimiter, RateLimiter
from ..scheduler import ClientGone, FairScheduler, ShuttingDown
from ..service import EdgeService
from ..store import FrameStore
from .config import ServerConfig

log = logging.getLogger("mvstylizer.edge.server")  # one logger for the whole server package
_T = TypeVar("_T")


class ServerRuntime:
    """What a request handler needs: the service, the limits, the bounded worker pool, the store."""

    def __init__(self, service: EdgeService, config: ServerConfig, metrics: EdgeMetrics) -> None:
        self.service = service
        self.config = config
        self.metrics = metrics
        self.limiter = RateLimiter(config.rate_limit)
        self.auth_failures = AuthFailureLimiter(config.auth_failures)
        self.shutting_down = False
        self.scheduler: FairScheduler | None = None
        self.pending = 0  # only touched on the event loop thread
        self.body_bytes = 0  # request bodies held by all requests (bodies.BodyBytes); event loop only
        self.busy = 0  # workers running a job; touched from worker threads, hence the lock
        self._busy_lock = threading.Lock()
        self.store: FrameStore | None = None
        self.store_failed = False  # the store could not be opened: collection is off for this run
        self.allowed = frozenset(config.models)  # empty: every model
        self.limits = MemoryLimits(config.memory_budget or default_budget(), config.workers,
                                   config.max_frame_pixels, config.max_batch_pixels)
        metrics.bind_queue(lambda: self.pending, lambda: self.busy)

    def start(self) -> None:
        if self.scheduler is None:
            # In flight per client <= workers: one client cannot hold every worker
            # *and* a queue behind them; the round robin serves the other clients' jobs in between.
            self.scheduler = FairScheduler(self.config.workers,
                                           min(self.config.rate_limit.max_inflight, self.config.workers))
        if self.store is None and self.config.data_dir is not None and not self.store_failed:
            self.store = open_store(self.config)
            self.store_failed = self.store is None
            if self.store is not None:
                self.metrics.store_bytes.set(self.store.total_bytes)

    def begin_shutdown(self) -> None:
        """The server starts its graceful shutdown: queued jobs get 503 now, running ones may finish
        within the grace period (after it, :meth:`run` answers 503 for them too)."""
        self.shutting_down = True
        if self.scheduler is not None:
            self.scheduler.stop_accepting()

    def stop(self) -> None:
        self.shutting_down = True
        if self.scheduler is not None:
            self.scheduler.close()
            self.scheduler = None
        if self.store is not None:
            self.store.close()
            self.store = None

    @property
    def default_model(self) -> str:
        """What ``default`` names on this edge: the project's default model where this edge serves it,
        else the first of its ``--models`` (an edge started with ``--models mk dncm`` refused the phone's
        ``default`` as an unknown model)."""
        if not self.allowed or DEFAULT_MODEL in self.allowed:
            return DEFAULT_MODEL
        return self.config.models[0]

    def model_name(self, model: str) -> str:
        """``model`` as asked (``NAME`` or ``NAME:RUNTIME``), with ``default`` taken as :attr:`default_model`."""
        head, sep, runtime = model.partition(":")
        return f"{self.default_model}{sep}{runtime}" if head == "default" else model

    def serves(self, model: str) -> bool:
        """Whether this edge serves ``model``; an unknown name raises UserError (400) naming only the
        models this edge serves when it serves a subset."""
        if not self.allowed:
            return True
        try:
            name = resolve_name(model)
        except UserError:
            head, sep, _ = model.partition(":")
            if sep and _known(head):  # a known model, an unknown runtime: the registry's message says so
                raise
            raise UserError(f"unknown model {model!r}; this edge serves: {', '.join(sorted(self.allowed))}") from None
        return name.split(":", 1)[0] in self.allowed

    def _tracked(self, fn: Callable[..., _T], *args: Any) -> _T:
        with self._busy_lock:
            self.busy += 1
        try:
            return fn(*args)
        finally:
            with self._busy_lock:
                self.busy -= 1

    async def run(self, fn: Callable[..., _T], *args: Any, client: str = "", request: Request | None = None) -> _T:
        """Run blocking work on a worker, fairly among clients (:class:`FairScheduler`).

        503 when the queue is full or the edge is shutting down; UserError -> 400; anything unexpected
        -> logged 500. Work of a client that disconnects while it waits is dropped unrun.
        """
        (result,) = await self.run_each(fn, [args], client=client, request=request)
        return result

    async def run_each(self, fn: Callable[..., _T], calls: list[tuple[Any, ...]], *, client: str = "",
                       request: Request | None = None) -> list[_T]:
        """``fn(*args)`` for each ``args`` of ``calls`` in turn, as :meth:`run` does, under one queue slot.

        Each call is its own job for the scheduler, which serves other clients' jobs in between: a
        long request split into calls holds a worker for one call at a time.
        """
        if self.pending >= self.config.max_pending:
            self.metrics.rejected.labels("queue_full").inc()
            raise HTTPException(503, "edge server is busy; retry later", headers={"Retry-After": "1"})
        self.start()  # normally done by the lifespan; this keeps create_app usable without one
        assert self.scheduler is not None
        disconnected = request.is_disconnected if request is not None else None
        self.pending += 1
        try:
            results: list[_T] = []
            for i, args in enumerate(calls):
                # The scheduler only notices a gone client while its job waits; a batch's next job with
                # a worker free would start at once, so two abandoned 4-frame 720p batches kept both
                # workers busy for ~35 s after their phones had hung up.
                if i and disconnected is not None and await disconnected():
                    raise ClientGone(f"client {client} disconnected; the rest of its batch was dropped")
                results.append(await self.scheduler.submit(client, self._tracked, fn, *args,
                                                           disconnected=disconnected))
            return results
        except (HTTPException, UserError):
            raise
        except ShuttingDown:
            raise HTTPException(503, "edge server is shutting down; retry later",
                                headers={"Retry-After": "1"}) from None
        except ClientGone:
            self.metrics.rejected.labels("client_gone").inc()
            raise HTTPException(499, "client disconnected; request dropped") from None
        except asyncio.CancelledError:
            if not self.shutting_down:
                raise
            # uvicorn cancels what is still running when the shutdown grace period ends; without this
            # the client would get uvicorn's 500 for what is a restart, not a bug.
            raise HTTPException(503, "edge server is shutting down; retry later",
                                headers={"Retry-After": "1"}) from None
        except Exception:
            log.exception("unexpected error in %s", getattr(fn, "__name__", fn))
            raise HTTPException(500, "internal error on the edge server") from None
        finally:
            self.pending -= 1


def _known(model: str) -> bool:
    try:
        resolve_name(model)
    except UserError:
        return False
    return True


def open_store(config: ServerConfig) -> FrameStore | None:
    """The opt-in frame store, or None with one warning if it cannot be used (disk full, a corrupt
    index, no permission...): the edge then serves with collection off rather than not at all."""
    assert config.data_dir is not None
    client_quota = config.store_client_quota_bytes or max(1, config.store_quota_bytes // 4)
    try:
        return FrameStore(config.data_dir, config.store_quota_bytes, client_quota_bytes=client_quota)
    except Exception as e:  # noqa: BLE001 - an optional feature must never stop the edge
        log.warning("frame store %s unusable (%s: %s); serving with data collection OFF (collect=true "
                    "requests get X-Frames-Collected: 0)", config.data_dir, type(e).__name__, e)
        return None


def get_runtime(request: Request) -> ServerRuntime:
    return request.app.state.runtime


Runtime = Annotated[ServerRuntime, Depends(get_runtime)]
