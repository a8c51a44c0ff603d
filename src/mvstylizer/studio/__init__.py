"""mvstylizer studio: restyle a video from a web page (``mvstylizer studio``; docs/STUDIO.md).

A local FastAPI app on top of the Python API (:class:`mvstylizer.VideoStylizer`): drop a clip and a
style photo, see a before/after preview of a few key frames in seconds, then render the whole video
as a queued job with live progress, and download the MP4, the ``.cube`` LUT (global models) and the
JSON report. Every page asset ships in this package (``static/``); nothing is fetched from a CDN.

* :mod:`.config`: :class:`StudioConfig`, the limits and where the work folder is.
* :mod:`.workspace`: per-tab sessions, their uploads and jobs on disk, size limit and clean-up.
* :mod:`.media`: video probing, preview frames, the style gallery, image checks.
* :mod:`.jobs`: the render queue (one worker), progress and cancel between frames.
* :mod:`.app`: the FastAPI app (``create_app``); :mod:`.server`: ``serve`` and a test server.
"""

from __future__ import annotations

from collections.abc import Callable

from .config import StudioConfig

__all__ = ["StudioConfig", "create_app", "serve"]


def create_app(config: StudioConfig, **kwargs):  # noqa: ANN201 - FastAPI is imported lazily
    """The studio's FastAPI app (see :func:`mvstylizer.studio.app.create_app`)."""
    from .app import create_app as _create

    return _create(config, **kwargs)


def serve(config: StudioConfig, *, before_run: Callable[[], None] | None = None) -> None:
    """Run the studio in the foreground until interrupted (``mvstylizer studio``); ``before_run`` is
    called once everything is ready, just before the server starts serving."""
    from .server import serve as _serve

    _serve(config, before_run=before_run)
