"""Atomic outputs: a file is either the old one or the complete new one, never half written.

Every output of the package (videos, images, reports, models, caches) goes through :func:`atomic_path`
or :class:`TempTarget`: the data is written to a hidden temporary name in the target's folder and
renamed over the target only on success, so a crash, Ctrl-C or full disk never leaves a partial file.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mvstylizer.errors import UserError

log = logging.getLogger(__name__)


def _temp_path_beside(path: Path) -> Path:
    """A fresh hidden name in ``path``'s folder with the same suffix.

    Same folder so ``os.replace`` is an atomic rename on one filesystem; same suffix so PyAV and
    OpenCV pick the right container / codec from the name. The file is not created here, so it gets
    normal permissions from whoever writes it (``mkstemp`` would make it 0600).
    """
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    return path.with_name(f".{path.name}.tmp-{token}{path.suffix}")


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
        self.temp = _temp_path_beside(self.target)
        self.done = False

    def commit(self) -> None:
        if self.done:
            return
        self.done = True
        try:
            os.replace(self.temp, self.target)
        except OSError as exc:
            _unlink_quiet(self.temp)
            raise UserError(f"cannot write {self.target}: {exc.strerror or exc}") from exc

    def discard(self) -> None:
        if self.done:
            return
        self.done = True
        _unlink_quiet(self.temp)


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


def check_overwrite(output_path: str | os.PathLike[str], overwrite: bool) -> None:
    """Refuse (UserError) to replace an existing file unless asked to (FFmpeg's ``-y``)."""
    if Path(output_path).exists() and not overwrite:
        raise UserError(f"{output_path} already exists; to replace it add -y (--overwrite) on the command line, "
                        "or pass overwrite=True from Python")
