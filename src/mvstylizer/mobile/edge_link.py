"""The phone's view of an edge server: one interface, two transports.

``EmbeddedEdge`` runs an ``EdgeService`` in this process; the HTTP client (``mobile.http_edge``) talks
to ``mvstylizer edge serve``. Both encode frames with the same wire format, so results match and the
byte counts in a report mean the same thing either way.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..wire import Encoding, decode_frame, encode_frame


class EdgeLink(Protocol):
    bytes_sent: int
    bytes_received: int

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


class EmbeddedEdge:
    """An in-process edge. Imports the edge (and so any model framework) only when created."""

    def __init__(self, encoding: Encoding = Encoding()) -> None:
        from ..edge.service import EdgeService

        self._service = EdgeService()
        self.encoding = encoding
        self.bytes_sent = 0
        self.bytes_received = 0

    def models(self) -> list[dict]:
        return self._service.models()

    def register_style(self, style: np.ndarray) -> str:
        blob = encode_frame(style, Encoding("png"))
        self.bytes_sent += len(blob)
        return self._service.register_style(blob)

    def stylize(self, style_id: str, model: str, frames: list[np.ndarray]) -> list[np.ndarray]:
        sent = [encode_frame(f, self.encoding) for f in frames]
        self.bytes_sent += sum(map(len, sent))
        results = self._service.stylize(style_id, model, [decode_frame(b) for b in sent])
        back = [encode_frame(r, self.encoding) for r in results]
        self.bytes_received += sum(map(len, back))
        return [decode_frame(b) for b in back]

    def close(self) -> None:
        pass
