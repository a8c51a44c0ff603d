"""``mvstylizer bench footage DIR``: the pipeline on real camera clips, against frame-by-frame and a
bare transcode.

For every clip, one after the other, with nothing else running:

1. **Pipeline**: ``mvstylizer stylize`` with its default options (and ``--model``) as a child process
   of the installed command, so its wall time includes process start, model load, decode and
   encode; its output is decoded back from the file, so H.264 loss counts against it.
2. **Transcode**: decode + H.264 encode with the pipeline's reader, writer and x264 settings, also
   a child process: the floor that any app re-encoding the clip pays, start-up included.
3. **Frame-by-frame**: the same model on every full-resolution frame in this process
   (:class:`~mvstylizer.bench.compare.Framewise`), encoded with the same writer and settings: the
   video a frame-by-frame stylizer would deliver, and the reference. Its time is the model calls
   plus the transcode's (a frame-by-frame run decodes, encodes and starts a process too), which
   still leaves out its model load: a lower bound.

Scoring streams the input, our output and frame-by-frame in lockstep
(:class:`~mvstylizer.bench.compare.ClipScorer`), so a 1080p clip is never held in memory.

Only light modules are imported at the top of this file: the transcode child imports it, and its
start-up should cost what a bare transcoder's does.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..errors import UserError
from ..files import check_input_file
from ..video.formats import VIDEO_EXTS
from ..video.image import write_image
from ..video.reader import VideoReader
from ..video.writer import VideoWriter

if TYPE_CHECKING:
    from ..mobile.pipeline import StylizeConfig
    from .compare import ClipScores, Framewise

SSIM_MEAN_TARGET = 0.96
SSIM_WORST_TARGET = 0.92
# Per-clip targets: name -> (short label for the markdown table, what it asks).
TARGETS: dict[str, tuple[str, str]] = {
    "warp": ("warp", "warp_ours <= warp_framewise"),
    "flat_warp": ("flat", "flat_warp_ours <= flat_warp_framewise"),
    "ssim_mean": ("ssim", f"ssim_mean >= {SSIM_MEAN_TARGET}"),
    "ssim_worst": ("worst", f"ssim_worst >= {SSIM_WORST_TARGET}"),
    "speed": ("speed", "pipeline_seconds <= framewise_seconds (model calls + transcode)"),
}
# Per-clip numbers averaged into the overall row.
MEAN_KEYS = ("frames", "key_count", "warp_ours", "warp_framewise", "warp_input", "flat_warp_ours",
             "flat_warp_framewise", "flat_warp_input", "ssim_mean", "ssim_worst", "psnr_mean", "psnr_worst",
             "ssim_raw_mean", "ssim_raw_worst", "ssim_encode_floor", "pipeline_seconds", "framewise_seconds",
             "framewise_model_seconds", "transcode_seconds", "pipeline_over_transcode", "pipeline_over_framewise",
             "phone_ms_per_frame", "edge_elsewhere_seconds", "edge_elsewhere_over_transcode")
PANEL_WIDTH = 640  # montage panels are at most this wide

NOTES = [
    "pipeline_seconds: wall time of `mvstylizer stylize CLIP --style STYLE -o OUT --report R -q` "
    "(default options, plus --model if given) as a child process: process start, imports, model load, "
    "decode, key frames, interpolation and H.264 encode",
    "transcode_seconds: wall time of a child process that decodes the clip and H.264-encodes it with the "
    "pipeline's reader, writer and x264 settings (CRF, preset), audio copied; process start included",
    "framewise_model_seconds: model calls only, full-resolution frames in this process after one untimed "
    "warm-up call per clip; framewise_seconds = framewise_model_seconds + transcode_seconds, the least a "
    "frame-by-frame video run costs (it decodes, encodes and starts a process too; its model load is "
    "left out)",
    "frame-by-frame is scored as a video: its 8-bit frames H.264-encoded with the pipeline's writer and "
    "x264 settings and decoded back, as ours are; ssim_raw_*: ours against the unencoded model frames; "
    "ssim_encode_floor: the frame-by-frame video against its own unencoded frames (what the encode alone "
    "costs, the ceiling of ssim_raw for any encoded output)",
    "SSIM and warping errors at most metric_side px on the long side (area-downscaled), PSNR at full "
    "resolution",
    "warping error: DIS (medium) flow of the input frames t -> t-1 with forward-backward occlusion masks, "
    "pairs across scene cuts skipped; flat_*: only pixels of input frame t whose 7x7 luminance std is "
    "< 0.015, and visible",
    "edge_elsewhere_seconds (with --edge-elsewhere): wall time of a child process that runs the same "
    "pipeline code with its edge's answers replayed from a recording made beforehand, each as late as "
    "the model took to make it (an edge as fast as this machine, on its own cores, one key at a time), "
    "plus --edge-latency seconds of network round trip per key, with as many keys out at once as "
    "--edge URL has: the phone encodes each key and decodes each answer as with --edge URL; the model's "
    "CPU and HTTP are not paid here (the edge runs on another machine in the system's design); process "
    "start included",
    "null: undefined (no pair to score, e.g. a clip without flat pixels; PSNR of identical frames); "
    "overall means leave nulls out",
]


@dataclass
class FootageConfig:
    folder: Path
    model: str = "default"
    style: Path | None = None  # None -> scikit-image's coffee.png, as `make demo` uses
    clips: tuple[str, ...] = ()  # clip names (file names without extension); () -> every clip
    montage: Path | None = None  # folder for <clip>_worst.png
    metric_side: int = 640
    # Score only the first N frames of each clip, cut to a near-lossless copy first (frame-by-frame wct2
    # costs seconds per full-resolution frame). None: whole clips.
    max_frames: int | None = None
    repeats: int = 1  # timed runs of the pipeline and the transcode per clip (medians reported)
    # Also time the pipeline with its edge on another machine (answers recorded first, replayed in a
    # fresh process: bench/recorded_edge.py), alternated with the other two.
    edge_elsewhere: bool = False
    edge_latency: float = 0.0  # network round trip per key of that edge, seconds

    def __post_init__(self) -> None:
        if self.repeats < 1:
            raise UserError(f"--repeats must be at least 1, got {self.repeats}")
        if not 0 <= self.edge_latency < math.inf:
            raise UserError(f"--edge-latency must be a number of seconds >= 0, got {self.edge_latency}")
        if self.edge_latency and not self.edge_elsewhere:
            raise UserError("--edge-latency applies to --edge-elsewhere; add it")
        if self.max_frames is not None and self.max_frames < 2:
            raise UserError(f"--max-frames must be at least 2, got {self.max_frames}")


@dataclass
class ClipResult:
    clip: str
    file: str
    width: int
    height: int
    key_count: int
    pipeline_seconds: float
    framewise_model_seconds: float
    transcode_seconds: float
    scores: ClipScores
    # The pipeline's own report: seconds per stage (decode, select, edge, smoothing, interpolation,
    # encode) and why each key was chosen.
    stage_seconds: dict[str, float] = field(default_factory=dict)
    key_reasons: dict[str, int] = field(default_factory=dict)
    # The pipeline with its edge elsewhere (``FootageConfig.edge_elsewhere``), else None.
    edge_elsewhere_seconds: float | None = None

    @property
    def phone_ms_per_frame(self) -> float:
        """The phone's own work per frame, key frames' share included: selection (downscale,
        exposure, key-frame decisions) and interpolation, in ms (decode and encode excluded)."""
        busy = self.stage_seconds.get("select", math.nan) + self.stage_seconds.get("interpolation", math.nan)
        return 1000.0 * busy / max(1, self.scores.frames)

    @property
    def framewise_seconds(self) -> float:
        return self.framewise_model_seconds + self.transcode_seconds

    @property
    def pipeline_over_transcode(self) -> float:
        return self.pipeline_seconds / self.transcode_seconds

    @property
    def edge_elsewhere_over_transcode(self) -> float | None:
        if self.edge_elsewhere_seconds is None:
            return None
        return self.edge_elsewhere_seconds / self.transcode_seconds

    @property
    def pipeline_over_framewise(self) -> float:
        return self.pipeline_seconds / self.framewise_seconds if self.framewise_seconds > 0 else math.inf

    def targets(self) -> dict[str, bool | None]:
        """Which targets the clip meets; None where a number is undefined (e.g. no flat pixels)."""
        s = self.scores
        return {
            "warp": _at_most(s.warp_ours, s.warp_framewise),
            "flat_warp": _at_most(s.flat_warp_ours, s.flat_warp_framewise),
            "ssim_mean": _at_most(SSIM_MEAN_TARGET, s.ssim_mean),
            "ssim_worst": _at_most(SSIM_WORST_TARGET, s.ssim_worst),
            "speed": _at_most(self.pipeline_seconds, self.framewise_seconds),
        }

    def as_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "scores"}
        d.update(asdict(self.scores), framewise_seconds=self.framewise_seconds,
                 phone_ms_per_frame=self.phone_ms_per_frame,
                 pipeline_over_transcode=self.pipeline_over_transcode,
                 edge_elsewhere_over_transcode=self.edge_elsewhere_over_transcode,
                 pipeline_over_framewise=self.pipeline_over_framewise, targets=self.targets())
        return d


@dataclass
class ClipError:
    clip: str
    file: str
    error: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class FootageReport:
    folder: str
    style: str
    model: str
    metric_side: int
    pipeline_cli: str  # the command the pipeline ran as
    results: list[ClipResult | ClipError]
    machine: dict
    edge_latency: float = 0.0  # with --edge-elsewhere: the network round trip per key, seconds

    def overall(self) -> dict:
        """Means over the clips that ran, and how many of them meet each target."""
        ok = [r for r in self.results if isinstance(r, ClipResult)]
        rows = [r.as_dict() for r in ok]
        return {
            "clips": len(self.results), "ok": len(ok), "failed": len(self.results) - len(ok),
            "mean": {k: _mean([row[k] for row in rows]) for k in MEAN_KEYS},
            "targets_met": {name: sum(1 for r in ok if r.targets()[name]) for name in TARGETS},
        }

    def as_dict(self) -> dict:
        out = _json_safe({
            "folder": self.folder, "style": self.style, "model": self.model, "metric_side": self.metric_side,
            "pipeline_cli": self.pipeline_cli, "edge_latency": self.edge_latency,
            "targets": {name: text for name, (_, text) in TARGETS.items()}, "notes": NOTES,
            "machine": self.machine, "clips": [r.as_dict() for r in self.results], "overall": self.overall(),
        })
        assert isinstance(out, dict)  # _json_safe maps a dict to a dict
        return out

    def markdown(self) -> str:
        """One row per clip and an overall row, ready to paste into docs/BENCHMARKS.md."""
        head = ["clip", "size", "frames", "keys", "warp ours / fw / input", "flat warp ours / fw / input",
                "SSIM mean / worst (frame)", "PSNR mean / worst", "SSIM unencoded fw / encode floor",
                "pipeline s", "frame-by-frame s",
                "transcode s", "pipeline / transcode", "pipeline / fw", "phone ms / frame", "targets"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.results:
            if isinstance(r, ClipError):
                message = " ".join(r.error.split()).replace("|", "\\|")
                cells = [r.clip, f"error: {message}"] + [""] * (len(head) - 2)
            else:
                s = r.scores
                marks = " ".join(f"{TARGETS[name][0]} {_mark(ok)}" for name, ok in r.targets().items())
                cells = [r.clip, f"{r.width}x{r.height}", str(s.frames), str(r.key_count),
                         _triple(s.warp_ours, s.warp_framewise, s.warp_input),
                         _triple(s.flat_warp_ours, s.flat_warp_framewise, s.flat_warp_input),
                         f"{_num(s.ssim_mean, '.3f')} / {_num(s.ssim_worst, '.3f')} ({s.ssim_worst_frame})",
                         f"{_num(s.psnr_mean, '.1f')} / {_num(s.psnr_worst, '.1f')}",
                         f"{_num(s.ssim_raw_mean, '.3f')} / {_num(s.ssim_encode_floor, '.3f')}",
                         _num(r.pipeline_seconds, ".1f"), _num(r.framewise_seconds, ".1f"),
                         _num(r.transcode_seconds, ".1f"), _num(r.pipeline_over_transcode, ".2f"),
                         _num(r.pipeline_over_framewise, ".2f"), _num(r.phone_ms_per_frame, ".1f"), marks]
            lines.append("| " + " | ".join(cells) + " |")
        o = self.overall()
        m = o["mean"]
        met = " ".join(f"{TARGETS[name][0]} {n}/{o['ok']}" for name, n in o["targets_met"].items())
        cells = [f"**overall** (mean of {o['ok']}/{o['clips']} clips)", "", _num(m["frames"], ".0f"),
                 _num(m["key_count"], ".1f"), _triple(m["warp_ours"], m["warp_framewise"], m["warp_input"]),
                 _triple(m["flat_warp_ours"], m["flat_warp_framewise"], m["flat_warp_input"]),
                 f"{_num(m['ssim_mean'], '.3f')} / {_num(m['ssim_worst'], '.3f')}",
                 f"{_num(m['psnr_mean'], '.1f')} / {_num(m['psnr_worst'], '.1f')}",
                 f"{_num(m['ssim_raw_mean'], '.3f')} / {_num(m['ssim_encode_floor'], '.3f')}",
                 _num(m["pipeline_seconds"], ".1f"), _num(m["framewise_seconds"], ".1f"),
                 _num(m["transcode_seconds"], ".1f"), _num(m["pipeline_over_transcode"], ".2f"),
                 _num(m["pipeline_over_framewise"], ".2f"), _num(m["phone_ms_per_frame"], ".1f"), met]
        lines.append("| " + " | ".join(cells) + " |")
        elsewhere = [r for r in self.results if isinstance(r, ClipResult) and r.edge_elsewhere_seconds is not None]
        if elsewhere:
            lines += ["", "Edge elsewhere (the pipeline's own code in a fresh process, the edge's answers replayed "
                      f"as late as its model took alone, plus {_num(self.edge_latency, '.2f')} s of network "
                      "round trip per key): "
                      + "; ".join(f"{r.clip} {_num(r.edge_elsewhere_seconds, '.2f')} s, "
                                  f"{_num(r.edge_elsewhere_over_transcode, '.2f')}x the transcode" for r in elsewhere)]
        legend = "; ".join(f"{label}: {text}" for label, text in TARGETS.values())
        lines += ["", f"Model {self.model}, style {Path(self.style).name}. Targets ({legend}). "
                  f"SSIM and warping errors at <= {self.metric_side} px, PSNR at full resolution; "
                  "frame-by-frame is scored as an H.264 video like ours; its seconds are model calls "
                  "plus the transcode; pipeline and transcode seconds are whole processes."]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def find_clips(folder: Path, names: tuple[str, ...] = ()) -> list[tuple[str, Path]]:
    """(name, path) of the video clips in ``folder``, by file name; only ``names`` if given."""
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder")
    # Hidden files are skipped: atomic writers leave '.name.tmp-...' files behind on a crash.
    paths = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in VIDEO_EXTS and not p.name.startswith("."))
    stems = [p.stem for p in paths]
    clips = [(p.stem if stems.count(p.stem) == 1 else p.name, p) for p in paths]
    if not clips:
        raise UserError(f"no video clips ({', '.join(sorted(VIDEO_EXTS))}) in {folder}")
    if not names:
        return clips
    by_name = {**{p.name: (n, p) for n, p in clips}, **{n: (n, p) for n, p in clips}}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise UserError(f"no clip named {', '.join(missing)} in {folder}; it has: {', '.join(n for n, _ in clips)}")
    return [by_name[n] for n in dict.fromkeys(names)]


def run_footage(cfg: FootageConfig, log: Callable[[str], None] = lambda msg: None) -> FootageReport:
    """Run every clip of ``cfg.folder``; a clip that fails becomes a :class:`ClipError`, not a crash."""
    from ..mobile.pipeline import StylizeConfig
    from ..models.registry import resolve_name
    from ..video.media import package_media
    from .compare import Framewise
    from .machine import machine_info

    model = resolve_name(cfg.model)  # an unknown model is one error before any clip runs
    clips = find_clips(cfg.folder, cfg.clips)
    style = cfg.style if cfg.style is not None else package_media("coffee.png")
    check_input_file(style, "style photo")
    stylize = StylizeConfig(model=cfg.model)  # the x264 settings and style size `stylize` runs with
    framewise = Framewise(style, cfg.model, stylize.max_style_side)  # one model and style for all clips
    results: list[ClipResult | ClipError] = []
    for i, (name, path) in enumerate(clips, 1):
        log(f"[{i}/{len(clips)}] {name}")
        try:
            results.append(run_clip(name, path, style, framewise, stylize, cfg, log))
        except Exception as exc:  # one corrupt clip is an error row, not the end of the run
            text = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
            log(f"  failed: {text}")
            results.append(ClipError(name, path.name, text))
    return FootageReport(str(cfg.folder), str(style), model, cfg.metric_side, shlex.join(cli_command()), results,
                         machine_info(), cfg.edge_latency)


def run_clip(name: str, path: Path, style: Path, framewise: Framewise, stylize: StylizeConfig,
             cfg: FootageConfig, log: Callable[[str], None]) -> ClipResult:
    """The pipeline, a transcode and frame-by-frame on one clip, then the scores."""
    from ..mobile.edge_link import REMOTE_IN_FLIGHT
    from .compare import ClipScorer, score_clip
    from .recorded_edge import CHILD as RECORDED_CHILD
    from .recorded_edge import record

    with tempfile.TemporaryDirectory(prefix="mvstylizer-footage-") as tmp:
        if cfg.max_frames is not None:
            path = _first_frames(path, Path(tmp) / f"first{cfg.max_frames}.mkv", cfg.max_frames)
        _read_through(path)
        ours, report_path, copy = Path(tmp) / "ours.mp4", Path(tmp) / "report.json", Path(tmp) / "transcode.mp4"
        model_args = [] if cfg.model == "default" else ["--model", cfg.model]
        runs: dict[str, list[float]] = {"pipeline": [], "transcode": [], "edge_elsewhere": []}
        answers = Path(tmp) / "answers.pkl"
        if cfg.edge_elsewhere:
            log("  recording the edge's answers")
            record(path, style, cfg.model, answers, Path(tmp) / "recorded.mp4")
        for _ in range(cfg.repeats):  # alternated, so all see the same machine state
            if cfg.edge_elsewhere:
                runs["edge_elsewhere"].append(_timed_child(
                    [sys.executable, "-c", RECORDED_CHILD, str(path), str(style), cfg.model, str(answers),
                     str(Path(tmp) / "elsewhere.mp4"), "1", str(cfg.edge_latency), str(REMOTE_IN_FLIGHT)],
                    "pipeline with the edge elsewhere"))
            runs["pipeline"].append(_timed_child([*cli_command(), "stylize", str(path), "--style", str(style),
                                                  "-o", str(ours), "-y", "--report", str(report_path), "-q",
                                                  *model_args], "pipeline"))
            runs["transcode"].append(_timed_child([sys.executable, "-c", _TRANSCODE_CHILD, str(path), str(copy),
                                                   str(stylize.crf), stylize.preset], "transcode"))
            copy.unlink()
        pipeline_s, transcode_s = float(np.median(runs["pipeline"])), float(np.median(runs["transcode"]))
        elsewhere_s = float(np.median(runs["edge_elsewhere"])) if cfg.edge_elsewhere else None
        log(f"  pipeline {pipeline_s:.1f} s, transcode {transcode_s:.1f} s"
            + (f", edge elsewhere {elsewhere_s:.1f} s" if elsewhere_s is not None else "")
            + f" (median of {cfg.repeats}); frame-by-frame and scoring")
        report = json.loads(report_path.read_text())
        scorer = ClipScorer(cfg.metric_side)
        framewise_s = score_clip(path, ours, framewise, scorer, log, stylize)
    result = ClipResult(name, path.name, report["width"], report["height"], len(report["key_frames"]),
                        pipeline_s, framewise_s, transcode_s, scorer.result(),
                        report.get("stage_seconds", {}), report.get("key_reasons", {}), elsewhere_s)
    s = result.scores
    log(f"  frame-by-frame {framewise_s:.1f} s; SSIM {s.ssim_mean:.3f} (worst {s.ssim_worst:.3f}), "
        f"warp ours {s.warp_ours:.5f} vs frame-by-frame {s.warp_framewise:.5f}")
    if cfg.montage is not None and scorer.worst_frames is not None:
        write_montage(cfg.montage / f"{name}_worst.png", scorer.worst_frames, s)
    return result


def cli_command() -> list[str]:
    """How a user starts mvstylizer with this interpreter: ``python -m mvstylizer`` where the package
    has a ``__main__``, else the console script that pip put next to the interpreter, else (scripts
    installed elsewhere, e.g. ``pip install --user``) the CLI module itself, which is the same ``main``."""
    if importlib.util.find_spec("mvstylizer.__main__") is not None:
        return [sys.executable, "-m", "mvstylizer"]
    # Not resolved: in a virtual environment the interpreter is a link out of its bin folder.
    script = Path(sys.executable).with_name("mvstylizer.exe" if os.name == "nt" else "mvstylizer")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "mvstylizer.cli"]


def transcode(src: str | Path, dst: str | Path, crf: int, preset: str) -> int:
    """Decode ``src`` and H.264-encode it to ``dst`` the way the pipeline does, minus the styling:
    same reader, writer, x264 settings, frame timing and audio pass-through. Returns frames written."""
    with VideoReader(src) as reader:
        info = reader.info
        with VideoWriter(dst, info.width, info.height, info.fps, reader.time_base,
                         audio_template=reader.audio_streams, crf=crf, preset=preset,
                         metadata=info.metadata, timecode=info.timecode) as writer:
            for frame in reader.frames(audio_sink=writer.mux_audio):
                writer.write(frame.rgb8, frame.pts)
            writer.last_frame_ticks = reader.last_frame_ticks
            return writer.frames_written


def _first_frames(src: Path, dst: Path, frames: int) -> Path:
    """The first ``frames`` frames of ``src`` as a lossless H.264 (4:4:4, CRF 0) Matroska file, audio
    dropped (only the RGB -> YUV round trip moves a pixel, by <= 2 levels): the pipeline, the transcode
    and frame-by-frame then all start from the same pixels."""
    with VideoReader(src) as reader:
        info = reader.info
        if info.frame_count is not None and info.frame_count <= frames:
            return src
        with VideoWriter(dst, info.width, info.height, info.fps, reader.time_base, crf=0, preset="ultrafast",
                         pix_fmt="yuv444p") as writer:
            for frame in reader.frames():
                if frame.index >= frames:
                    break
                writer.write(frame.rgb8, frame.pts)
    return dst


_TRANSCODE_CHILD = ("import sys; from mvstylizer.bench.footage import transcode; "
                    "transcode(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])")


def _timed_child(cmd: list[str], what: str) -> float:
    """Wall time of a child process; its last stderr line becomes the error if it fails."""
    t = time.perf_counter()
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")
    seconds = time.perf_counter() - t
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise UserError(f"{what} failed (exit {done.returncode}): {lines[-1] if lines else 'no message'}")
    return seconds


def _read_through(path: Path) -> None:
    """Read the file once so both timed children find it in the page cache (neither pays the disk)."""
    with path.open("rb") as f:
        while f.read(1 << 20):
            pass


# --------------------------------------------------------------------------------------------
# Montage and formatting
# --------------------------------------------------------------------------------------------


def write_montage(path: Path, frames: tuple[np.ndarray, ...], scores: ClipScores) -> None:
    """Input, frame-by-frame and ours of the worst frame side by side, each labelled."""
    labels = ("input", "frame-by-frame",
              f"ours: SSIM {scores.ssim_worst:.3f} at frame {scores.ssim_worst_frame}")
    write_image(path, np.hstack([_label(_panel(f), text) for f, text in zip(frames, labels, strict=True)]))


def _panel(rgb: np.ndarray) -> np.ndarray:
    """uint8 copy at most PANEL_WIDTH wide."""
    h, w = rgb.shape[:2]
    if w > PANEL_WIDTH:
        rgb = cv2.resize(rgb, (PANEL_WIDTH, max(1, round(h * PANEL_WIDTH / w))), interpolation=cv2.INTER_AREA)
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    """Small white text on a black strip in the top-left corner (scaled with the panel)."""
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, max(0.35, panel.shape[1] / 1000)
    (tw, th), base = cv2.getTextSize(text, font, scale, 1)
    cv2.rectangle(panel, (0, 0), (tw + 6, th + base + 6), (0, 0, 0), thickness=-1)
    cv2.putText(panel, text, (3, th + 3), font, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return panel


def _at_most(a: float, b: float) -> bool | None:
    return bool(a <= b) if math.isfinite(a) and math.isfinite(b) else None


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _json_safe(value: object) -> object:
    """Non-finite floats become null: JSON has no nan or inf."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _num(value: float | None, fmt: str) -> str:
    if value is None or math.isnan(value):
        return "–"
    return "inf" if math.isinf(value) else format(value, fmt)


def _triple(a: float | None, b: float | None, c: float | None) -> str:
    return " / ".join(_num(v, ".5f") for v in (a, b, c))


def _mark(ok: bool | None) -> str:
    return "–" if ok is None else "✓" if ok else "✗"
