"""Atomic outputs: a file is either the old one or the complete new one, never half written.

Every output of the package (videos, images, reports, models, caches) goes through :func:`atomic_path`
or :class:`TempTarget`: the data is written to a hidden temporary name in the target's folder and
renamed over the target only on success, so a crash, Ctrl-C or full disk never leaves a partial file.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import stat
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from mvstylizer.errors import UserError

log = logging.getLogger(__name__)


# Where a file system does not say how long a name may be: the limit of ext4, XFS, Btrfs, APFS, NTFS.
_NAME_MAX = 255
# A temporary name keeps the target's suffix (PyAV and OpenCV choose the format by it) unless the suffix
# alone would not leave room for the rest.
_MAX_KEPT_SUFFIX = 32


def _name_max(folder: Path) -> int:
    """Most bytes a file name may have in ``folder``."""
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # missing folder, no such limit, no pathconf (Windows)
        return _NAME_MAX


def _name_bytes(name: str) -> int:
    return len(os.fsencode(name))


def _path_max() -> int:
    """Most bytes a path given to the system may have (PATH_MAX, counting its terminating NUL)."""
    try:
        return os.pathconf("/", "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):
        return 4096  # Linux


def check_output_name(path: str | os.PathLike[str], what: str = "output") -> None:
    """Refuse (UserError), before any work, an output whose file name is longer than its folder allows,
    or whose whole path is longer than the system takes: the file could never be created, and only the
    final rename would find out (or the first look at the path, as an internal error)."""
    path = Path(path)
    whole, most = _name_bytes(str(path)), _path_max() - 1
    if whole > most:
        shown = str(path) if len(str(path)) <= 80 else f"{str(path)[:40]}...{str(path)[-30:]}"
        raise UserError(f"{what} path is too long ({whole} bytes; at most {most}): {shown}")
    size, limit = _name_bytes(path.name), _name_max(path.parent)
    if size > limit:
        raise UserError(f"{what} file name is too long ({size} bytes; at most {limit} here): {path}")


def check_regular_target(path: str | os.PathLike[str]) -> None:
    """Refuse (UserError) an output that exists and is neither a regular file nor a folder (links
    followed): a device, a pipe or a socket. The new file is renamed over its target, which would put a
    plain file in the node's place: ``--report /dev/null`` run as root replaced the system's /dev/null,
    and a named pipe its reader waited on was swapped for a file. (A folder is left to the callers,
    which say so in their own words.)"""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # missing (the usual case), a dangling link, a name the OS refuses
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        kind = ("a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a pipe" if stat.S_ISFIFO(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
        raise UserError(f"{path} is {kind}, not a file: outputs are written beside their target and renamed "
                        "over it, which would replace it; give a file name")


def _temp_path_beside(path: Path) -> Path:
    """A fresh hidden name in ``path``'s folder with the same suffix, no longer than names may be there.

    Same folder so ``os.replace`` is an atomic rename on one filesystem; same suffix so PyAV and
    OpenCV pick the right container / codec from the name. The file is not created here, so it gets
    normal permissions from whoever writes it (``mkstemp`` would make it 0600). The target's name is
    cut short to fit: any name the target may have, its temporary name can have too.
    """
    suffix = path.suffix if _name_bytes(path.suffix) <= _MAX_KEPT_SUFFIX else ""
    token = f".tmp-{os.getpid()}-{secrets.token_hex(4)}{suffix}"
    name = path.name
    room = _name_max(path.parent) - _name_bytes(f".{token}")
    while _name_bytes(name) > room:  # whole characters, so the name stays valid text
        name = name[:-1]
    return path.with_name(f".{name}{token}")


def _unlink_quiet(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:  # pragma: no cover - best effort cleanup
        log.warning("could not remove temporary file %s: %s", path, exc)


class TempTarget:
    """A temp file beside ``target`` that becomes ``target`` on :meth:`commit` or vanishes on
    :meth:`discard`. Shared by :func:`atomic_path` and :class:`~mvstylizer.video.writer.VideoWriter` (which cannot live
    inside one ``with`` block)."""

    def __init__(self, target: str | os.PathLike[str]) -> None:
        self.target = Path(target)
        check_output_name(self.target)
        check_regular_target(self.target)
        # A symbolic link is written through, as by any editor: the file it points to (made if the
        # link dangles) gets the new content and the link stays. Renaming over the link itself would
        # put a plain file in its place.
        self._final = Path(os.path.realpath(self.target)) if self.target.is_symlink() else self.target
        self.temp = _temp_path_beside(self._final)
        self.done = False

    def commit(self) -> None:
        if self.done:
            return
        self.done = True
        if _kept(self._final):
            self._commit_without_replacing()
            return
        try:
            os.replace(self.temp, self._final)
        except OSError as exc:
            _unlink_quiet(self.temp)
            raise UserError(f"cannot write {self.target}: {exc.strerror or exc}") from exc

    def _commit_without_replacing(self) -> None:
        """Give the temp file its final name only if nothing took that name meanwhile: a hard link
        fails on an existing name, atomically; where the file system has no hard links, look first."""
        appeared = UserError(f"{self.target} appeared while this ran (another run writing the same name?) and "
                             "was left as it is; to replace it add -y (--overwrite)")
        try:
            os.link(self.temp, self._final, follow_symlinks=False)
        except FileExistsError:
            _unlink_quiet(self.temp)
            raise appeared from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                _unlink_quiet(self.temp)
                raise UserError(f"cannot write {self.target}: {exc.strerror or exc}") from exc
            if os.path.lexists(self._final):
                _unlink_quiet(self.temp)
                raise appeared from None
            try:
                os.replace(self.temp, self._final)
            except OSError as exc2:
                _unlink_quiet(self.temp)
                raise UserError(f"cannot write {self.target}: {exc2.strerror or exc2}") from exc2
            return
        _unlink_quiet(self.temp)

    def discard(self) -> None:
        if self.done:
            return
        self.done = True
        _unlink_quiet(self.temp)


# Outputs that must not replace a file: checked absent at the start (check_overwrite without -y), and
# still not replaced if one appears there before the end (two runs writing the same name at once).
# A count per name: two runs in one process may guard the same name, and the first to finish must
# not lift the guard of the other (whose commit would then replace the first's output).
_keep: Counter[Path] = Counter()
_keep_lock = threading.Lock()


def _kept(path: Path) -> bool:
    with _keep_lock:
        return _keep[Path(os.path.abspath(path))] > 0


@contextmanager
def keep_existing(path: str | os.PathLike[str]) -> Iterator[None]:
    """While the block runs, an output committed to ``path`` never replaces a file that appeared there
    after :func:`check_overwrite` found the name free: the second of two runs writing the same name
    without -y is refused at its end instead of silently replacing the first's output."""
    key = Path(os.path.abspath(path))
    with _keep_lock:
        _keep[key] += 1
    try:
        yield
    finally:
        with _keep_lock:
            _keep[key] -= 1
            if _keep[key] <= 0:
                del _keep[key]


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside ``path`` (same suffix); rename it over ``path`` if the block
    succeeds, delete it if the block raises. Readers of ``path`` see the old file or the complete
    new one, never a partial write."""
    target = TempTarget(path)
    try:
        yield target.temp
    except BaseException:
        target.discard()
        raise
    target.commit()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_path`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def check_writable_folder(folder: str | os.PathLike[str], what: str = "output") -> None:
    """Refuse (UserError), before any work, a folder that is missing or where no file can be created."""
    resolved = Path(folder).resolve()
    if not resolved.is_dir():
        raise UserError(f"{what} folder does not exist: {folder}")
    if not os.access(resolved, os.W_OK | os.X_OK):
        raise UserError(f"{what} folder is not writable: {folder}")
    # access() answers from the permission bits, and root passes them everywhere: a folder that refuses
    # new files anyway (/sys or /proc, an immutable folder, root squashed on NFS, an LSM policy) was
    # found out only when the output was renamed into place, after the work. Trying is the only test.
    probe = resolved / f".mvstylizer-probe-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        raise UserError(f"{what} folder is not writable: {folder} ({exc.strerror or exc})") from None
    _unlink_quiet(probe)


def check_output_folder(folder: str | os.PathLike[str], what: str, *, made: bool = False) -> None:
    """Refuse (UserError), before any work, a folder a run writes its files into that it could not:
    a file in its place, a missing folder (unless ``made``: then its parent must take it), or one that
    takes no new file. A benchmark that found out when it wrote its plots lost the whole run."""
    p = Path(folder)
    if p.exists() and not p.is_dir():
        raise UserError(f"{what} {folder} is a file, not a folder")
    if p.is_dir():
        check_writable_folder(p, what)
    elif made:
        check_writable_folder(p.parent, what)
    else:
        raise UserError(f"{what} folder does not exist: {folder}")


def check_input_file(path: str | os.PathLike[str], what: str) -> None:
    """Refuse (UserError) an input that is missing or a folder, saying which."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{what} {path} is a folder, not a file")
    if not p.is_file():
        raise UserError(f"{what} not found: {path}")


def check_overwrite(output_path: str | os.PathLike[str], overwrite: bool) -> None:
    """Refuse (UserError) to replace an existing file unless asked to (FFmpeg's ``-y``), or to take a
    name too long to create (:func:`check_output_name`), or a device, pipe or socket even with ``overwrite``
    (:func:`check_regular_target`)."""
    check_output_name(output_path)
    check_regular_target(output_path)
    # lexists: a link to nothing is still something the user may not want replaced.
    if os.path.lexists(output_path) and not overwrite:
        raise UserError(f"{output_path} already exists; to replace it add -y (--overwrite) on the command line, "
                        "or pass overwrite=True from Python")


def lock_folder(folder: Path, busy: str) -> IO[bytes] | None:
    """Take ``folder``'s lock (``folder/.lock``, advisory, released when the returned file is closed or
    its process ends); UserError(``busy``) if another process holds it. None where there is no flock."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        return None
    try:
        f = open(folder / ".lock", "ab")  # held open, and locked, by the caller
    except OSError as e:
        raise UserError(f"cannot use {folder}: {e.strerror or e}") from None
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise UserError(busy) from None
    return f


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: equal once resolved, or the same file on disk (hard links)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_report_folder(path: Path | None, *keep: str | os.PathLike[str] | None) -> None:
    """Refuse, before any work, a report path that could not be written or would replace one of
    ``keep`` (the run's input, style or output)."""
    if path is None:
        return
    check_output_name(path, "report")  # a path too long: is_dir() itself would fail on it
    if path.is_dir():
        raise UserError(f"report {path} is a folder; give a file name")
    check_regular_target(path)
    # A link is written through (files.TempTarget), so the folder that matters is its target's: a link
    # into a missing folder passed here and failed only after the whole run.
    folder = Path(os.path.realpath(path)).parent if path.is_symlink() else path.parent
    check_writable_folder(folder, "report")
    for other in keep:
        if other is not None and same_file(path, Path(other)):
            raise UserError(f"report {path} would overwrite {other}; choose another report path")
