"""The ``mvstylizer`` command line (entry point :func:`main`)."""

import os

# ONNX Runtime's telemetry writes a device id and an event queue under $XDG_CACHE_HOME or ~/.cache
# (Microsoft/DeveloperTools/.onnxruntime) when the module loads, even with HOME unset (the password
# database's home then) and for a command that never asked for a cache. It reads this variable once,
# at that load, so it is set before any command imports it; a value the user set (0 included) is kept.
if not os.environ.get("ORT_DISABLE_TELEMETRY"):
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"

try:
    from .main import build_parser, main  # noqa: E402 - after the variable above
except KeyboardInterrupt:
    # Ctrl-C while the command line loads (the console script's first import, or `python -m`'s): the
    # one line and status 130 that main() gives once it runs, not a traceback out of the import.
    import sys

    print("interrupted", file=sys.stderr)
    exec("pass", {})  # noqa: S102 - clears CPython's unhandled-interrupt record (main.forget_unhandled_interrupt)
    raise SystemExit(130) from None

__all__ = ["build_parser", "main"]
