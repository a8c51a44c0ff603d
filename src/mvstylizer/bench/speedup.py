"""The headline benchmark: the full pipeline against frame-by-frame, same machine, same DNN, same run.

What is measured, and how (docs/BENCHMARKS.md, "Headline", says the same for readers):

* **Pipeline**: ``mobile.pipeline.VideoPipeline`` end to end with the embedded edge, decode -> H.264
  encode to a temporary mp4, by default in a spawned child process so its peak RSS
  (``ru_maxrss``) is the pipeline's own. Model loading and style preparation happen in a warm-up
  before the clock starts (reported as ``pipeline_setup_seconds``), as they do for frame-by-frame.
* **Frame-by-frame**: the same model through the same ``EdgeService`` on full-resolution frames,
  in this process. Decoding is timed over the whole clip; the model and the H.264 encode are timed
  on a sample of K consecutive *pairs* (i, i+1) spread over the clip and extrapolated to every frame
  (``framewise_extrapolated``). Transport of full frames to an edge is *not* charged to
  frame-by-frame (its cost is reported separately), which can only lower our speedup.
* **Fidelity**: SSIM / PSNR of our output (decoded from the output file, so H.264 loss counts
  against us) against the frame-by-frame frames at the sampled indices.
* **Steadiness**: warping error of our output, of frame-by-frame and of the input on the sampled
  pairs (the only consecutive frame-by-frame frames there are), with the clip's exact flow for
  camera clips and DIS (medium, forward-backward masks) otherwise; pairs across a scene cut are
  left out. Our output and the input are also scored on every consecutive pair (``*_all_pairs``).
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np

from ..edge.service import EdgeService
from ..errors import UserError
from ..files import check_input_file
from ..imaging import shrink_to
from ..metrics import WarpErrorMeter, flow_and_mask, psnr, ssim
from ..mobile.edge_link import EmbeddedEdge
from ..mobile.keyframes import KeyframeSelector
from ..mobile.pipeline import StylizeConfig, VideoPipeline, work_size
from ..models.registry import resolve_name
from ..video.flow import FlowEstimator
from ..video.image import read_style
from ..video.media import package_media
from ..video.reader import VideoReader
from ..video.writer import VideoWriter
from ..wire import Encoding, decode_frame, encode_frame
from .camera import visible_mask
from .clips import CLIP_KINDS, Clip, make_clip, parse_resolution, resolution_label
from .compare import finite_mean
from .machine import machine_info


@dataclass
class BenchConfig:
    """What to run the pipeline and frame-by-frame on, and how to score them."""

    clip: str = "camera"  # camera | bikes | bbb | a video path (used as is: native size, all frames)
    resolution: str = "1080p"  # for generated clips
    frames: int = 60  # for generated clips
    seed: int = 0
    style: str | None = None  # style photo; None -> scikit-image's coffee
    framewise_sample: int = 8  # K pairs (i, i+1) run frame-by-frame
    metric_side: int = 640  # warping errors at most this long side
    ssim_side: int = 0  # SSIM at most this long side; 0 -> full resolution (strictest)
    all_pairs: bool = True  # also score our output and the input on every consecutive pair
    isolate: bool = True  # run the pipeline in a spawned child: clean peak memory
    sources: tuple[str, ...] = ()  # camera clips: photos to film; () -> bench.camera.default_sources()
    stylize: StylizeConfig = field(default_factory=StylizeConfig)

    def __post_init__(self) -> None:
        if self.framewise_sample < 1:
            raise UserError(f"the frame-by-frame sample needs at least 1 pair, got {self.framewise_sample}")
        if self.metric_side < 16 or self.ssim_side < 0:
            raise UserError("--metric-side must be >= 16 and --ssim-side >= 0")
        self.stylize.progress = False


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def prepare_clip(cfg: BenchConfig, workdir: Path) -> Clip:
    """The clip to benchmark: generated into ``workdir`` for named kinds, else the user's file."""
    if cfg.clip in CLIP_KINDS:
        width, height = parse_resolution(cfg.resolution)
        if cfg.frames < 2:
            raise UserError(f"--frames must be at least 2, got {cfg.frames}")
        return make_clip(cfg.clip, workdir, width, height, cfg.frames, cfg.seed, sources=cfg.sources)
    path = Path(cfg.clip)
    if not path.is_file():
        raise UserError(f"--clip must be one of {', '.join(CLIP_KINDS)} or a video file; {path} is neither")
    with VideoReader(path) as reader:
        info = reader.info
        frames = sum(1 for _ in reader.frames())  # containers' declared counts are not exact
    return Clip(path, "file", info.width, info.height, frames,
                {"fps": info.fps, "upscaled": False, "note": "user file, native size, all frames"})


def style_path(cfg: BenchConfig) -> Path:
    if cfg.style is None:
        return package_media("coffee.png")
    p = Path(cfg.style)
    check_input_file(p, "style photo")
    return p


def sample_pairs(frames: int, k: int) -> list[int]:
    """First frames ``i`` of ``k`` pairs (i, i+1) spread evenly over a clip (all pairs if it is short)."""
    if frames < 2:
        raise UserError(f"the clip has {frames} frame(s); the benchmark needs at least 2")
    last = frames - 2
    if 2 * k >= frames:
        return list(range(0, last + 1, 2)) + ([last] if last % 2 else [])
    return sorted({int(round(v)) for v in np.linspace(0, last, k)})


def _is_cut(clip: Clip, selector: KeyframeSelector, i: int, prev8: np.ndarray, cur8: np.ndarray) -> bool:
    if clip.camera is not None:
        return clip.camera.scene_of(i) != clip.camera.scene_of(i + 1)
    return selector.is_cut(selector.thumb(prev8), selector.thumb(cur8))


def _f32(rgb8: np.ndarray) -> np.ndarray:
    return rgb8.astype(np.float32) * (1.0 / 255.0)


def _to8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Frame-by-frame
# --------------------------------------------------------------------------------------------


@dataclass
class Framewise:
    """Frame-by-frame outputs at the sampled frames, and what frame-by-frame costs."""

    model: str
    frames: int  # frames in the clip
    pairs: list[int]
    outputs: dict[int, np.ndarray]  # frame index -> uint8 full-resolution output
    decode_seconds: float  # decoding the whole clip, measured
    io_seconds: float  # decoding + H.264 encoding the whole clip, measured (model not included)
    model_seconds: list[float]  # per sampled frame
    transport_seconds: float  # sampled frames, JPEG round trip of a full frame (not charged)
    setup_seconds: float

    @property
    def sampled(self) -> int:
        return len(self.outputs)

    @property
    def extrapolated(self) -> bool:
        return self.sampled < self.frames

    def per_frame(self) -> dict[str, float]:
        return {"decode": self.decode_seconds / self.frames, "model": float(np.mean(self.model_seconds)),
                "encode": max(0.0, self.io_seconds - self.decode_seconds) / self.frames}

    @property
    def total_seconds(self) -> float:
        """Whole clip: decode + encode measured over every frame, the model's mean time x frames."""
        return self.io_seconds + float(np.mean(self.model_seconds)) * self.frames


def run_framewise(clip: Clip, style: Path, cfg: BenchConfig, workdir: Path) -> Framewise:
    """Frame-by-frame at full resolution, in three measured parts that never overlap in time.

    1. decode every frame (timed), keeping the frames of the sampled pairs;
    2. the model on those frames (timed one by one, nothing else running in this process);
    3. decode + H.264-encode the whole clip again, timed as a whole, writing the frame-by-frame
       output at the sampled frames and the input frame elsewhere (same size, similar content):
       x264 works in background threads, so only a wall-clock time over the whole pass is honest.
    """
    model = resolve_name(cfg.stylize.model)
    service = EdgeService()
    style_img = read_style(style, cfg.stylize.max_style_side)
    style_id = service.register_style(encode_frame(style_img, Encoding("png")))
    pairs = sample_pairs(clip.frames, cfg.framewise_sample)
    wanted = {j for i in pairs for j in (i, i + 1)}
    inputs: dict[int, np.ndarray] = {}
    decode_s = 0.0
    n = 0
    with VideoReader(clip.path) as reader:
        it = reader.frames()
        while True:
            t = time.perf_counter()
            frame = next(it, None)
            decode_s += time.perf_counter() - t
            if frame is None:
                break
            n += 1
            if frame.index in wanted:
                inputs[frame.index] = frame.rgb8
    if n != clip.frames:
        raise UserError(f"{clip.path} decoded to {n} frames, expected {clip.frames}")

    outputs: dict[int, np.ndarray] = {}
    model_s: list[float] = []
    transport_s = 0.0
    t = time.perf_counter()  # model build + style preparation, kept off the per-frame clock
    service.stylize(style_id, model, [_f32(inputs[pairs[0]])])
    setup_s = time.perf_counter() - t
    for j in sorted(inputs):
        x = _f32(inputs.pop(j))
        t = time.perf_counter()
        (y,) = service.stylize(style_id, model, [x])
        model_s.append(time.perf_counter() - t)
        t = time.perf_counter()  # what sending this full frame to an edge and back would cost
        decode_frame(encode_frame(x))
        decode_frame(encode_frame(y))
        transport_s += time.perf_counter() - t
        outputs[j] = _to8(y)

    t = time.perf_counter()
    with VideoReader(clip.path) as reader, \
            VideoWriter(workdir / "framewise.mp4", reader.info.width, reader.info.height, reader.info.fps,
                        reader.time_base, crf=cfg.stylize.crf, preset=cfg.stylize.preset) as writer:
        for frame in reader.frames():
            writer.write(outputs.get(frame.index, frame.rgb8), frame.pts)
    io_s = time.perf_counter() - t
    return Framewise(model, n, pairs, outputs, decode_s, io_s, model_s, transport_s, setup_s)


# --------------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------------


class _TimedService:
    """Wraps an EdgeService to time the DNN alone, so embedded 'edge' splits into DNN + transport."""

    def __init__(self, service: Any) -> None:
        self._service = service
        self.seconds = 0.0

    def stylize(self, *args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return self._service.stylize(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service, name)


class TimedEmbeddedEdge(EmbeddedEdge):
    """The embedded edge with the DNN time measured apart from the (JPEG) transport around it."""

    def __init__(self) -> None:
        super().__init__()
        # EmbeddedEdge keeps its service in ``_service``; if that ever changes the split is just
        # reported as unknown (None) instead of failing the benchmark.
        service = getattr(self, "_service", None)
        self._timed = _TimedService(service) if service is not None else None
        if self._timed is not None:
            # A stand-in for the service: times stylize(), hands every other attribute on (__getattr__).
            self._service = cast(EdgeService, self._timed)

    @property
    def dnn_seconds(self) -> float | None:
        return self._timed.seconds if self._timed is not None else None

    def reset(self) -> None:
        self.bytes_sent = self.bytes_received = 0
        if self._timed is not None:
            self._timed.seconds = 0.0


def pipeline_job(input_path: str, style: str, output_path: str, config: StylizeConfig) -> dict:
    """Warm up the edge, then run the pipeline once; returns its report plus timing extras.

    Module-level so a spawned child process can run it.
    """
    edge = TimedEmbeddedEdge()
    t = time.perf_counter()
    # Warm-up on a real key frame of this clip: model build, style statistics, runtime shape set-up.
    style_img = read_style(style, config.max_style_side)
    style_id = edge.register_style(style_img)
    with VideoReader(input_path) as reader:
        first = next(reader.frames()).rgb8
    size = work_size(first.shape[1], first.shape[0], config.key_size)
    low = _f32(cv2.resize(first, size, interpolation=cv2.INTER_AREA))
    (styled,) = edge.stylize(style_id, config.model, [low])
    stylizer = VideoPipeline(edge, config)
    smoother = getattr(stylizer, "smoother", None)
    if smoother is not None:  # a learned smoother loads its network on first use: warm it too
        smoother.maps(low, styled)
    setup = time.perf_counter() - t
    edge.reset()
    report = stylizer.run(input_path, style, output_path)
    summary = report.summary()
    summary["setup_seconds"] = setup
    summary["edge_dnn_seconds"] = edge.dnn_seconds
    summary["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
    summary["pid"] = os.getpid()
    return summary


def run_pipeline(clip: Clip, style: Path, config: StylizeConfig, output: Path, isolate: bool = True) -> dict:
    """Run :func:`pipeline_job` in a fresh spawned process (default) or in this one."""
    args = (str(clip.path), str(style), str(output), config)
    if not isolate:
        out = pipeline_job(*args)
        out["peak_rss_scope"] = "benchmark process (pipeline run in-process; includes the benchmark's own memory)"
        return out
    # spawn, not fork: a forked child inherits (and its ru_maxrss counts) the parent's memory.
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        out = pool.submit(pipeline_job, *args).result()
    out["peak_rss_scope"] = "pipeline child process (model, decode, interpolation, encode)"
    return out


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


def evaluate(clip: Clip, output: Path, fw: Framewise, cfg: BenchConfig) -> dict:
    """Fidelity and warping errors of the pipeline's output file against frame-by-frame and the input."""
    side = cfg.metric_side
    dis = FlowEstimator("medium")
    cuts = KeyframeSelector()
    pair_starts = set(fw.pairs)
    m_out, m_fw, m_in = WarpErrorMeter(), WarpErrorMeter(), WarpErrorMeter()
    a_out, a_in = WarpErrorMeter(), WarpErrorMeter()
    ssims: list[float] = []
    psnrs: list[float] = []
    cut_pairs = 0
    prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (input8 full, input small, ours small)
    n = 0
    with VideoReader(clip.path) as src, VideoReader(output) as ours:
        for f_in, f_out in zip(src.frames(), ours.frames(), strict=False):
            j = f_in.index
            n += 1
            x8, o8 = f_in.rgb8, f_out.rgb8
            xs, os_ = _f32(shrink_to(x8, side)), _f32(shrink_to(o8, side))
            if j in fw.outputs:
                ref = fw.outputs[j]
                psnrs.append(psnr(o8, ref))
                ssims.append(ssim(o8, ref, max_side=cfg.ssim_side or None))
            score_pair = prev is not None and (cfg.all_pairs or (j - 1) in pair_starts)
            if score_pair and prev is not None:
                if _is_cut(clip, cuts, j - 1, prev[0], x8):
                    cut_pairs += 1
                else:
                    flow, mask = _pair_flow(clip, j, prev[1], xs, dis)
                    if cfg.all_pairs:
                        a_in.update(prev[1], xs, flow, mask)
                        a_out.update(prev[2], os_, flow, mask)
                    if (j - 1) in pair_starts:
                        m_in.update(prev[1], xs, flow, mask)
                        m_out.update(prev[2], os_, flow, mask)
                        m_fw.update(_f32(shrink_to(fw.outputs[j - 1], side)), _f32(shrink_to(fw.outputs[j], side)),
                                    flow, mask)
            prev = (x8, xs, os_)
    if n != fw.frames:
        raise UserError(f"the pipeline's output has {n} frames against the input's {fw.frames}")
    out = {
        "ssim_vs_framewise": float(np.mean(ssims)), "psnr_vs_framewise": finite_mean(psnrs),
        "quality_frames": sorted(fw.outputs),
        "warp_error": m_out.value, "warp_error_framewise": m_fw.value, "warp_error_input": m_in.value,
        "warp_pairs": m_out.pairs, "warp_pairs_across_cut_skipped": sum(
            1 for i in fw.pairs if _pair_crosses_cut(clip, i)) if clip.camera is not None else None,
        "warp_flow": "exact (virtual camera)" if clip.camera is not None else "DIS medium, forward-backward mask",
        "warp_metric_side": side,
        "ssim_side": cfg.ssim_side or "full resolution",
    }
    if cfg.all_pairs:
        out.update(warp_error_all_pairs=a_out.value, warp_error_input_all_pairs=a_in.value,
                   all_pairs_scored=a_out.pairs, all_pairs_across_cut_skipped=cut_pairs)
    return out


def _pair_crosses_cut(clip: Clip, i: int) -> bool:
    return clip.camera is not None and clip.camera.scene_of(i) != clip.camera.scene_of(i + 1)


def _pair_flow(clip: Clip, j: int, prev_small: np.ndarray, cur_small: np.ndarray,
               dis: FlowEstimator) -> tuple[np.ndarray, np.ndarray]:
    """Flow of frame j towards j-1 at the metric size, and where it is trustworthy."""
    if clip.camera is not None:
        h, w = cur_small.shape[:2]
        flow = clip.camera.flow(j, j - 1, (w, h))
        assert flow is not None  # cut pairs are filtered out before
        return flow, visible_mask(flow)
    return flow_and_mask(prev_small, cur_small, estimator=dis)


# --------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------


def pipeline_figures(run: dict, frames: int) -> dict:
    """Per-stage and per-frame times of one pipeline run."""
    stages = run["stage_seconds"]
    keys = run["key_count"]
    nonkey = max(1, frames - keys)
    dnn = run.get("edge_dnn_seconds")
    return {
        "pipeline_seconds": run["total_seconds"], "pipeline_setup_seconds": run["setup_seconds"],
        "pipeline_ms_per_frame": 1000 * run["total_seconds"] / frames,
        "stage_seconds": stages,
        # Opening the files and the encoder's final flush (x264 lookahead) fall outside every stage.
        "unstaged_seconds": run["total_seconds"] - sum(stages.values()),
        "edge_dnn_seconds": dnn, "edge_transport_seconds": None if dnn is None else stages["edge"] - dnn,
        "key_count": keys, "key_frames": run["key_frames"], "key_reasons": run["key_reasons"],
        "key_size": run["key_size"],
        # the phone-side figure: the work a non-key frame costs (interpolation); smoothing is
        # paid per key frame, decode/select/encode per frame, each reported on its own.
        "phone_ms_per_nonkey_frame": 1000 * stages.get("interpolation", 0.0) / nonkey,
        "smoothing_ms_per_key_frame": 1000 * stages.get("smoothing", 0.0) / max(1, keys),
        "decode_ms_per_frame": 1000 * stages.get("decode", 0.0) / frames,
        "select_ms_per_frame": 1000 * stages.get("select", 0.0) / frames,
        "encode_ms_per_frame": 1000 * stages.get("encode", 0.0) / frames,
        "bytes_to_edge_per_key": run["bytes_to_edge_per_key"],
        "bytes_from_edge_per_key": run["bytes_from_edge_per_key"],
        "peak_rss_mb": run["peak_rss_mb"], "peak_rss_scope": run["peak_rss_scope"],
        "max_buffered_frames": run.get("max_buffered_frames"),
    }


def framewise_figures(fw: Framewise) -> dict:
    p = fw.per_frame()
    return {
        "framewise_seconds": fw.total_seconds, "framewise_extrapolated": fw.extrapolated,
        "framewise_sampled_frames": fw.sampled, "framewise_pairs": fw.pairs,
        "framewise_ms_per_frame": {k: 1000 * v for k, v in p.items()},
        "framewise_model_ms_each": [1000 * v for v in fw.model_seconds],  # spread = how noisy the machine was
        "framewise_setup_seconds": fw.setup_seconds,
        "framewise_transport_ms_per_frame_not_charged": 1000 * fw.transport_seconds / max(1, fw.sampled),
    }


def config_figures(config: StylizeConfig) -> dict:
    kf = config.keyframes
    return {"keyframes": kf.mode if kf.mode == "auto" else f"every:{kf.every}", "max_gap": kf.max_gap,
            "key_size_setting": config.key_size, "interp": config.interp.method, "crf": config.crf,
            "smoothing": getattr(config, "smoothing", "guided (fixed in this build)")}


def run_speedup(cfg: BenchConfig, log=lambda msg: None) -> dict:
    style = style_path(cfg)
    resolve_name(cfg.stylize.model)  # unknown model: fail before any work
    with tempfile.TemporaryDirectory(prefix="mvs-speedup-") as tmp:
        work = Path(tmp)
        log(f"making the {cfg.clip} clip")
        clip = prepare_clip(cfg, work)
        log(f"pipeline on {clip.width}x{clip.height}, {clip.frames or '?'} frames")
        out_path = work / "pipeline.mp4"
        run = run_pipeline(clip, style, cfg.stylize, out_path, cfg.isolate)
        log("frame-by-frame on the sampled pairs")
        fw = run_framewise(clip, style, cfg, work)
        log("scoring")
        scores = evaluate(clip, out_path, fw, cfg)
    result = {
        "resolution": resolution_label(clip.width, clip.height), "width": clip.width, "height": clip.height,
        "frames": fw.frames, "clip": clip.describe(), "style": style.name, "model": fw.model,
        **config_figures(cfg.stylize),
        "speedup": fw.total_seconds / run["total_seconds"],
        **scores, **pipeline_figures(run, fw.frames), **framewise_figures(fw),
        "machine": machine_info(),
        "notes": [
            "speedup = frame-by-frame total / pipeline total; both include decode and H.264 encode; "
            "model loading and style preparation are excluded from both (warm-up)",
            "frame-by-frame: decode and encode timed over the whole clip; the model timed on the "
            "sampled frames and its mean extrapolated to every frame" if fw.extrapolated
            else "frame-by-frame: the model run and timed on every frame",
            "frame-by-frame is charged no transport (full frames to and from an edge); "
            "framewise_transport_ms_per_frame_not_charged says what it would add",
            "SSIM/PSNR: our decoded output file against frame-by-frame (uint8, not encoded) at quality_frames",
            "warp_error*: sampled pairs (i, i+1) only, the same pairs for ours, frame-by-frame and input",
            "edge_transport_seconds: embedded edge, JPEG encode/decode only (no network)",
        ],
        "command": " ".join(["mvstylizer", *sys.argv[1:]]) if Path(sys.argv[0]).name == "mvstylizer" else None,
    }
    return _rounded(result)


def _rounded(obj: Any) -> Any:
    """Floats to 6 significant digits so the JSON diffs cleanly; nan -> None (valid JSON)."""
    if isinstance(obj, float):
        return None if not np.isfinite(obj) else float(f"{obj:.6g}")
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(v) for v in obj]
    if isinstance(obj, np.generic):
        return _rounded(obj.item())
    return obj
