"""The ``mvstylizer`` command line (entry point :func:`main`)."""

import os

# ONNX Runtime's telemetry writes a device id and an event queue under $XDG_CACHE_HOME or ~/.cache
# (Microsoft/DeveloperTools/.onnxruntime) when the module loads, even with HOME unset (the password
# database's home then) and for a command that never asked for a cache. It reads this variable once,
# at that load, so it is set before any command imports it; a value the user set (0 included) is kept.
if not os.environ.get("ORT_DISABLE_TELEMETRY"):
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"

from .main import build_parser, main  # noqa: E402 - after the variable above

__all__ = ["build_parser", "main"]
