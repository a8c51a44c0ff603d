"""``mvstylizer stylize``, ``models`` and ``export-lut``: restyle a file on this machine (the phone)."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import UserError
from ..files import check_report_folder
from .args import (
    add_pipeline_options,
    finite_float,
    non_negative_float,
    path_arg,
    pipeline_config,
    video_only_given,
)


def register(sub: argparse._SubParsersAction) -> None:
    """``stylize``, ``models`` and ``export-lut``: the phone-side commands."""
    s = sub.add_parser("stylize", help="stylize a video or an image with a style photo")
    s.set_defaults(handler=_stylize)
    s.add_argument("input", type=path_arg, help="video (mp4, mov, avi, mkv, webm) or image")
    s.add_argument("--style", type=path_arg, required=True, help="style photo")
    s.add_argument("-o", "--output", type=path_arg, required=True, help="output video or image")
    s.add_argument("-y", "--overwrite", action="store_true", help="replace the output file if it exists")
    add_pipeline_options(s)
    s.add_argument("--edge", metavar="URL", help="use an edge server over HTTP instead of the in-process edge")
    s.add_argument("--edge-token-file", type=path_arg, metavar="FILE",
                   help="file holding the edge's bearer token (default: $MVSTYLIZER_EDGE_TOKEN if set)")
    s.add_argument("--contribute", action="store_true",
                   help="opt in: let the edge keep this video's key frames for federated learning")
    s.add_argument("--fallback", choices=["none", "local"], default="none",
                   help="if the edge is unreachable: fail (default) or continue with the in-process edge")
    s.add_argument("--edge-reconnect", type=non_negative_float, default=None, metavar="SECONDS",
                   help="how long to keep trying an edge that answered before and then went away (a "
                        "restart), before failing or falling back (default 30; 0: give up after the retries)")
    s.add_argument("--report", type=path_arg, metavar="FILE.json", help="write a JSON report of the run")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")

    sub.add_parser("models", help="list the models the edge can run").set_defaults(handler=_models)

    lut = sub.add_parser("export-lut", help="write a style as a 3D LUT (.cube) for Resolve, Premiere, FFmpeg")
    lut.set_defaults(handler=_export_lut)
    lut.add_argument("--style", type=path_arg, required=True)
    lut.add_argument("-o", "--output", type=path_arg, required=True, help="the .cube file")
    lut.add_argument("-y", "--overwrite", action="store_true", help="replace the output file if it exists")
    lut.add_argument("--content", type=path_arg,
                     help="a frame of the footage the LUT is for (sets the colour normalisation)")
    lut.add_argument("--size", type=int, default=33, help="grid points per axis (default 33)")
    lut.add_argument("--strength", type=finite_float, default=1.0, metavar="S",
                     help="how much of the style, 0..1, as `stylize --strength` (default 1)")
    lut.add_argument("--model", default="dncm",
                     help="only dncm (the default) has a LUT export: the other global models (mk, reinhard) have "
                          "none yet, and a region-aware model's look varies over the picture, which a LUT cannot "
                          "hold")


def _stylize(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from ..files import check_overwrite, keep_existing
    from ..memory import limit_malloc_arenas
    from ..mobile.pipeline import VideoPipeline
    from ..video.formats import check_output_path, is_image_path

    limit_malloc_arenas()
    # the token file too: a report written over it replaced the secret with JSON, readable by all
    check_report_folder(args.report, args.input, args.style, args.output, args.edge_token_file)
    if args.report is not None:
        check_overwrite(args.report, args.overwrite)
    # Before the overwrite check, so "-y" is never the fix suggested for an output that cannot be used.
    check_output_path(args.input, args.output, args.style)
    check_overwrite(args.output, args.overwrite)
    image = is_image_path(args.input)
    if image:
        unused = video_only_given(args)
        if unused:
            print(f"warning: {', '.join(unused)} {'has' if len(unused) == 1 else 'have'} no effect on an image",
                  file=sys.stderr)
    config = pipeline_config(args, progress=not args.quiet and sys.stderr.isatty(), image=image)
    edge = _edge_link(args)
    try:
        _check_model(edge, args.model)
        with nullcontext() if args.overwrite else keep_existing(args.output):
            report = VideoPipeline(edge, config).run(args.input, args.style, args.output)
    finally:
        edge.close()
    collected = getattr(edge, "frames_collected", 0)
    if args.contribute and not args.quiet:
        print(f"the edge kept {collected} key frame(s) for federated learning (--contribute)")
    if args.report:
        try:
            report.write_json(args.report)
        except UserError as e:
            raise UserError(f"wrote {args.output}, but not the report: {e}") from None
    if not args.quiet:
        s = report.summary()
        stages = ", ".join(f"{k} {v:.2f}s" for k, v in s["stage_seconds"].items())
        print(f"wrote {args.output}: {s['frames']} frames, {s['key_count']} key frames, "
              f"{s['total_seconds']:.1f}s ({stages})")
    return 0


# A bearer token is a line of printable ASCII; a file this size holds one many times over.
_MAX_TOKEN_FILE = 64 * 1024


def _edge_link(args: argparse.Namespace):
    from ..mobile.edge_link import EmbeddedEdge, FallbackEdge

    if args.edge is not None and not args.edge.strip():  # an unset $EDGE: not "no edge" without a word
        raise UserError("--edge is empty; give the edge server's URL, or leave --edge out to run in-process")
    if not args.edge:
        if args.contribute or args.edge_token_file or args.fallback != "none" or args.edge_reconnect is not None:
            raise UserError("--contribute, --edge-token-file, --fallback and --edge-reconnect need --edge URL")
        return EmbeddedEdge()
    from ..mobile.http_edge import HttpEdge

    token = os.environ.get("MVSTYLIZER_EDGE_TOKEN") or None
    if args.edge_token_file is not None:
        try:
            # Read at most a little more than any token: a device such as /dev/zero (or a huge file
            # given by mistake) was read whole, until the machine ran out of memory.
            with open(args.edge_token_file, "rb") as fh:
                data = fh.read(_MAX_TOKEN_FILE + 1)
            if len(data) > _MAX_TOKEN_FILE:
                raise UserError(f"token file {args.edge_token_file} is larger than {_MAX_TOKEN_FILE} bytes; "
                                "it must hold one token")
            token = data.decode("utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            why = getattr(e, "strerror", None) or e
            raise UserError(f"cannot read token file {args.edge_token_file}: {why}") from None
        if not token or len(token.split()) != 1:
            raise UserError(f"token file {args.edge_token_file} must hold exactly one token")
    source = f"token file {args.edge_token_file}" if args.edge_token_file is not None else None
    link = HttpEdge(args.edge, token=token, collect=args.contribute, token_source=source,
                    reconnect=30.0 if args.edge_reconnect is None else args.edge_reconnect)
    if args.fallback == "local":
        return FallbackEdge(link, EmbeddedEdge, warn=lambda msg: print(msg, file=sys.stderr))
    return link


def _check_model(edge, name: str) -> None:
    """Refuse an unknown model before any video is decoded, from what the edge says it runs."""
    from ..mobile.edge_link import find_model

    models = edge.models()
    m = find_model(models, name)
    if m is None:
        known = sorted({m["name"] for m in models} | {a for m in models for a in m.get("aliases", [])})
        raise UserError(f"unknown model {name!r}; available: {', '.join(known)}" if known else
                        f"the edge runs no model (its /v1/models list is empty), so none can style {name!r}")
    runtime = name.partition(":")[2]
    if runtime and runtime not in m.get("runtimes", [runtime]):
        raise UserError(f"model {m['name']} has no runtime {runtime!r}; it has: {', '.join(m['runtimes'])}")


def _models(_: argparse.Namespace) -> int:
    from ..models.registry import DEFAULT_MODEL, aliases_of, available_models

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


def _export_lut(args: argparse.Namespace) -> int:
    from ..api import export_lut

    export_lut(args.style, args.output, content=args.content, size=args.size, overwrite=args.overwrite,
               model=args.model, strength=args.strength)
    print(f"wrote {args.output}")
    return 0
