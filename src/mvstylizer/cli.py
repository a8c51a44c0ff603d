"""The ``mvstylizer`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import UserError


# Trainable models and the recipe each ships with (the committed weights were made with these).
TRAINABLE: dict[str, dict] = {
    "wct2": {"steps": 900, "batch": 4, "size": 112, "lr": 1e-3, "threads": 2},
    "dncm": {"steps": 8000, "batch": 8, "size": 128, "lr": 1e-3, "threads": 1},
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


def _add_pipeline_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="default", help="edge model (see `mvstylizer models`; default: the edge's default)")
    p.add_argument("--keyframes", type=_keyframes_arg, default=("auto", 0), metavar="auto|every:N",
                   help="adaptive key frames (default) or a fixed stride")
    p.add_argument("--max-gap", type=_positive_int, default=30, metavar="N", help="most frames between keys")
    p.add_argument("--key-size", type=_positive_int, default=512, metavar="PIXELS",
                   help="long side of the key frames sent to the edge (default 512)")
    p.add_argument("--interp", choices=["transform", "warp"], default="transform",
                   help="interpolation: warp the keys' colour transforms (default) or their pixels (paper)")
    p.add_argument("--crf", type=int, default=18, help="H.264 quality, lower is better (default 18)")


def _pipeline_config(args: argparse.Namespace, progress: bool):
    from .mobile.interpolate import InterpConfig
    from .mobile.keyframes import KeyframeConfig
    from .mobile.pipeline import StylizeConfig

    if args.key_size < 16:
        raise UserError(f"--key-size must be at least 16 pixels, got {args.key_size}")
    if not 0 <= args.crf <= 51:
        raise UserError(f"--crf must be 0..51, got {args.crf}")
    mode, every = args.keyframes
    return StylizeConfig(
        model=args.model,
        key_size=args.key_size,
        keyframes=KeyframeConfig(mode=mode, every=every or 10, max_gap=args.max_gap),
        interp=InterpConfig(method=args.interp),
        crf=args.crf,
        progress=progress,
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mvstylizer", description="Edge-assisted photorealistic video style transfer.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("stylize", help="stylize a video or an image with a style photo")
    s.add_argument("input", type=Path, help="video (mp4, mov, avi, mkv, webm) or image")
    s.add_argument("--style", type=Path, required=True, help="style photo")
    s.add_argument("-o", "--output", type=Path, required=True, help="output video or image")
    _add_pipeline_options(s)
    s.add_argument("--edge", metavar="URL", help="use an edge server over HTTP instead of the in-process edge")
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
    lut.add_argument("--content", type=Path, help="a frame of the footage the LUT is for (sets the colour normalisation)")
    lut.add_argument("--size", type=int, default=33, help="grid points per axis (default 33)")

    e = sub.add_parser("edge", help="edge server commands")
    esub = e.add_subparsers(dest="edge_command", required=True)
    serve = esub.add_parser("serve", help="run the edge server (HTTP API under /v1)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8400)
    return p


def _stylize(args: argparse.Namespace) -> int:
    from .mobile.pipeline import Stylizer

    _check_report_folder(args.report)
    config = _pipeline_config(args, progress=not args.quiet and sys.stderr.isatty())
    edge = _edge_link(args.edge)
    try:
        _check_model(edge, args.model)
        report = Stylizer(edge, config).run(args.input, args.style, args.output)
    finally:
        edge.close()
    if args.report:
        report.write_json(args.report)
    if not args.quiet:
        s = report.summary()
        stages = ", ".join(f"{k} {v:.2f}s" for k, v in s["stage_seconds"].items())
        print(f"wrote {args.output}: {s['frames']} frames, {s['key_count']} key frames, "
              f"{s['total_seconds']:.1f}s ({stages})")
    return 0


def _check_report_folder(path: Path | None) -> None:
    if path is not None and not path.parent.resolve().is_dir():
        raise UserError(f"report folder {path.parent} does not exist")


def _bench(args: argparse.Namespace) -> int:
    import json

    from .video.io import atomic_path

    _check_report_folder(args.json)
    if args.bench_command == "compare":
        from .bench.compare import compare
        from .models.registry import resolve_name

        resolve_name(args.model)
        result = compare(args.input, args.style, _pipeline_config(args, progress=False)).as_dict()
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
    path = importlib.import_module(f"mvstylizer.models.{args.model}_train").train(config)
    print(f"wrote {path}")
    return 0


def _export_lut(args: argparse.Namespace) -> int:
    from .models.dncm import export_cube
    from .video.io import read_image

    if args.output.suffix.lower() != ".cube":
        raise UserError(f"a LUT file ends in .cube, not {args.output.name}")
    if not args.output.parent.resolve().is_dir():
        raise UserError(f"output folder {args.output.parent} does not exist")
    if not 2 <= args.size <= 256:
        raise UserError(f"--size must be 2..256, got {args.size}")
    content = read_image(args.content) if args.content else None
    export_cube(read_image(args.style), args.output, content=content, size=args.size)
    print(f"wrote {args.output}")
    return 0


def _edge_link(url: str | None):
    if url:
        from .mobile.http_edge import HttpEdge

        return HttpEdge(url)
    from .mobile.edge_link import EmbeddedEdge

    return EmbeddedEdge()


def _check_model(edge, name: str) -> None:
    """Refuse an unknown model before any video is decoded, from what the edge says it runs."""
    base, _, runtime = name.partition(":")
    models = edge.models()
    for m in models:
        if base == m["name"] or base in m.get("aliases", []):
            if runtime and runtime not in m.get("runtimes", [runtime]):
                raise UserError(f"model {m['name']} has no runtime {runtime!r}; it has: {', '.join(m['runtimes'])}")
            return
    known = sorted({m["name"] for m in models} | {a for m in models for a in m.get("aliases", [])})
    raise UserError(f"unknown model {name!r}; available: {', '.join(known)}")


def _models(_: argparse.Namespace) -> int:
    from .models.registry import DEFAULT_MODEL, aliases_of, available_models

    for spec in available_models():
        aliases = aliases_of(spec.name)
        tags = [f"also: {', '.join(aliases)}"] if aliases else []
        if len(spec.runtimes) > 1:
            tags.append(f"runtimes: {', '.join(spec.runtimes)} (default {spec.default_runtime})")
        default = " [default]" if spec.name == DEFAULT_MODEL else ""
        tag = f" ({'; '.join(tags)})" if tags else ""
        print(f"{spec.name:12s} {spec.description}{tag}{default}")
    return 0


def _edge(args: argparse.Namespace) -> int:
    from .edge.server import ServerConfig, serve

    serve(ServerConfig(host=args.host, port=args.port))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"stylize": _stylize, "models": _models, "edge": _edge, "bench": _bench, "train": _train,
                "export-lut": _export_lut}
    try:
        return handlers[args.command](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not bad input: still one line unless asked for the traceback
        if os.environ.get("MVSTYLIZER_DEBUG"):
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (set MVSTYLIZER_DEBUG=1 for details)", file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())
