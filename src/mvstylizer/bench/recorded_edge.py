"""An edge whose answers were recorded: timing the phone's pipeline as if its edge ran elsewhere.

On one small box the in-process edge's model shares the cores with everything the phone does; in the
system's design the model runs on an edge server. :class:`RecordedEdge` separates the two costs: it
first records, key by key, what a real :class:`~mvstylizer.edge.service.EdgeService` answers, then
replays the answers, in this process (``bench phone``) or from a file in a fresh one
(``bench footage --edge-elsewhere``). Either way the phone's side of every exchange is paid exactly
as with ``--edge URL``: each key is JPEG-encoded for the wire and each answer decoded from the bytes
the edge sent. Not paid: the model and HTTP (httpx's import and requests). It is an edge that answers
at once, so a replayed run's time is a lower bound: with a real edge, the frames after the last key
and a refinement key wait for their round trip, and the one worker thread sends keys one at a time,
so a clip with keys every few frames can be bound by the edge's latency.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..wire import Encoding, decode_frame, encode_frame

if TYPE_CHECKING:
    from ..edge.service import EdgeService

_STYLE_ENCODING = Encoding("png")  # as EmbeddedEdge and HttpEdge send a style photo


class NotRecorded(RuntimeError):
    """A replay asked for a key frame the recording never saw: the run chose different keys."""


class RecordedEdge:
    """An :class:`~mvstylizer.mobile.edge_link.EdgeLink` that asks ``service`` the first time it sees a
    request and answers every later identical request from its recording; with no service (a recording
    loaded by :meth:`load`) an unseen request raises :class:`NotRecorded`."""

    def __init__(self, service: EdgeService | None = None, encoding: Encoding = Encoding()) -> None:
        self._service = service
        self.encoding = encoding
        self._models: list[dict] = service.models() if service is not None else []
        self._styles: dict[bytes, str] = {}  # digest of the style's PNG -> the edge's id
        self._answers: dict[bytes, bytes] = {}  # digest of (style, model, key's JPEG) -> the answer's JPEG
        self.bytes_sent = self.bytes_received = 0

    def models(self) -> list[dict]:
        return self._models

    def register_style(self, style: np.ndarray) -> str:
        blob = encode_frame(style, _STYLE_ENCODING)
        self.bytes_sent += len(blob)
        digest = hashlib.sha1(blob).digest()
        if digest not in self._styles:
            self._styles[digest] = self._require().register_style(blob)
        return self._styles[digest]

    def stylize(self, style_id: str, model: str, frames: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        for frame in frames:
            blob = encode_frame(frame, self.encoding)
            digest = hashlib.sha1(f"{style_id}\0{model}\0".encode() + blob).digest()
            if digest not in self._answers:
                (answer,) = self._require().stylize(style_id, model, [decode_frame(blob)])
                self._answers[digest] = encode_frame(answer, self.encoding)
            back = self._answers[digest]
            self.bytes_sent += len(blob)
            self.bytes_received += len(back)
            out.append(decode_frame(back))
        return out

    def close(self) -> None:
        pass

    def save(self, path: Path) -> None:
        """Write the recording for :meth:`load` (a benchmark's scratch file, read back by the same version)."""
        path.write_bytes(pickle.dumps({"models": self._models, "styles": self._styles, "answers": self._answers}))

    @classmethod
    def load(cls, path: Path) -> RecordedEdge:
        data: dict[str, Any] = pickle.loads(path.read_bytes())
        edge = cls()
        edge._models, edge._styles, edge._answers = data["models"], data["styles"], data["answers"]
        return edge

    def _require(self) -> EdgeService:
        if self._service is None:
            raise NotRecorded("a request the recording does not hold: the replayed run chose other key frames")
        return self._service


def record(clip: Path, style: Path, model: str, answers: Path, output: Path) -> None:
    """Stylize ``clip`` once with an in-process edge service, recording its answers into ``answers``."""
    from ..edge.service import EdgeService
    from ..mobile.pipeline import StylizeConfig, VideoPipeline

    edge = RecordedEdge(EdgeService())
    VideoPipeline(edge, StylizeConfig(model=model, progress=False)).run(clip, style, output)
    edge.save(answers)


def stylize_recorded(clip: str, style: str, model: str, answers: str, output: str) -> None:
    """What ``mvstylizer stylize`` does with its edge elsewhere, the edge's answers read from ``answers``
    (:func:`record`): the body of the timed child process."""
    from ..mobile.pipeline import StylizeConfig, VideoPipeline

    edge = RecordedEdge.load(Path(answers))
    VideoPipeline(edge, StylizeConfig(model=model, progress=False)).run(clip, style, output)


# The timed child: argv = clip, style, model, answers, output.
CHILD = "import sys; from mvstylizer.bench.recorded_edge import stylize_recorded; stylize_recorded(*sys.argv[1:6])"
