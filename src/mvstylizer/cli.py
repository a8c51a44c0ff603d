"""The ``mvstylizer`` command line."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from .errors import UserError

# Trainable models and the recipe each ships with (the committed weights were made with these).
TRAINABLE: dict[str, dict] = {
    "wct2": {"steps": 900, "batch": 4, "size": 112, "lr": 1e-3, "threads": 2},
    "dncm": {"steps": 8000, "batch": 8, "size": 128, "lr": 1e-3, "threads": 1},
    # Learned meta-smoothing; trains on pairs it makes itself (models/smoothing_data.py), crops vary.
    "smoothing": {"steps": 4000, "batch": 12, "lr": 1e-3, "threads": 1, "module": "meta_smoother_train"},
}


def _keyframes_arg(text: str) -> tuple[str, int]:
    if text == "auto":
        return "auto", 0
    if text.startswith("every:"):
        try:
            n = int(text.split(":", 1)[1])
        except ValueError:
            n = 0
        if n >= 1:
            return "every", n
    raise argparse.ArgumentTypeError(f"expected 'auto' or 'every:N' with N >= 1, got {text!r}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def _choices_help(registry: dict[str, Any]) -> str:
    return "; ".join(f"{name}: {entry.help}" for name, entry in sorted(registry.items()))


def _add_pipeline_options(p: argparse.ArgumentParser) -> None:
    from .mobile.interpolate import INTERPOLATORS
    from .mobile.meta_smoothing import SMOOTHERS

    p.add_argument("--model", default="default",
                   help="edge model (see `mvstylizer models`; default: the edge's default)")
    p.add_argument("--keyframes", type=_keyframes_arg, default=("auto", 0), metavar="auto|every:N",
                   help="adaptive key frames (default) or a fixed stride")
    p.add_argument("--max-gap", type=_positive_int, default=30, metavar="N", help="most frames between keys")
    p.add_argument("--key-size", type=_positive_int, default=512, metavar="PIXELS",
                   help="long side of the key frames sent to the edge (default 512)")
    p.add_argument("--interp", choices=sorted(INTERPOLATORS), default="transform",
                   help="in-between frames (default transform): " + _choices_help(INTERPOLATORS))
    p.add_argument("--map-scale", type=float, default=0.5, metavar="F",
                   help="spatially varying models: the bilateral grid is sliced at this fraction of the key size "
                        "(default 0.5)")
    p.add_argument("--strength", type=float, default=1.0, metavar="S",
                   help="how much of the style to apply, 0..1 (default 1): each key's colour transform is "
                        "blended with the identity, like a preset's amount slider")
    p.add_argument("--smoothing", choices=sorted(SMOOTHERS), default="guided",
                   help="meta-smoothing of key frames (default guided): " + _choices_help(SMOOTHERS))
    p.add_argument("--crf", type=int, default=18, help="H.264 quality, lower is better (default 18)")
    p.add_argument("--preset", default="veryfast",
                   choices=["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower"],
                   help="x264 speed preset (default veryfast: encoding is the phone's largest cost at 1080p)")


def _pipeline_config(args: argparse.Namespace, progress: bool):
    from .mobile.interpolate import InterpConfig
    from .mobile.keyframes import KeyframeConfig
    from .mobile.pipeline import StylizeConfig

    if args.key_size < 16:
        raise UserError(f"--key-size must be at least 16 pixels, got {args.key_size}")
    if not 0 <= args.crf <= 51:
        raise UserError(f"--crf must be 0..51, got {args.crf}")
    if not 0.0 < args.map_scale <= 1.0:
        raise UserError(f"--map-scale must be in (0, 1], got {args.map_scale}")
    if not 0.0 <= args.strength <= 1.0:
        raise UserError(f"--strength must be in [0, 1], got {args.strength}")
    mode, every = args.keyframes
    return StylizeConfig(
        model=args.model,
        key_size=args.key_size,
        keyframes=KeyframeConfig(mode=mode, every=every or 10, max_gap=args.max_gap),
        interp=InterpConfig(method=args.interp, map_scale=args.map_scale, strength=args.strength),
        smoothing=args.smoothing,
        crf=args.crf,
        preset=args.preset,
        progress=progress,
    )


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="mvstylizer", description="Edge-assisted photorealistic video style transfer.")
    p.add_argument("--version", action="version", version=f"mvstylizer {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more messages: -v info, -vv debug")
    p.add_argument("--log-level", dest="global_log_level", choices=["debug", "info", "warning", "error"],
                   help="messages shown from the library (default warning; `edge serve` has its own)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("stylize", help="stylize a video or an image with a style photo")
    s.add_argument("input", type=Path, help="video (mp4, mov, avi, mkv, webm) or image")
    s.add_argument("--style", type=Path, required=True, help="style photo")
    s.add_argument("-o", "--output", type=Path, required=True, help="output video or image")
    s.add_argument("-y", "--overwrite", action="store_true", help="replace the output file if it exists")
    _add_pipeline_options(s)
    s.add_argument("--edge", metavar="URL", help="use an edge server over HTTP instead of the in-process edge")
    s.add_argument("--edge-token-file", type=Path, metavar="FILE",
                   help="file holding the edge's bearer token (default: $MVSTYLIZER_EDGE_TOKEN if set)")
    s.add_argument("--contribute", action="store_true",
                   help="opt in: let the edge keep this video's key frames for federated learning")
    s.add_argument("--fallback", choices=["none", "local"], default="none",
                   help="if the edge is unreachable: fail (default) or continue with the in-process edge")
    s.add_argument("--report", type=Path, metavar="FILE.json", help="write a JSON report of the run")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")

    sub.add_parser("models", help="list the models the edge can run")

    b = sub.add_parser("bench", help="benchmarks")
    bsub = b.add_subparsers(dest="bench_command", required=True)
    cmp_ = bsub.add_parser("compare", help="pipeline vs frame-by-frame on one video: speed, fidelity, warping error")
    cmp_.add_argument("input", type=Path)
    cmp_.add_argument("--style", type=Path, required=True)
    _add_pipeline_options(cmp_)
    cmp_.add_argument("--json", type=Path, metavar="FILE", help="write the result as JSON")
    rt = bsub.add_parser("runtime", help="PyTorch vs onnxruntime per edge model, at key size and 1080p")
    rt.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")
    rt.add_argument("--repeats", type=_positive_int, default=5)
    qual = bsub.add_parser("quality", help="style/content/structure/colour metrics per method on package photos")
    qual.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")
    qual.add_argument("--methods", nargs="+", help="methods to run (default: all)")
    qual.add_argument("--out-dir", type=Path, default=Path("docs"), help="where QUALITY.md and the PNG grid go")
    _add_photoreal_parser(bsub)
    sm = bsub.add_parser("smoothing", help="meta-smoothing: learned vs bicubic, guided, bilateral guided upsampling")
    sm.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")
    sm.add_argument("--looks", type=_positive_int, default=3, help="random looks per picture and scale (default 3)")
    sm.add_argument("--crops", type=Path, metavar="PNG", help="also write a crop comparison image")
    sm.add_argument("--methods", nargs="+", default=["bicubic", "guided", "bgu", "learned"],
                    choices=["bicubic", "guided", "bgu", "learned"], help="methods to score (default: all)")
    sm.add_argument("--model", type=Path, metavar="ONNX", help="learned module to score (default: the shipped one)")
    be = bsub.add_parser("edge", help="N concurrent phones against one edge server on loopback")
    be.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")
    be.add_argument("--phones", type=_positive_int, nargs="+", default=[1, 4, 16], metavar="N")
    be.add_argument("--requests", type=_positive_int, default=8, metavar="R", help="requests per phone (default 8)")
    be.add_argument("--batch", type=_positive_int, default=4, help="key frames per request (default 4)")
    be.add_argument("--model", default="dncm")
    be.add_argument("--key-size", type=_positive_int, default=512, metavar="PIXELS")
    be.add_argument("--workers", type=_positive_int, default=2, help="the edge's DNN worker threads")
    be.add_argument("--scenario", choices=["load", "abusive"], default="load",
                    help="load: transport + N phones (default); abusive: a victim phone alone vs with a flooding "
                         "client")
    be.add_argument("--victim-requests", type=_positive_int, default=30, metavar="R",
                    help="abusive: the victim's requests, alone and flooded (default 30)")
    be.add_argument("--flood-connections", type=_positive_int, default=12, metavar="C",
                    help="abusive: the flooder's concurrent requests (default 12)")
    be.add_argument("--flood-batch", type=_positive_int, default=16, metavar="K",
                    help="abusive: key frames per flood request (default 16)")
    _add_video_bench_parsers(bsub)
    _add_footage_parser(bsub)

    t = sub.add_parser("train", help="train a model from plain photos and video frames (self-supervised)")
    t.add_argument("model", choices=sorted(TRAINABLE), help="which model")
    t.add_argument("--data", nargs="+", default=["package"], metavar="DIR",
                   help="folders or files of photos/videos, or 'package' for media from installed packages")
    t.add_argument("--steps", type=_positive_int, help="optimiser steps (default: the model's recipe)")
    t.add_argument("--batch", type=_positive_int)
    t.add_argument("--size", type=_positive_int, help="training crop side in pixels")
    t.add_argument("--lr", type=float)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--checkpoint", type=Path, help="checkpoint file (default: in the cache folder)")
    t.add_argument("--checkpoint-every", type=_positive_int, default=100)
    t.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    t.add_argument("--out", type=Path, help="weights file (default: the shipped weights of the model)")
    t.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    t.add_argument("-q", "--quiet", action="store_true")

    lut = sub.add_parser("export-lut", help="write a style as a 3D LUT (.cube) for Resolve, Premiere, FFmpeg")
    lut.add_argument("--style", type=Path, required=True)
    lut.add_argument("-o", "--output", type=Path, required=True, help="the .cube file")
    lut.add_argument("-y", "--overwrite", action="store_true", help="replace the output file if it exists")
    lut.add_argument("--content", type=Path,
                     help="a frame of the footage the LUT is for (sets the colour normalisation)")
    lut.add_argument("--size", type=int, default=33, help="grid points per axis (default 33)")
    lut.add_argument("--model", default="dncm",
                     help="only global models have a LUT: dncm (default); a region-aware model's look varies "
                          "over the picture, which a LUT cannot hold")

    st = sub.add_parser("studio", help="restyle a video from a web page: before/after preview, render jobs, "
                                       "downloads (docs/STUDIO.md)")
    st.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1: this machine only)")
    st.add_argument("--port", type=int, default=8500, help="port (default 8500; 0: any free port)")
    st.add_argument("--edge", metavar="URL", help="run the models on an edge server (`mvstylizer edge serve`; token "
                                                  "from $MVSTYLIZER_EDGE_TOKEN) instead of in this process")
    st.add_argument("--workdir", type=Path, metavar="DIR",
                    help="work folder for uploads and renders (default: a temporary folder, removed at exit)")
    st.add_argument("--max-upload-mb", type=_positive_int, default=500, metavar="MB",
                    help="largest video (default 500)")
    st.add_argument("--max-work-mb", type=_positive_int, default=5000, metavar="MB",
                    help="work folder size limit; the oldest renders go first (default 5000)")
    st.add_argument("--keep-hours", type=float, default=24.0, metavar="H",
                    help="files untouched this long are removed (default 24)")

    e = sub.add_parser("edge", help="edge server commands")
    esub = e.add_subparsers(dest="edge_command", required=True)
    serve = esub.add_parser("serve", help="run the edge server (HTTP API under /v1)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8400)
    serve.add_argument("--token-file", type=Path, metavar="FILE",
                       help="bearer tokens, one 'NAME TOKEN [SCOPES]' per line, mode 600 (see docs/EDGE.md); "
                            "without it the API is open (loopback only!)")
    serve.add_argument("--models", nargs="+", metavar="NAME", help="serve only these models (default: all)")
    serve.add_argument("--data-dir", type=Path, metavar="DIR",
                       help="keep opted-in key frames here (federated learning); without it nothing is kept")
    serve.add_argument("--quota-mb", type=_positive_int, default=2048, help="frame store size limit (default 2048)")
    serve.add_argument("--client-quota-mb", type=_positive_int,
                       help="frame store limit per client (default: a quarter of --quota-mb)")
    serve.add_argument("--workers", type=_positive_int, default=2, help="DNN worker threads (default 2)")
    serve.add_argument("--max-pending", type=_positive_int, default=64,
                       help="requests queued or running before 503 (default 64)")
    serve.add_argument("--rate", type=float, default=50.0, help="requests per second per client (default 50)")
    serve.add_argument("--max-connections", type=_positive_int, default=1000,
                       help="open connections before new requests get 503 (default 1000)")
    serve.add_argument("--max-connections-per-ip", type=_positive_int, default=64,
                       help="open connections per client address; more are closed at once (default 64)")
    serve.add_argument("--header-timeout", type=float, default=10.0,
                       help="seconds a connection has to send a complete request header (default 10)")
    serve.add_argument("--memory-budget", metavar="SIZE",
                       help="working memory for all workers, e.g. 8G or 512M (default: half the machine's RAM); "
                            "per-model pixel limits follow from it (docs/EDGE.md)")
    serve.add_argument("--ssl-keyfile", type=Path, metavar="FILE", help="TLS private key (PEM); with --ssl-certfile")
    serve.add_argument("--ssl-certfile", type=Path, metavar="FILE", help="TLS certificate chain (PEM)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    _add_fl_parsers(sub, esub)
    return p


class _LogLines(logging.Handler):
    """Prints what the package logs as single lines on stderr (`warning: ...` for warnings), above
    the progress bar when one is shown. Installed once by :func:`main`."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        prefix = f"{record.levelname.lower()}: " if record.levelno >= logging.WARNING else ""
        tqdm.write(f"{prefix}{record.getMessage()}", file=sys.stderr)


def _configure_logging(args: argparse.Namespace) -> Callable[[], None]:
    """Route the package's log records to stderr at the level the flags ask for; returns a function
    that undoes it (``main`` may be called in-process, e.g. by tests or another program)."""
    level = args.global_log_level or {0: "warning", 1: "info"}.get(args.verbose, "debug")
    if args.command == "edge" and getattr(args, "log_level", None) and not args.global_log_level and not args.verbose:
        level = args.log_level  # `edge serve --log-level` (default info): the server's own messages
    logger = logging.getLogger("mvstylizer")
    before = logger.level
    handler = _LogLines()
    logger.addHandler(handler)
    logger.setLevel(level.upper())

    def restore() -> None:
        logger.removeHandler(handler)
        logger.setLevel(before)

    return restore


class _Terminated(Exception):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C, so temporary files are removed on the way out."""


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    raise _Terminated(signal.Signals(signum).name)


def _stylize(args: argparse.Namespace) -> int:
    from .files import check_overwrite
    from .mobile.pipeline import VideoPipeline

    _check_report_folder(args.report)
    check_overwrite(args.output, args.overwrite)
    config = _pipeline_config(args, progress=not args.quiet and sys.stderr.isatty())
    edge = _edge_link(args)
    try:
        _check_model(edge, args.model)
        report = VideoPipeline(edge, config).run(args.input, args.style, args.output)
    finally:
        edge.close()
    collected = getattr(getattr(edge, "active", edge), "frames_collected", 0)
    if args.contribute and not args.quiet:
        print(f"the edge kept {collected} key frame(s) for federated learning (--contribute)")
    if args.report:
        report.write_json(args.report)
    if not args.quiet:
        s = report.summary()
        stages = ", ".join(f"{k} {v:.2f}s" for k, v in s["stage_seconds"].items())
        print(f"wrote {args.output}: {s['frames']} frames, {s['key_count']} key frames, "
              f"{s['total_seconds']:.1f}s ({stages})")
    return 0


def _add_video_bench_parsers(bsub) -> None:
    """`bench clips`, `bench speedup`, `bench sweep` (issue 7: the headline numbers and their sweeps)."""
    from .bench.clips import CLIP_KINDS

    clips = bsub.add_parser("clips", help="write the benchmark clips (virtual camera + upscaled package clips)")
    clips.add_argument("--resolution", default="1080p", help="360p, 720p, 1080p, 4k or WIDTHxHEIGHT")
    clips.add_argument("--frames", type=_positive_int, default=60)
    clips.add_argument("--seed", type=int, default=0)
    clips.add_argument("--clips", nargs="+", choices=CLIP_KINDS, default=list(CLIP_KINDS))
    clips.add_argument("--flow", action="store_true", help="also write the camera clip's exact flow (.flow.npz)")
    clips.add_argument("--out", type=Path, required=True, metavar="DIR")
    for name, helptext in (("speedup", "the headline: full pipeline vs frame-by-frame, speed, fidelity, steadiness"),
                           ("sweep", "speed and quality against key gap, key size, interpolation, smoothing")):
        p = bsub.add_parser(name, help=helptext)
        p.add_argument("--resolution", default="1080p" if name == "speedup" else "720p",
                       help="generated clips: 360p, 720p, 1080p, 4k or WIDTHxHEIGHT")
        p.add_argument("--clip", default="camera", metavar="camera|bikes|bbb|PATH",
                       help="virtual camera (exact flow), upscaled package clip, or a video file used as is")
        p.add_argument("--frames", type=_positive_int, default=60, help="frames of a generated clip")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--style", type=Path, help="style photo (default: scikit-image's coffee)")
        p.add_argument("--framewise-sample", type=_positive_int, default=8, metavar="K",
                       help="frame pairs (i, i+1) run frame-by-frame; its model time is extrapolated")
        p.add_argument("--metric-side", type=_positive_int, default=640, help="warping errors at this long side")
        p.add_argument("--ssim-side", type=int, default=0, help="SSIM at this long side (0: full resolution)")
        p.add_argument("--in-process", action="store_true",
                       help="run the pipeline in this process (peak memory then includes the benchmark's)")
        _add_pipeline_options(p)
        p.add_argument("--json", type=Path, metavar="FILE", help="write the result as JSON")
        p.add_argument("--no-all-pairs", action="store_true",
                       help="skip scoring every consecutive pair of our output (faster)")
        if name == "sweep":
            p.add_argument("--axes", nargs="+", default=["gap", "keysize", "interp", "smoothing"],
                           choices=["gap", "keysize", "interp", "smoothing"])
            p.add_argument("--gaps", type=_positive_int, nargs="+", default=[5, 10, 20, 40], metavar="N")
            p.add_argument("--key-sizes", type=_positive_int, nargs="+", default=[256, 384, 512, 768], metavar="PX")
            p.add_argument("--plots", type=Path, metavar="DIR", help="write sweep_<axis>.png there (e.g. docs)")


def _video_bench(args: argparse.Namespace) -> int:
    import json

    from .files import atomic_path

    def log(msg: str) -> None:
        print(msg, file=sys.stderr)

    result: list[dict] | dict
    if args.bench_command == "clips":
        from .bench.clips import make_clips

        result = make_clips(args.resolution, args.out, args.frames, args.seed, args.flow, tuple(args.clips))
        for c in result:
            log(f"wrote {c['path']}: {c.get('note', '')}")
    else:
        from .bench.speedup import BenchConfig

        _check_report_folder(args.json)
        config = _pipeline_config(args, progress=False)
        bench = BenchConfig(clip=args.clip, resolution=args.resolution, frames=args.frames, seed=args.seed,
                            style=str(args.style) if args.style else None, framewise_sample=args.framewise_sample,
                            metric_side=args.metric_side, ssim_side=args.ssim_side, isolate=not args.in_process,
                            all_pairs=not getattr(args, "no_all_pairs", False), stylize=config)
        if args.bench_command == "speedup":
            from .bench.speedup import run_speedup

            result = run_speedup(bench, log=log)
        else:
            from .bench.sweep import SweepConfig, run_sweep

            result = run_sweep(SweepConfig(bench=bench, axes=tuple(args.axes), gaps=tuple(args.gaps),
                                           key_sizes=tuple(args.key_sizes), plots=args.plots), log=log)
    text = json.dumps(result, indent=2)
    if getattr(args, "json", None):
        with atomic_path(args.json) as tmp:
            tmp.write_text(text + "\n")
    print(text)
    return 0


def _add_footage_parser(bsub: argparse._SubParsersAction) -> None:
    f = bsub.add_parser("footage", help="real camera clips in a folder: the pipeline vs frame-by-frame vs a bare "
                                         "transcode, per clip and overall (markdown table on stdout)")
    f.add_argument("folder", type=Path, metavar="DIR", help="folder of clips (*.mp4, *.avi, *.mov, *.mkv, *.webm)")
    f.add_argument("--model", default="default", help="edge model (default: the edge's default)")
    f.add_argument("--style", type=Path, metavar="PHOTO", help="style photo (default: scikit-image's coffee.png)")
    f.add_argument("--clips", nargs="+", metavar="NAME", help="only these clips (file names, extension optional)")
    f.add_argument("--max-frames", type=int, metavar="N",
                   help="score only each clip's first N frames (cut to a near-lossless copy first): for slow "
                        "models such as wct2")
    f.add_argument("--repeats", type=_positive_int, default=1, metavar="N",
                   help="time the pipeline and the transcode N times each, alternated; medians (default 1)")
    f.add_argument("--json", type=Path, metavar="FILE", help="write every result as JSON")
    f.add_argument("--montage", type=Path, metavar="DIR",
                   help="write <clip>_worst.png per clip: input / frame-by-frame / ours at the lowest-SSIM frame")


def _footage_bench(args: argparse.Namespace) -> int:
    import json

    from .bench.footage import FootageConfig, run_footage
    from .files import atomic_path

    _check_report_folder(args.json)
    if args.montage is not None:
        _check_report_folder(args.montage)
        if args.montage.exists() and not args.montage.is_dir():
            raise UserError(f"--montage {args.montage} is a file, not a folder")
        args.montage.mkdir(exist_ok=True)
    report = run_footage(FootageConfig(folder=args.folder, model=args.model, style=args.style,
                                       clips=tuple(args.clips or ()), montage=args.montage,
                                       max_frames=args.max_frames, repeats=args.repeats),
                         log=lambda msg: print(msg, file=sys.stderr))
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(report.as_dict(), indent=2, ensure_ascii=False) + "\n")
    print(report.markdown())
    return 0


def _add_photoreal_parser(bsub) -> None:
    """`bench photoreal DIR` (issue 13): palette per region, photorealism, vs DPST's published results."""
    pr = bsub.add_parser("photoreal", help="region palette, photorealism and structure per method on segmented "
                                           "content/style pairs (Deep Photo Style Transfer's layout)")
    pr.add_argument("folder", type=Path, metavar="DIR",
                    help="folder of pair folders NN/ with content.jpg, style.jpg, content_mask.png, "
                         "style_mask.png and dpst.jpg")
    pr.add_argument("--methods", nargs="+", help="input, dpst and/or model names (default: all)")
    pr.add_argument("--pairs", nargs="+", metavar="NN", help="only these pair folders (default: all)")
    pr.add_argument("--max-side", type=_positive_int, default=700, metavar="PIXELS",
                    help="cap the content's long side (area downscale; default 700)")
    pr.add_argument("--json", type=Path, metavar="FILE", help="write per-pair rows and the summary as JSON")
    pr.add_argument("--out-dir", type=Path, default=Path("docs"),
                    help="where the QUALITY.md section and photoreal_grid.png go (default docs)")


def _photoreal_bench(args: argparse.Namespace) -> int:
    import shlex

    from .bench.photoreal import markdown_section, run_photoreal

    _check_report_folder(args.json)
    if not args.out_dir.is_dir():
        raise UserError(f"output folder {args.out_dir} does not exist")
    command = shlex.join(["mvstylizer", "bench", "photoreal", "DIR"]
                         + (["--methods", *args.methods] if args.methods else [])
                         + (["--pairs", *args.pairs] if args.pairs else [])
                         + (["--max-side", str(args.max_side)] if args.max_side != 700 else [])
                         + (["--json", str(args.json)] if args.json else []))
    result = run_photoreal(args.folder, args.methods, pairs=args.pairs, max_side=args.max_side,
                           json_path=args.json, out_dir=args.out_dir, command=command,
                           log=lambda msg: print(msg, file=sys.stderr))
    print(markdown_section(result, grid_name=None))
    return 0


def _check_report_folder(path: Path | None) -> None:
    if path is not None and not path.parent.resolve().is_dir():
        raise UserError(f"report folder {path.parent} does not exist")


def _bench(args: argparse.Namespace) -> int:
    import json

    from .files import atomic_path

    if args.bench_command in ("clips", "speedup", "sweep"):
        return _video_bench(args)
    if args.bench_command == "footage":
        return _footage_bench(args)
    if args.bench_command == "photoreal":
        return _photoreal_bench(args)
    _check_report_folder(args.json)
    if args.bench_command == "compare":
        from .bench.compare import compare
        from .models.registry import resolve_name

        resolve_name(args.model)
        result = compare(args.input, args.style, _pipeline_config(args, progress=False)).as_dict()
    elif args.bench_command == "edge":
        from .bench.edge import EdgeBenchConfig, run_edge_bench

        result = run_edge_bench(EdgeBenchConfig(phones=tuple(args.phones), requests=args.requests,
                                                batch=args.batch, model=args.model, key_size=args.key_size,
                                                workers=args.workers, scenario=args.scenario,
                                                victim_requests=args.victim_requests,
                                                flood_connections=args.flood_connections,
                                                flood_batch=args.flood_batch),
                                log=lambda msg: print(msg, file=sys.stderr))
    elif args.bench_command == "smoothing":
        from .bench.smoothing import crop_comparison, run_smoothing

        _check_report_folder(args.crops)
        if args.model is not None and not args.model.is_file():
            raise UserError(f"--model {args.model} does not exist")
        result = run_smoothing(looks=args.looks, methods=tuple(args.methods), model=args.model)
        if args.crops:
            crop_comparison(args.crops, model=args.model)
    elif args.bench_command == "runtime":
        from .bench.runtime import run_runtime

        result = run_runtime(args.repeats)
    else:
        from .bench.quality import run_quality

        if not args.out_dir.is_dir():
            raise UserError(f"output folder {args.out_dir} does not exist")
        command = "mvstylizer bench quality" + (f" --methods {' '.join(args.methods)}" if args.methods else "")
        if args.json:
            command += f" --json {args.json}"
        result = run_quality(args.methods, None, args.out_dir, command=command,
                             log=lambda msg: print(msg, file=sys.stderr))
    text = json.dumps(result, indent=2)
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(text + "\n")
    print(text)
    return 0


def _train(args: argparse.Namespace) -> int:
    import importlib

    from .models.training import TrainConfig

    recipe = TRAINABLE[args.model]
    config = TrainConfig(data=args.data, seed=args.seed, checkpoint=args.checkpoint,
                         checkpoint_every=args.checkpoint_every, resume=args.resume, out=args.out,
                         threads=args.threads or recipe.get("threads", 0), progress=not args.quiet)
    for key in ("steps", "batch", "size", "lr"):  # unset flags keep the model's own recipe
        value = getattr(args, key)
        setattr(config, key, value if value is not None else recipe.get(key, getattr(config, key)))
    module = recipe.get("module", f"{args.model}_train")
    path = importlib.import_module(f"mvstylizer.models.{module}").train(config)
    print(f"wrote {path}")
    if args.model == "dncm":
        from .models.dncm import weights as dncm_files
        from .models.dncm.export import export_onnx

        if Path(path).resolve() == dncm_files.default_weights().resolve():  # keep the core install's graph in step
            print(f"wrote {export_onnx(dncm_files.shipped_onnx())}")
    return 0


def _export_lut(args: argparse.Namespace) -> int:
    from .api import export_lut

    export_lut(args.style, args.output, content=args.content, size=args.size, overwrite=args.overwrite,
               model=args.model)
    print(f"wrote {args.output}")
    return 0


def _studio(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    try:
        import uvicorn  # noqa: F401

        from .studio import StudioConfig, serve
        from .studio.app import create_app  # noqa: F401 - FastAPI present?
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in ("fastapi", "starlette", "uvicorn", "pydantic", "anyio"):
            raise
        raise UserError("the studio needs FastAPI and uvicorn, which the core install leaves out: "
                        "pip install 'mvstylizer[studio]'") from None
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be 0..65535, got {args.port}")
    if not args.keep_hours > 0:
        raise UserError(f"--keep-hours must be > 0, got {args.keep_hours}")
    if args.max_upload_mb > args.max_work_mb:
        raise UserError("--max-upload-mb cannot be larger than --max-work-mb")
    if args.workdir is not None and args.workdir.exists() and not args.workdir.is_dir():
        raise UserError(f"--workdir {args.workdir} is a file, not a folder")
    temp = None if args.workdir is not None else Path(tempfile.mkdtemp(prefix="mvstylizer-studio-"))
    workdir: Path = args.workdir if temp is None else temp
    try:
        serve(StudioConfig(workdir=workdir, host=args.host, port=args.port, edge=args.edge,
                           edge_token=os.environ.get("MVSTYLIZER_EDGE_TOKEN") or None,
                           max_upload_bytes=args.max_upload_mb * 1024**2, max_work_bytes=args.max_work_mb * 1024**2,
                           ttl_seconds=args.keep_hours * 3600))
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
    return 0


def _edge_link(args: argparse.Namespace):
    from .mobile.edge_link import EmbeddedEdge, FallbackEdge

    if not args.edge:
        if args.contribute or args.edge_token_file or args.fallback != "none":
            raise UserError("--contribute, --edge-token-file and --fallback need --edge URL")
        return EmbeddedEdge()
    from .mobile.http_edge import HttpEdge

    token = os.environ.get("MVSTYLIZER_EDGE_TOKEN") or None
    if args.edge_token_file is not None:
        try:
            token = args.edge_token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            why = getattr(e, "strerror", None) or e
            raise UserError(f"cannot read token file {args.edge_token_file}: {why}") from None
        if not token or len(token.split()) != 1:
            raise UserError(f"token file {args.edge_token_file} must hold exactly one token")
    link = HttpEdge(args.edge, token=token, collect=args.contribute)
    if args.fallback == "local":
        return FallbackEdge(link, EmbeddedEdge, warn=lambda msg: print(msg, file=sys.stderr))
    return link


def _check_model(edge, name: str) -> None:
    """Refuse an unknown model before any video is decoded, from what the edge says it runs."""
    from .mobile.edge_link import find_model

    models = edge.models()
    m = find_model(models, name)
    if m is None:
        known = sorted({m["name"] for m in models} | {a for m in models for a in m.get("aliases", [])})
        raise UserError(f"unknown model {name!r}; available: {', '.join(known)}")
    runtime = name.partition(":")[2]
    if runtime and runtime not in m.get("runtimes", [runtime]):
        raise UserError(f"model {m['name']} has no runtime {runtime!r}; it has: {', '.join(m['runtimes'])}")


def _models(_: argparse.Namespace) -> int:
    from .models.registry import DEFAULT_MODEL, aliases_of, available_models

    for spec in available_models():
        aliases = aliases_of(spec.name)
        tags = [f"also: {', '.join(aliases)}"] if aliases else []
        if len(spec.runtimes) > 1:
            tags.append(f"runtimes: {', '.join(spec.runtimes)} (default {spec.default_runtime})")
        default = " [default]" if spec.name == DEFAULT_MODEL else ""
        experimental = " [experimental: not photorealistic enough, see docs/QUALITY.md]" if spec.experimental else ""
        tag = f" ({'; '.join(tags)})" if tags else ""
        print(f"{spec.name:12s} {spec.description}{tag}{default}{experimental}")
    return 0


def _edge(args: argparse.Namespace) -> int:
    if args.edge_command == "fl-join":
        return _fl_join(args)
    from .edge.auth import TokenSet
    from .edge.ratelimit import RateLimitConfig
    from .edge.server.config import ServerConfig, served_models
    from .edge.server.serve import serve

    if (args.ssl_keyfile is None) != (args.ssl_certfile is None):
        raise UserError("TLS needs both --ssl-keyfile and --ssl-certfile")
    if not args.rate > 0:
        raise UserError(f"--rate must be > 0, got {args.rate}")
    if not args.header_timeout > 0:
        raise UserError(f"--header-timeout must be > 0, got {args.header_timeout}")
    if args.data_dir is not None and args.data_dir.exists() and not args.data_dir.is_dir():
        raise UserError(f"--data-dir {args.data_dir} is not a folder")
    from .edge.memory import parse_size

    try:
        budget = parse_size(args.memory_budget) if args.memory_budget else None
    except ValueError as e:
        raise UserError(f"--memory-budget: {e}") from None
    serve(ServerConfig(
        host=args.host, port=args.port, log_level=args.log_level,
        tokens=TokenSet.from_file(args.token_file) if args.token_file else TokenSet(),
        models=served_models(args.models), data_dir=args.data_dir, store_quota_bytes=args.quota_mb * 1024**2,
        store_client_quota_bytes=args.client_quota_mb * 1024**2 if args.client_quota_mb else None,
        workers=args.workers, max_pending=args.max_pending,
        rate_limit=RateLimitConfig(rate=args.rate, burst=max(1, int(2 * args.rate))),
        ssl_keyfile=args.ssl_keyfile, ssl_certfile=args.ssl_certfile, memory_budget=budget,
        max_connections=args.max_connections, max_connections_per_ip=args.max_connections_per_ip,
        header_timeout_s=args.header_timeout,
    ))
    return 0


# ---------------------------------------------------------------- federated learning (docs/FL.md)


def _add_fl_parsers(sub: argparse._SubParsersAction, esub: argparse._SubParsersAction) -> None:
    join = esub.add_parser("fl-join", help="join the cloud's federation: a Flower SuperNode training on DIR's frames")
    join.add_argument("--superlink", required=True, metavar="HOST:PORT", help="the cloud's SuperLink")
    join.add_argument("--data-dir", type=Path, required=True, metavar="DIR",
                      help="the edge's data folder (its opt-in frame store; new global models are written here)")
    join.add_argument("--port", type=int, default=9094, help="the SuperNode's local runtime API port (default 9094)")

    c = sub.add_parser("cloud", help="cloud commands (federated learning)")
    csub = c.add_subparsers(dest="cloud_command", required=True)
    cs = csub.add_parser("serve", help="run the Flower SuperLink and the ServerApp (global model, FedAvg)")
    cs.add_argument("--host", default="127.0.0.1", help="listen address (0.0.0.0 for edges on other machines)")
    cs.add_argument("--port", type=int, default=9092, help="SuperLink port for edges and flwr (default 9092)")
    cs.add_argument("--state-dir", type=Path, default=Path("fl-cloud"), metavar="DIR",
                    help="Flower app, config and logs (default ./fl-cloud)")
    cs.add_argument("--registry", type=Path, metavar="DIR", help="global model registry (default STATE/registry)")
    cs.add_argument("--rounds", type=_positive_int, default=10, help="total rounds to reach (resumes; default 10)")
    cs.add_argument("--min-edges", type=_positive_int, default=2, help="edges needed to start a round (default 2)")
    cs.add_argument("--round-timeout", type=float, default=600.0, help="seconds to wait for edges per round")
    _add_fl_options(cs)

    f = sub.add_parser("fl", help="federated learning experiments")
    fsub = f.add_subparsers(dest="fl_command", required=True)
    sim = fsub.add_parser("simulate", help="non-IID edges: pretrained, local-only, federated, personalised, "
                          "centralised, on the population and an unseen edge (docs/FL.md)")
    sim.add_argument("--footage", type=Path, metavar="DIR", help="folder of real clips (default: package media)")
    sim.add_argument("--edges", type=_positive_int, default=5, help="training edges (scene kinds; default 5)")
    sim.add_argument("--rounds", type=_positive_int, default=5)
    sim.add_argument("--seeds", type=_positive_int, default=3)
    sim.add_argument("--frames-per-clip", type=_positive_int, default=4, help="training frames per clip")
    sim.add_argument("--held-out", type=_positive_int, default=2, help="held-out frames per clip")
    sim.add_argument("--finetune-steps", type=int, default=5, help="personalised: local steps after federation")
    sim.add_argument("--eval-crops", type=_positive_int, default=32, help="held-out crop pairs per edge")
    sim.add_argument("--workers", type=_positive_int, default=1, help="processes running seeds side by side")
    sim.add_argument("--poison", default="none", choices=["none", "nan", "scale", "signflip"],
                     help="the first edge sends poisoned updates (NaN, x1e6, sign-flipped); federated only")
    sim.add_argument("--json", type=Path, metavar="FILE", help="write the report as JSON")
    sim.add_argument("--model", default="dncm", choices=["dncm", "meta_smoother"], help="the federated model")
    sim.add_argument("--server-opt", default="sgd", choices=["sgd", "adam", "yogi"],
                     help="server step on the averaged update: sgd (FedAvg/FedAvgM), adam (FedAdam), yogi (FedYogi)")
    sim.add_argument("--weighting", default="frames", choices=["frames", "uniform"], help="aggregation weights")
    sim.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"], help="local lr over rounds")
    sim.add_argument("--finetune-lr", type=float, default=0.0, help="personalised fine-tune lr (default: --lr)")
    sim.add_argument("--finetune-part", default="all", choices=["all", "head"], help="personalised: what fine-tunes")
    _add_fl_options(sim)


def _add_fl_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strategy", default="fedavg", choices=["fedavg", "fedprox", "trimmed", "median"])
    p.add_argument("--proximal-mu", type=float, default=0.01, help="FedProx mu (default 0.01)")
    p.add_argument("--trim-beta", type=float, default=0.2, help="trimmed mean: cut fraction per end (default 0.2)")
    p.add_argument("--server-lr", type=float, default=1.0,
                   help="fedavg: server step on the averaged update (default 1; != 1 runs Flower's FedAvgM)")
    p.add_argument("--server-momentum", type=float, default=0.0, help="fedavg: FedAvgM server momentum (default 0)")
    p.add_argument("--clip-norm", type=float, default=0.0, help="clip each update to this L2 norm (0: off)")
    p.add_argument("--reject-norm", type=float, default=100.0, help="reject updates longer than this (default 100)")
    p.add_argument("--local-epochs", type=float, default=1.0, help="local passes over an edge's frames per round")
    p.add_argument("--local-steps", type=_positive_int, default=50, help="most local steps per round (default 50)")
    p.add_argument("--lr", type=float, default=1e-4, help="local learning rate (default 1e-4)")
    p.add_argument("--batch", type=_positive_int, default=8)
    p.add_argument("--size", type=_positive_int, default=96, help="training crop side (default 96)")
    p.add_argument("--base-weights", type=Path, help="starting model (default: the shipped dncm weights)")


def _cloud_config(args: argparse.Namespace, rounds: int, min_edges: int, timeout: float = 600.0):
    from .cloud.server_app import CloudConfig
    from .cloud.strategies import StrategyConfig
    from .fl.local import LocalConfig

    if not (args.lr > 0 and args.local_epochs > 0 and args.size >= 16 and args.proximal_mu >= 0):
        raise UserError("--lr and --local-epochs must be > 0, --size >= 16, --proximal-mu >= 0")
    if args.base_weights is not None and not args.base_weights.is_file():
        raise UserError(f"--base-weights {args.base_weights} does not exist")
    strategy = StrategyConfig(name=args.strategy, proximal_mu=args.proximal_mu, trim_beta=args.trim_beta,
                              server_lr=args.server_lr, server_momentum=args.server_momentum,
                              clip_norm=args.clip_norm, reject_norm=args.reject_norm, min_train_nodes=min_edges,
                              min_evaluate_nodes=min_edges, min_available_nodes=min_edges)
    local = LocalConfig(epochs=args.local_epochs, batch=args.batch, size=args.size, lr=args.lr,
                        max_steps=args.local_steps)
    return CloudConfig(num_rounds=rounds, round_timeout=timeout, strategy=strategy, local=local,
                       base_weights=str(args.base_weights.resolve()) if args.base_weights else "")


def _stop_on_sigterm() -> None:
    """Make SIGTERM (a service manager, a test) unwind like Ctrl-C, so the `finally` blocks stop the
    Flower processes this command started instead of leaving them orphaned."""
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def _cloud(args: argparse.Namespace) -> int:
    from .cloud.serve import ServeConfig, serve

    _stop_on_sigterm()

    if not args.round_timeout > 0:
        raise UserError(f"--round-timeout must be > 0, got {args.round_timeout}")
    cloud = _cloud_config(args, args.rounds, args.min_edges, args.round_timeout)
    serve(ServeConfig(state_dir=args.state_dir, host=args.host, port=args.port, cloud=cloud, registry=args.registry))
    return 0


def _fl_join(args: argparse.Namespace) -> int:
    from .edge.fl_join import JoinConfig, join

    _stop_on_sigterm()
    return join(JoinConfig(superlink=args.superlink, data_dir=args.data_dir, port=args.port))


def _fl(args: argparse.Namespace) -> int:
    from .fl.population import run_cli

    _check_report_folder(args.json)
    return run_cli(args, _cloud_config(args, args.rounds, args.edges))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    restore_logging = _configure_logging(args)
    previous = {}
    if args.command not in ("edge", "cloud") and threading.current_thread() is threading.main_thread():
        # The servers handle their own signals; everything else unwinds, removing temporary files.
        for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is not None:
                previous[sig] = signal.signal(sig, _on_signal)
    handlers = {"stylize": _stylize, "models": _models, "edge": _edge, "bench": _bench, "train": _train,
                "export-lut": _export_lut, "cloud": _cloud, "fl": _fl, "studio": _studio}
    try:
        return handlers[args.command](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except _Terminated as exc:
        print(f"stopped by {exc}", file=sys.stderr)
        return 143
    except Exception as exc:  # a bug, not bad input: still one line unless asked for the traceback
        if isinstance(exc, ImportError):  # a module an optional extra provides: name it (extras.py)
            from .extras import missing_extra

            err = missing_extra(exc)
            if err is not None:
                print(f"error: {err}", file=sys.stderr)
                return 2
        if os.environ.get("MVSTYLIZER_DEBUG"):
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (set MVSTYLIZER_DEBUG=1 for details)", file=sys.stderr)
        return 70
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        restore_logging()


if __name__ == "__main__":
    sys.exit(main())
