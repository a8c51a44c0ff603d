"""The phone's own work per frame, alone: `mvstylizer bench phone CLIP`.

A whole `stylize` run shares the cores between the phone's work, the decoder, the x264 encoder and,
with the embedded edge, the model; its per-stage seconds are inflated by whatever ran beside them.
This benchmark times what the phone adds to a transcode, and nothing else:

* the clip's first ``frames`` frames are decoded into memory first (not timed);
* :meth:`VideoPipeline.stream` then runs on them, the pipeline's own code from the frame to the
  stylized frame: the key-size view, exposure, key selection, the key's transform fit (on the
  pipeline's worker thread, beside the other work, as in a real run) and every in-between frame's
  rendering, plus the refinement checks;
* the edge's answers are recorded by one untimed warm-up run and replayed after it
  (:mod:`.recorded_edge`): a key costs the phone its JPEG encode and the answer's decode, as with a
  remote edge, and otherwise only waiting, which the worker thread overlaps;
* nothing is encoded: the frames are dropped as they come out.

Reported per run: wall and CPU milliseconds per frame (all frames, keys included), the part of the
wall time the frames spent waiting for their key's fit on the worker thread (the phone has nothing
else to do then; in a real run decoding and encoding fill it) and the rest, the phone's work; the
interpolation stage per in-between frame; medians over ``repeats`` runs. Simplification: the clip's
frames are held in memory (at 1080p, 6 MB each), as a real run never does; a frame's first touch of
fresh memory is then not paid in the timed runs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..edge.service import EdgeService
from ..errors import UserError
from ..files import check_input_file
from ..mobile.pipeline import StylizeConfig, StylizeReport, VideoPipeline
from ..video.image import read_style
from ..video.media import package_media
from ..video.reader import VideoReader
from .machine import machine_info
from .recorded_edge import RecordedEdge


@dataclass(frozen=True)
class PhoneBenchConfig:
    """Args:
    clip: the video whose first ``frames`` frames are stylized.
    style: style photo; None: scikit-image's coffee.png, as `make demo` uses.
    model: edge model, as `stylize --model`.
    frames: how many frames, from the first.
    repeats: timed runs after the warm-up; medians are reported.
    """

    clip: Path
    style: Path | None = None
    model: str = "default"
    frames: int = 120
    repeats: int = 5

    def __post_init__(self) -> None:
        if self.frames < 2 or self.repeats < 1:
            raise ValueError(f"need at least 2 frames and 1 repeat, got {self.frames} and {self.repeats}")


@dataclass
class PhoneRun:
    wall_ms_per_frame: float
    wait_ms_per_frame: float
    work_ms_per_frame: float  # wall minus wait
    cpu_ms_per_frame: float
    interpolation_ms_per_inbetween: float
    select_ms_per_frame: float
    key_fit_ms_per_key: float


@dataclass
class PhoneReport:
    clip: str
    width: int
    height: int
    frames: int
    keys: int
    model: str
    machine: dict
    runs: list[PhoneRun] = field(default_factory=list)

    def median(self, name: str) -> float:
        return statistics.median(getattr(r, name) for r in self.runs)

    def as_dict(self) -> dict:
        # Unrounded, so a median always lies between its runs as written.
        medians = {name: self.median(name) for name in PhoneRun.__dataclass_fields__}
        return {**{k: v for k, v in asdict(self).items() if k != "runs"}, "median": medians,
                "runs": [asdict(r) for r in self.runs]}

    def markdown(self) -> str:
        m = {name: self.median(name) for name in PhoneRun.__dataclass_fields__}
        return "\n".join([
            "| clip | size | frames / keys | model | phone work ms per frame | wall (work + waiting for keys) | "
            "CPU ms per frame | interpolation ms per in-between frame | selection ms per frame | key fit ms per key |",
            "|---|---|---|---|---|---|---|---|---|---|",
            f"| {self.clip} | {self.width}x{self.height} | {self.frames} / {self.keys} | {self.model} | "
            f"{m['work_ms_per_frame']:.1f} | {m['wall_ms_per_frame']:.1f} | {m['cpu_ms_per_frame']:.1f} | "
            f"{m['interpolation_ms_per_inbetween']:.1f} | {m['select_ms_per_frame']:.1f} | "
            f"{m['key_fit_ms_per_key']:.0f} |",
            "",
            f"Medians of {len(self.runs)} runs after a warm-up; frames decoded beforehand, edge answers "
            f"replayed, nothing encoded ({self.machine.get('cpu_count')} cores).",
        ])


def run_phone(cfg: PhoneBenchConfig, log: Callable[[str], None] = lambda _msg: None) -> PhoneReport:
    check_input_file(cfg.clip, "clip")
    style_path = cfg.style if cfg.style is not None else package_media("coffee.png")
    style = read_style(style_path, StylizeConfig.max_style_side)
    frames = _first_frames(cfg.clip, cfg.frames)
    h, w = frames[0].shape[:2]
    edge = RecordedEdge(EdgeService())
    try:
        pipeline = VideoPipeline(edge, StylizeConfig(model=cfg.model, progress=False))
        log(f"{cfg.clip.name}: {len(frames)} frames at {w}x{h}, warm-up (the edge stylizes the keys)")
        warm = _run(pipeline, frames, style)
        report = PhoneReport(cfg.clip.name, w, h, len(frames), len(warm[1].keys), warm[1].model, machine_info())
        for i in range(cfg.repeats):
            run, rep = _run(pipeline, frames, style)
            if rep.key_frames != warm[1].key_frames:  # replayed answers make every run choose alike
                raise RuntimeError("key frames differ between runs on the same frames")
            report.runs.append(run)
            log(f"  run {i + 1}/{cfg.repeats}: {run.work_ms_per_frame:.1f} ms per frame "
                f"(+{run.wait_ms_per_frame:.1f} waiting for keys)")
    finally:
        edge.close()
    return report


def _run(pipeline: VideoPipeline, frames: list[np.ndarray], style: np.ndarray) -> tuple[PhoneRun, StylizeReport]:
    report = StylizeReport("<frames>", "<frames>", pipeline.config.model, pipeline.config.interp.method,
                           0, 0, 0.0)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in pipeline.stream(frames, style, report):
        pass
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n, keys = len(frames), len(report.keys)
    s = report.stage_seconds
    run = PhoneRun(wall_ms_per_frame=1000 * wall / n, wait_ms_per_frame=1000 * s["wait"] / n,
                   work_ms_per_frame=1000 * (wall - s["wait"]) / n, cpu_ms_per_frame=1000 * cpu / n,
                   interpolation_ms_per_inbetween=1000 * s["interpolation"] / max(1, n - keys),
                   select_ms_per_frame=1000 * s["select"] / n,
                   key_fit_ms_per_key=1000 * s["smoothing"] / max(1, keys))
    return run, report


def _first_frames(path: Path, count: int) -> list[np.ndarray]:
    frames = []
    with VideoReader(path) as reader:
        for f in reader.frames():
            if f.index >= count:
                break
            frames.append(f.rgb8.copy())
    if len(frames) < 2:
        raise UserError(f"{path.name}: fewer than 2 decodable frames")
    return frames
