"""The edge's opt-in frame store: key frames that phones agreed to share, kept for federated learning.

Layout under ``root``::

    root/index.sqlite       the index (WAL mode): one row per frame, id -> size, shape, client, order
    root/frames/<id>.png    the frames, lossless PNG, named by the content hash the server computed

Why it is built this way:

- **Content-hash ids** (sha256 of shape + pixels) make re-sent frames free (dedupe) and mean a file
  name never comes from a client: only 64 hex digits computed here ever reach the filesystem.
- **Crash safety**: a frame is written to a temp file, fsynced, then ``os.replace``d into place and its
  row inserted inside *one* SQLite write transaction (``BEGIN IMMEDIATE``). Eviction deletes rows and
  files inside such a transaction too. A crash can therefore leave at most an orphan file (renamed but
  not committed) or a row whose file was already unlinked (rolled back); :meth:`FrameStore.reconcile`,
  run on open, removes both. Because reconciliation also takes the write lock, a second process
  opening the store (the FL client) never mistakes a frame that is being added for an orphan.
- **Quota**: the total size of the frame files is kept under ``quota_bytes`` by evicting the oldest
  frames first (insertion order), and each client's under ``client_quota_bytes`` by evicting that
  client's oldest first, so one client cannot push everyone else's frames out. Room for a frame is
  made *before* its temp file is written, so temp files count against the quota too. A frame larger
  than the client's quota, or a write that would leave less than ``min_free_bytes`` free on the disk,
  is refused with :class:`StoreFull` (and not counted as collected).
- **Only its own files**: temp files are named ``.tmp-<pid>-<hex>.png``; on open, those of
  processes no longer running (or of this one) are deleted once a minute old, any of them once ten
  minutes old: a writer in another PID namespace (another container on the same volume) looks dead
  from here, and writes a frame in milliseconds. Reconciliation deletes only regular files named like
  what it writes (64 hex digits + ``.png``, or such a temp name); anything else is left alone.
- **Readers**: ``FrameStore(root, read_only=True)`` (the federated-learning client) reads the index
  and the files and changes nothing: no reconciliation, no eviction under a quota it does not own.
- **Threads and processes**: one SQLite connection per instance guarded by a lock (the server calls
  :meth:`add` from worker threads); SQLite's own file locking and WAL let another process read while
  this one writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger("mvstylizer.edge.store")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,  -- insertion order: eviction drops the smallest first
    id      TEXT NOT NULL UNIQUE,               -- sha256 hex of shape + pixels; also the file's stem
    bytes   INTEGER NOT NULL,                   -- size of the file on disk
    height  INTEGER NOT NULL,
    width   INTEGER NOT NULL,
    client  TEXT NOT NULL DEFAULT '',           -- who contributed it (token name or address)
    added   REAL NOT NULL                       -- unix time
)
"""
_SUFFIX = ".png"
_TEMP_PREFIX = ".tmp-"
_TEMP_GRACE_S = 600.0  # any temp file younger than this may still be another writer's
_DEAD_TEMP_GRACE_S = 60.0  # ... and one whose writer looks gone, younger than this (PID namespaces)
_FRAME_NAME = re.compile(r"^[0-9a-f]{64}\.png$")
_TEMP_NAME = re.compile(r"^\.tmp-(?:(\d{1,9})-)?[\w-]+\.png$")  # with a pid, or (older versions) without
DEFAULT_MIN_FREE = 256 * 1024 * 1024  # never write a frame that would leave less free on the disk


class StoreFull(Exception):
    """A frame the store refuses to keep: over the client's quota on its own, or the disk nearly full."""


class FrameTooLarge(StoreFull):
    """This one frame is over the client's quota on its own; smaller ones may still be kept."""


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftovers (a previous process with our pid, or none yet): not in use
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError, OSError):
        return True  # cannot tell: the age limit decides
    return True


def frame_id(rgb8: np.ndarray) -> str:
    """The content hash a frame is stored under: sha256 of its shape and its pixels."""
    h = hashlib.sha256(f"{rgb8.shape[0]}x{rgb8.shape[1]}x{rgb8.shape[2]}:".encode())
    h.update(np.ascontiguousarray(rgb8).data)
    return h.hexdigest()


class FrameStore:
    """A bounded, deduplicated, crash-safe on-disk store of uint8 RGB frames (see the module docs)."""

    def __init__(self, root: Path, quota_bytes: int = 2 * 1024**3, client_quota_bytes: int | None = None,
                 min_free_bytes: int = DEFAULT_MIN_FREE, *, read_only: bool = False) -> None:
        if quota_bytes < 1:
            raise ValueError(f"quota_bytes must be >= 1, got {quota_bytes}")
        if client_quota_bytes is not None and client_quota_bytes < 1:
            raise ValueError(f"client_quota_bytes must be >= 1, got {client_quota_bytes}")
        self.root = Path(root)
        self.quota_bytes = int(quota_bytes)
        self.client_quota_bytes = min(int(client_quota_bytes or quota_bytes), self.quota_bytes)
        self.min_free_bytes = max(0, int(min_free_bytes))
        self.frames_dir = self.root / "frames"
        self.read_only = read_only
        if not read_only:
            self.frames_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction spans file operations.
        self._db = sqlite3.connect(self.root / "index.sqlite", timeout=30.0, isolation_level=None,
                                   check_same_thread=False)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
        if not read_only:  # the server's store: a reader must not evict under a quota it does not own
            self.reconcile()

    # ------------------------------------------------------------------ writing

    def add(self, rgb8: np.ndarray, client: str = "") -> str:
        """Keep a frame (HxWx3 uint8 RGB); returns its content-hash id. A known frame is not written again."""
        if rgb8.dtype != np.uint8 or rgb8.ndim != 3 or rgb8.shape[2] != 3 or 0 in rgb8.shape:
            raise ValueError(f"FrameStore.add needs an HxWx3 uint8 frame, got {rgb8.dtype} {rgb8.shape}")
        if self.read_only:
            raise RuntimeError("this FrameStore was opened read-only")
        fid = frame_id(rgb8)
        with self._lock:
            if self._db.execute("SELECT 1 FROM frames WHERE id = ?", (fid,)).fetchone():
                return fid
        # Encode and write the temp file outside the write lock: that is the slow part.
        ok, buf = cv2.imencode(_SUFFIX, cv2.cvtColor(rgb8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 3])
        if not ok:
            raise ValueError("PNG encoding failed")
        data = buf.tobytes()
        client = client[:200]
        if len(data) > self.client_quota_bytes:
            raise FrameTooLarge(f"a {len(data)}-byte frame exceeds the per-client quota of "
                                f"{self.client_quota_bytes} bytes")
        free = shutil.disk_usage(self.frames_dir).free
        if free - len(data) < self.min_free_bytes:
            raise StoreFull(f"only {free >> 20} MiB free on the disk of {self.frames_dir}; keeping "
                            f"{self.min_free_bytes >> 20} MiB free")
        with self._lock, self._transaction():  # room first: the temp file is inside the quota
            self._evict_locked(client, incoming=len(data))
        temp = self.frames_dir / f"{_TEMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}{_SUFFIX}"
        try:
            with open(temp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            with self._lock, self._transaction():
                if self._db.execute("SELECT 1 FROM frames WHERE id = ?", (fid,)).fetchone():
                    return fid  # another thread or process added it meanwhile
                os.replace(temp, self._path(fid))
                self._db.execute("INSERT INTO frames (id, bytes, height, width, client, added) "
                                 "VALUES (?, ?, ?, ?, ?, ?)",
                                 (fid, len(data), rgb8.shape[0], rgb8.shape[1], client, time.time()))
                self._evict_locked(client)
            _fsync_dir(self.frames_dir)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        return fid

    def reconcile(self) -> tuple[int, int]:
        """Make index and files agree: drop rows without a file, delete files without a row.

        Returns (rows dropped, files deleted). Run on open; safe to call any time.
        """
        dropped = deleted = 0
        with self._lock, self._transaction():
            known = {row[0] for row in self._db.execute("SELECT id FROM frames")}
            present: set[str] = set()
            now = time.time()
            foreign = 0
            for path in self.frames_dir.iterdir():
                name = path.name
                m = _TEMP_NAME.match(name)
                if m and path.is_file():
                    with contextlib.suppress(FileNotFoundError):
                        age = now - path.stat().st_mtime
                        gone = m.group(1) is not None and not _pid_alive(int(m.group(1)))
                        if age > _TEMP_GRACE_S or (gone and age > _DEAD_TEMP_GRACE_S):  # a crash's leftover
                            path.unlink()
                            deleted += 1
                    continue
                if not _FRAME_NAME.match(name) or not path.is_file():
                    foreign += 1  # not a name this store writes: never deleted
                    continue
                stem = name[: -len(_SUFFIX)]
                if stem in known:
                    present.add(stem)
                else:  # renamed into place but never committed
                    path.unlink()
                    deleted += 1
            missing = known - present
            self._db.executemany("DELETE FROM frames WHERE id = ?", [(m,) for m in missing])
            dropped = len(missing)
            self._evict_locked()  # the quota may have shrunk since the last run
        if foreign:
            log.warning("frame store %s: %d file(s) in %s not written by the store; left alone", self.root,
                        foreign, self.frames_dir)
        if dropped or deleted:
            log.warning("frame store %s: dropped %d index rows without files, deleted %d orphan files",
                        self.root, dropped, deleted)
        return dropped, deleted

    def _evict_locked(self, client: str | None = None, incoming: int = 0) -> None:
        """Drop the oldest frames until ``client``'s frames are within the per-client quota and the total
        within the quota, with ``incoming`` more bytes to come (caller holds the transaction)."""
        if client is not None:
            used = self._db.execute("SELECT COALESCE(SUM(bytes), 0) FROM frames WHERE client = ?",
                                    (client,)).fetchone()[0]
            while used + incoming > self.client_quota_bytes:
                row = self._db.execute("SELECT seq, id, bytes FROM frames WHERE client = ? ORDER BY seq LIMIT 1",
                                       (client,)).fetchone()
                if row is None:
                    break
                self._drop(row)
                used -= row[2]
        total = self._db.execute("SELECT COALESCE(SUM(bytes), 0) FROM frames").fetchone()[0]
        while total + incoming > self.quota_bytes:
            row = self._db.execute("SELECT seq, id, bytes FROM frames ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                break
            self._drop(row)
            total -= row[2]

    def _drop(self, row: tuple[int, str, int]) -> None:
        self._db.execute("DELETE FROM frames WHERE seq = ?", (row[0],))
        with contextlib.suppress(FileNotFoundError):
            self._path(row[1]).unlink()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")  # the write lock, across processes, for the whole block
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM frames").fetchone()[0]

    def __contains__(self, fid: object) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM frames WHERE id = ?", (fid,)).fetchone() is not None

    def ids(self) -> list[str]:
        """Frame ids, oldest first."""
        with self._lock:
            return [row[0] for row in self._db.execute("SELECT id FROM frames ORDER BY seq")]

    @property
    def total_bytes(self) -> int:
        """Bytes of frame files the index accounts for (what the quota bounds)."""
        with self._lock:
            return self._db.execute("SELECT COALESCE(SUM(bytes), 0) FROM frames").fetchone()[0]

    def load(self, fid: str) -> np.ndarray:
        """The frame with this id, HxWx3 uint8 RGB; KeyError if it is not (or no longer) stored."""
        if not (isinstance(fid, str) and len(fid) == 64 and all(c in "0123456789abcdef" for c in fid)):
            raise KeyError(fid)  # ids are sha256 hex; anything else must never become a path
        try:
            data = self._path(fid).read_bytes()
        except FileNotFoundError:
            raise KeyError(fid) from None
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise KeyError(fid)
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def iter_frames(self) -> Iterator[np.ndarray]:
        """Every stored frame (uint8 RGB), oldest first; frames evicted while iterating are skipped."""
        for fid in self.ids():
            try:
                yield self.load(fid)
            except KeyError:
                continue

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> FrameStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _path(self, fid: str) -> Path:
        return self.frames_dir / f"{fid}{_SUFFIX}"


def _fsync_dir(path: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
