"""The phone's whole job: video in, stylized video out, touching the edge only for key frames.

One streaming pass: decode -> key-frame selector -> (key) send downscaled to the edge, fit its colour
transform / (other) buffer until the next key -> render the buffered frames from their two keys'
transforms -> encode. Only the frames waiting for their keys are held (two key gaps at most, and
``max_buffer_mb``), so memory is bounded, not by the length of the video. This module imports no
torch: the edge is reached through ``EdgeLink``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from ..colour.affine import render
from ..errors import UserError
from ..files import atomic_path
from ..imaging import fit_within, quick_downscale, shrink_to
from ..memory import release_free_memory
from ..video.formats import check_output_path, is_image_path
from ..video.image import ALPHA_EXTS, read_header, read_image_alpha, read_style, write_image
from ..video.reader import DecodedFrame, DeferredFrame, VideoReader
from ..video.writer import VideoWriter
from .edge_link import EdgeLink, find_model
from .exposure import ExposureTracker, Lighting, ShotExposure, fade_levels
from .interpolate import InterpConfig, Interpolator, KeyFrame, with_strength
from .keyframes import KeyframeConfig, KeyframeSelector
from .meta_smoothing import SMOOTHERS

log = logging.getLogger(__name__)

MIN_STYLE_SIDE = 32  # pixels; smaller styles get a warning
# Frames this large (4K: 25 MB) leave holes in malloc's heaps that it keeps; every 10 of them the
# pipeline hands the free pages back (mvstylizer/memory.py).
_TRIM_FRAME_BYTES = 16_000_000
MAX_STYLE_ASPECT = 8.0

# "edge" and "smoothing" (a key's round trip and the fit of its transform) run on worker threads
# beside the others (as many as the edge link has keys in flight), so the stages add up to more than
# the run's wall time; "wait" is how long the frames waited for a key that was not back yet.
STAGES = ("decode", "select", "edge", "smoothing", "wait", "interpolation", "encode")

# Called after each output frame is written: (frames written so far, the input's declared frame
# count or None). What it raises ends the run with no output file, which is how a caller cancels.
FrameHook = Callable[[int, int | None], None]


@dataclass
class StylizeConfig:
    model: str = "default"  # the edge resolves it to the model it ships as default
    key_size: int = 512  # long side of the key frames sent to the edge, in pixels
    max_style_side: int = 1024
    keyframes: KeyframeConfig = field(default_factory=KeyframeConfig)
    interp: InterpConfig = field(default_factory=InterpConfig)
    # Meta-smoothing of key frames. "guided": the key's colour transform (global look + bilateral
    # grid, mobile/look.py and mobile/grid.py) is fit straight to the edge's low-resolution output;
    # its regularisation is the smoothing. "learned": the learned module first cleans the edge's
    # output (blotches, halos, JPEG blocks), then the transform is fit to that.
    smoothing: str = "guided"
    crf: int = 18
    # x264 speed preset. At 1080p on two cores "medium" cost ~2.6x the time of "veryfast" per frame,
    # more than all the phone's stylization work; at CRF 18 the files were of similar size.
    preset: str = "veryfast"
    progress: bool = True
    # The frames waiting for their keys are held in memory at full resolution; at most this many MB
    # of them, which shortens the key gap for very large frames (4K: 12 frames instead of 30; the 4K
    # pipeline's peak memory was 2.2-2.4 GB with 30, against 1.06 GB for a bare transcode).
    max_buffer_mb: float = 320.0

    def __post_init__(self) -> None:
        if self.key_size < 16:
            raise ValueError(f"key size must be at least 16 pixels, got {self.key_size}")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be 0..51, got {self.crf}")
        if self.smoothing not in SMOOTHERS:
            raise ValueError(f"smoothing must be one of {sorted(SMOOTHERS)}, got {self.smoothing!r}")


@dataclass
class StylizeReport:
    input: str
    output: str
    model: str
    interp: str
    width: int
    height: int
    fps: float
    frames: int = 0
    # Every key frame and why it is one: first, cut, before-cut (closes the scene before a cut),
    # max-gap, motion, occlusion, colour, stride, refine (its two neighbouring keys disagreed on it),
    # last (the video's last frame).
    keys: list[dict] = field(default_factory=list)
    key_size: list[int] = field(default_factory=list)  # [width, height] sent to the edge
    stage_seconds: dict[str, float] = field(default_factory=lambda: {s: 0.0 for s in STAGES})
    total_seconds: float = 0.0
    bytes_to_edge: int = 0
    bytes_from_edge: int = 0
    has_audio: bool = False
    # Most decoded frames held at once: at most two key-frame gaps (one waiting for its key, the
    # next being decoded) and max_buffer_mb, never growing with the video's length.
    max_buffered_frames: int = 0

    @property
    def key_frames(self) -> list[int]:
        return [k["index"] for k in self.keys]

    @property
    def key_reasons(self) -> dict[str, int]:
        """How many keys each reason made; the counts add up to the number of keys."""
        return dict(Counter(k["reason"] for k in self.keys))

    def summary(self) -> dict:
        d = asdict(self)
        keys = max(1, len(self.keys))
        d["key_frames"] = self.key_frames
        d["key_reasons"] = self.key_reasons
        d["key_count"] = len(self.keys)
        d["bytes_to_edge_per_key"] = round(self.bytes_to_edge / keys)
        d["bytes_from_edge_per_key"] = round(self.bytes_from_edge / keys)
        d["stage_seconds"] = {k: round(v, 4) for k, v in self.stage_seconds.items()}
        d["total_seconds"] = round(self.total_seconds, 4)
        return d

    def write_json(self, path: str | os.PathLike[str]) -> None:
        if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
            raise UserError(f"the report needs a file name, got {path!r}")
        path = Path(path)
        try:
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(self.summary(), indent=2) + "\n")
        except OSError as e:
            raise UserError(f"cannot write the report {path}: {e.strerror or e}") from None


@dataclass
class _Segment:
    """A key asked of the edge and the frames between it and the key before (``previous``; the key
    itself for the first)."""

    previous: Future[KeyFrame]
    frames: list[_Work]
    key: Future[KeyFrame]
    pts: int | None  # the key frame's (its pixels stay with the key's job only until it is done)
    light: Lighting  # the key frame's (ShotExposure), for its own output
    checked: bool = False  # its keys are back and were compared (``_stream``'s refinement)


@dataclass
class _Work:
    """A decoded frame with the low-resolution views the phone-side maths runs on."""

    index: int
    pts: int | None
    full: Callable[[], np.ndarray]  # the full-resolution frame, uint8 RGB (made when asked, for a video)
    shape: tuple[int, ...]  # of ``full()``
    nbytes: int  # what holding the frame costs
    low8: np.ndarray  # work resolution, uint8
    gray: np.ndarray  # work resolution, uint8
    exposure: float = 0.0  # log exposure relative to the first frame (mobile/exposure.py)
    light: Lighting = Lighting()  # its index, shot, levels and headroom (ShotExposure)
    deferred: bool = False  # ``full()`` converts (DeferredFrame) rather than returning a held image


def work_size(width: int, height: int, key_size: int) -> tuple[int, int]:
    """(w, h) of the key frames: long side ``key_size``, never upscaled, aspect kept, at least 8 px."""
    return fit_within(width, height, key_size, min_side=8)


class VideoPipeline:
    """Stylizes videos, images or a stream of frames through one edge link (embedded or HTTP).

    The public face of this class is :class:`mvstylizer.VideoStylizer`.
    """

    def __init__(self, edge: EdgeLink, config: StylizeConfig | None = None) -> None:
        self.edge = edge
        self.config = config or StylizeConfig()
        self.smoother = SMOOTHERS[self.config.smoothing].build()
        self._entry: tuple[dict | None] | None = None  # the edge's entry for config.model, once per run

    # --- public entry points -------------------------------------------------------------
    def run(self, input_path: str | os.PathLike[str], style_path: str | os.PathLike[str],
            output_path: str | os.PathLike[str], *, on_frame: FrameHook | None = None) -> StylizeReport:
        """Stylize a video or image file into ``output_path`` (written under a temporary name and
        renamed at the end); returns the run's report. Raises :class:`UserError` on bad input.

        ``on_frame(written, total)`` runs after each output frame is written (``total``: the
        input's declared frame count, or None); whatever it raises propagates and leaves no output."""
        input_path, output_path = Path(input_path), Path(output_path)
        check_output_path(input_path, output_path, style_path)
        self._entry = None
        if is_image_path(input_path):
            if not is_image_path(output_path):
                raise UserError(f"input {input_path.name} is an image, so the output must be an image too "
                                f"(.png, .jpg, ...), not {output_path.name}")
            return self._image(input_path, style_path, output_path, on_frame)
        if is_image_path(output_path):
            raise UserError(f"input {input_path.name} is a video, so the output must be a video "
                            f"(.mp4, .mov, .mkv), not {output_path.name}")
        return self._video(input_path, style_path, output_path, on_frame)

    def stream(self, frames: Iterable[np.ndarray], style: np.ndarray, report: StylizeReport | None = None
               ) -> Iterator[np.ndarray]:
        """Stylized frames, in order, for frames from any source (a camera, OpenCV, an array).

        Args:
            frames: HxWx3 RGB images, all the same size: uint8, or float in [0, 1] (values a little
                outside, as resampling leaves, are clipped; 0-255 floats are refused).
            style: the style photo, HxWx3 RGB (uint8 or float in [0, 1]).
            report: filled in as frames go (keys and why, stage seconds), if given.

        Returns:
            An iterator of fresh HxWx3 arrays, each the type of the frame it comes from: uint8 for a
            uint8 frame, float32 in [0, 1] otherwise.
            A frame comes out once the key after it is back, and at most one per frame read while
            frames are still coming (the reader keeps its lead on the keys); the last ones at the end.
        """
        t0 = time.perf_counter()
        self._entry = None
        style_id = self._register(_as_rgb8(style, "style"), "image")
        state: dict = {}
        floats: deque[bool] = deque()  # per frame read and not yet given back: was it float?

        def works() -> Iterator[_Work]:
            for i, frame in enumerate(frames):
                rgb8 = _as_rgb8(frame, f"frame {i}")
                if np.may_share_memory(rgb8, frame):  # frames wait for their key: a camera loop may refill
                    rgb8 = rgb8.copy()  # one buffer every frame, so the caller's array is not kept
                floats.append(np.asarray(frame).dtype != np.uint8)
                if "size" not in state:
                    h, w = rgb8.shape[:2]
                    state.update(size=work_size(w, h, self.config.key_size), shape=rgb8.shape)
                    if report is not None:
                        report.width, report.height, report.key_size = w, h, list(state["size"])
                elif rgb8.shape != state["shape"]:
                    raise UserError(f"frame {i} is {rgb8.shape[1]}x{rgb8.shape[0]}, the first was "
                                    f"{state['shape'][1]}x{state['shape'][0]}: all frames must be the same size")
                yield _make_work(i, None, rgb8, state["size"])

        rep = report or StylizeReport("<frames>", "<frames>", self.config.model, self.config.interp.method, 0, 0, 0.0)
        for out, _ in self._stream(works(), style_id, rep, _Timer(rep.stage_seconds)):
            rep.frames += 1
            # frames come out in the order they went in
            yield out.astype(np.float32) * np.float32(1.0 / 255.0) if floats.popleft() else out.copy()
        self._finish(rep, t0)

    # --- internals ---------------------------------------------------------------------------
    def _register_style(self, style_path: str | os.PathLike[str]) -> str:
        # Shrunk as decoded: a 108 MP style photo peaked at 2.9 GB read whole, 0.7 GB so. A logo on a
        # transparent background is a style of the logo's colours, not of the white under it.
        style = read_style(style_path, self.config.max_style_side)
        return self._register(style, Path(style_path).name, read_header(style_path).upright_size)

    def _register(self, style: np.ndarray, name: str, size: tuple[int, int] | None = None) -> str:
        """``size``: the photo's own (w, h), when ``style`` is it shrunk (the warning names the photo's size)."""
        w, h = size or style.shape[1::-1]
        warn_poor_style(name, w, h)
        return self.edge.register_style(shrink_to(style, self.config.max_style_side))

    def _image(self, input_path: Path, style_path: str | os.PathLike[str], output_path: Path,
               on_frame: FrameHook | None) -> StylizeReport:
        t0 = time.perf_counter()
        rgb, alpha = read_image_alpha(input_path)
        rgb8 = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
        h, w = rgb8.shape[:2]
        report = StylizeReport(str(input_path), str(output_path), self.config.model,
                               self.config.interp.method, w, h, 0.0)
        style_id = self._register_style(style_path)
        timer = _Timer(report.stage_seconds)
        size = work_size(w, h, self.config.key_size)
        work = _make_work(0, None, rgb8, size)
        key = self._key(work, style_id, timer, self._interpolator())
        assert key.styled8 is not None  # Interpolator.key always renders the key's output
        with atomic_path(output_path) as tmp:  # the hook runs before the rename: if it raises, no image is left
            with timer("encode"):
                # Transparent areas stay transparent where the output can say so (they are styled as
                # the picture on white, what read_image_alpha composites them onto: a simplification at
                # half-transparent edges); a JPEG gets the picture on white.
                write_image(tmp, with_strength(key.styled8, rgb8, self.config.interp.strength), shown_as=output_path,
                            alpha=alpha if output_path.suffix.lower() in ALPHA_EXTS else None)
            if on_frame is not None:
                on_frame(1, 1)
        report.frames, report.keys, report.key_size = 1, [{"index": 0, "reason": "first"}], list(size)
        return self._finish(report, t0)

    def _video(self, input_path: Path, style_path: str | os.PathLike[str], output_path: Path,
               on_frame: FrameHook | None) -> StylizeReport:
        t0 = time.perf_counter()
        with VideoReader(input_path) as reader:
            info = reader.info
            report = StylizeReport(str(input_path), str(output_path), self.config.model,
                                   self.config.interp.method, info.width, info.height, info.fps,
                                   has_audio=info.has_audio)
            style_id = self._register_style(style_path)
            size = work_size(info.width, info.height, self.config.key_size)
            report.key_size = list(size)
            timer = _Timer(report.stage_seconds)
            with VideoWriter(output_path, info.width, info.height, info.fps, reader.time_base,
                             audio_template=reader.audio_streams, crf=self.config.crf,
                             preset=self.config.preset, metadata=info.metadata,
                             timecode=info.timecode) as writer:
                bar = _progress(info.frame_count, self.config.progress, input_path.name)
                with bar:
                    # The key-size view that feeds the selector and the maths is made on the decoding
                    # thread, beside the decode; "decode" counts the wait for both.
                    shape = (info.height, info.width, 3)
                    deferred = self._defer_frames(shape, info.decoded_frame_bytes)

                    def prepare(f: DecodedFrame | DeferredFrame) -> _Work:
                        if isinstance(f, DeferredFrame):
                            return _deferred_work(f, size, shape)
                        return _make_work(f.index, f.pts, f.rgb8, size)

                    works = _timed(reader.frames(audio_sink=writer.mux_audio, prepare=prepare, deferred=deferred),
                                   timer, "decode")
                    trim = info.width * info.height * 3 >= _TRIM_FRAME_BYTES
                    for rgb8, pts in self._stream(works, style_id, report, timer):
                        with timer("encode"):
                            writer.write(rgb8, pts)
                        report.frames += 1
                        if trim and report.frames % 10 == 0:
                            release_free_memory()
                        bar.update(1)
                        if on_frame is not None:
                            on_frame(report.frames, info.frame_count)
                writer.last_frame_ticks = reader.last_frame_ticks
                with timer("encode"):  # the encoder's flush and the container's end are encoding too
                    writer.close()
                report.frames = writer.frames_written  # an AVI of variable rate drops frames with no slot
        return self._finish(report, t0)

    def _defer_frames(self, shape: tuple[int, int, int], decoded_bytes: int | None) -> bool:
        """Whether a video's frames wait for their keys as decoded (``decoded_bytes`` each) rather than
        as RGB: where the frame budget would hold fewer RGB frames than a key gap (4K: 12 in 320 MB),
        so that keys would come closer together and every key's round trip would be waited for, and
        the decoder's frames are at least a quarter smaller (4:2:0: half, so twice as many fit). The
        conversion then runs at render time, beside the rendering. Where it buys no room it only
        costs: at 1080p (51 RGB frames) and for 4:4:4 4K it moved the same work off the decoding
        thread, and the key-size views, made from the decoder's pixels instead of the RGB frame,
        differ by ~0.6 levels, enough to choose other keys (docs/BENCHMARKS.md)."""
        rgb = float(np.prod(shape))
        smaller = decoded_bytes is not None and decoded_bytes <= 0.75 * rgb
        keys = self.config.keyframes
        gap = keys.every if keys.mode == "every" else keys.max_gap
        return smaller and self.config.max_buffer_mb * 1e6 / rgb < gap

    def _stream(self, works: Iterable[_Work], style_id: str, report: StylizeReport, timer: _Timer
                ) -> Iterator[tuple[np.ndarray, int | None]]:
        """Stylized frames (full-resolution uint8 RGB, and their pts) in input order.

        A key frame's round trip to the edge and the fit of its transform run on worker threads (as
        many keys at once as the edge link's ``max_in_flight``) while this one goes on decoding and
        choosing keys: a phone does not sit idle while its request is on the network and the edge's
        model runs. The frames since the last key wait in memory until the key after them is back;
        all waiting frames together stay within the ``max_buffer_mb`` budget (reaching it waits for
        the oldest key).

        Decoding runs ahead of rendering: one frame is rendered per frame decoded, and while the
        oldest frames wait for their key, decoding goes on alone. Whatever lead it gains (up to the
        budget) it keeps, so later keys are asked that many frames before they are needed and the
        edge's latency hides behind rendering them. Rendering each segment as soon as its key was
        back, and only then decoding on, left no lead: every key's whole round trip was waited for
        (docs/BENCHMARKS.md, "The edge's latency").

        The yielded image may be a buffer that is overwritten by the next frame: a consumer that
        keeps it must copy it (an encoder copies what it takes anyway)."""
        interp = self._interpolator()
        exposure, shot = ExposureTracker(), ShotExposure()
        refine = self.config.keyframes.mode == "auto"
        selector: KeyframeSelector | None = None
        budget = 0  # most bytes held at once (pending and closed segments), set from the first frame
        pending: list[_Work] = []
        segments: deque[_Segment] = deque()  # keys asked for, in order, with the frames before each
        last_key: Future[KeyFrame] | None = None
        buffers: list[np.ndarray] = []
        pool = ThreadPoolExecutor(max_workers=max(1, self.edge.max_in_flight), thread_name_prefix="mvstylizer-key")
        # A video's frames are made RGB only when rendered (DeferredFrame); the next frame's conversion
        # runs on its own thread while this one renders, as it did on the decoding thread before.
        ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mvstylizer-rgb")
        converted: dict[int, Future[np.ndarray]] = {}

        def full(f: _Work, then: _Work | None) -> np.ndarray:
            """``f``'s full-resolution frame, and ``then``'s started."""
            job = converted.pop(f.index, None)
            if then is not None and then.deferred and then.index not in converted:
                converted[then.index] = ahead.submit(then.full)
            return job.result() if job is not None else f.full()

        strength = self.config.interp.strength

        def finished(styled8: np.ndarray, frame8: np.ndarray, light: Lighting, upto: int,
                     out: np.ndarray | None) -> np.ndarray:
            """``styled8`` (the frame's full-strength rendering) scaled towards black and white as far as
            the frame is faded (ShotExposure), then blended with the frame at the strength, which keeps
            the frame's own fade (into ``out``, which may be ``styled8``; None: ``styled8`` itself if
            nothing changes it, else a new image)."""
            shot.forget(light.index)
            kept = shot.kept(light, upto)
            if strength >= 1.0 and not any(kept):
                return styled8
            out = frame_buffer(styled8) if out is None else out
            if any(kept):
                styled8 = fade_levels(styled8, *kept, out=out)
            return with_strength(styled8, frame8, strength, out=out)

        def frame_buffer(like: np.ndarray) -> np.ndarray:
            if not buffers or buffers[0].shape != like.shape:
                buffers[:] = [np.empty_like(like)]
            return buffers[0]

        def ask(work: _Work, reason: str) -> Future[KeyFrame]:
            report.keys.append({"index": work.index, "reason": reason})
            return pool.submit(self._key, work, style_id, timer, interp)

        def close(work: _Work, reason: str) -> None:
            """``work`` becomes a key: the frames pending since the last key wait for it."""
            nonlocal last_key
            key = ask(work, reason)
            segments.append(_Segment(last_key or key, list(pending), key, work.pts, work.light))
            pending.clear()
            last_key = key

        def held() -> int:
            return len(pending) + sum(len(s.frames) + 1 for s in segments)

        def held_bytes(key_bytes: int) -> int:
            """Frames as they are held, each segment's key as the full-resolution RGB image it renders."""
            frames = sum(w.nbytes for w in pending) + sum(w.nbytes for s in segments for w in s.frames)
            return frames + key_bytes * len(segments)

        def check(seg: _Segment) -> list[_Segment]:
            """``seg`` (its keys back) as it will be rendered. Where its two keys style the middle frame's
            colours differently, something changed in between (a transition, new content, light) and a
            blend would guess: the middle frame becomes a key too, asked at once, and each half is
            checked the same way once that key is back. Adaptive key frames only: a fixed stride
            (``every:N``) is what the user asked for."""
            seg.checked = True
            if not refine or not seg.frames or seg.previous is seg.key:
                return [seg]
            mid = len(seg.frames) // 2
            with timer("interpolation"):
                disagree = interp.keys_disagree(seg.previous.result(), seg.key.result(), seg.frames[mid].low8,
                                                seg.frames[mid].exposure)
            if not disagree:
                return [seg]
            middle = ask(seg.frames[mid], "refine")
            m = seg.frames[mid]
            return [_Segment(seg.previous, seg.frames[:mid], middle, m.pts, m.light),
                    _Segment(middle, seg.frames[mid + 1:], seg.key, seg.pts, seg.light)]

        def check_ready() -> None:
            """Check every segment whose keys are back, so refinements are asked as early as possible. A
            key that failed is left for its turn: the frames before it come out first."""
            checked: list[_Segment] = []
            for i, seg in enumerate(segments):
                keys = (seg.previous, seg.key)
                ready = not seg.checked and all(f.done() for f in keys)
                if ready and (i == 0 or not any(f.exception() for f in keys)):
                    checked.extend(check(seg))
                else:
                    checked.append(seg)
            segments.clear()
            segments.extend(checked)

        def next_frame(wait: bool) -> tuple[np.ndarray, int | None] | None:
            """The next output frame, or None if the oldest segment's keys are not back and not ``wait``.
            Waiting wakes at every key that comes back, so the gaps it closes are checked at once."""
            while True:
                check_ready()
                seg = segments[0]
                if not seg.checked:
                    if not wait:
                        return None
                    outstanding = {f for s in segments for f in (s.previous, s.key) if not f.done()}
                    with timer("wait"):
                        futures_wait(outstanding, return_when=FIRST_COMPLETED)
                    continue
                a, b = seg.previous.result(), seg.key.result()
                if seg.frames:
                    f = seg.frames.pop(0)
                    with timer("decode"):
                        rgb8 = full(f, seg.frames[0] if seg.frames else None)
                    with timer("interpolation"):
                        out = interp.frame(f.index, f.low8, rgb8, a, b, f.exposure, out=frame_buffer(rgb8))
                        return finished(out, rgb8, f.light, seg.light.index, out), f.pts
                segments.popleft()
                assert b.styled8 is not None  # Interpolator.key always renders the key's output
                frame8 = b.full8 if b.full8 is not None else b.styled8  # kept below full strength only
                return finished(b.styled8, frame8, seg.light, seg.light.index, None), seg.pts

        try:
            for work in works:
                if selector is None:  # sized from the first frame: at most max_buffer_mb of frames held
                    fit = max(1, int(self.config.max_buffer_mb / (work.nbytes / 1e6)))
                    keys = self.config.keyframes
                    max_gap = min(keys.max_gap, fit)
                    if keys.mode == "every" and keys.every > fit:
                        # The frames between two keys wait in memory: a stride longer than the budget
                        # holds would overrun it (every:200 at 720p held 553 MB of a 320 MB budget). It is
                        # shortened, and the user told.
                        log.warning("every:%d would hold %d frames of %.3g MB, over the %g MB frame budget; "
                                    "a key every %d frames instead", keys.every, keys.every, work.nbytes / 1e6,
                                    self.config.max_buffer_mb, fit)
                        keys = replace(keys, every=fit)
                    selector = KeyframeSelector(replace(keys, max_gap=max_gap))
                    # Two key gaps: the next gap decodes while the last one's key is at the edge.
                    budget = min(fit, 2 * max_gap) * work.nbytes
                    key_bytes = int(np.prod(work.shape))
                with timer("select"):
                    work.exposure = exposure.push(work.gray)
                    decision = selector.push(work.low8)
                    # A fade trips the cut detector: only a cut that is no mere rescaling starts a shot,
                    # and so does whatever follows a frame black or white to the last pixel.
                    new_shot = (decision.reason == "cut" and not exposure.rescaled) or exposure.after_blank
                    work.light = shot.push(work.index, exposure.levels, exposure.headroom, new_shot)
                if decision.is_key:
                    if decision.previous_is_key and pending:
                        close(pending.pop(), "before-cut")
                    close(work, decision.reason)
                else:
                    pending.append(work)
                report.max_buffered_frames = max(report.max_buffered_frames, held())
                made_room = False
                while segments and held_bytes(key_bytes) >= budget:  # the next frame must fit
                    out = next_frame(wait=True)
                    assert out is not None
                    yield out
                    made_room = True
                out = next_frame(wait=False) if segments and not made_room else None
                if out is not None:
                    yield out
            if pending:  # the last frame is always a key, so no frame is extrapolated
                close(pending.pop(), "last")
            while segments:
                out = next_frame(wait=True)
                assert out is not None
                yield out
        except GeneratorExit:  # the caller stopped reading: keys in flight finish, the link stays open
            raise
        except BaseException:
            # An error or a cancelled run (Ctrl-C): queued keys never start, and the link ends its
            # requests in flight at once (a key at a hung edge held a Ctrl-C for its timeout and
            # retries, minutes); the link works again for a later run.
            pool.shutdown(wait=False, cancel_futures=True)
            self.edge.close()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            ahead.shutdown(wait=True, cancel_futures=True)
        report.keys.sort(key=lambda k: k["index"])

    def _interpolator(self) -> Interpolator:
        return Interpolator(self.config.interp, spatial=self._model_is_spatial())

    def _model_entry(self) -> dict | None:
        """The edge's description of ``config.model`` (None if it lists no such model), asked once
        per run: a remote edge answers over the network, and its list does not change mid-run."""
        if self._entry is None:
            self._entry = (find_model(self.edge.models(), self.config.model),)
        return self._entry[0]

    def _resolved_model(self) -> str:
        """``name:runtime`` of the model the edge runs for ``config.model`` (as asked if it does not say)."""
        m = self._model_entry()
        if m is None:
            return self.config.model
        runtime = self.config.model.partition(":")[2] or (m.get("runtimes") or [""])[0]
        return f"{m['name']}:{runtime}".rstrip(":")

    def _model_is_spatial(self) -> bool:
        """Whether the edge says the chosen model varies its colours over the picture (then keys
        carry a bilateral grid besides their global look). An edge that does not say is assumed to."""
        m = self._model_entry()
        return True if m is None else bool(m.get("spatial", True))

    def _key(self, work: _Work, style_id: str, timer: _Timer, interp: Interpolator) -> KeyFrame:
        low = work.low8.astype(np.float32) * (1.0 / 255.0)
        with timer("edge"):
            # The model the edge resolved at the start, by name and runtime, not "default": after a
            # fallback the in-process edge's default is another model, which took over mid-video.
            (styled_low,) = self.edge.stylize(style_id, self._resolved_model(), [low])
        if styled_low.shape != low.shape:
            raise UserError(f"edge returned a {styled_low.shape[1]}x{styled_low.shape[0]} frame for a "
                            f"{low.shape[1]}x{low.shape[0]} key frame")
        with timer("smoothing"):
            if self.smoother is not None:
                coeffs, global_map = self.smoother.maps(low, styled_low, work.shape[1] / low.shape[1])
                styled_low = render(coeffs, global_map, low, work.low8).astype(np.float32) * (1.0 / 255.0)
            # A key is rendered by its own transform, exactly as the frames around it are.
            return interp.key(work.index, work.low8, styled_low, work.full(), work.exposure, work.gray)

    def _finish(self, report: StylizeReport, t0: float) -> StylizeReport:
        report.model = self._resolved_model()
        report.bytes_to_edge = self.edge.bytes_sent
        report.bytes_from_edge = self.edge.bytes_received
        report.total_seconds = time.perf_counter() - t0
        return report


_FLOAT_SLACK = 0.5  # how far outside [0, 1] a float image may stray and be clipped, not refused


def poor_style_size(width: int, height: int) -> bool:
    """Whether a style photo of this size is too small or too thin to hold much of a look."""
    return min(width, height) < MIN_STYLE_SIDE or max(width, height) > MAX_STYLE_ASPECT * min(width, height)


def warn_poor_style(name: str, width: int, height: int) -> None:
    """The one warning line for a style photo :func:`poor_style_size` finds poor (stylize, export-lut)."""
    if poor_style_size(width, height):
        log.warning("style %s is %dx%d: a style is matched by its colours and what they are on, and so "
                    "small or so thin an image holds little of either; a photo of at least %d px a side "
                    "works best", name, width, height, 4 * MIN_STYLE_SIDE)


def _as_rgb8(img: np.ndarray, what: str) -> np.ndarray:
    """HxWx3 uint8 RGB from uint8 or float-in-[0,1] RGB; a clear error for anything else."""
    a = np.asarray(img)
    if a.ndim != 3 or a.shape[2] != 3 or min(a.shape[:2]) < 1:
        raise UserError(f"{what} must be an HxWx3 RGB image, got an array of shape {a.shape}")
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if not np.issubdtype(a.dtype, np.floating):
        raise UserError(f"{what} must be uint8 or float in [0, 1], got {a.dtype}")
    # NaN has no defined uint8; as read_image does, it is taken as black (and +-inf as the range's ends).
    f = np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=0.0)
    lo, hi = float(f.min()), float(f.max())
    # Resampling leaves values a little outside [0, 1], which clipping is right for; 0-255 data given as
    # float came out a white picture without a word.
    if lo < -_FLOAT_SLACK or hi > 1.0 + _FLOAT_SLACK:
        raise UserError(f"{what} holds values from {lo:g} to {hi:g}: a float image must be in [0, 1] "
                        "(divide 0-255 values by 255)")
    return (np.clip(f, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _make_work(index: int, pts: int | None, rgb8: np.ndarray, size: tuple[int, int]) -> _Work:
    low8 = quick_downscale(rgb8, size)
    return _Work(index, pts, lambda: rgb8, rgb8.shape, rgb8.nbytes, low8, cv2.cvtColor(low8, cv2.COLOR_RGB2GRAY))


def _deferred_work(f: DeferredFrame, size: tuple[int, int], shape: tuple[int, ...]) -> _Work:
    """A video frame held as decoded (half the bytes of RGB for 4:2:0), made RGB where it is rendered."""
    low8 = f.small(*size)
    return _Work(f.index, f.pts, f.rgb8, shape, f.nbytes, low8, cv2.cvtColor(low8, cv2.COLOR_RGB2GRAY), deferred=True)


class _Timer:
    """Accumulates wall time per pipeline stage into a dict."""

    def __init__(self, totals: dict[str, float]) -> None:
        self.totals = totals
        self._lock = threading.Lock()  # keys in flight are timed on several threads

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                self.totals[stage] = self.totals.get(stage, 0.0) + time.perf_counter() - t


def _timed(frames: Iterator[_Work], timer: _Timer, stage: str) -> Iterator[_Work]:
    while True:
        with timer(stage):
            frame = next(frames, None)
        if frame is None:
            return
        yield frame


def _progress(total: int | None, enabled: bool, name: str):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, unit="frame", desc=name, leave=False)
