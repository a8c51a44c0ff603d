"""Fair scheduling of the edge's worker threads.

First-in-first-out let one client with many requests queued take every worker: another phone's
one-frame request waited behind all of them (95 s instead of 0.05 s). Here every client has its own
queue and a free worker takes the next job from the next client in round-robin order, skipping clients
that already have ``per_client`` jobs running (at most the number of workers). So a single request of a
quiet client waits for at most one job per busy worker, however much a flooding client has queued.

Jobs of a client that has gone (its connection closed while the job waited) are dropped unrun: the
waiting request polls ``disconnected`` and takes its job out of the queue. At shutdown the queued jobs
fail with :class:`ShuttingDown` (the server answers 503); running ones are not waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import threading
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any


class ShuttingDown(Exception):
    """The scheduler stopped before this job ran."""


class ClientGone(Exception):
    """The client disconnected while its job waited; the job was dropped."""


@dataclass(eq=False)
class _Job:
    client: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    future: asyncio.Future = field(repr=False)


class WorkerPool:
    """``workers`` daemon threads running submitted calls. Not a ThreadPoolExecutor: the interpreter
    joins those at exit, whatever ``shutdown(wait=False)`` said, so a model call (which nothing can
    interrupt) kept a stopped edge alive for as long as it ran (88 s), far past its grace period."""

    def __init__(self, workers: int, name: str) -> None:
        self._calls: queue.SimpleQueue[tuple[Future, Callable[..., Any], tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(workers)]
        for t in self._threads:
            t.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        self._calls.put((future, fn, args))
        return future

    def shutdown(self) -> None:
        """Cancel the calls not started; the running ones go on, and their threads end after them."""
        with contextlib.suppress(queue.Empty):
            while True:
                call = self._calls.get_nowait()
                if call is not None:
                    call[0].cancel()
        for _ in self._threads:
            self._calls.put(None)

    def _work(self) -> None:
        while (call := self._calls.get()) is not None:
            future, fn, args = call
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as e:  # noqa: BLE001 - the caller's to see, as ThreadPoolExecutor does
                future.set_exception(e)
            else:
                future.set_result(result)


class FairScheduler:
    """Round-robin over per-client queues in front of a thread pool. Event-loop thread only."""

    def __init__(self, workers: int, per_client: int | None = None, poll_s: float = 0.25) -> None:
        self.workers = workers
        self.per_client = max(1, min(per_client or workers, workers))
        self.poll_s = poll_s
        self.pool = WorkerPool(workers, "edge-worker")
        self._queues: OrderedDict[str, deque[_Job]] = OrderedDict()
        self._running: dict[str, int] = {}
        self._free = workers
        self._closed = False
        self.dropped = 0  # jobs of disconnected clients dropped unrun

    def queued(self, client: str | None = None) -> int:
        if client is not None:
            return len(self._queues.get(client, ()))
        return sum(len(q) for q in self._queues.values())

    async def submit(self, client: str, fn: Callable[..., Any], *args: Any,
                     disconnected: Callable[[], Awaitable[bool]] | None = None) -> Any:
        if self._closed:
            raise ShuttingDown("the edge is shutting down")
        loop = asyncio.get_running_loop()
        job = _Job(client, fn, args, loop.create_future())
        self._queues.setdefault(client, deque()).append(job)
        self._dispatch(loop)
        try:
            while True:
                done, _ = await asyncio.wait({job.future}, timeout=self.poll_s)
                if done:
                    return job.future.result()
                if disconnected is not None and self._is_queued(job) and await disconnected():
                    self._remove(job)
                    self.dropped += 1
                    raise ClientGone(f"client {client} disconnected; its queued job was dropped")
        except asyncio.CancelledError:
            self._remove(job)
            raise

    def stop_accepting(self) -> None:
        """Fail every queued job with ShuttingDown (their requests answer 503 at once) and refuse new
        ones; running jobs go on. Called when the server starts its graceful shutdown."""
        self._closed = True
        for q in self._queues.values():
            while q:
                job = q.popleft()
                if not job.future.done():
                    job.future.set_exception(ShuttingDown("the edge is shutting down; retry later"))
        self._queues.clear()

    def close(self) -> None:
        """Fail every queued job with ShuttingDown and stop the pool without waiting for the running
        ones: past the grace period their clients have had their 503, and the process may exit."""
        self.stop_accepting()
        self.pool.shutdown()

    # ------------------------------------------------------------------ internals

    def _is_queued(self, job: _Job) -> bool:
        return job in self._queues.get(job.client, ())

    def _remove(self, job: _Job) -> None:
        q = self._queues.get(job.client)
        if q is not None and job in q:
            q.remove(job)
            if not q:
                del self._queues[job.client]

    def _next(self) -> _Job | None:
        for client in list(self._queues):
            q = self._queues[client]
            if q and self._running.get(client, 0) < self.per_client:
                job = q.popleft()
                self._queues.move_to_end(client)  # round robin: this client goes to the back
                if not q:
                    del self._queues[client]
                return job
        return None

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._free > 0 and not self._closed:
            job = self._next()
            if job is None:
                return
            self._free -= 1
            self._running[job.client] = self._running.get(job.client, 0) + 1
            cf = self.pool.submit(job.fn, *job.args)
            cf.add_done_callback(functools.partial(self._done_in_thread, loop, job))

    def _done_in_thread(self, loop: asyncio.AbstractEventLoop, job: _Job, f: Any) -> None:
        with contextlib.suppress(RuntimeError):  # a job that outlived the server: its loop is closed
            loop.call_soon_threadsafe(self._finished, loop, job, f)

    def _finished(self, loop: asyncio.AbstractEventLoop, job: _Job, f: Any) -> None:
        self._free += 1
        left = self._running.get(job.client, 1) - 1
        if left:
            self._running[job.client] = left
        else:
            self._running.pop(job.client, None)
        if not job.future.done():
            if f.cancelled():
                job.future.set_exception(ShuttingDown("the edge is shutting down; retry later"))
            elif f.exception() is not None:
                job.future.set_exception(f.exception())
            else:
                job.future.set_result(f.result())
        self._dispatch(loop)
