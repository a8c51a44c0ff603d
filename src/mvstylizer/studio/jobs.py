"""Render jobs: a queue with one worker thread, live progress, cancel between frames.

A job renders one uploaded video with one style through
:meth:`mvstylizer.VideoStylizer.stylize_file` (the same pipeline as ``mvstylizer stylize``: key
frames to the edge, the rest from their keys' colour transforms, the input's timing and audio).
Its ``on_frame`` hook, called after each written frame, counts progress and raises
:class:`Cancelled` once the job is cancelled. The MP4 is written under a temporary name and renamed
when complete, so a cancelled or failed job never leaves a half-written file.

Jobs run one at a time (the pipeline already uses every core); the others wait in the queue, where
sessions take turns.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from . import media

log = logging.getLogger(__name__)

ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled")


class Cancelled(Exception):
    """Raised inside a render when its job was cancelled."""


@dataclass
class StyleRef:
    """The style a job or a preview uses: an uploaded photo or a gallery one."""

    key: str  # "upload:<id>" or "gallery:<id>"
    name: str
    path: Path


@dataclass
class Job:
    id: str
    session: str
    dir: Path
    upload_id: str
    video_name: str
    video_path: Path
    content_frame: Path | None  # a frame of the footage (the LUT's colour normalisation)
    style: StyleRef
    model: str
    strength: float
    frames_total: int
    state: str = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    frames_out: int = 0  # stylized and encoded
    error: str | None = None
    lut_reason: str | None = None
    summary: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # what reading the video found wrong (frames lost)
    expired: bool = False  # its files were removed (work-folder limit or age)
    rev: int = 0  # bumped at every published change: the page keeps the newest of what reaches it
    cancel: threading.Event = field(default_factory=threading.Event)

    @staticmethod
    def new_id() -> str:
        return secrets.token_urlsafe(9)

    @property
    def video_file(self) -> Path:
        return self.dir / "stylized.mp4"

    @property
    def lut_file(self) -> Path:
        return self.dir / "look.cube"

    @property
    def report_file(self) -> Path:
        return self.dir / "report.json"

    @property
    def download_stem(self) -> str:
        stem = Path(self.video_name).stem[:60] or "video"
        style = Path(self.style.name).stem[:40] or "style"
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{stem}_{style}")

    @property
    def progress(self) -> float:
        if self.state == "done":
            return 1.0
        if not self.frames_total:
            return 0.0
        return min(0.99, self.frames_out / self.frames_total)

    def as_dict(self) -> dict:
        done = self.state == "done" and not self.expired
        base = f"/api/jobs/{self.id}"
        now = time.time()
        return {
            "id": self.id, "rev": self.rev, "state": self.state, "progress": round(self.progress, 4),
            "frames_done": self.frames_out, "frames_total": self.frames_total,
            "video_name": self.video_name, "style_name": self.style.name, "style_key": self.style.key,
            "model": self.model, "strength": self.strength, "error": self.error, "expired": self.expired,
            "created": self.created, "started": self.started, "finished": self.finished,
            "elapsed": round((self.finished or now) - self.started, 2) if self.started else 0.0,
            "video": f"{base}/video" if done else None,
            "lut": f"{base}/lut" if done and self.lut_file.is_file() else None,
            "lut_reason": self.lut_reason,
            "report": f"{base}/report" if done and self.report_file.is_file() else None,
            "summary": self.summary, "warnings": self.warnings,
        }


class JobQueue:
    """Runs jobs one at a time on a worker thread, taking turns between sessions (a tab that queued
    eight renders does not make the next tab wait for all eight); ``on_change(job)`` after every
    state or progress change."""

    def __init__(self, render: Callable[[Job, Callable[[], None]], None], on_change: Callable[[Job], None]) -> None:
        self._render = render
        self._on_change = on_change
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        # Sessions in the order of their turn, each with its waiting jobs, oldest first.
        self._waiting: OrderedDict[str, deque[Job]] = OrderedDict()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.current: Job | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="mvstylizer-studio-jobs", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel the running job, drop the queued ones and end the worker."""
        with self._wake:
            if self.current is not None:
                self.current.cancel.set()
            self._stopping = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def submit(self, job: Job) -> None:
        self.start()
        with self._wake:
            self._waiting.setdefault(job.session, deque()).append(job)
            self._wake.notify()
        self._on_change(job)

    def cancel(self, job: Job) -> None:
        """A queued job is cancelled at once; a running one at its next written frame."""
        with self._lock:
            job.cancel.set()
            if job.state == "queued":
                _end(job, "cancelled")
        self._on_change(job)

    def _take(self) -> Job | None:
        """The next job to run, marked running: the oldest of the session whose turn it is, which then
        goes to the back of the line; None once stopped."""
        with self._wake:
            while not self._stopping:
                for session in list(self._waiting):
                    jobs = self._waiting.pop(session)
                    while jobs and jobs[0].state != "queued":  # cancelled while it waited
                        jobs.popleft()
                    if not jobs:
                        continue
                    job = jobs.popleft()
                    if jobs:
                        self._waiting[session] = jobs
                    job.state, job.started = "running", time.time()
                    self.current = job
                    return job
                self._wake.wait()
            return None

    def _work(self) -> None:
        while (job := self._take()) is not None:
            self._on_change(job)
            try:
                self._render(job, _Progress(job, self._on_change))
                with self._lock:  # as cancel() takes it: a cancel either lands before this or finds the job done
                    if job.cancel.is_set():  # cancelled while its report and LUT were written: the cancel wins
                        for path in (job.video_file, job.report_file, job.lut_file):
                            path.unlink(missing_ok=True)
                        _end(job, "cancelled")
                    else:
                        _end(job, "done")
            except Cancelled:
                _end(job, "cancelled")
            except UserError as exc:
                _end(job, "failed", str(exc).replace(str(job.video_path), job.video_name))
                log.warning("job %s failed: %s", job.id, job.error)
            except Exception as exc:  # noqa: BLE001 - a bug: one line for the page, the details in the log
                _end(job, "failed", f"internal error ({type(exc).__name__}); the server log has the details")
                log.error("job %s: internal error: %s: %s", job.id, type(exc).__name__, exc)
                log.debug("job %s traceback", job.id, exc_info=True)
            finally:
                if job.finished is None:  # interrupted by something none of the above caught
                    job.finished = time.time()
                with self._lock:
                    self.current = None
                self._on_change(job)


def _end(job: Job, state: str, error: str | None = None) -> None:
    """A job's last state, its time first: other threads read the state without the runner's lock,
    and a job that reads as finished but has no finishing time sorted as the oldest one, so freeing
    space removed the newest result instead of the oldest."""
    job.finished = time.time()
    if error is not None:
        job.error = error
    job.state = state


class _Progress:
    """Called by a render between frames: raises :class:`Cancelled` once its job is cancelled, and
    reports progress at most ten times a second."""

    def __init__(self, job: Job, on_change: Callable[[Job], None]) -> None:
        self.job, self.on_change, self.last = job, on_change, 0.0

    def __call__(self) -> None:
        if self.job.cancel.is_set():
            raise Cancelled
        now = time.monotonic()
        if now - self.last >= 0.1:
            self.last = now
            self.on_change(self.job)


ROOM_CHECK_FRAMES = 10  # a render's output is weighed against its room every this many frames


class Renderer:
    """Renders a :class:`Job` with the Python API (embedded edge, or a remote one via ``edge``).

    ``check_room(job)`` runs every :data:`ROOM_CHECK_FRAMES` written frames; it raises (a
    :class:`~mvstylizer.errors.UserError`, failing the job) when the output has outgrown the room
    the work folder can give it. ``frame_hook(job, index)`` (tests) runs after each written frame.
    """

    def __init__(self, *, edge: str | None = None, token: str | None = None, crf: int = 18,
                 preset: str = "veryfast", frame_hook: Callable[[Job, int], None] | None = None,
                 check_room: Callable[[Job], None] | None = None) -> None:
        self.edge, self.token, self.crf, self.preset = edge, token, crf, preset
        self.frame_hook = frame_hook
        self.check_room = check_room

    def __call__(self, job: Job, progress: Callable[[], None]) -> None:
        from ..api import VideoStylizer
        from ..files import atomic_write_text

        def on_frame(written: int, total: int | None) -> None:
            job.frames_out, job.frames_total = written, total or job.frames_total
            if self.frame_hook is not None:
                self.frame_hook(job, written - 1)
            if self.check_room is not None and written % ROOM_CHECK_FRAMES == 0:
                self.check_room(job)
            # Raises Cancelled, which the pipeline passes on after dropping its unfinished file; after
            # the last frame this is the check that lets a late cancel win over the rename.
            progress()

        job.dir.mkdir(parents=True, exist_ok=True)
        with media.read_warnings(job.video_path, job.video_name) as job.warnings, \
                VideoStylizer(job.model, strength=job.strength, edge=self.edge, token=self.token, crf=self.crf,
                              preset=self.preset) as vs:
            report = vs.stylize_file(job.video_path, job.style.path, job.video_file, overwrite=True,
                                     on_frame=on_frame)
        job.frames_total = job.frames_out
        report.input, report.output = job.video_name, f"{job.download_stem}.mp4"
        summary = report.summary()
        summary.update(style=job.style.name, strength=job.strength, studio_job=job.id)
        atomic_write_text(job.report_file, json.dumps(summary, indent=2) + "\n")
        job.summary = {"keys": summary["key_count"], "key_reasons": summary["key_reasons"],
                       "model": summary["model"], "seconds": summary["total_seconds"],
                       "size": [report.width, report.height], "fps": round(report.fps, 3)}
        self._lut(job)

    def _lut(self, job: Job) -> None:
        """The job's look as a .cube LUT, where the API can write one (global models: dncm)."""
        from ..api import export_lut

        try:
            export_lut(job.style.path, job.lut_file, content=job.content_frame, size=33, overwrite=True,
                       model=job.model, strength=job.strength)
        except UserError as exc:
            job.lut_reason = str(exc).split("; `export-lut", 1)[0]
