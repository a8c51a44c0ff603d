"""Which files are videos and images, and which output paths may be written."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mvstylizer.errors import UserError
from mvstylizer.files import check_output_name, check_writable_folder, same_file

VIDEO_EXTS = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"}
# .jpe and .jfif are JPEG's other names; .avif is decoded where OpenCV is built with libavif (read_image
# says so where it is not).
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".tif", ".tiff", ".webp", ".avif"}
# The writer always encodes H.264, which WebM cannot hold (VP8/VP9/AV1 only): .webm is read-only.
WRITABLE_VIDEO_EXTS = VIDEO_EXTS - {".webm"}
# libx264's speed presets, fastest first (the slowest, veryslow and placebo, are left out).
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower")
# OpenCV's AVIF encoder is optional and slow: .avif is read-only.
WRITABLE_IMAGE_EXTS = IMAGE_EXTS - {".avif"}
# Phone photo formats this project's OpenCV cannot decode: refused as what they are, not taken for videos.
UNREADABLE_PHOTO_EXTS = {".heic": "HEIC", ".heif": "HEIF", ".hif": "HEIF", ".jxl": "JPEG XL"}
# The longest side each output format holds: libjpeg's JPEG_MAX_DIMENSION, WebP's 14-bit sizes.
MAX_OUTPUT_SIDE = {".jpg": 65500, ".jpeg": 65500, ".jpe": 65500, ".jfif": 65500, ".webp": 16383}


def is_video_path(path: str | os.PathLike[str]) -> bool:
    """True if the extension is a video container we read (case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_EXTS


def is_image_path(path: str | os.PathLike[str]) -> bool:
    """True if the extension is a still-image format we read (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTS


def check_readable_photo(path: str | os.PathLike[str]) -> None:
    """UserError for a photo in a format we cannot decode (HEIC, JPEG XL), named by its extension."""
    p = Path(path)
    kind = UNREADABLE_PHOTO_EXTS.get(p.suffix.lower())
    if kind is not None:
        raise UserError(f"{p.name}: {kind} photos are not supported; convert it to JPEG or PNG")


def check_not_special(path: str | os.PathLike[str], what: str) -> None:
    """UserError if ``path`` is a pipe, socket or device: reading one can wait forever (a FIFO with no
    writer) or never end (/dev/zero). A missing file or a folder is left to the reader to report."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise UserError(f"{what} {path} is not a regular file (a pipe or device cannot be read)")


def check_output_size(width: int, height: int, output_path: str | os.PathLike[str]) -> None:
    """UserError if a ``width`` x ``height`` image is larger than the output format can hold."""
    out = Path(output_path)
    limit = MAX_OUTPUT_SIDE.get(out.suffix.lower())
    if limit is not None and max(width, height) > limit:
        kind = "WebP" if out.suffix.lower() == ".webp" else "JPEG"
        raise UserError(f"cannot write {out.name}: the image is {width}x{height} and a {kind} image is at most "
                        f"{limit} px a side; write .png or .tif instead")


def check_output_path(input_path: str | os.PathLike[str], output_path: str | os.PathLike[str],
                      style_path: str | os.PathLike[str] | None = None) -> None:
    """Fail fast, before any work, on an output path that cannot or must not be written.

    Raises :class:`UserError` if the input or style photo is in a format we cannot read or is a pipe
    or device, the output folder is missing or read-only, the output is a folder, the output is the
    input or the style photo (also through symlinks, ``..`` or hard links), the output extension is
    not one we can write for this kind of input, or an image input is larger than the output format holds.
    """
    inp, out = Path(input_path), Path(output_path)
    check_readable_photo(inp)
    check_not_special(inp, "input")
    if style_path is not None:
        check_readable_photo(style_path)
        check_not_special(style_path, "style photo")
    if is_image_path(inp) and not os.path.lexists(inp):
        # Named first: "an image output must end in ..." for a mistyped input name sent the user to the output.
        raise UserError(f"image not found: {inp}")
    suffix = out.suffix.lower()
    if is_video_path(inp):
        allowed, kind = WRITABLE_VIDEO_EXTS, "a video"
    elif is_image_path(inp):
        allowed, kind = WRITABLE_IMAGE_EXTS, "an image"
    else:
        allowed, kind = WRITABLE_VIDEO_EXTS | WRITABLE_IMAGE_EXTS, "a video or image"
    if suffix not in allowed:
        if suffix == ".webm" and allowed is not WRITABLE_IMAGE_EXTS:
            why = "H.264 output cannot be stored in .webm"
        else:
            why = f"unsupported output extension {suffix or '(none)'!r}"
        raise UserError(f"{why} for {out}; {kind} output must end in {', '.join(sorted(allowed))}")
    check_output_name(out)  # a name too long for the folder: is_dir() itself would fail on it
    if out.is_dir():
        raise UserError(f"output {out} is a folder; give a file name")
    check_writable_folder(out.parent)
    if same_file(inp, out):
        raise UserError(f"output {out} is the input file; choose a different output path")
    if style_path is not None and same_file(Path(style_path), out):
        raise UserError(f"output {out} is the style photo; choose a different output path")
    if suffix in MAX_OUTPUT_SIDE and is_image_path(inp) and inp.is_file():
        from .image import read_header  # imports OpenCV: only when there is a size to check

        check_output_size(*read_header(inp).upright_size, out)
