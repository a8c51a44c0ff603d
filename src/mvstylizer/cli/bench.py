"""``mvstylizer bench ...``: the benchmarks behind docs/BENCHMARKS.md, QUALITY.md, EDGE.md."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UserError
from ..files import check_output_folder, check_report_folder
from .args import (
    add_pipeline_options,
    finite_float,
    non_empty,
    path_arg,
    pipeline_config,
    positive_int,
    seed_int,
)


def _write_json_and_print(path: Path | None, text: str, printed: str) -> None:
    """Write a benchmark's JSON (when asked), then print its results. A JSON that cannot be written at
    the end of a long run (a full disk, its folder removed meanwhile) is one error line and exit 2 after
    the results are printed, not an internal error that lost them."""
    from ..files import atomic_path

    failed = None
    if path is not None:
        try:
            with atomic_path(path) as tmp:
                tmp.write_text(text + "\n", encoding="utf-8")
        except OSError as e:
            failed = e.strerror or str(e)
    print(printed)
    if failed is not None:
        raise UserError(f"printed the results, but cannot write {path}: {failed}")


def register(sub: argparse._SubParsersAction) -> None:
    """``bench ...``: every benchmark; results as JSON, tables for docs/."""
    b = sub.add_parser("bench", help="benchmarks")
    b.set_defaults(handler=_bench)
    bsub = b.add_subparsers(dest="bench_command", required=True)
    cmp_ = bsub.add_parser("compare", help="pipeline vs frame-by-frame on one video: speed, fidelity, warping error")
    cmp_.add_argument("input", type=path_arg)
    cmp_.add_argument("--style", type=path_arg, required=True)
    add_pipeline_options(cmp_)
    cmp_.add_argument("--json", type=path_arg, metavar="FILE", help="write the result as JSON")
    rt = bsub.add_parser("runtime", help="PyTorch vs onnxruntime per edge model, at key size and 1080p")
    rt.add_argument("--json", type=path_arg, metavar="FILE", help="write the results as JSON")
    rt.add_argument("--repeats", type=positive_int, default=5)
    qual = bsub.add_parser("quality", help="style/content/structure/colour metrics per method on package photos")
    qual.add_argument("--json", type=path_arg, metavar="FILE", help="write the results as JSON")
    qual.add_argument("--methods", nargs="+", help="methods to run (default: all)")
    qual.add_argument("--out-dir", type=path_arg, default=Path("docs"), help="where QUALITY.md and the PNG grid go")
    add_photoreal_parser(bsub)
    sm = bsub.add_parser("smoothing", help="meta-smoothing: learned vs bicubic, guided, bilateral guided upsampling")
    sm.add_argument("--json", type=path_arg, metavar="FILE", help="write the results as JSON")
    sm.add_argument("--looks", type=positive_int, default=3, help="random looks per picture and scale (default 3)")
    sm.add_argument("--crops", type=path_arg, metavar="PNG", help="also write a crop comparison image")
    sm.add_argument("--methods", nargs="+", default=["bicubic", "guided", "bgu", "learned"],
                    choices=["bicubic", "guided", "bgu", "learned"], help="methods to score (default: all)")
    sm.add_argument("--model", type=path_arg, metavar="ONNX", help="learned module to score (default: the shipped one)")
    be = bsub.add_parser("edge", help="N concurrent phones against one edge server on loopback")
    be.add_argument("--json", type=path_arg, metavar="FILE", help="write the results as JSON")
    be.add_argument("--phones", type=positive_int, nargs="+", default=[1, 4, 16], metavar="N")
    be.add_argument("--requests", type=positive_int, default=8, metavar="R", help="requests per phone (default 8)")
    be.add_argument("--batch", type=positive_int, default=4, help="key frames per request (default 4)")
    be.add_argument("--model", default="dncm")
    be.add_argument("--key-size", type=positive_int, default=512, metavar="PIXELS")
    be.add_argument("--workers", type=positive_int, default=2, help="the edge's DNN worker threads")
    be.add_argument("--scenario", choices=["load", "abusive"], default="load",
                    help="load: transport + N phones (default); abusive: a victim phone alone vs with a flooding "
                         "client")
    be.add_argument("--victim-requests", type=positive_int, default=30, metavar="R",
                    help="abusive: the victim's requests, alone and flooded (default 30)")
    be.add_argument("--flood-connections", type=positive_int, default=12, metavar="C",
                    help="abusive: the flooder's concurrent requests (default 12)")
    be.add_argument("--flood-batch", type=positive_int, default=16, metavar="K",
                    help="abusive: key frames per flood request (default 16)")
    add_video_bench_parsers(bsub)
    add_footage_parser(bsub)
    add_phone_parser(bsub)


def add_video_bench_parsers(bsub) -> None:
    """`bench clips`, `bench speedup`, `bench sweep`: the headline numbers and their sweeps."""
    from ..bench.clips import CLIP_KINDS

    clips = bsub.add_parser("clips", help="write the benchmark clips (virtual camera + upscaled package clips)")
    clips.add_argument("--resolution", default="1080p", help="360p, 720p, 1080p, 4k or WIDTHxHEIGHT")
    clips.add_argument("--frames", type=positive_int, default=60)
    clips.add_argument("--seed", type=seed_int, default=0, help="random seed of the virtual camera (default 0)")
    clips.add_argument("--clips", nargs="+", choices=CLIP_KINDS, default=list(CLIP_KINDS))
    clips.add_argument("--flow", action="store_true", help="also write the camera clip's exact flow (.flow.npz)")
    clips.add_argument("--out", type=path_arg, required=True, metavar="DIR")
    for name, helptext in (("speedup", "the headline: full pipeline vs frame-by-frame, speed, fidelity, steadiness"),
                           ("sweep", "speed and quality against key gap, key size, interpolation, smoothing")):
        p = bsub.add_parser(name, help=helptext)
        p.add_argument("--resolution", default="1080p" if name == "speedup" else "720p",
                       help="generated clips: 360p, 720p, 1080p, 4k or WIDTHxHEIGHT")
        p.add_argument("--clip", type=non_empty, default="camera", metavar="camera|bikes|bbb|PATH",
                       help="virtual camera (exact flow), upscaled package clip, or a video file used as is")
        p.add_argument("--frames", type=positive_int, default=60, help="frames of a generated clip")
        p.add_argument("--seed", type=seed_int, default=0, help="random seed of the virtual camera (default 0)")
        p.add_argument("--style", type=path_arg, help="style photo (default: scikit-image's coffee)")
        p.add_argument("--framewise-sample", type=positive_int, default=8, metavar="K",
                       help="frame pairs (i, i+1) run frame-by-frame; its model time is extrapolated")
        p.add_argument("--metric-side", type=positive_int, default=640, help="warping errors at this long side")
        p.add_argument("--ssim-side", type=int, default=0, help="SSIM at this long side (0: full resolution)")
        p.add_argument("--in-process", action="store_true",
                       help="run the pipeline in this process (peak memory then includes the benchmark's)")
        add_pipeline_options(p)
        p.add_argument("--json", type=path_arg, metavar="FILE", help="write the result as JSON")
        p.add_argument("--no-all-pairs", action="store_true",
                       help="skip scoring every consecutive pair of our output (faster)")
        if name == "sweep":
            p.add_argument("--axes", nargs="+", default=["gap", "keysize", "interp", "smoothing"],
                           choices=["gap", "keysize", "interp", "smoothing"])
            p.add_argument("--gaps", type=positive_int, nargs="+", default=[5, 10, 20, 40], metavar="N")
            p.add_argument("--key-sizes", type=positive_int, nargs="+", default=[256, 384, 512, 768], metavar="PX")
            p.add_argument("--plots", type=path_arg, metavar="DIR", help="write sweep_<axis>.png there (e.g. docs)")


def _video_bench(args: argparse.Namespace) -> int:
    import json

    def log(msg: str) -> None:
        print(msg, file=sys.stderr)

    result: list[dict] | dict
    if args.bench_command == "clips":
        from ..bench.clips import make_clips

        result = make_clips(args.resolution, args.out, args.frames, args.seed, args.flow, tuple(args.clips))
        for c in result:
            log(f"wrote {c['path']}: {c.get('note', '')}")
    else:
        from ..bench.clips import CLIP_KINDS
        from ..bench.speedup import BenchConfig

        # a clip path, the style photo or a plot must never be the report (it would be replaced by JSON)
        plots = [args.plots / f"sweep_{axis}.png" for axis in args.axes] if getattr(args, "plots", None) else []
        check_report_folder(args.json, None if args.clip in CLIP_KINDS else args.clip, args.style, *plots)
        if args.clip not in CLIP_KINDS:
            _check_video(args.clip, "--clip")
        config = pipeline_config(args, progress=False)
        bench = BenchConfig(clip=args.clip, resolution=args.resolution, frames=args.frames, seed=args.seed,
                            style=str(args.style) if args.style else None, framewise_sample=args.framewise_sample,
                            metric_side=args.metric_side, ssim_side=args.ssim_side, isolate=not args.in_process,
                            all_pairs=not getattr(args, "no_all_pairs", False), stylize=config)
        if args.bench_command == "speedup":
            from ..bench.speedup import run_speedup

            result = run_speedup(bench, log=log)
        else:
            from ..bench.sweep import SweepConfig, run_sweep

            result = run_sweep(SweepConfig(bench=bench, axes=tuple(args.axes), gaps=tuple(args.gaps),
                                           key_sizes=tuple(args.key_sizes), plots=args.plots), log=log)
    text = json.dumps(result, indent=2)
    _write_json_and_print(getattr(args, "json", None), text, text)
    return 0


def _model_and_style(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="default", help="edge model (default: the edge's default)")
    p.add_argument("--style", type=path_arg, metavar="PHOTO", help="style photo (default: scikit-image's coffee.png)")


def add_footage_parser(bsub: argparse._SubParsersAction) -> None:
    f = bsub.add_parser("footage", help="real camera clips in a folder: the pipeline vs frame-by-frame vs a bare "
                                         "transcode, per clip and overall (markdown table on stdout)")
    f.add_argument("folder", type=path_arg, metavar="DIR", help="folder of clips (*.mp4, *.avi, *.mov, *.mkv, *.webm)")
    _model_and_style(f)
    f.add_argument("--clips", nargs="+", metavar="NAME", help="only these clips (file names, extension optional)")
    f.add_argument("--max-frames", type=int, metavar="N",
                   help="score only each clip's first N frames (cut to a near-lossless copy first): for slow "
                        "models such as wct2")
    f.add_argument("--repeats", type=positive_int, default=1, metavar="N",
                   help="time the pipeline and the transcode N times each, alternated; medians (default 1)")
    f.add_argument("--edge-elsewhere", action="store_true",
                   help="also time the pipeline with its edge on another machine: the edge's answers are "
                        "recorded once, then replayed to the same pipeline code in a fresh process, each as late "
                        "as the model took to make it alone")
    f.add_argument("--edge-latency", type=finite_float, default=0.0, metavar="S",
                   help="with --edge-elsewhere: S seconds of network round trip per key (half each way), "
                        "with as many keys out at once as --edge URL has (default 0)")
    f.add_argument("--json", type=path_arg, metavar="FILE", help="write every result as JSON")
    f.add_argument("--montage", type=path_arg, metavar="DIR",
                   help="write <clip>_worst.png per clip: input / frame-by-frame / ours at the lowest-SSIM frame")


def add_phone_parser(bsub: argparse._SubParsersAction) -> None:
    p = bsub.add_parser("phone", help="the phone's own work per frame on one clip, alone: frames decoded first, "
                                      "edge answers replayed, nothing encoded")
    p.add_argument("clip", type=path_arg, metavar="CLIP", help="video file")
    _model_and_style(p)
    p.add_argument("--frames", type=positive_int, default=120, metavar="N",
                   help="the clip's first N frames (default 120)")
    p.add_argument("--repeats", type=positive_int, default=5, metavar="N", help="timed runs; medians (default 5)")
    p.add_argument("--json", type=path_arg, metavar="FILE", help="write every run as JSON")


def _phone_bench(args: argparse.Namespace) -> int:
    import json

    from ..bench.phone import PhoneBenchConfig, run_phone
    from ..models.registry import resolve_name

    check_report_folder(args.json, args.clip, args.style)
    _check_video(args.clip, "clip")
    resolve_name(args.model)
    if args.frames < 2:
        raise UserError("--frames must be at least 2")
    report = run_phone(PhoneBenchConfig(args.clip, args.style, args.model, args.frames, args.repeats),
                       log=lambda msg: print(msg, file=sys.stderr))
    _write_json_and_print(args.json, json.dumps(report.as_dict(), indent=2), report.markdown())
    return 0


def _footage_bench(args: argparse.Namespace) -> int:
    import json

    from ..bench.footage import FootageConfig, run_footage

    # every file of the folder may be a clip to score: none of them, nor the style, may become the report
    check_report_folder(args.json, args.style, *_files_in(args.folder))
    if not args.folder.is_dir():
        raise UserError(f"{args.folder} is not a folder")
    if args.montage is not None:  # a folder (made if missing, kept if there), inside one that exists
        check_output_folder(args.montage, "--montage", made=True)
        args.montage.mkdir(exist_ok=True)
    report = run_footage(FootageConfig(folder=args.folder, model=args.model, style=args.style,
                                       clips=tuple(args.clips or ()), montage=args.montage,
                                       max_frames=args.max_frames, repeats=args.repeats,
                                       edge_elsewhere=args.edge_elsewhere, edge_latency=args.edge_latency),
                         log=lambda msg: print(msg, file=sys.stderr))
    _write_json_and_print(args.json, json.dumps(report.as_dict(), indent=2, ensure_ascii=False), report.markdown())
    overall = report.overall()
    if overall["ok"] == 0:  # the table and the JSON still say why each clip failed
        print(f"error: none of the {overall['clips']} clip(s) in {args.folder} could be benchmarked; "
              "see the error rows above", file=sys.stderr)
        return 2
    return 0


def add_photoreal_parser(bsub) -> None:
    """`bench photoreal DIR`: palette per region, photorealism, vs DPST's published results."""
    pr = bsub.add_parser("photoreal", help="region palette, photorealism and structure per method on segmented "
                                           "content/style pairs (Deep Photo Style Transfer's layout)")
    pr.add_argument("folder", type=path_arg, metavar="DIR",
                    help="folder of pair folders NN/ with content.jpg, style.jpg, content_mask.png, "
                         "style_mask.png and dpst.jpg")
    pr.add_argument("--methods", nargs="+", help="input, dpst and/or model names (default: all)")
    pr.add_argument("--pairs", nargs="+", metavar="NN", help="only these pair folders (default: all)")
    pr.add_argument("--max-side", type=positive_int, default=700, metavar="PIXELS",
                    help="cap the content's long side (area downscale; default 700)")
    pr.add_argument("--json", type=path_arg, metavar="FILE", help="write per-pair rows and the summary as JSON")
    pr.add_argument("--out-dir", type=path_arg, default=Path("docs"),
                    help="where the QUALITY.md section and photoreal_grid.png go (default docs)")


def _photoreal_bench(args: argparse.Namespace) -> int:
    import shlex

    from ..bench.photoreal import markdown_section, run_photoreal

    if not args.folder.is_dir():
        raise UserError(f"benchmark folder {args.folder} does not exist or is not a folder")
    check_output_folder(args.out_dir, "--out-dir")
    # the pair folders' photos and masks are inputs, the section and the grid outputs: the report may
    # replace none of them
    check_report_folder(args.json, *(p for pair in _files_in(args.folder) for p in _files_in(pair)),
                        args.out_dir / "QUALITY.md", args.out_dir / "photoreal_grid.png")
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


def _check_video(path: str | Path, what: str) -> None:
    """A benchmark scores frames over time: an image file is refused by name, before it is decoded as a
    one-frame video (which failed later with a message about a temporary file)."""
    from ..video.formats import VIDEO_EXTS, is_image_path

    if is_image_path(path):
        raise UserError(f"{what} {path} is an image, not a video; give a video file "
                        f"({', '.join(sorted(VIDEO_EXTS))})")


def _files_in(folder: Path) -> list[Path]:
    """The entries of ``folder`` (none when it is not a readable folder: the benchmark says why later)."""
    try:
        return sorted(folder.iterdir()) if folder.is_dir() else []
    except OSError:
        return []


def _bench(args: argparse.Namespace) -> int:
    import json

    if args.bench_command in ("clips", "speedup", "sweep"):
        return _video_bench(args)
    if args.bench_command == "footage":
        return _footage_bench(args)
    if args.bench_command == "phone":
        return _phone_bench(args)
    if args.bench_command == "photoreal":
        return _photoreal_bench(args)
    # the run's inputs (video, style photo, ONNX module) must never be replaced by a report
    keep = {"compare": ("input", "style"), "smoothing": ("model", "crops")}.get(args.bench_command, ())
    check_report_folder(args.json, *(getattr(args, name) for name in keep))
    if args.bench_command == "compare":
        from ..bench.compare import compare
        from ..models.registry import resolve_name

        _check_video(args.input, "input")
        resolve_name(args.model)
        result = compare(args.input, args.style, pipeline_config(args, progress=False)).as_dict()
    elif args.bench_command == "edge":
        from ..bench.edge import EdgeBenchConfig, run_edge_bench

        result = run_edge_bench(EdgeBenchConfig(phones=tuple(args.phones), requests=args.requests,
                                                batch=args.batch, model=args.model, key_size=args.key_size,
                                                workers=args.workers, scenario=args.scenario,
                                                victim_requests=args.victim_requests,
                                                flood_connections=args.flood_connections,
                                                flood_batch=args.flood_batch),
                                log=lambda msg: print(msg, file=sys.stderr))
    elif args.bench_command == "smoothing":
        import cv2

        from ..bench.smoothing import crop_comparison, run_smoothing

        check_report_folder(args.crops, args.model, args.json)
        if args.crops is not None and not cv2.haveImageWriter(str(args.crops)):
            raise UserError(f"--crops {args.crops}: not an image name OpenCV can write; give e.g. crops.png")
        if args.model is not None and not args.model.is_file():
            raise UserError(f"--model {args.model} does not exist")
        result = run_smoothing(looks=args.looks, methods=tuple(args.methods), model=args.model)
        if args.crops:
            crop_comparison(args.crops, model=args.model)
    elif args.bench_command == "runtime":
        from ..bench.runtime import run_runtime

        result = run_runtime(args.repeats)
    else:
        from ..bench.quality import run_quality

        check_output_folder(args.out_dir, "--out-dir")
        check_report_folder(args.json, args.out_dir / "QUALITY.md", args.out_dir / "quality_grid.png")
        command = "mvstylizer bench quality" + (f" --methods {' '.join(args.methods)}" if args.methods else "")
        if args.json:
            command += f" --json {args.json}"
        result = run_quality(args.methods, None, args.out_dir, command=command,
                             log=lambda msg: print(msg, file=sys.stderr))
    text = json.dumps(result, indent=2)
    _write_json_and_print(args.json, text, text)
    return 0
