"""The ``mvstylizer`` command line (entry point :func:`main`)."""

try:
    from .main import build_parser, main
except KeyboardInterrupt:
    # Ctrl-C while the command line loads (the console script's first import, or `python -m`'s): the
    # one line and status 130 that main() gives once it runs, not a traceback out of the import.
    import sys

    print("interrupted", file=sys.stderr)
    exec("pass", {})  # noqa: S102 - clears CPython's unhandled-interrupt record (main.forget_unhandled_interrupt)
    raise SystemExit(130) from None

__all__ = ["build_parser", "main"]
