"""mvstylizer: edge-assisted photorealistic video style transfer for phones.

A video is restyled by a style photo: the phone side picks key frames, an edge model stylizes only
those, and every frame is rendered from its two keys' colour transforms. From Python::

    import mvstylizer
    report = mvstylizer.stylize("in.mp4", "style.jpg", "out.mp4", model="regions", strength=0.8)

    with mvstylizer.VideoStylizer() as vs:          # frames from your own source
        for out in vs.stylize_frames(frames, style_image):
            ...

See docs/API.md. The command line is ``mvstylizer`` (``mvstylizer --help``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# ONNX Runtime's telemetry writes a device id and an event queue under $XDG_CACHE_HOME or ~/.cache
# (Microsoft/DeveloperTools/.onnxruntime) when the module loads, even with HOME unset (the password
# database's home then) and for a run that never asked for a cache. It reads this variable once, at
# that load, so it is set here, before any part of the package imports it (the command line, the
# models, the phone's ONNX smoother); a value the user set (0 included) is kept.
if not os.environ.get("ORT_DISABLE_TELEMETRY"):
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"

__version__ = "0.1.0"

# Imported on first use (PEP 562), so `mvstylizer --version` or a subcommand that needs none of
# this does not pay for numpy, OpenCV and PyAV.
_LAZY = {"ModelInfo": "api", "VideoStylizer": "api", "export_lut": "api", "list_models": "api", "stylize": "api",
         "UserError": "errors", "StylizeReport": "mobile.pipeline"}

if TYPE_CHECKING:
    from .api import ModelInfo, VideoStylizer, export_lut, list_models, stylize
    from .errors import UserError
    from .mobile.pipeline import StylizeReport


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mvstylizer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))

__all__ = ["ModelInfo", "StylizeReport", "UserError", "VideoStylizer", "__version__", "export_lut", "list_models",
           "stylize"]
