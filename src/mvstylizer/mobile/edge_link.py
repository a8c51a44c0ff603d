"""The phone's view of an edge server: one interface, two transports.

``EmbeddedEdge`` runs an ``EdgeService`` in this process; the HTTP client (``mobile.http_edge``) talks
to ``mvstylizer edge serve``. Both encode frames with the same wire format, so results match and the
byte counts in a report mean the same thing either way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

import numpy as np

from ..errors import UserError
from ..wire import Encoding, decode_frame, encode_frame

_T = TypeVar("_T")

# Keys a phone has out at a remote edge at once by default: their network round trips overlap (a
# 1080p clip with a key every 30 frames waited each key's whole round trip with one), and the edge's
# fair scheduler takes them side by side or in turn.
REMOTE_IN_FLIGHT = 3


class EdgeUnavailable(UserError):
    """The edge could not be reached or kept failing (connection refused, timeouts, 5xx, 429 after
    every retry). Refusals of the request itself (4xx) are plain ``UserError``s: a fallback must not
    hide a bad request."""


class EdgeLink(Protocol):
    bytes_sent: int
    bytes_received: int
    # How many key frames the phone may have at the edge at once (``stylize`` is then called from
    # that many threads). A remote edge's network time overlaps; an in-process model shares the
    # phone's cores, so it takes one at a time.
    max_in_flight: int

    def models(self) -> list[dict]:
        """What the edge runs: ``name``, ``description``, ``runtimes``, ``aliases`` per model."""
        ...

    def register_style(self, style: np.ndarray) -> str:
        """Send the style photo (HxWx3 float RGB); returns the edge's id for it."""
        ...

    def stylize(self, style_id: str, model: str, frames: list[np.ndarray]) -> list[np.ndarray]:
        """Stylize a batch of (downscaled) key frames; returns float32 RGB frames of the same sizes."""
        ...

    def close(self) -> None: ...


def find_model(models: list[dict], name: str) -> dict | None:
    """The entry of an edge's ``models()`` list that ``name`` (``model`` or ``model:runtime``, a name
    or an alias) refers to, or None."""
    base = name.partition(":")[0]
    return next((m for m in models if base == m.get("name") or base in m.get("aliases", [])), None)


class EmbeddedEdge:
    """An in-process edge. Imports the edge (and so any model framework) only when created."""

    def __init__(self, encoding: Encoding = Encoding()) -> None:
        from ..edge.service import EdgeService

        self._service = EdgeService()
        self.encoding = encoding
        self.bytes_sent = 0
        self.bytes_received = 0
        self.max_in_flight = 1
        self._count = threading.Lock()  # a fallback for a remote edge is called from several threads

    def models(self) -> list[dict]:
        return self._service.models()

    def register_style(self, style: np.ndarray) -> str:
        blob = encode_frame(style, Encoding("png"))
        with self._count:
            self.bytes_sent += len(blob)
        return self._service.register_style(blob)

    def stylize(self, style_id: str, model: str, frames: list[np.ndarray]) -> list[np.ndarray]:
        sent = [encode_frame(f, self.encoding) for f in frames]
        results = self._service.stylize(style_id, model, [decode_frame(b) for b in sent])
        back = [encode_frame(r, self.encoding) for r in results]
        with self._count:
            self.bytes_sent += sum(map(len, sent))
            self.bytes_received += sum(map(len, back))
        return [decode_frame(b) for b in back]

    def close(self) -> None:
        pass


class FallbackEdge:
    """``--fallback local``: use ``primary`` (an edge server) and switch to an in-process edge for the
    rest of the run the first time it is unavailable.

    The style is re-registered on the local edge from the photo kept here, and ids handed out by the
    primary are mapped, so the caller never notices the switch except through ``warn``. Requests the
    edge *refused* (4xx) are not retried locally: they would fail the same way and hide the cause.
    """

    def __init__(self, primary: EdgeLink, make_fallback: Callable[[], EdgeLink] = EmbeddedEdge,
                 warn: Callable[[str], None] = lambda msg: None) -> None:
        self._primary = primary
        self._make_fallback = make_fallback
        self._warn = warn
        self._fallback: EdgeLink | None = None
        self._styles: dict[str, np.ndarray] = {}  # primary's style id -> photo, to re-register locally
        self._local_ids: dict[str, str] = {}
        self._switch = threading.Lock()  # keys in flight may fail over together: one fallback
        # The pipeline sizes its key threads by the primary; the fallback takes as many at once as it
        # says (one, for an in-process model that shares the phone's cores).
        self._slots: threading.BoundedSemaphore | None = None
        self.max_in_flight = primary.max_in_flight

    @property
    def active(self) -> EdgeLink:
        return self._fallback or self._primary

    @property
    def fell_back(self) -> bool:
        return self._fallback is not None

    @property
    def frames_collected(self) -> int:
        """Key frames the edge server kept (``--contribute``); an in-process fallback keeps none."""
        return int(getattr(self._primary, "frames_collected", 0))

    @property
    def bytes_sent(self) -> int:
        return self._primary.bytes_sent + (self._fallback.bytes_sent if self._fallback else 0)

    @property
    def bytes_received(self) -> int:
        return self._primary.bytes_received + (self._fallback.bytes_received if self._fallback else 0)

    def models(self) -> list[dict]:
        return self._call(lambda edge: edge.models())

    def register_style(self, style: np.ndarray) -> str:
        style_id = self._call(lambda edge: edge.register_style(style))
        self._styles[style_id] = style
        return style_id

    def stylize(self, style_id: str, model: str, frames: list[np.ndarray]) -> list[np.ndarray]:
        return self._call(lambda edge: edge.stylize(self._local_id(edge, style_id), model, frames))

    def close(self) -> None:
        self._primary.close()
        if self._fallback is not None:
            self._fallback.close()

    def abort(self) -> None:
        """End the primary's requests in flight and refuse its later ones (``HttpEdge.abort``); an
        in-process fallback has nothing to abort."""
        abort = getattr(self._primary, "abort", None)
        if abort is not None:
            abort()

    def _call(self, fn: Callable[[EdgeLink], _T]) -> _T:
        if self._fallback is None:
            try:
                return fn(self._primary)
            except EdgeUnavailable as e:
                with self._switch:
                    if self._fallback is None:
                        self._warn(f"warning: {e}; continuing with the in-process edge (--fallback local)")
                        fallback = self._make_fallback()
                        self._slots = threading.BoundedSemaphore(max(1, fallback.max_in_flight))
                        self._fallback = fallback
        assert self._slots is not None  # set with the fallback
        with self._slots:
            return fn(self._fallback)

    def _local_id(self, edge: EdgeLink, style_id: str) -> str:
        if edge is self._primary or style_id not in self._styles:
            return style_id
        with self._switch:
            if style_id not in self._local_ids:
                self._local_ids[style_id] = edge.register_style(self._styles[style_id])
            return self._local_ids[style_id]
