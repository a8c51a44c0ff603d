"""Argument types and the pipeline options shared by several commands."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..video.formats import X264_PRESETS


def keyframes_arg(text: str) -> tuple[str, int]:
    from ..mobile.keyframes import parse_keyframes

    try:
        return parse_keyframes(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def path_arg(text: str) -> Path:
    """A file or folder name: an empty one (an unset shell variable, `--out "$OUT"`) is refused, where
    ``Path("")`` would quietly be ".", the current folder: `studio --workdir ""` served from it and
    `bench clips --out ""` filled it."""
    if not text:
        raise argparse.ArgumentTypeError("expected a file or folder name, got an empty one")
    return Path(text)


def non_empty(text: str) -> str:
    """A name or path kept as text (``train --data``): never empty, for the reason of :func:`path_arg`."""
    path_arg(text)
    return text


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def seed_int(text: str) -> int:
    """A random seed: numpy's generators take any whole number >= 0 (a negative one was their
    ValueError, an internal error after the work had started)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def finite_float(text: str) -> float:
    """A number option: "nan" and "inf" parse as floats but make no sense as a rate, a step or a norm."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (a duration)."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def use_defaults_help(parser: argparse.ArgumentParser) -> None:
    """Say each option's default in its help, for ``parser`` and all its subcommands, where the help
    does not already (most say it in their own words): read from the parser itself, so that what
    --help shows cannot drift from the code."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                use_defaults_help(child)
            continue
        text, default = action.help or "", action.default
        if (not action.option_strings or default is None or default is False or default == argparse.SUPPRESS
                or "default" in text or text == argparse.SUPPRESS):
            continue
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
        action.help = f"{text} (default {shown.replace('%', '%%')})".lstrip()


def choices_help(registry: dict[str, Any]) -> str:
    return "; ".join(f"{name}: {entry.help}" for name, entry in sorted(registry.items()))


def add_pipeline_options(p: argparse.ArgumentParser) -> None:
    from ..mobile.interpolate import INTERPOLATORS, InterpConfig
    from ..mobile.keyframes import KeyframeConfig
    from ..mobile.meta_smoothing import SMOOTHERS

    p.add_argument("--model", default="default",
                   help="edge model (see `mvstylizer models`; default: the edge's default)")
    p.add_argument("--keyframes", type=keyframes_arg, default=("auto", 0), metavar="auto|every:N",
                   help="adaptive key frames (default) or a fixed stride")
    p.add_argument("--max-gap", type=positive_int, default=None, metavar="N",
                   help=f"most frames between keys (default {KeyframeConfig.max_gap}; with every:N, caps N)")
    p.add_argument("--key-size", type=positive_int, default=512, metavar="PIXELS",
                   help="long side of the key frames sent to the edge (default 512)")
    p.add_argument("--interp", choices=sorted(INTERPOLATORS), default="transform",
                   help="in-between frames (default transform): " + choices_help(INTERPOLATORS))
    p.add_argument("--map-scale", type=finite_float, default=InterpConfig.map_scale, metavar="F",
                   help="spatially varying models: the bilateral grid is sliced at this fraction of the key size "
                        f"(default {InterpConfig.map_scale}; a video no bigger than the key is sliced whole)")
    p.add_argument("--strength", type=finite_float, default=1.0, metavar="S",
                   help="how much of the style to apply, 0..1 (default 1), like a preset's amount slider: "
                        "each output frame is (1 - S) x the frame + S x its full-strength result")
    p.add_argument("--smoothing", choices=sorted(SMOOTHERS), default="guided",
                   help="meta-smoothing of key frames (default guided): " + choices_help(SMOOTHERS))
    p.add_argument("--crf", type=int, default=18, help="H.264 quality, lower is better (default 18)")
    p.add_argument("--preset", default="veryfast",
                   choices=X264_PRESETS,
                   help="x264 speed preset (default veryfast: encoding is the phone's largest cost at 1080p)")


# The options only a video uses (flag: destination): given for an image, they are said to do nothing.
VIDEO_ONLY = {"--keyframes": "keyframes", "--max-gap": "max_gap", "--interp": "interp", "--crf": "crf",
              "--preset": "preset"}


def video_only_given(args: argparse.Namespace) -> list[str]:
    """The video-only options ``args`` holds at other than their defaults (as add_pipeline_options sets them)."""
    defaults = argparse.ArgumentParser(add_help=False)
    add_pipeline_options(defaults)
    return [flag for flag, dest in VIDEO_ONLY.items() if getattr(args, dest) != defaults.get_default(dest)]


def pipeline_config(args: argparse.Namespace, progress: bool, image: bool = False):
    """The run's StylizeConfig from the pipeline options; ``image``: the input is one picture, so the
    video-only options (their values still checked) are not combined into warnings about key spacing."""
    from ..mobile.interpolate import InterpConfig
    from ..mobile.keyframes import keyframe_config
    from ..mobile.pipeline import StylizeConfig

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
        keyframes=keyframe_config(mode, every or 10, None if image else args.max_gap),
        interp=InterpConfig(method=args.interp, map_scale=args.map_scale, strength=args.strength),
        smoothing=args.smoothing,
        crf=args.crf,
        preset=args.preset,
        progress=progress,
    )
