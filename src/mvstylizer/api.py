"""The Python API: what ``import mvstylizer`` offers (see docs/API.md for examples).

Everything here is a thin front for the phone-side pipeline (``mobile/pipeline.py``) and the model
registry: options are checked once, the edge link is opened and closed for you, and bad input raises
:class:`mvstylizer.UserError` with a message meant for a person.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .errors import UserError
from .files import check_overwrite, check_writable_folder, keep_existing, same_file
from .mobile.edge_link import EdgeLink
from .mobile.interpolate import InterpConfig
from .mobile.keyframes import KeyframeConfig, keyframe_config, parse_keyframes
from .mobile.pipeline import FrameHook, StylizeConfig, StylizeReport, VideoPipeline
from .video.formats import X264_PRESETS

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class ModelInfo:
    """One model an edge can run (``mvstylizer models`` prints the same)."""

    name: str
    description: str
    runtimes: tuple[str, ...]
    spatial: bool  # its look varies over the picture (so no LUT export)
    experimental: bool
    default: bool


def list_models() -> list[ModelInfo]:
    """The models the embedded edge runs, the default first."""
    from .models.registry import DEFAULT_MODEL, available_models

    infos = [ModelInfo(s.name, s.description, tuple(s.runtimes), s.spatial, s.experimental, s.name == DEFAULT_MODEL)
             for s in available_models()]
    return sorted(infos, key=lambda m: not m.default)


class VideoStylizer:
    """Stylizes videos, images and frame streams; holds the edge link (embedded or HTTP) open.

    Args:
        model: a name from :func:`list_models` (``"default"``: the edge's default).
        strength: how much of the style to apply, 0..1.
        edge: URL of a remote edge (``mvstylizer edge serve``); None runs the model in this process.
        token: the remote edge's bearer token (printable ASCII without whitespace).
        key_size: long side of the key frames sent to the edge, pixels.
        keyframes: ``"auto"`` or ``"every:N"``.
        max_gap: most frames between two keys (default 30); with "every:N", a bound on N.
        interp: ``"transform"`` (default) or ``"warp"`` (the paper's flow warping).
        crf, preset: H.264 settings for video files.
        progress: show a progress bar for files.

    Use it as a context manager, or call :meth:`close` (which frees the edge link's connections). A
    closed stylizer may be used again, embedded or remote: a remote link reconnects on its next request::

        with VideoStylizer(model="regions") as vs:
            vs.stylize_file("in.mp4", "style.jpg", "out.mp4")
    """

    def __init__(self, model: str = "default", *, strength: float = 1.0, edge: str | None = None,
                 token: str | None = None, key_size: int = 512, keyframes: str = "auto", max_gap: int | None = None,
                 interp: str = "transform", crf: int = 18, preset: str = "veryfast", progress: bool = False) -> None:
        self.config = _config(model, strength, key_size, keyframes, max_gap, interp, crf, preset, progress)
        if edge is not None and not isinstance(edge, str):
            raise UserError(f"edge must be a URL string or None, got {type(edge).__name__}")
        if token is not None and not isinstance(token, str):
            raise UserError(f"token must be a string or None, got {type(token).__name__}")
        self._edge: EdgeLink
        if edge:
            from .mobile.http_edge import HttpEdge

            self._edge = HttpEdge(edge, token=token)
        else:
            from .mobile.edge_link import EmbeddedEdge
            from .models.registry import resolve_name

            resolve_name(model)  # an unknown name is refused now, not at the first key frame
            self._edge = EmbeddedEdge()
        self._pipeline = VideoPipeline(self._edge, self.config)

    def stylize_file(self, input: PathLike, style: PathLike, output: PathLike, *, overwrite: bool = False,
                     on_frame: FrameHook | None = None) -> StylizeReport:
        """Stylize a video (mp4, mov, mkv, avi, webm) or image file; audio is kept.

        Args:
            input, style, output: file paths; ``output`` is written under a temporary name and
                renamed when complete, so it never exists half-written.
            overwrite: replace an existing ``output`` (refused otherwise).
            on_frame: ``on_frame(written, total)`` after each output frame is written: frames
                written so far, and the input's declared frame count (None if it declares none).
                Frames come out about one per frame read, once the first key is back. Whatever it
                raises ends the run, leaving no ``output`` (an existing one is untouched): raise to
                cancel.

        Returns:
            The run's report (frames, keys and why each is one, seconds per stage, bytes to the edge).
        """
        for name, value in (("input", input), ("style", style), ("output", output)):
            _check_path(value, name)
        _check_hook(on_frame)
        check_overwrite(output, overwrite)
        # Without overwrite, a file another run wrote to the same name meanwhile is not replaced.
        with nullcontext() if overwrite else keep_existing(output):
            return self._pipeline.run(input, style, output, on_frame=on_frame)

    def stylize_frames(self, frames: Iterable[np.ndarray], style: np.ndarray | PathLike,
                       report: StylizeReport | None = None) -> Iterator[np.ndarray]:
        """Stylized frames for frames from your own source (OpenCV capture, camera, array).

        Args:
            frames: HxWx3 RGB images of one size, uint8 or float in [0, 1].
            style: the style photo, as an array or a file path.
            report: a :class:`StylizeReport` to fill in (keys, seconds), if you want one.

        Returns:
            An iterator of new arrays, one per input frame, in order: uint8 for uint8 input,
            float32 in [0, 1] otherwise. A frame comes once the key after it is back, about one
            per frame read; it holds at most two key gaps of frames (and ``max_buffer_mb``).
        """
        if isinstance(frames, (str, bytes, os.PathLike)) or not isinstance(frames, Iterable):
            raise UserError(f"frames must be an iterable of HxWx3 arrays, got {type(frames).__name__}"
                            + ("; for a video file use stylize_file" if isinstance(frames, (str, os.PathLike)) else ""))
        if report is not None and not isinstance(report, StylizeReport):
            raise UserError(f"report must be a StylizeReport or None, got {type(report).__name__}")
        if not isinstance(style, np.ndarray):
            from .video.image import read_style

            _check_path(style, "style", "an HxWx3 array or a file path")
            style = read_style(Path(style), self.config.max_style_side)  # as stylize_file reads it
        return self._pipeline.stream(frames, style, report)

    def close(self) -> None:
        self._edge.close()

    def __enter__(self) -> VideoStylizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stylize(input: PathLike, style: PathLike, output: PathLike, *, overwrite: bool = False,
            on_frame: FrameHook | None = None, **options) -> StylizeReport:
    """Stylize one video or image file with a style photo; the one-call form of :class:`VideoStylizer`.

    Args:
        input, style, output: file paths.
        overwrite: replace an existing ``output``.
        on_frame: called after each output frame is written, as in :meth:`VideoStylizer.stylize_file`.
        **options: any keyword of :class:`VideoStylizer` (model, strength, edge, key_size, ...).

    Returns:
        The run's :class:`StylizeReport`.
    """
    import inspect

    known = [n for n in inspect.signature(VideoStylizer).parameters]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise UserError(f"unknown option {unknown[0]!r}; the options are {', '.join(known)}")
    for name, value in (("input", input), ("style", style), ("output", output)):
        _check_path(value, name)
    with VideoStylizer(**options) as vs:
        return vs.stylize_file(input, style, output, overwrite=overwrite, on_frame=on_frame)


def export_lut(style: PathLike, output: PathLike, *, content: PathLike | None = None, size: int = 33,
               overwrite: bool = False, model: str = "dncm", strength: float = 1.0) -> Path:
    """Write a style as a 3D LUT (``.cube``) for Resolve, Premiere or FFmpeg: dncm's global look.

    Args:
        style: the style photo.
        output: the ``.cube`` file.
        content: a frame of the footage the LUT is for (sets the colour normalisation).
        size: grid points per axis, 2..256.
        overwrite: replace an existing ``output``.
        model: only dncm has a LUT; any other model is refused with the reason.
        strength: how much of the style, 0..1, as ``stylize --strength`` applies it.

    Returns:
        ``output`` as a Path.
    """
    from .mobile.pipeline import warn_poor_style
    from .models.dncm import export_cube
    from .models.registry import available_models, resolve_name
    from .video.image import read_header, read_image

    if not isinstance(model, str):
        raise UserError(f"model must be a model name (a string), got {type(model).__name__}")
    _check_path(style, "style")
    _check_path(output, "output")
    if content is not None:
        _check_path(content, "content")
    name = resolve_name(model).partition(":")[0]
    if name != "dncm":
        spec = next(s for s in available_models() if s.name == name)
        why = ("its look varies over the picture (sky one way, buildings another) and a LUT maps a colour "
               "the same way everywhere" if spec.spatial else
               f"only dncm has a LUT export ({name} is global too, but has no LUT export yet)")
        raise UserError(f"cannot export {name} as a LUT: {why}; `export-lut --model dncm` writes a global look")
    out = Path(output)
    if not out.name.lower().endswith(".cube") or out.name.lower() == ".cube":
        raise UserError(f"a LUT file is named NAME.cube, not {out.name}")
    if out.is_dir():
        raise UserError(f"output {out} is a folder; give a file name ending in .cube")
    if out.is_symlink() and not out.exists():
        raise UserError(f"output {out} is a link to nothing; remove it or choose another name")
    check_writable_folder(out.parent)
    for given, what in ((style, "the style photo"), (content, "the content image")):
        if given is not None and same_file(Path(given), out):  # -y would have replaced it with the LUT
            raise UserError(f"output {out} is {what}; choose a different output path")
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or not 2 <= size <= 256:
        raise UserError(f"size must be a whole number 2..256, got {size!r}")
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real) or not 0.0 <= strength <= 1.0:
        raise UserError(f"strength must be a number 0..1, got {strength!r}")
    check_overwrite(out, overwrite)
    # The warning stylize gives for the same photo (mobile/pipeline.py): the LUT is as poor a look.
    warn_poor_style(Path(style).name, *read_header(Path(style)).upright_size)
    content_img = read_image(Path(content)) if content else None
    try:
        with nullcontext() if overwrite else keep_existing(out):
            # reads the style as stylize does
            export_cube(Path(style), out, content=content_img, size=size, strength=float(strength))
    except OSError as e:  # a full disk: nothing is left behind (written under a temporary name)
        raise UserError(f"cannot write {out}: {e.strerror or e}") from None
    return out


def _whole(value: object, name: str) -> int:
    """``value`` as an int if it is a whole number (an int or a numpy integer, never a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise UserError(f"{name} must be a whole number, got {value!r}")
    return int(value)


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise UserError(f"{name} must be a string, got {value!r}")
    return value


def _check_path(value: object, name: str, what: str = "a file path") -> None:
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise UserError(f"{name} must be {what} (str or pathlib.Path), got {value!r}")


def _check_hook(on_frame: object) -> None:
    if on_frame is not None and not callable(on_frame):
        raise UserError(f"on_frame must be a function on_frame(written, total) or None, got {on_frame!r}")


def _config(model: str, strength: float, key_size: int, keyframes: str, max_gap: int | None, interp: str, crf: int,
            preset: str, progress: bool) -> StylizeConfig:
    """Every option checked for its type and range up front: a bad one is a :class:`UserError` here,
    never a TypeError now or a failure from the edge or the encoder mid-run."""
    if not _text(model, "model"):
        raise UserError("model must be a model name, got ''")
    if isinstance(strength, bool) or not isinstance(strength, numbers.Real) or not math.isfinite(strength):
        raise UserError(f"strength must be a number 0..1, got {strength!r}")
    key_size = _whole(key_size, "key_size")
    crf = _whole(crf, "crf")
    if max_gap is not None:
        max_gap = _whole(max_gap, "max_gap")
    _text(interp, "interp")
    if _text(preset, "preset") not in X264_PRESETS:
        raise UserError(f"preset must be one of {', '.join(X264_PRESETS)}, got {preset!r}")
    try:
        mode, every = parse_keyframes(_text(keyframes, "keyframes"))
    except ValueError as e:
        raise UserError(f"keyframes: {e}") from None
    try:  # each config checks its own values (strength, key size, CRF, gaps, interpolation)
        return replace(StylizeConfig(), model=model, key_size=key_size, crf=crf, preset=preset, progress=progress,
                       keyframes=keyframe_config(mode, every or KeyframeConfig.every, max_gap),
                       interp=InterpConfig(method=interp, strength=float(strength)))
    except ValueError as e:
        raise UserError(str(e)) from None
