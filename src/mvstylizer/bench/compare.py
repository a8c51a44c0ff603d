"""Pipeline against frame-by-frame, on one video: speed, fidelity and temporal steadiness.

Frame-by-frame is the same model run on every frame at full resolution, in this process, with no
transport (the most favourable baseline for it). Everything streams: the input, our output and the
frame-by-frame frames are walked in lockstep and only running sums are kept.

:class:`Framewise`, :class:`ClipScorer` and :func:`score_clip` are shared with ``bench footage``
(bench/footage.py), which runs the same comparison over a folder of real clips.
"""

from __future__ import annotations

import itertools
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..edge.service import EdgeService
from ..errors import UserError
from ..imaging import shrink_to
from ..metrics import WarpErrorMeter, flat_mask, flow_and_mask, psnr, ssim
from ..mobile.edge_link import EmbeddedEdge
from ..mobile.keyframes import KeyframeSelector, Thumb
from ..mobile.pipeline import StylizeConfig, VideoPipeline
from ..video.flow import FlowEstimator
from ..video.image import read_style
from ..video.reader import VideoReader
from ..video.writer import VideoWriter
from ..wire import Encoding, encode_frame


class Framewise:
    """The frame-by-frame baseline: the model on every full-resolution frame, in this process.

    Only the model call is timed (``seconds``): no decode, encode or transport is charged to it.
    The style goes through the same downscale and PNG hop the pipeline's edge gets, so both stylize
    with the same style state.
    """

    def __init__(self, style_path: Path, model: str, max_style_side: int = StylizeConfig.max_style_side) -> None:
        self.model = model
        self.seconds = 0.0
        self._service = EdgeService()
        style = read_style(style_path, max_style_side)
        self._style_id = self._service.register_style(encode_frame(style, Encoding("png")))

    def warm_up(self, rgb8: np.ndarray) -> None:
        """One untimed call: model build, style state and the runtime's set-up for this frame size."""
        self._service.stylize(self._style_id, self.model, [_f32(rgb8)])

    def __call__(self, rgb8: np.ndarray) -> np.ndarray:
        """The stylized frame as uint8, what a frame-by-frame video would hold."""
        x = _f32(rgb8)
        t = time.perf_counter()
        (y,) = self._service.stylize(self._style_id, self.model, [x])
        self.seconds += time.perf_counter() - t
        return (np.clip(y, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


@dataclass
class ClipScores:
    """Our output against frame-by-frame and the input over one clip (nan: nothing to score)."""

    frames: int
    ssim_mean: float  # at the metric side, against frame-by-frame as a video (see ClipScorer)
    ssim_worst: float
    ssim_worst_frame: int  # index of the frame with the lowest SSIM
    psnr_mean: float  # at full resolution; inf where identical
    psnr_worst: float
    warp_ours: float  # warping errors at the metric side, DIS flow of the input frames
    warp_framewise: float
    warp_input: float
    # Against the model's frames before any encoding, and what the encode alone costs them: the
    # SSIM of the frame-by-frame video to those frames (the best any encoded output can score).
    ssim_raw_mean: float
    ssim_raw_worst: float
    ssim_encode_floor: float
    flat_warp_ours: float  # the same on flat pixels of the input frame t only
    flat_warp_framewise: float
    flat_warp_input: float
    warp_pairs: int
    flat_warp_pairs: int  # pairs with at least one flat visible pixel
    flat_fraction: float  # mean share of a scored pair's pixels that are flat and visible
    scene_cuts_skipped: int  # frame pairs left out of the warping errors: a cut has no flow


_STREAMS = ("ours", "framewise", "input")


class ClipScorer:
    """Per-clip metrics accumulated one frame at a time, so a clip never has to be in memory.

    Holds only the previous frame's small views and the worst frame's (``worst_frames``: input,
    frame-by-frame, ours at the metric side, float RGB) for a montage.
    """

    def __init__(self, metric_side: int = 640) -> None:
        self.metric_side = metric_side
        self._flow = FlowEstimator("medium")
        self._cuts = KeyframeSelector()
        self._warp = {s: WarpErrorMeter() for s in _STREAMS}
        self._flat = {s: WarpErrorMeter() for s in _STREAMS}
        self._ssim: list[float] = []
        self._psnr: list[float] = []
        self._flat_shares: list[float] = []
        self._ssim_raw: list[float] = []
        self._floor: list[float] = []
        self._cuts_skipped = 0
        self._worst_index = 0  # frame with the lowest SSIM so far
        self._prev: tuple[Thumb, dict[str, np.ndarray]] | None = None
        self.worst_frames: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def add(self, input8: np.ndarray, ours8: np.ndarray, framewise8: np.ndarray,
            raw_small8: np.ndarray | None = None) -> None:
        """Score frame t: the input, our output and frame-by-frame, full-resolution uint8 RGB.

        ``framewise8`` is frame-by-frame as a video holds it (encoded and decoded, like ours);
        ``raw_small8``, if given, the model's frame before encoding, already at the metric side."""
        self._psnr.append(psnr(ours8, framewise8))
        small = {s: shrink_to(_f32(f), self.metric_side)
                 for s, f in zip(_STREAMS, (ours8, framewise8, input8), strict=True)}
        value = ssim(small["ours"], small["framewise"])
        if raw_small8 is not None:
            raw = _f32(raw_small8)
            self._ssim_raw.append(ssim(small["ours"], raw))
            self._floor.append(ssim(small["framewise"], raw))
        if not self._ssim or value < self._ssim[self._worst_index]:  # strict: the earliest frame wins a tie
            self._worst_index = len(self._ssim)
            self.worst_frames = (small["input"], small["framewise"], small["ours"])
        self._ssim.append(value)
        thumb = self._cuts.thumb(input8)
        if self._prev is not None:
            prev_thumb, prev = self._prev
            if self._cuts.is_cut(prev_thumb, thumb):
                self._cuts_skipped += 1  # flow across a scene cut is meaningless for every video alike
            else:
                flow, mask = flow_and_mask(prev["input"], small["input"], estimator=self._flow)
                # Flat areas (walls, sky) are where boiling colour shows most: score them on their own.
                flat = mask & flat_mask(small["input"])
                self._flat_shares.append(float(flat.mean()))
                for s in _STREAMS:
                    self._warp[s].update(prev[s], small[s], flow, mask)
                    self._flat[s].update(prev[s], small[s], flow, flat)
        self._prev = (thumb, small)

    def result(self) -> ClipScores:
        if not self._ssim:
            raise UserError("no frames were scored")
        worst = self._worst_index
        return ClipScores(
            frames=len(self._ssim), ssim_mean=float(np.mean(self._ssim)), ssim_worst=self._ssim[worst],
            ssim_worst_frame=worst, psnr_mean=finite_mean(self._psnr), psnr_worst=float(min(self._psnr)),
            warp_ours=self._warp["ours"].value, warp_framewise=self._warp["framewise"].value,
            warp_input=self._warp["input"].value, flat_warp_ours=self._flat["ours"].value,
            flat_warp_framewise=self._flat["framewise"].value, flat_warp_input=self._flat["input"].value,
            warp_pairs=self._warp["ours"].pairs, flat_warp_pairs=self._flat["ours"].pairs,
            flat_fraction=float(np.mean(self._flat_shares)) if self._flat_shares else math.nan,
            scene_cuts_skipped=self._cuts_skipped,
            ssim_raw_mean=_mean_or_nan(self._ssim_raw), ssim_raw_worst=min(self._ssim_raw, default=math.nan),
            ssim_encode_floor=_mean_or_nan(self._floor),
        )


def score_clip(input_path: Path, ours_path: Path, framewise: Framewise, scorer: ClipScorer,
               log: Callable[[str], None] | None = None, config: StylizeConfig | None = None) -> float:
    """Frame-by-frame on every input frame, then the input, our output and frame-by-frame walked in
    lockstep into ``scorer``; returns the frame-by-frame model seconds spent on this clip.

    Frame-by-frame is scored as the video it would deliver: its frames are H.264-encoded with the
    pipeline's writer and x264 settings (``config``) and decoded back, exactly as our output is, so
    the comparison is video to video. At CRF 18 the encode alone takes a stylized clip's SSIM to its
    unencoded frames to ~0.96-0.97 (``ssim_encode_floor``), which no encoded output can beat; the
    unencoded frames are kept at the metric side (a memory map on disk, never a whole clip in RAM)
    for the ``ssim_raw_*`` scores. ``config`` defaults to ``StylizeConfig()``.
    """
    config = config if config is not None else StylizeConfig()
    start = framewise.seconds
    with tempfile.TemporaryDirectory(prefix="mvstylizer-framewise-") as tmp:
        video = Path(tmp) / "framewise.mp4"
        raw: np.ndarray | None = None
        with VideoReader(input_path) as src:
            info = src.info
            with VideoWriter(video, info.width, info.height, info.fps, src.time_base, crf=config.crf,
                             preset=config.preset) as writer:
                for f_in in src.frames():
                    if f_in.index == 0:
                        framewise.warm_up(f_in.rgb8)
                    out8 = framewise(f_in.rgb8)
                    writer.write(out8, f_in.pts)
                    small = shrink_to(out8, scorer.metric_side)
                    if raw is None:
                        raw = np.lib.format.open_memmap(Path(tmp) / "raw.npy", "w+", np.uint8,
                                                        (info.frame_count or 1,) + small.shape)
                    if f_in.index >= len(raw):  # the header undercounted: grow the map
                        raw = _grown(raw, Path(tmp) / f"raw{f_in.index}.npy", 2 * len(raw))
                    raw[f_in.index] = small
                    if log is not None and (f_in.index + 1) % 50 == 0:
                        log(f"  frame-by-frame {f_in.index + 1} frames")
        with VideoReader(input_path) as src, VideoReader(ours_path) as ours, VideoReader(video) as fw:
            # zip_longest, not zip: every reader runs to its end (so truncation is noticed) and a
            # frame count mismatch is an error rather than a silently shorter comparison.
            for i, (f_in, f_out, f_fw) in enumerate(itertools.zip_longest(src.frames(), ours.frames(), fw.frames())):
                if f_in is None or f_out is None or f_fw is None:
                    raise UserError(f"{ours_path.name} and {input_path.name} differ in frame count")
                scorer.add(f_in.rgb8, f_out.rgb8, f_fw.rgb8, raw[i] if raw is not None and i < len(raw) else None)
        del raw  # the memory map must be closed before its folder goes
    return framewise.seconds - start


def _grown(raw: np.ndarray, path: Path, frames: int) -> np.ndarray:
    bigger = np.lib.format.open_memmap(path, "w+", np.uint8, (frames,) + raw.shape[1:])
    bigger[:len(raw)] = raw
    return bigger


def finite_mean(values: list[float]) -> float:
    """Mean of the finite values, inf if there are none. For PSNR: one identical frame (a shared black
    intro) is inf and would make a clip's mean inf; it is inf only when every frame is identical."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("inf")


def _mean_or_nan(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


@dataclass
class CompareResult:
    input: str
    model: str
    interp: str
    width: int
    height: int
    frames: int
    key_count: int
    pipeline_seconds: float
    framewise_seconds: float
    speedup: float
    stage_seconds: dict[str, float]
    ssim_vs_framewise: float
    psnr_vs_framewise: float
    warp_error: float
    warp_error_framewise: float
    warp_error_input: float
    bytes_to_edge_per_key: int
    bytes_from_edge_per_key: int
    scene_cuts_skipped: int = 0  # frame pairs left out of the warping errors: a cut has no flow
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def compare(input_path: Path, style_path: Path, config: StylizeConfig, metric_side: int = 640) -> CompareResult:
    """Run the pipeline and frame-by-frame on ``input_path`` and measure both.

    ``metric_side`` bounds the resolution at which SSIM and warping error are computed (frames are
    area-downscaled first), which keeps 4K evaluation affordable; PSNR uses full resolution.
    """
    config.progress = False
    scorer = ClipScorer(metric_side)
    with tempfile.TemporaryDirectory() as tmp:
        out_path = Path(tmp) / "pipeline.mp4"
        report = VideoPipeline(EmbeddedEdge(), config).run(input_path, style_path, out_path)
        if report.frames < 2:  # warping error is over pairs of frames: none to score
            raise UserError(f"{Path(input_path).name} has {report.frames} frame; the comparison needs at least 2")
        summary = report.summary()
        framewise_seconds = score_clip(input_path, out_path,
                                       Framewise(style_path, config.model, config.max_style_side), scorer)
    s = scorer.result()
    return CompareResult(
        input=str(input_path), model=config.model, interp=config.interp.method,
        width=report.width, height=report.height, frames=report.frames, key_count=summary["key_count"],
        pipeline_seconds=report.total_seconds, framewise_seconds=framewise_seconds,
        speedup=framewise_seconds / report.total_seconds, stage_seconds=summary["stage_seconds"],
        ssim_vs_framewise=s.ssim_mean, psnr_vs_framewise=s.psnr_mean,
        warp_error=s.warp_ours, warp_error_framewise=s.warp_framewise, warp_error_input=s.warp_input,
        bytes_to_edge_per_key=summary["bytes_to_edge_per_key"],
        bytes_from_edge_per_key=summary["bytes_from_edge_per_key"], scene_cuts_skipped=s.scene_cuts_skipped,
        notes=["framewise = the same model on every full-resolution frame in-process, no transport; its time "
               "is the model calls alone, its frames are scored after the same H.264 encode as ours; "
               "pipeline = end to end including decode and H.264 encode"],
    )


def _f32(rgb8: np.ndarray) -> np.ndarray:
    return rgb8.astype(np.float32) * (1.0 / 255.0)
