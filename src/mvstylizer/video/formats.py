"""Which files are videos and images, and which output paths may be written."""

from __future__ import annotations

import os
from pathlib import Path

from mvstylizer.errors import UserError
from mvstylizer.files import check_writable_folder

VIDEO_EXTS = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"}
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
# The writer always encodes H.264, which WebM cannot hold (VP8/VP9/AV1 only): .webm is read-only.
WRITABLE_VIDEO_EXTS = VIDEO_EXTS - {".webm"}


def is_video_path(path: str | os.PathLike[str]) -> bool:
    """True if the extension is a video container we read (case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_EXTS


def is_image_path(path: str | os.PathLike[str]) -> bool:
    """True if the extension is a still-image format we read (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTS


def check_output_path(input_path: str | os.PathLike[str], output_path: str | os.PathLike[str],
                      style_path: str | os.PathLike[str] | None = None) -> None:
    """Fail fast, before any work, on an output path that cannot or must not be written.

    Raises :class:`UserError` if the output folder is missing or read-only, the output is a folder,
    the output is the input or the style photo (also through symlinks, ``..`` or hard links), or the
    output extension is not one we can write for this kind of input.
    """
    inp, out = Path(input_path), Path(output_path)
    suffix = out.suffix.lower()
    if is_video_path(inp):
        allowed, kind = WRITABLE_VIDEO_EXTS, "a video"
    elif is_image_path(inp):
        allowed, kind = IMAGE_EXTS, "an image"
    else:
        allowed, kind = WRITABLE_VIDEO_EXTS | IMAGE_EXTS, "a video or image"
    if suffix not in allowed:
        if suffix == ".webm" and allowed is not IMAGE_EXTS:
            why = "H.264 output cannot be stored in .webm"
        else:
            why = f"unsupported output extension {suffix or '(none)'!r}"
        raise UserError(f"{why} for {out}; {kind} output must end in {', '.join(sorted(allowed))}")
    if out.is_dir():
        raise UserError(f"output {out} is a folder; give a file name")
    check_writable_folder(out.parent)
    if same_file(inp, out):
        raise UserError(f"output {out} is the input file; choose a different output path")
    if style_path is not None and same_file(Path(style_path), out):
        raise UserError(f"output {out} is the style photo; choose a different output path")


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: equal once resolved, or the same file on disk (hard links)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False
