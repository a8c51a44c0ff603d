"""The phone's whole job: video in, stylized video out, touching the edge only for key frames.

One streaming pass: decode -> key-frame selector -> (key) send downscaled to the edge, fit its colour
transform / (other) buffer until the next key -> render the buffered frames from their two keys'
transforms -> encode. Only the frames since the last key are held, so memory is bounded by
``max_gap`` frames (and ``max_buffer_mb``), not by the length of the video. This module imports no
torch: the edge is reached through ``EdgeLink``.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..errors import UserError
from ..imaging import area_resize, fit_within, shrink_to
from ..video.io import (
    VideoReader,
    VideoWriter,
    atomic_path,
    check_output_path,
    is_image_path,
    read_image,
    write_image,
)
from .affine import render
from .edge_link import EdgeLink
from .exposure import ExposureTracker
from .interpolate import InterpConfig, Interpolator, KeyFrame
from .keyframes import KeyframeConfig, KeyframeSelector
from .meta_smoothing import LearnedSmoother

STAGES = ("decode", "select", "edge", "smoothing", "interpolation", "encode")
SMOOTHERS = ("learned", "guided")


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
    # The frames since the last key are held in memory at full resolution; at most this many MB of
    # them, which shortens the key gap for very large frames (4K: 12 frames instead of 30; the 4K
    # pipeline's peak memory was 2.2-2.4 GB with 30, against 1.06 GB for a bare transcode).
    max_buffer_mb: float = 320.0

    def __post_init__(self) -> None:
        if self.key_size < 16:
            raise ValueError(f"key size must be at least 16 pixels, got {self.key_size}")
        if self.smoothing not in SMOOTHERS:
            raise ValueError(f"smoothing must be one of {SMOOTHERS}, got {self.smoothing!r}")


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
    key_frames: list[int] = field(default_factory=list)
    key_reasons: dict[str, int] = field(default_factory=dict)
    key_size: list[int] = field(default_factory=list)  # [width, height] sent to the edge
    stage_seconds: dict[str, float] = field(default_factory=lambda: {s: 0.0 for s in STAGES})
    total_seconds: float = 0.0
    bytes_to_edge: int = 0
    bytes_from_edge: int = 0
    has_audio: bool = False
    # Most decoded frames held at once: bounded by the key-frame gap, never by the video's length.
    max_buffered_frames: int = 0

    def summary(self) -> dict:
        d = asdict(self)
        keys = max(1, len(self.key_frames))
        d["key_count"] = len(self.key_frames)
        d["bytes_to_edge_per_key"] = round(self.bytes_to_edge / keys)
        d["bytes_from_edge_per_key"] = round(self.bytes_from_edge / keys)
        d["stage_seconds"] = {k: round(v, 4) for k, v in self.stage_seconds.items()}
        d["total_seconds"] = round(self.total_seconds, 4)
        return d

    def write_json(self, path: str | Path) -> None:
        with atomic_path(Path(path)) as tmp:
            tmp.write_text(json.dumps(self.summary(), indent=2) + "\n")


@dataclass
class _Work:
    """A decoded frame with the low-resolution views the phone-side maths runs on."""

    index: int
    pts: int | None
    rgb8: np.ndarray
    low8: np.ndarray  # work resolution, uint8
    gray: np.ndarray  # work resolution, uint8
    exposure: float = 0.0  # log exposure relative to the first frame (mobile/exposure.py)


def work_size(width: int, height: int, key_size: int) -> tuple[int, int]:
    """(w, h) of the key frames: long side ``key_size``, never upscaled, aspect kept, at least 8 px."""
    return fit_within(width, height, key_size, min_side=8)


class Stylizer:
    """Stylizes videos and images through one edge link (embedded or HTTP)."""

    def __init__(self, edge: EdgeLink, config: StylizeConfig | None = None) -> None:
        self.edge = edge
        self.config = config or StylizeConfig()
        self.smoother = LearnedSmoother() if self.config.smoothing == "learned" else None

    # --- public entry points -------------------------------------------------------------
    def run(self, input_path: str | Path, style_path: str | Path, output_path: str | Path) -> StylizeReport:
        input_path, output_path = Path(input_path), Path(output_path)
        check_output_path(input_path, output_path)
        if is_image_path(input_path):
            if not is_image_path(output_path):
                raise UserError(f"input {input_path.name} is an image, so the output must be an image too "
                                f"(.png, .jpg, ...), not {output_path.name}")
            return self._image(input_path, style_path, output_path)
        if is_image_path(output_path):
            raise UserError(f"input {input_path.name} is a video, so the output must be a video "
                            f"(.mp4, .mov, .mkv), not {output_path.name}")
        return self._video(input_path, style_path, output_path)

    # --- internals ---------------------------------------------------------------------------
    def _register_style(self, style_path: str | Path) -> str:
        return self.edge.register_style(shrink_to(read_image(style_path), self.config.max_style_side))

    def _image(self, input_path: Path, style_path: str | Path, output_path: Path) -> StylizeReport:
        t0 = time.perf_counter()
        rgb8 = (np.clip(read_image(input_path), 0, 1) * 255 + 0.5).astype(np.uint8)
        h, w = rgb8.shape[:2]
        report = StylizeReport(str(input_path), str(output_path), self.config.model,
                               self.config.interp.method, w, h, 0.0)
        style_id = self._register_style(style_path)
        timer = _Timer(report.stage_seconds)
        size = work_size(w, h, self.config.key_size)
        work = _make_work(0, None, rgb8, size)
        key = self._key(work, style_id, timer, self._interpolator())
        with timer("encode"):
            write_image(output_path, key.styled8)
        report.frames, report.key_frames, report.key_size = 1, [0], list(size)
        return self._finish(report, t0)

    def _video(self, input_path: Path, style_path: str | Path, output_path: Path) -> StylizeReport:
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
            interp = self._interpolator()
            frame_mb = info.width * info.height * 3 / 1e6
            max_gap = max(1, min(self.config.keyframes.max_gap, int(self.config.max_buffer_mb / frame_mb)))
            selector = KeyframeSelector(replace(self.config.keyframes, max_gap=max_gap))
            exposure = ExposureTracker()
            with VideoWriter(output_path, info.width, info.height, info.fps, reader.time_base,
                             audio_template=reader.audio_stream, crf=self.config.crf,
                             preset=self.config.preset) as writer:

                def emit(rgb8: np.ndarray, pts: int | None) -> None:
                    with timer("encode"):
                        writer.write(rgb8, pts)
                    report.frames += 1
                    bar.update(1)

                def fill(a: KeyFrame, b: KeyFrame, frames: list[_Work]) -> None:
                    """Emit ``frames`` (strictly between keys a and b). Where the two keys style the
                    middle frame's colours differently, something changed in between (a transition,
                    new content, light) and a blend would guess: the middle frame becomes a key too,
                    and each half is filled the same way. Adaptive key frames only: a fixed stride
                    (``every:N``) is what the user asked for."""
                    if frames and a is not b and self.config.keyframes.mode == "auto":
                        mid = len(frames) // 2
                        with timer("interpolation"):
                            disagree = interp.keys_disagree(a, b, frames[mid].low8)
                        if disagree:
                            key = self._key(frames[mid], style_id, timer, interp)
                            report.key_frames.append(key.index)
                            refined[0] += 1
                            fill(a, key, frames[:mid])
                            emit(key.styled8, frames[mid].pts)
                            fill(key, b, frames[mid + 1:])
                            return
                    for f in frames:
                        with timer("interpolation"):
                            # The writer copies each frame as it takes it, so one output buffer serves all.
                            out = interp.frame(f.index, f.gray, f.rgb8, a, b, f.exposure, out=frame_buffer(f.rgb8))
                        emit(out, f.pts)

                def close_segment(key: KeyFrame, key_work: _Work) -> None:
                    """Fill the buffered frames between the previous key and ``key``, then emit ``key``."""
                    fill(last_key or key, key, pending)
                    pending.clear()
                    emit(key.styled8, key_work.pts)
                    report.key_frames.append(key.index)

                last_key: KeyFrame | None = None
                pending: list[_Work] = []
                refined = [0]  # keys added by fill()
                buffers: list[np.ndarray] = []

                def frame_buffer(like: np.ndarray) -> np.ndarray:
                    if not buffers or buffers[0].shape != like.shape:
                        buffers[:] = [np.empty_like(like)]
                    return buffers[0]

                bar = _progress(info.frame_count, self.config.progress, input_path.name)
                with bar:
                    # The key-size view that feeds the selector and the maths is made on the decoding
                    # thread, beside the decode; "decode" counts the wait for both.
                    prepare = lambda f: _make_work(f.index, f.pts, f.rgb8, size)  # noqa: E731
                    for work in _timed(reader.frames(audio_sink=writer.mux_audio, prepare=prepare), timer, "decode"):
                        with timer("select"):
                            work.exposure = exposure.push(work.gray)
                            decision = selector.push(work.low8)
                        if decision.is_key:
                            if decision.previous_is_key and pending:
                                prev = pending.pop()
                                prev_key = self._key(prev, style_id, timer, interp)
                                close_segment(prev_key, prev)
                                last_key = prev_key
                            key = self._key(work, style_id, timer, interp)
                            close_segment(key, work)
                            last_key = key
                        else:
                            pending.append(work)
                            report.max_buffered_frames = max(report.max_buffered_frames, len(pending))
                    if pending:  # the last frame is always a key, so no frame is extrapolated
                        last = pending.pop()
                        close_segment(self._key(last, style_id, timer, interp), last)
                report.key_frames.sort()
                report.key_reasons = dict(selector.stats)
                if refined[0]:
                    report.key_reasons["refine"] = refined[0]
                with timer("encode"):  # the encoder's flush and the container's end are encoding too
                    writer.close()
        return self._finish(report, t0)

    def _interpolator(self) -> Interpolator:
        return Interpolator(self.config.interp, spatial=self._model_is_spatial())

    def _model_is_spatial(self) -> bool:
        """Whether the edge says the chosen model varies its colours over the picture (then keys
        carry a bilateral grid besides their global look). An edge that does not say is assumed to."""
        name = self.config.model.partition(":")[0]
        for m in self.edge.models():
            if name == m.get("name") or name in m.get("aliases", []):
                return bool(m.get("spatial", True))
        return True

    def _key(self, work: _Work, style_id: str, timer: "_Timer", interp: Interpolator) -> KeyFrame:
        low = work.low8.astype(np.float32) * (1.0 / 255.0)
        with timer("edge"):
            (styled_low,) = self.edge.stylize(style_id, self.config.model, [low])
        if styled_low.shape != low.shape:
            raise UserError(f"edge returned a {styled_low.shape[1]}x{styled_low.shape[0]} frame for a "
                            f"{low.shape[1]}x{low.shape[0]} key frame")
        with timer("smoothing"):
            if self.smoother is not None:
                coeffs, global_map = self.smoother.maps(low, styled_low, work.rgb8.shape[1] / low.shape[1])
                styled_low = render(coeffs, global_map, low, work.low8).astype(np.float32) * (1.0 / 255.0)
            # A key is rendered by its own transform, exactly as the frames around it are.
            return interp.key(work.index, work.low8, styled_low, work.rgb8, work.exposure, work.gray)

    def _finish(self, report: StylizeReport, t0: float) -> StylizeReport:
        report.bytes_to_edge = self.edge.bytes_sent
        report.bytes_from_edge = self.edge.bytes_received
        report.total_seconds = time.perf_counter() - t0
        return report


def _make_work(index: int, pts: int | None, rgb8: np.ndarray, size: tuple[int, int]) -> _Work:
    low8 = area_resize(rgb8, size)
    return _Work(index, pts, rgb8, low8, cv2.cvtColor(low8, cv2.COLOR_RGB2GRAY))


class _Timer:
    """Accumulates wall time per pipeline stage into a dict."""

    def __init__(self, totals: dict[str, float]) -> None:
        self.totals = totals

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
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
