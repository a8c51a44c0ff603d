"""Pipeline against frame-by-frame, on one video: speed, fidelity and temporal steadiness.

Frame-by-frame is the same model run on every frame at full resolution, in this process, with no
transport (the most favourable baseline for it). Everything streams: the input, our output and the
frame-by-frame frames are walked in lockstep and only running sums are kept.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..edge.service import EdgeService
from ..imaging import shrink_to
from ..metrics import WarpErrorMeter, flow_and_mask, psnr, ssim
from ..mobile.edge_link import EmbeddedEdge
from ..mobile.keyframes import KeyframeSelector
from ..mobile.pipeline import StylizeConfig, Stylizer
from ..video.flow import FlowEstimator
from ..video.io import VideoReader, read_image
from ..wire import Encoding, encode_frame


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
    with tempfile.TemporaryDirectory() as tmp:
        out_path = Path(tmp) / "pipeline.mp4"
        edge = EmbeddedEdge()
        report = Stylizer(edge, config).run(input_path, style_path, out_path)
        summary = report.summary()

        service = EdgeService()
        style = read_image(style_path)
        style_id = service.register_style(encode_frame(style, Encoding("png")))
        service.stylize(style_id, config.model, [np.zeros((8, 8, 3), np.float32)])  # warm-up: model + style state

        flow = FlowEstimator("medium")
        cuts = KeyframeSelector()
        cuts_skipped = 0
        warp_out, warp_fw, warp_in = WarpErrorMeter(), WarpErrorMeter(), WarpErrorMeter()
        ssims, psnrs = [], []
        framewise_seconds = 0.0
        prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        with VideoReader(input_path) as src, VideoReader(out_path) as ours:
            for f_in, f_out in zip(src.frames(), ours.frames()):
                x = f_in.rgb8.astype(np.float32) / 255.0
                t = time.perf_counter()
                (fw,) = service.stylize(style_id, config.model, [x])
                framewise_seconds += time.perf_counter() - t
                o = f_out.rgb8.astype(np.float32) / 255.0
                psnrs.append(psnr(o, fw))
                small = [shrink_to(a, metric_side) for a in (x, o, fw)]
                ssims.append(ssim(small[1], small[2]))
                thumb = cuts.thumb(f_in.rgb8)
                if prev is not None and cuts.is_cut(prev_thumb, thumb):
                    cuts_skipped += 1  # flow across a scene cut is meaningless for every video alike
                elif prev is not None:
                    fl, mask = flow_and_mask(prev[0], small[0], estimator=flow)
                    warp_in.update(prev[0], small[0], fl, mask)
                    warp_out.update(prev[1], small[1], fl, mask)
                    warp_fw.update(prev[2], small[2], fl, mask)
                prev, prev_thumb = (small[0], small[1], small[2]), thumb

    return CompareResult(
        input=str(input_path), model=config.model, interp=config.interp.method,
        width=report.width, height=report.height, frames=report.frames, key_count=summary["key_count"],
        pipeline_seconds=report.total_seconds, framewise_seconds=framewise_seconds,
        speedup=framewise_seconds / report.total_seconds, stage_seconds=summary["stage_seconds"],
        ssim_vs_framewise=float(np.mean(ssims)), psnr_vs_framewise=float(np.mean(psnrs)),
        warp_error=warp_out.value, warp_error_framewise=warp_fw.value, warp_error_input=warp_in.value,
        bytes_to_edge_per_key=summary["bytes_to_edge_per_key"],
        bytes_from_edge_per_key=summary["bytes_from_edge_per_key"], scene_cuts_skipped=cuts_skipped,
        notes=["framewise = the same model on every full-resolution frame in-process, no transport, "
               "no encode; pipeline = end to end including decode and H.264 encode"],
    )

