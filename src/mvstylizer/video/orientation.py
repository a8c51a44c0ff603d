"""Upright pixels: the display matrix of phone videos and the EXIF orientation of photos.

Phone videos are stored sideways with a display matrix and photos with an EXIF orientation tag. The
reader and :func:`~mvstylizer.video.image.read_image` turn every frame upright the way ``ffmpeg``'s
autorotate and photo viewers do, so the rest of the package never sees rotation metadata.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import av
import numpy as np
from av.sidedata.sidedata import SideDataContainer
from av.sidedata.sidedata import Type as SideDataType

if TYPE_CHECKING:
    from PIL.ImageFile import ImageFile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Orientation:
    """How stored pixels become upright: one of the eight dihedral transforms.

    ``op`` names follow ffmpeg's ``transpose``/flip filters; ``rotation`` is the counter-clockwise
    rotation in degrees (PyAV's ``VideoFrame.rotation`` convention, mod 360), reported in
    :class:`~mvstylizer.video.reader.VideoInfo` (flips are applied but not reported there).
    """

    op: str = "none"
    rotation: int = 0

    @property
    def swaps_dims(self) -> bool:
        return self.op in ("cclock", "clock", "transpose", "antitranspose")

    def apply(self, img: np.ndarray) -> np.ndarray:
        op = self.op
        if op == "none":
            return img
        if op == "cclock":
            out = np.rot90(img, 1)
        elif op == "clock":
            out = np.rot90(img, -1)
        elif op == "rot180":
            out = img[::-1, ::-1]
        elif op == "hflip":
            out = img[:, ::-1]
        elif op == "vflip":
            out = img[::-1]
        elif op == "transpose":
            out = img.swapaxes(0, 1)
        elif op == "antitranspose":
            out = img[::-1, ::-1].swapaxes(0, 1)
        else:  # pragma: no cover - constructed only below
            raise AssertionError(op)
        # Downstream OpenCV calls need contiguous memory; views with negative strides are not.
        return np.ascontiguousarray(out)


def orientation_of(frame: av.VideoFrame) -> Orientation:
    """Decode the frame's display matrix the way ffmpeg's autorotate does (fftools, FFmpeg 7)."""
    matrix = _display_matrix(frame)
    if matrix is None:
        return Orientation()
    ccw = float(frame.rotation)  # av_display_rotation_get(): counter-clockwise degrees
    if not math.isfinite(ccw):
        return Orientation()
    theta = (-round(ccw)) % 360  # clockwise degrees, as ffmpeg's get_rotation()
    snapped = int(round(theta / 90.0)) * 90 % 360
    if abs(((theta - snapped) + 180) % 360 - 180) > 1:
        log.warning("video has a %d degree display rotation; rounding to %d", theta, snapped)
    if matrix.size == 0:  # only the angle is known: a plain rotation
        op = {90: "clock", 180: "rot180", 270: "cclock"}.get(snapped, "none")
        return Orientation(op=op, rotation=(360 - snapped) % 360)
    m0, m3, m4 = int(matrix[0]), int(matrix[3]), int(matrix[4])
    if snapped == 90:
        op = "transpose" if m3 > 0 else "clock"
    elif snapped == 270:
        op = "antitranspose" if m3 < 0 else "cclock"
    elif snapped == 180:
        h, v = m0 < 0, m4 < 0
        op = "rot180" if (h and v) else "hflip" if h else "vflip" if v else "none"
    else:
        op = "vflip" if m4 < 0 else "none"
    return Orientation(op=op, rotation=(360 - snapped) % 360)


def _display_matrix(frame: av.VideoFrame) -> np.ndarray | None:
    """The frame's 3x3 display matrix (nine int32, row-major), None if it has none, or an empty array
    where only its angle can be read (``frame.rotation``, which FFmpeg reads from the matrix)."""
    try:
        # PyAV's stub types Frame.side_data as a TypedDict; it is a SideDataContainer (a Mapping keyed by SideData).
        side_data = cast(SideDataContainer, frame.side_data)
    except ValueError:
        # PyAV (18) knows fewer side-data types than FFmpeg (8), and a frame holding one it does not know
        # cannot list any: cameras' MJPEG movies carry their EXIF as type 31, and stylizing them
        # failed with "31 is not a valid Type". Mirror matrices are not told apart from rotations then.
        return np.empty(0, np.int32) if frame.rotation else None
    for sd in side_data.keys():
        if sd.type == SideDataType.DISPLAYMATRIX:
            raw = bytes(sd)
            return np.frombuffer(raw[:36], dtype=np.int32) if len(raw) >= 36 else None
    return None


_EXIF_ORIENTATION_TAG = 0x0112
EXIF_OPS = {2: "hflip", 3: "rot180", 4: "vflip", 5: "transpose", 6: "clock", 7: "antitranspose", 8: "cclock"}
# Pillow reads its decompression-bomb limit from a module global: lifted one open at a time.
_PIXEL_LIMIT_LOCK = threading.Lock()


def open_header(path: Path, formats: tuple[str, ...] | None = None) -> ImageFile:
    """Pillow's lazy open (the header only), without Pillow's decompression-bomb check.

    That check warns from 89 Mpixels and refuses from 179: a 108 MP phone photo printed a warning and
    a 192 MP one lost its orientation. Sizes are capped where pixels are decoded (read_image's
    MAX_PIXELS, the studio's own limit), from this same header. While the limit is lifted, another
    thread's Pillow open is unchecked too; every decoder in this package caps sizes itself.
    """
    from PIL import Image

    with _PIXEL_LIMIT_LOCK:
        before = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(path, formats=formats)
        finally:
            Image.MAX_IMAGE_PIXELS = before


def orientation_to_apply(im: ImageFile) -> int:
    """The EXIF orientation (1-8) still to apply to what OpenCV decodes from the file ``im`` opened; 1 if none.

    1 for a TIFF: OpenCV's TIFF decoder applies the Orientation tag itself (applying it again turned a
    TIFF of orientation 6 upside down). A PNG's EXIF is looked for in its header only: Pillow's
    PngImageFile.getexif() decodes every pixel to look for an eXIf chunk after them (the PNG spec puts
    it before).
    """
    from PIL import Image

    if im.format == "TIFF":
        return 1
    exif = Image.Image.getexif(im) if im.format == "PNG" else im.getexif()
    value = int(exif.get(_EXIF_ORIENTATION_TAG, 1))
    return value if 1 <= value <= 8 else 1
