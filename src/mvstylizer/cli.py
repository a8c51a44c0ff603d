"""The ``mvstylizer`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import UserError


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
    p.add_argument("--model", default="classic", help="edge model (see `mvstylizer models`)")
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

    from .bench.compare import compare
    from .models.registry import resolve_name
    from .video.io import atomic_path

    _check_report_folder(args.json)
    resolve_name(args.model)
    result = compare(args.input, args.style, _pipeline_config(args, progress=False)).as_dict()
    text = json.dumps(result, indent=2)
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(text + "\n")
    print(text)
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
    from .models.registry import ALIASES, DEFAULT_MODEL, available_models

    for spec in available_models():
        aliases = [a for a, target in ALIASES.items() if target == spec.name]
        tags = [f"also: {', '.join(aliases)}"] if aliases else []
        if len(spec.runtimes) > 1:
            tags.append(f"runtimes: {', '.join(spec.runtimes)} (default {spec.default_runtime})")
        default = " [default]" if DEFAULT_MODEL in (spec.name, *aliases) else ""
        tag = f" ({'; '.join(tags)})" if tags else ""
        print(f"{spec.name:12s} {spec.description}{tag}{default}")
    return 0


def _edge(args: argparse.Namespace) -> int:
    from .edge.server import ServerConfig, serve

    serve(ServerConfig(host=args.host, port=args.port))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"stylize": _stylize, "models": _models, "edge": _edge, "bench": _bench}
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
