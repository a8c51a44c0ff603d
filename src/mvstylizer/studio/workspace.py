"""The work folder: one session per browser tab, its uploads, styles and jobs, a size limit and an age limit.

Layout (everything under ``workdir/sessions`` belongs to the running server and is emptied at start)::

    workdir/sessions/<session>/videos/<id>/source.mp4, frame0.jpg ...   an upload and its preview frames
    workdir/sessions/<session>/styles/<id>/style.png, thumb.jpg         an uploaded style photo
    workdir/sessions/<session>/jobs/<id>/stylized.mp4, look.cube, report.json
    workdir/gallery/<name>.jpg                                          gallery thumbnails (shared)

Files are found through the session's records only (ids the server made), never by joining a name
from a request to a path, so one tab cannot reach another's files: an id of another session is
simply not there (404).
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..errors import NotFoundError, UserError
from ..files import lock_folder
from .jobs import ACTIVE, Job
from .media import VideoFacts, human_bytes

log = logging.getLogger(__name__)

MARKER = ".mvstylizer-studio"
MAX_PREVIEWS = 12  # cached previews per session (small JPEGs in memory)


class SessionUnknown(UserError):
    http_status = 401


class TooManySessions(UserError):
    http_status = 503


class WorkFolderFull(UserError):
    http_status = 507


@dataclass
class Upload:
    id: str
    name: str
    dir: Path
    source: Path
    facts: VideoFacts
    frames: list[tuple[int, float]] = field(default_factory=list)  # (index, seconds) of frame{i}.jpg
    warnings: list[str] = field(default_factory=list)  # what reading it found wrong (frames lost, cut short)
    created: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.time)

    def frame_path(self, i: int) -> Path:
        return self.dir / f"frame{i}.jpg"

    def as_dict(self) -> dict:
        return {"id": self.id, "name": self.name, **self.facts.as_dict(), "warnings": self.warnings,
                "frames_preview": [{"index": i, "time": round(t, 3), "url": f"/api/videos/{self.id}/frames/{k}.jpg"}
                                   for k, (i, t) in enumerate(self.frames)]}


@dataclass
class Style:
    id: str
    name: str
    dir: Path
    created: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.time)
    width: int = 0
    height: int = 0
    warnings: list[str] = field(default_factory=list)  # what makes it a poor style (too small, too thin)

    @property
    def image(self) -> Path:
        return self.dir / "style.png"

    @property
    def thumb(self) -> Path:
        return self.dir / "thumb.jpg"

    def as_dict(self) -> dict:
        return {"key": f"upload:{self.id}", "id": self.id, "name": self.name, "width": self.width,
                "height": self.height, "thumb": f"/api/styles/{self.id}/thumb.jpg", "warnings": self.warnings}


@dataclass
class Session:
    id: str
    dir: Path
    created: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.time)
    uploads: dict[str, Upload] = field(default_factory=dict)
    styles: dict[str, Style] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    preview_seq: int = 0  # the highest preview request number seen; lower ones still waiting are skipped
    streams: int = 0  # event streams open: while one is, the session is in use, however long ago its last request
    uploading: int = 0  # uploads arriving now (each holds room in the work folder)

    def upload(self, upload_id: str) -> Upload:
        up = self.uploads.get(upload_id)
        if up is None:
            raise NotFoundError("that video is no longer here (removed after a while or to free space); "
                                "drop it again")
        up.last_used = time.time()
        return up

    def style(self, style_id: str) -> Style:
        st = self.styles.get(style_id)
        if st is None:
            raise NotFoundError("that style photo is no longer here; drop it again")
        st.last_used = time.time()
        return st

    def job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFoundError("no such job")
        return job

    @property
    def holds_files(self) -> bool:
        return bool(self.uploads or self.styles or self.jobs)

    @property
    def in_use(self) -> bool:
        """A render of its waiting or running, or a page watching (an event stream open)."""
        return bool(self.streams) or any(j.state in ACTIVE for j in self.jobs.values())


class PreviewCache:
    """Previews (a few JPEGs each) kept in memory for their sessions: at most :data:`MAX_PREVIEWS` a
    session and ``max_bytes`` in all, the least recently used going first, whoever's they are
    (sessions cost nothing to make, so a per-session count alone bounded nothing)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._items: OrderedDict[tuple[str, str], dict] = OrderedDict()  # (session, look) -> preview
        self._lock = threading.Lock()

    def get(self, session: str, key: str) -> dict | None:
        with self._lock:
            preview = self._items.get((session, key))
            if preview is not None:
                self._items.move_to_end((session, key))
            return preview

    def find(self, session: str, preview_id: str) -> dict | None:
        with self._lock:
            return next((p for (sid, _key), p in self._items.items() if sid == session and p["id"] == preview_id),
                        None)

    def put(self, session: str, key: str, preview: dict) -> None:
        with self._lock:
            self._pop((session, key))
            self._items[(session, key)] = preview
            self.nbytes += _size(preview)
            mine = [k for k in self._items if k[0] == session]
            for old in mine[:-MAX_PREVIEWS]:
                self._pop(old)
            while self.nbytes > self.max_bytes and len(self._items) > 1:  # the newest stays: the page asked for it
                self._pop(next(iter(self._items)))

    def drop(self, session: str, prefix: str = "") -> None:
        """Forget a session's previews (those whose look starts with ``prefix``)."""
        with self._lock:
            for k in [k for k in self._items if k[0] == session and k[1].startswith(prefix)]:
                self._pop(k)

    def _pop(self, k: tuple[str, str]) -> None:
        preview = self._items.pop(k, None)
        if preview is not None:
            self.nbytes -= _size(preview)


def _size(preview: dict) -> int:
    return sum(len(image) for image in preview["images"])


Candidate = tuple[float, str, Session, Job | Upload | Style]  # (time, kind, owner, item): what may be removed


def new_id() -> str:
    return secrets.token_urlsafe(9)


def tree_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


@dataclass(eq=False)
class Hold:
    """Room promised to a write in progress (an upload, a render's output): what is promised and not
    yet in its files counts as used, so two writes at once are not both promised the same free bytes."""

    session: str
    granted: int = 0  # bytes promised so far
    written: int = 0  # of those, now in files (and counted there)

    @property
    def nbytes(self) -> int:
        return max(0, self.granted - self.written)


class Workspace:
    """Sessions and their files, within ``max_bytes`` and ``ttl`` seconds; at most ``max_sessions``
    sessions, and ``preview_bytes`` of previews in memory."""

    def __init__(self, root: Path, max_bytes: int, ttl: float, *, max_sessions: int = 500,
                 preview_bytes: int = 64 << 20) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.max_sessions = max_sessions
        self.previews = PreviewCache(preview_bytes)
        self.sessions_dir = self.root / "sessions"
        self.gallery_dir = self.root / "gallery"
        self.lock = threading.RLock()
        self._sessions: dict[str, Session] = {}
        self._holds: list[Hold] = []
        self._lock_file: IO[bytes] | None = None
        self._prepare()

    def _prepare(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            marker = self.root / MARKER
            if not marker.exists():
                if any(p.name != "gallery" for p in self.root.iterdir()):
                    # Not a folder we made: never empty someone's folder; work in a subfolder of it.
                    self.root = self.root / "mvstylizer-studio"
                    self.sessions_dir, self.gallery_dir = self.root / "sessions", self.root / "gallery"
                    self.root.mkdir(exist_ok=True)
                    marker = self.root / MARKER
                marker.write_text("work folder of `mvstylizer studio`; its sessions/ is emptied at start\n")
            self._claim()
            if self.sessions_dir.exists():  # files of a previous run: no session owns them any more
                shutil.rmtree(self.sessions_dir, ignore_errors=True)
            self.sessions_dir.mkdir(exist_ok=True)
            self.gallery_dir.mkdir(exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot use work folder {self.root}: {exc.strerror or exc}") from None

    def _claim(self) -> None:
        """Hold the folder's lock for this studio's life: a second studio on the same folder emptied
        sessions/ at its start, under the first one's running renders and open pages."""
        self._lock_file = lock_folder(self.root, f"work folder {self.root} is in use by another running "
                                                 "studio; give this one another --workdir")

    def close(self) -> None:
        """Let another studio use the folder (also done when the workspace is garbage collected)."""
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    # -- sessions ---------------------------------------------------------------------------------

    def new_session(self) -> Session:
        """A new session; at the limit, the one idle longest (one without a page watching, then without
        files, first) is forgotten, files and all, or TooManySessions if every one has a render waiting
        or running."""
        sid = secrets.token_urlsafe(18)
        s = Session(sid, self.sessions_dir / sid)
        with self.lock:
            if len(self._sessions) >= self.max_sessions:
                # An upload arriving holds room: forgotten, its folder went from under it and the upload
                # failed as "input video not found".
                writing = {h.session for h in self._holds}
                idle = [o for o in self._sessions.values()
                        if o.id not in writing and not any(j.state in ACTIVE for j in o.jobs.values())]
                if not idle:
                    raise TooManySessions("the studio is busy: every one of its sessions has a render waiting or "
                                          "running or an upload arriving; try again later")
                oldest = min(idle, key=lambda o: (o.streams > 0, o.holds_files, o.last_seen))
                log.info("%d sessions: forgetting session %s, idle the longest", len(self._sessions), oldest.id[:6])
                self._forget(oldest)
            self._sessions[sid] = s
        return s

    def _forget(self, s: Session) -> None:
        del self._sessions[s.id]
        self.previews.drop(s.id)
        shutil.rmtree(s.dir, ignore_errors=True)

    def session(self, sid: str | None) -> Session:
        with self.lock:
            s = self._sessions.get(sid or "")
            if s is None:
                raise SessionUnknown("this page's session has ended (the studio restarted or it was idle too "
                                     "long): reload the page")
            s.last_seen = time.time()
            return s

    def find(self, sid: str) -> Session | None:
        """A session by id, if it is still there (not a request of its own: its idle time is kept)."""
        with self.lock:
            return self._sessions.get(sid)

    def sessions(self) -> list[Session]:
        with self.lock:
            return list(self._sessions.values())

    # -- new files --------------------------------------------------------------------------------

    def new_dir(self, session: Session, kind: str) -> tuple[str, Path]:
        item = new_id()
        path = session.dir / kind / item
        path.mkdir(parents=True, exist_ok=True)
        return item, path

    def hold(self, session: Session) -> Hold:
        """A new, empty promise of room for ``session``; :meth:`release` it when the write ends."""
        hold = Hold(session.id)
        with self.lock:
            self._holds.append(hold)
        return hold

    def written(self, hold: Hold, nbytes: int) -> None:
        """``nbytes`` more of the promised room are now in files (and counted there)."""
        with self.lock:
            hold.written += nbytes

    def release(self, hold: Hold) -> None:
        with self.lock:
            if hold in self._holds:
                self._holds.remove(hold)

    def reserve(self, nbytes: int, session: Session, hold: Hold, *, keep: Collection[str] = (),
                others: bool = False) -> list[Job]:
        """Promise ``nbytes`` more to ``hold``, making room if needed:
        ``session``'s own oldest files no job needs (never those whose ids are in ``keep``) and, with
        ``others``, files of sessions over their fair share (see :meth:`_victims`). Returns the jobs
        whose files went; WorkFolderFull, with nothing removed, if that is not enough room.

        An upload passes ``others=False``: bytes not yet known to be a video or a photo must not cost
        another tab its files (an upload refused as "not a video" had removed others' renders).
        """
        if nbytes > self.max_bytes:  # no eviction can make this fit: refuse before removing anything
            raise WorkFolderFull(f"this needs {human_bytes(nbytes)}, more than the studio's whole work folder "
                                 f"({human_bytes(self.max_bytes)}); start it with a larger --max-work-mb")
        with self.lock:
            victims: list[Candidate] = []
            if self.usage() + nbytes > self.max_bytes:
                victims, after = self._victims(nbytes, keep, session, others)
                if after + nbytes > self.max_bytes:
                    raise WorkFolderFull(f"studio storage full: the work folder ({human_bytes(self.max_bytes)} "
                                         "limit) holds renders, the files they need and other tabs' files; try "
                                         "again when a render is done, or remove finished ones")
            hold.granted += nbytes
            return self._remove_all(victims)

    def usage(self) -> int:
        """Bytes the sessions' files take, plus the room promised to writes in progress."""
        with self.lock:
            return tree_size(self.sessions_dir) + sum(h.nbytes for h in self._holds)

    def _usage_by_session(self) -> dict[str, int]:
        sizes = {sid: tree_size(s.dir) for sid, s in self._sessions.items()}
        for h in self._holds:
            sizes[h.session] = sizes.get(h.session, 0) + h.nbytes
        return sizes

    # -- clean-up ---------------------------------------------------------------------------------

    def _in_use(self) -> tuple[set[str], set[str]]:
        uploads, styles = set(), set()
        for s in self._sessions.values():
            for job in s.jobs.values():
                if job.state in ACTIVE:
                    uploads.add(job.upload_id)
                    if job.style.key.startswith("upload:"):
                        styles.add(job.style.key.partition(":")[2])
        return uploads, styles

    def _candidates(self) -> list[Candidate]:
        """Removable things, oldest first: finished jobs' files, then unused uploads and styles."""
        uploads, styles = self._in_use()
        out: list[Candidate] = []
        for s in self._sessions.values():
            out += [(j.finished or j.created, "job", s, j) for j in s.jobs.values()
                    if j.state not in ACTIVE and not j.expired]
            out += [(u.last_used, "upload", s, u) for u in s.uploads.values() if u.id not in uploads]
            out += [(st.last_used, "style", s, st) for st in s.styles.values() if st.id not in styles]
        # Finished jobs go first (oldest first), then uploads and styles: an upload is what a user works on.
        return sorted(out, key=lambda c: (c[1] != "job", c[0]))

    def _remove(self, kind: str, s: Session, item: Job | Upload | Style) -> list[Job]:
        """Remove one candidate's files; returns jobs whose state changed (for the page)."""
        if isinstance(item, Job):
            shutil.rmtree(item.dir, ignore_errors=True)
            item.expired = True
            return [item]
        if isinstance(item, Upload):
            s.uploads.pop(item.id, None)
            self.previews.drop(s.id, item.id + "|")
        else:
            s.styles.pop(item.id, None)
        shutil.rmtree(item.dir, ignore_errors=True)
        return []

    def make_room(self, session: Session | None = None) -> list[Job]:
        """Remove the oldest finished jobs, then unused uploads and styles, until the folder is within
        its limit (or nothing more may go: see :meth:`_victims`); returns the jobs whose files went."""
        with self.lock:
            return self._remove_all(self._victims(0, (), session, True)[0])

    def _victims(self, nbytes: int, keep: Collection[str], session: Session | None,
                 others: bool) -> tuple[list[Candidate], int]:
        """What to remove, oldest first, for ``nbytes`` more to fit, and the usage once it is gone;
        never the files whose ids are in ``keep``.

        For ``session``'s request, only its own files, and, with ``others``, those of sessions over
        their fair share (the folder split evenly between the sessions that hold files) while
        ``session`` stays within its own: one tab cannot push every other tab's files out. Without a
        session (clean-up), the oldest, whoever's they are.
        """
        sizes = self._usage_by_session()
        usage = self.usage()
        holders = {sid for sid, size in sizes.items() if size > 0} | ({session.id} if session else set())
        share = self.max_bytes / max(1, len(holders))
        mine = sizes.get(session.id, 0) + nbytes if session else 0
        victims: list[Candidate] = []
        for c in self._candidates():
            if usage + nbytes <= self.max_bytes:
                break
            _t, _kind, s, item = c
            if item.id in keep:
                continue
            if session is not None and s is not session and not (others and sizes[s.id] > share >= mine):
                continue
            size = tree_size(item.dir)
            victims.append(c)
            usage -= size
            sizes[s.id] -= size
        return victims, usage

    def _remove_all(self, victims: list[Candidate]) -> list[Job]:
        changed: list[Job] = []
        for _t, kind, s, item in victims:
            log.info("work folder over %s: removing %s %s of session %s", human_bytes(self.max_bytes), kind,
                     item.id, s.id[:6])
            changed += self._remove(kind, s, item)
        return changed

    def sweep(self, now: float | None = None) -> list[Job]:
        """Remove what is older than the age limit, and sessions idle that long with nothing running
        and no event stream open."""
        now = time.time() if now is None else now
        changed: list[Job] = []
        with self.lock:
            for _t, kind, s, item in self._candidates():
                if _t < now - self.ttl:
                    changed += self._remove(kind, s, item)
            for s in list(self._sessions.values()):
                if s.last_seen < now - self.ttl and not s.in_use:
                    self._forget(s)
        return changed

    def prune_jobs(self, s: Session, keep: int) -> list[Job]:
        """Forget ``s``'s finished jobs but the ``keep`` that finished last, files and all; returns them."""
        with self.lock:
            finished = sorted((j for j in s.jobs.values() if j.state not in ACTIVE),
                              key=lambda j: j.finished or j.created)
            gone = finished[:max(0, len(finished) - keep)]
            for job in gone:
                self.forget_job(s, job)
            return gone

    def forget_job(self, s: Session, job: Job) -> None:
        with self.lock:
            s.jobs.pop(job.id, None)
            shutil.rmtree(job.dir, ignore_errors=True)
