"""An edge whose answers were recorded: timing the phone's pipeline as if its edge ran elsewhere.

On one small box the in-process edge's model shares the cores with everything the phone does; in the
system's design the model runs on an edge server. :class:`RecordedEdge` separates the two costs: it
first records, key by key, what a real :class:`~mvstylizer.edge.service.EdgeService` answers, then
replays the answers, in this process (``bench phone``) or from a file in a fresh one
(``bench footage --edge-elsewhere``). Either way the phone's side of every exchange is paid exactly
as with ``--edge URL``: each key is JPEG-encoded for the wire and each answer decoded from the bytes
the edge sent. Not paid: the model's CPU and HTTP (httpx's import and requests). With
``model_time=True`` each answer comes back as late as the model took to make it, timed again alone
after the recording (the replay sleeps, which costs this box no CPU): an edge as fast as this
machine, on its own cores, running one key at a time. ``latency`` adds a network round trip to every
key (half on the way there, half back), and ``max_in_flight`` lets the pipeline have that many keys
out at once, as with an :class:`~mvstylizer.mobile.http_edge.HttpEdge`: their network time overlaps,
their model time does not. Without ``model_time`` and ``latency`` the edge answers at once, a lower
bound.
"""

from __future__ import annotations

import hashlib
import pickle
import threading
import time
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
    loaded by :meth:`load`) an unseen request raises :class:`NotRecorded`. ``model_time``: replayed
    answers wait as long as the service took to make them."""

    def __init__(self, service: EdgeService | None = None, encoding: Encoding = Encoding(),
                 model_time: bool = False, latency: float = 0.0, max_in_flight: int = 1) -> None:
        if latency < 0 or max_in_flight < 1:
            raise ValueError("latency must be >= 0 and max_in_flight >= 1")
        self._service = service
        self.encoding = encoding
        self.model_time = model_time
        self.latency = latency
        self.max_in_flight = max_in_flight
        self._model = threading.Lock()  # the edge's model runs one key at a time
        self._count = threading.Lock()
        self._models: list[dict] = service.models() if service is not None else []
        self._styles: dict[bytes, str] = {}  # digest of the style's PNG -> the edge's id
        self._answers: dict[bytes, bytes] = {}  # digest of (style, model, key's JPEG) -> the answer's JPEG
        self._seconds: dict[bytes, float] = {}  # the same digest -> seconds the service took
        # What was asked, in order, to time it again with the service alone (:meth:`retime_alone`).
        self._style_blobs: dict[str, bytes] = {}
        self._requests: list[tuple[bytes, str, str, bytes]] = []  # (digest, style id, model, key's JPEG)
        self.bytes_sent = self.bytes_received = 0

    def models(self) -> list[dict]:
        return self._models

    def register_style(self, style: np.ndarray) -> str:
        blob = encode_frame(style, _STYLE_ENCODING)
        self.bytes_sent += len(blob)
        digest = hashlib.sha1(blob).digest()
        if digest not in self._styles:
            self._styles[digest] = self._require().register_style(blob)
            self._style_blobs[self._styles[digest]] = blob
        return self._styles[digest]

    def stylize(self, style_id: str, model: str, frames: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        for frame in frames:
            blob = encode_frame(frame, self.encoding)
            digest = hashlib.sha1(f"{style_id}\0{model}\0".encode() + blob).digest()
            if digest not in self._answers:
                service, t = self._require(), time.perf_counter()
                (answer,) = service.stylize(style_id, model, [decode_frame(blob)])
                self._seconds[digest] = time.perf_counter() - t
                self._answers[digest] = encode_frame(answer, self.encoding)
                self._requests.append((digest, style_id, model, blob))
            elif self.model_time or self.latency:
                self._travel()
                if self.model_time:
                    with self._model:
                        time.sleep(self._seconds[digest])
                self._travel()
            back = self._answers[digest]
            with self._count:
                self.bytes_sent += len(blob)
                self.bytes_received += len(back)
            out.append(decode_frame(back))
        return out

    def close(self) -> None:
        pass

    def _travel(self) -> None:
        """Half the network round trip."""
        if self.latency:
            time.sleep(self.latency / 2)

    def retime_alone(self, service: EdgeService) -> None:
        """Time every recorded request again on ``service`` (a fresh one, nothing else running), in the
        order they came: while recording, the model shared the cores with the phone's own work, which
        an edge on its own machine does not. The first request of a style includes its preparation;
        the model's loading does not (a running edge has its models loaded): one untimed request of
        another style first."""
        grey = np.full((64, 64, 3), 0.5, np.float32)
        warm_style = service.register_style(encode_frame(grey, _STYLE_ENCODING))
        for model in dict.fromkeys(model for _, _, model, _ in self._requests):
            service.stylize(warm_style, model, [grey])
        ids = {old: service.register_style(blob) for old, blob in self._style_blobs.items()}
        for digest, style_id, model, blob in self._requests:
            t = time.perf_counter()
            service.stylize(ids[style_id], model, [decode_frame(blob)])
            self._seconds[digest] = time.perf_counter() - t

    def save(self, path: Path) -> None:
        """Write the recording for :meth:`load` (a benchmark's scratch file, read back by the same version)."""
        path.write_bytes(pickle.dumps({"models": self._models, "styles": self._styles, "answers": self._answers,
                                       "seconds": self._seconds}))

    @classmethod
    def load(cls, path: Path, model_time: bool = False, latency: float = 0.0, max_in_flight: int = 1
             ) -> RecordedEdge:
        data: dict[str, Any] = pickle.loads(path.read_bytes())
        edge = cls(model_time=model_time, latency=latency, max_in_flight=max_in_flight)
        edge._models, edge._styles, edge._answers = data["models"], data["styles"], data["answers"]
        edge._seconds = data["seconds"]
        return edge

    def _require(self) -> EdgeService:
        if self._service is None:
            raise NotRecorded("a request the recording does not hold: the replayed run chose other key frames")
        return self._service


def record(clip: Path, style: Path, model: str, answers: Path, output: Path) -> None:
    """Stylize ``clip`` once with an in-process edge service, recording its answers into ``answers``,
    each with the seconds a fresh service takes for it alone."""
    from ..edge.service import EdgeService
    from ..mobile.pipeline import StylizeConfig, VideoPipeline

    edge = RecordedEdge(EdgeService())
    VideoPipeline(edge, StylizeConfig(model=model, progress=False)).run(clip, style, output)
    edge.retime_alone(EdgeService())
    edge.save(answers)


def stylize_recorded(clip: str, style: str, model: str, answers: str, output: str, model_time: str = "1",
                     latency: str = "0", max_in_flight: str = "1") -> None:
    """What ``mvstylizer stylize`` does with its edge elsewhere, the edge's answers read from ``answers``
    (:func:`record`), each as late as the model took unless ``model_time`` is "0", plus ``latency``
    seconds of network round trip, with ``max_in_flight`` keys out at once: the body of the timed
    child process (its arguments are strings, from the command line)."""
    from ..memory import limit_malloc_arenas
    from ..mobile.pipeline import StylizeConfig, VideoPipeline

    limit_malloc_arenas()  # as `stylize` does
    edge = RecordedEdge.load(Path(answers), model_time=model_time != "0", latency=float(latency),
                             max_in_flight=int(max_in_flight))
    VideoPipeline(edge, StylizeConfig(model=model, progress=False)).run(clip, style, output)


# The timed child: argv = clip, style, model, answers, output[, model_time "1" (default) or "0"
# [, latency seconds [, keys in flight]]].
CHILD = "import sys; from mvstylizer.bench.recorded_edge import stylize_recorded; stylize_recorded(*sys.argv[1:9])"
