"""The ``mvstylizer`` command line: one module per command group, each with ``register(sub)``.

A command's parser names its handler (``set_defaults(handler=...)``); :func:`main` runs it and turns
what escapes into one line and an exit code: 2 bad input (or stdout that cannot be written: a full
disk), 70 a bug, 130 Ctrl-C, 141 a closed pipe, 143 SIGTERM/SIGHUP.
"""

from __future__ import annotations

import argparse
import errno
import io
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from ..errors import UserError
from .args import use_defaults_help


def build_parser() -> argparse.ArgumentParser:
    # The command groups import the registries (numpy, OpenCV, ...): most of a second, inside main's
    # handling of Ctrl-C rather than while the console script imports this module.
    from .. import __version__
    from . import bench, edge, fl, studio, stylize, train

    p = argparse.ArgumentParser(prog="mvstylizer", description="Edge-assisted photorealistic video style transfer.")
    p.add_argument("--version", action="version", version=f"mvstylizer {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more messages: -v info, -vv debug")
    p.add_argument("--log-level", dest="global_log_level", choices=["debug", "info", "warning", "error"],
                   help="messages shown from the library (default warning; `edge serve` has its own)")
    sub = p.add_subparsers(dest="command", required=True)

    for group in (stylize, bench, train, studio, edge, fl):
        group.register(sub)
    use_defaults_help(p)  # every option's real default in --help, where its text does not say it
    return p


class _LogLines(logging.Handler):
    """Prints what the package logs as single lines on stderr (`warning: ...` for warnings), above
    the progress bar when one is shown. Installed once by :func:`main`."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        prefix = f"{record.levelname.lower()}: " if record.levelno >= logging.WARNING else ""
        text = f"{prefix}{record.getMessage()}"
        if record.exc_info:  # a server's unexpected error: its operator needs the traceback
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        tqdm.write(text, file=sys.stderr)


def _configure_logging(args: argparse.Namespace) -> Callable[[], None]:
    """Route the package's log records to stderr at the level the flags ask for; returns a function
    that undoes it (``main`` may be called in-process, e.g. by tests or another program)."""
    level = args.global_log_level or {0: "warning", 1: "info"}.get(args.verbose, "debug")
    if args.command == "edge" and getattr(args, "log_level", None) and not args.global_log_level and not args.verbose:
        level = args.log_level  # `edge serve --log-level` (default info): the server's own messages
    logger = logging.getLogger("mvstylizer")
    before = logger.level
    handler = _LogLines()
    logger.addHandler(handler)
    logger.setLevel(level.upper())

    def restore() -> None:
        logger.removeHandler(handler)
        logger.setLevel(before)

    return restore


def _quiet_opencv() -> Callable[[], None]:
    """Turn OpenCV's native log off: its decoders print lines of their own on stderr ("[ WARN:0@0.7]
    ... TIFFReadDirectory", "[ERROR:0@0.7] ... imdecode_") around the one `error:` line a bad input
    gets. Returns a function that restores the level (``main`` may be called in-process)."""
    import cv2

    before = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

    def restore() -> None:
        cv2.utils.logging.setLogLevel(before)

    return restore


class _Terminated(BaseException):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C, so temporary files are removed on the way out. Not an
    Exception, as KeyboardInterrupt is not: an ``except Exception`` on the way (tqdm's around the thread
    it starts, a fallback in the library) swallowed the signal and the run went on to the end."""


# A signal this soon after the first is the same request again (Ctrl-C pressed twice): raised a second
# time it cut the first one's unwinding short (worker threads left running into the interpreter's exit:
# "terminate called without an active exception", SIGABRT). Later than this, it is obeyed: a cleanup
# that hangs can still be interrupted.
_REPEAT_GRACE_S = 5.0


class _Stopper:
    """The handler of SIGINT, SIGTERM and SIGHUP while a command runs: the first one unwinds (Ctrl-C as
    KeyboardInterrupt, the others as :class:`_Terminated`) and repeats within ``_REPEAT_GRACE_S`` are
    ignored, so that the unwinding removes temporary files and joins threads undisturbed."""

    def __init__(self) -> None:
        self._first: float | None = None
        self.signum: int | None = None  # the first signal received

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        now = time.monotonic()
        if self._first is not None and now - self._first < _REPEAT_GRACE_S:
            return
        self._first = now
        if self.signum is None:
            self.signum = signum
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise _Terminated(signal.Signals(signum).name)

    def check(self) -> None:
        """Raise the stop again if one came and was lost on the way: a library that caught the
        KeyboardInterrupt and carried on (an optional import taking NumPy's ImportError made of it for
        "not installed") let the command run on as if no Ctrl-C had come. Called where a command can
        still stop cleanly: before it starts, before a server starts serving, and after it returns."""
        if self.signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signum is not None:
            raise _Terminated(signal.Signals(self.signum).name)


class _OutputFailed(Exception):
    """Writing to stdout failed (a full disk, ``> /dev/full``, an I/O error): the output is lost."""


class _GuardedStdout:
    """``sys.stdout`` while a command runs: a failed write or flush becomes :class:`_OutputFailed`, so
    that it is told apart from an OSError of the command's own files (a bug, 70). A closed pipe stays a
    ``BrokenPipeError`` (141, like Unix tools). Everything else is the real stream's."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        if self._stream is None:  # started with stdout closed (`>&-`): what was to be printed is lost
            raise _OutputFailed("standard output is closed")
        try:
            return self._guard(self._stream.write, text)
        except UnicodeEncodeError:
            # A path the stream's encoding cannot show (an ASCII locale, a name with bytes that are not
            # UTF-8): escaped, as Python escapes it on stderr, rather than an internal error after the work.
            encoding = getattr(self._stream, "encoding", None) or "utf-8"
            return self._guard(self._stream.write, text.encode(encoding, "backslashreplace").decode(encoding))

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._stream is not None:
            self._guard(self._stream.flush)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    @staticmethod
    def _guard(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise _OutputFailed(e.strerror or str(e)) from e


def _drop_stdout() -> None:
    """Point the process's stdout at nothing: what is still buffered for it cannot be written, and the
    interpreter's final flush must not fail a second time (a traceback after our one line)."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):  # not a real file (in-process)
        pass


# Control characters in a message (from a file name: `$'in\n.mp4'`) escaped, so that an error is the one
# line scripts and people expect, and a name cannot move the cursor or forge a second line.
_ESCAPES = {**{c: f"\\x{c:02x}" for c in [*range(32), 127]}, ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}


def _one_line(text: object) -> str:
    return str(text).translate(_ESCAPES)


def _report_stop(signum: int) -> int:
    """The line and exit code of a run stopped by a signal, whatever exception the stop became."""
    if signum == signal.SIGINT:
        print("interrupted", file=sys.stderr)
        return 130
    print(f"stopped by {signal.Signals(signum).name}", file=sys.stderr)
    return 143


def _fill_closed_streams() -> Callable[[], None]:
    """Started with stdin, stdout or stderr closed (`<&-`, `>&-`, `2>&-`), Python sets that ``sys``
    stream to None (the first print or ``isatty`` was an AttributeError, exit 70), and the descriptor's
    number is free: the next file opened (the input video, the temporary output) takes it, and a C
    library's message to "stderr" would be written into that file. Each closed descriptor is pointed at
    /dev/null first; a missing ``sys.stderr`` writes there (the exit code still tells), a missing
    ``sys.stdout`` is :class:`_GuardedStdout`'s to refuse. Returns a function that puts the streams back
    (``main`` may be called in-process)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            try:
                null = os.open(os.devnull, os.O_RDWR)  # the lowest free number: ``fd`` itself
            except OSError:
                break
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if sys.stderr is not None:
        return lambda: None
    sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - closed by restore

    def restore() -> None:
        stream, sys.stderr = sys.stderr, None
        if stream is not None:
            stream.close()

    return restore


def forget_unhandled_interrupt() -> None:
    """Clear CPython's record of a Ctrl-C that ended a string ``exec``/``eval`` (``dataclasses``,
    ``collections.namedtuple`` and others build code that way while modules load).

    CPython notes such a KeyboardInterrupt as unhandled even when a caller catches it, and under
    ``python -m mvstylizer.cli`` it then ends the process by SIGINT at exit (status -2, "killed by
    a signal") whatever status the command returned: a Ctrl-C about a second into ``studio`` (its
    imports) printed "interrupted" and died by the signal instead of exiting 130. Every string exec
    clears the record first, so one that runs to its end leaves it clear; on an interpreter without
    the record this is a no-op. Our exit status is the one the command decided."""
    exec("pass", {})  # noqa: S102 - a constant; see above


def _catch_stops(stopper: _Stopper) -> dict[int, Any]:
    """Make ``stopper`` the handler of SIGINT, SIGTERM and SIGHUP (main thread only); returns the
    handlers it replaced, for :func:`_restore_handlers`."""
    previous: dict[int, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        return previous
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not one ignored or a host's own
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, stopper)
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        # An ignored signal stays ignored: `nohup mvstylizer stylize ... &` must outlive its terminal.
        if sig is not None and signal.getsignal(sig) != signal.SIG_IGN:
            previous[sig] = signal.signal(sig, stopper)
    return previous


def _restore_handlers(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
    previous.clear()


def main(argv: list[str] | None = None) -> int:
    restore_streams: Callable[[], None] = lambda: None  # noqa: E731
    # From the first moment: a stop while the command groups load (numpy, OpenCV, FastAPI...) is a stop
    # too, whatever a library makes of the KeyboardInterrupt (NumPy's import turns it into an ImportError
    # "...caused by a bad install", printed as a traceback).
    stopper = _Stopper()
    previous: dict[int, Any] = {}
    try:
        restore_streams = _fill_closed_streams()
        previous.update(_catch_stops(stopper))
        return _main(argv, stopper, previous)
    except KeyboardInterrupt:  # before the command started (its imports), or while its end was being reported
        print("interrupted", file=sys.stderr)
        return 130
    except _Terminated as exc:
        print(f"stopped by {exc}", file=sys.stderr)
        return 143
    except Exception:
        if stopper.signum is not None:  # what a library made of the stop while the command line loaded
            return _report_stop(stopper.signum)
        raise
    finally:
        _restore_handlers(previous)
        forget_unhandled_interrupt()
        restore_streams()


def _main(argv: list[str] | None, stopper: _Stopper, previous: dict[int, Any]) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("edge", "cloud"):
        # The servers handle their own signals; everything else unwinds, removing temporary files.
        _restore_handlers(previous)
    active = stopper if previous else None  # None: a stop is not ours to report (the handlers stayed a host's)
    restore_logging = _configure_logging(args)
    restore_opencv = _quiet_opencv()
    real_stdout = sys.stdout
    sys.stdout = _GuardedStdout(real_stdout)
    args.check_stop = stopper.check  # for a handler that starts a server (studio) to call just before
    try:
        stopper.check()
        rc = int(args.handler(args))
        stopper.check()
        sys.stdout.flush()  # a full disk shows here, as one line, not in the interpreter's last flush
        return rc
    except _OutputFailed as exc:
        sys.stdout = real_stdout
        print(f"error: cannot write output: {exc}", file=sys.stderr)
        _drop_stdout()
        return 2
    except UserError as exc:
        if active is not None and active.signum is not None:
            return _report_stop(active.signum)
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except _Terminated as exc:
        print(f"stopped by {exc}", file=sys.stderr)
        return 143
    except BrokenPipeError:
        # Whoever read our output stopped (`... | head`): exit as Unix tools killed by SIGPIPE do, and
        # point stdout at nothing so that the interpreter's final flush does not fail a second time.
        sys.stdout = real_stdout
        _drop_stdout()
        return 141
    except Exception as exc:  # a bug, not bad input: still one line unless asked for the traceback
        if active is not None and active.signum is not None:
            # What a library made of the stop: pydantic turns a KeyboardInterrupt raised while it builds
            # a schema (the studio starting) into its SchemaError, which was "internal error", 70.
            return _report_stop(active.signum)
        if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:
            # A path the user gave, too long for the system, met where no check looked for it first
            # (the style photo's, say): the user's to shorten, not a bug.
            name = os.fsdecode(exc.filename) if exc.filename is not None else ""
            shown = name if len(name) <= 80 else f"{name[:40]}...{name[-30:]}"
            print(f"error: a path is too long for the system ({len(os.fsencode(name))} bytes): {shown}",
                  file=sys.stderr)
            return 2
        if isinstance(exc, ImportError):  # a module an optional extra provides: name it (extras.py)
            from ..extras import missing_extra

            err = missing_extra(exc)
            if err is not None:
                print(f"error: {_one_line(err)}", file=sys.stderr)
                return 2
        if os.environ.get("MVSTYLIZER_DEBUG"):
            raise
        print(f"internal error: {type(exc).__name__}: {_one_line(exc)} (set MVSTYLIZER_DEBUG=1 for details)",
              file=sys.stderr)
        return 70
    finally:
        if isinstance(sys.stdout, _GuardedStdout):  # a handler may have replaced it (and restored ours)
            sys.stdout = real_stdout
        restore_opencv()
        restore_logging()
