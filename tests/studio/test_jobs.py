"""JobQueue: what other threads may read of a job while the queue's worker finishes it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mvstylizer.errors import UserError
from mvstylizer.studio.jobs import FINISHED, Cancelled, Job, JobQueue, StyleRef


class _Watched(Job):
    """Records, at each change to a finished state, whether the finishing time was already there:
    readers take no lock, so a finished job without a time sorted as the oldest when space was freed."""

    def __setattr__(self, name, value):
        if name == "state" and value in FINISHED:
            self.__dict__.setdefault("seen", []).append(self.finished is not None)
        super().__setattr__(name, value)


def _job(tmp_path: Path, n: int) -> _Watched:
    return _Watched(f"j{n}", "s", tmp_path, "u", "v.mp4", tmp_path / "v.mp4", None,
                    StyleRef("gallery:x", "x", tmp_path / "x.png"), "mk", 1.0, 10)


def _render(job: Job, _progress) -> None:
    if job.id == "j1":
        raise UserError("bad video")
    if job.id == "j2":
        raise Cancelled
    if job.id == "j3":
        raise RuntimeError("a bug")


@pytest.mark.parametrize("n, state", [(0, "done"), (1, "failed"), (2, "cancelled"), (3, "failed")])
def test_a_finished_state_is_never_seen_without_its_time(tmp_path, n, state):
    ended = threading.Event()
    jobs = JobQueue(_render, lambda job: job.state in FINISHED and ended.set())
    job = _job(tmp_path, n)
    jobs.submit(job)
    assert ended.wait(30)
    jobs.stop()
    assert job.state == state and job.seen == [True]


def test_a_queued_job_cancelled_has_its_time_first(tmp_path):
    jobs = JobQueue(_render, lambda job: None)
    job = _job(tmp_path, 0)
    jobs.cancel(job)
    assert job.state == "cancelled" and job.seen == [True]
