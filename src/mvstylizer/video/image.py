"""Still images: read as HxWx3 float32 RGB in [0, 1], upright, in sRGB; written atomically.

A file is checked before any pixel is decoded: a regular file of at most :data:`MAX_FILE_BYTES`,
whose header (read by Pillow, which decodes nothing) names a format we read and a size of at most
:data:`MAX_PIXELS`. A decompression bomb (a 1 MB PNG of 30000x30000 pixels) is refused from its header.
"""

from __future__ import annotations

import io
import logging
import os
import stat
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np

from mvstylizer.errors import UserError
from mvstylizer.files import atomic_path
from mvstylizer.imaging import shrink_to

from .formats import IMAGE_EXTS, WRITABLE_IMAGE_EXTS, check_not_special, check_output_size, check_readable_photo
from .orientation import EXIF_OPS, Orientation, open_header, orientation_to_apply
from .reader import reason

_T = TypeVar("_T")

log = logging.getLogger(__name__)

MAX_PIXELS = 200_000_000  # a 108 MP phone photo is read; a 900 Mpixel bomb is not
MAX_FILE_BYTES = 2_000_000_000  # a 200 Mpixel 16-bit RGB TIFF, uncompressed, is 1.2 GB
# A JPEG read at a ``max_side`` (a style photo) above this many pixels is decoded at a reduced scale:
# above every ordinary phone or camera photo (48-61 MP), so those are decoded whole, as before.
REDUCED_DECODE_PIXELS = 64_000_000
_MIN_ACROSS = 8  # pixels across a style shrunk to a max_side keeps, where it has them (the VGG trunk's minimum)

# Pillow's names of the formats read through Pillow's header parse (TIFF's is read apart, below). Each is
# known by a signature that OpenCV decodes as the same format, so the size checked is the size decoded.
# A format Pillow has no header parse for has no size before decoding (a 9 MB Radiance .hdr decoded to
# 12000x12000) and is refused. A JPEG holding more than one picture opens as MPO (OpenCV decodes the first),
# an animated GIF as its first frame (OpenCV decodes GIF from 4.11; an older one's refusal is said as such).
_PILLOW_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "AVIF", "GIF")
_TIFF_SIGNATURES = (b"II*\0", b"MM\0*")
_BIGTIFF_SIGNATURES = (b"II+\0", b"MM\0+")
# What OpenCV needs of a PNG; libpng prints a line on stderr for what it finds odd in the rest.
_PNG_CHUNKS_DECODED = {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}
_JPEG_EXTS = (".jpg", ".jpeg", ".jpe", ".jfif")
_TIFF_WIDTH, _TIFF_HEIGHT, _TIFF_BITS, _TIFF_EXTRA_SAMPLES, _TIFF_ICC = 256, 257, 258, 338, 34675


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says, read before any pixel is decoded."""

    format: str  # Pillow's name: JPEG, PNG, WEBP, BMP, TIFF, AVIF, MPO
    width: int  # as stored, before the orientation is applied
    height: int
    orientation: int = 1  # the EXIF orientation still to apply to the pixels OpenCV decodes
    premultiplied: bool = False  # OpenCV decodes the colour already multiplied by the alpha
    icc: bytes | None = None  # the embedded colour profile, if any

    @property
    def upright_size(self) -> tuple[int, int]:
        """(width, height) as shown, the orientation applied."""
        if Orientation(op=EXIF_OPS.get(self.orientation, "none")).swaps_dims:
            return self.height, self.width
        return self.width, self.height


def read_header(path: str | os.PathLike[str], max_pixels: int = MAX_PIXELS) -> ImageHeader:
    """The header of the image at ``path``; UserError for a file that is no regular file, too large,
    not in a format we read, or over ``max_pixels`` (at most :data:`MAX_PIXELS`)."""
    p = Path(path)
    check_readable_photo(p)
    _check_file(p)
    try:
        with p.open("rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise UserError(f"cannot read {p}: {reason(exc)}") from exc
    header = _tiff_header(p) if head in _TIFF_SIGNATURES + _BIGTIFF_SIGNATURES else _pillow_header(p)
    if header is None or header.width < 1 or header.height < 1:
        raise UserError(f"{p} is not a readable image (supported: {', '.join(sorted(IMAGE_EXTS))})")
    pixels, limit = header.width * header.height, min(max_pixels, MAX_PIXELS)
    if pixels > limit:
        raise UserError(f"{p} is {header.width}x{header.height} pixels ({pixels / 1e6:.0f} megapixels); images "
                        f"of at most {limit // 1_000_000} megapixels are read")
    return header


def read_image(path: str | os.PathLike[str], *, max_side: int | None = None,
               transparent: str = "white") -> np.ndarray:
    """Read a still image as HxWx3 float32 RGB in [0, 1].

    Grey becomes 3 equal channels; 8- and 16-bit and float images are scaled to [0, 1] (a float image
    holding 0..255 by 1/255); the EXIF orientation is applied so the image is upright the way photo
    viewers show it.

    ``max_side``: the longest side wanted (a style photo): the image is shrunk to it as decoded, in its
    own pixel type, so that no full-size float copy is made. A JPEG of more than
    :data:`REDUCED_DECODE_PIXELS` is decoded at 1/2, 1/4 or 1/8 scale by libjpeg itself (a 12000x9000
    style peaked at 0.7 GB decoded whole), as long as that is still twice ``max_side`` long.

    ``transparent``: what an alpha channel's transparent pixels become. ``"white"``: the image is
    composited onto white (a picture shown on paper: what a photo viewer shows). ``"ignore"``: they
    are no part of the image (a style photo: a logo on a transparent background has the logo's
    colours, not white's): the image is cropped to its visible pixels' bounding box, pixels at least
    half opaque keep their own colour, and the rest take the colour of the nearest such pixel; a
    fully transparent image is a UserError. An opaque image reads the same either way.
    """
    p = Path(path)
    if transparent not in ("white", "ignore"):
        raise ValueError(f"transparent must be 'white' or 'ignore', got {transparent!r}")
    return _decoded(p, max_side, lambda img, header: _to_rgb01(img, header, max_side, p, transparent == "ignore"))


def read_image_alpha(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`read_image` (on white) and the image's alpha channel, HxW uint8 upright (None if it has
    none or is opaque throughout), from one decode: for an output that can carry the alpha again."""
    p = Path(path)
    return _decoded(p, None, lambda img, header: (_to_rgb01(img, header, None, p), _alpha_of(img, header, p)))


def _decoded(p: Path, max_side: int | None, use: Callable[[np.ndarray, ImageHeader], _T]) -> _T:
    """``use`` applied to the image at ``p`` as decoded (shrunk to ``max_side`` if given) and its header;
    running out of memory on the way is a UserError."""
    header = read_header(p)
    try:
        return use(_decode(_read_bytes(p), header, p, max_side), header)
    except MemoryError:
        raise UserError(f"not enough memory to read {p} ({header.width}x{header.height} pixels)") from None


def _alpha_of(img: np.ndarray, header: ImageHeader, p: Path) -> np.ndarray | None:
    if img.ndim != 3 or img.shape[2] < 4:
        return None
    alpha = _supported(img[:, :, 3], p)
    if alpha.dtype == np.uint16:
        alpha = (alpha.astype(np.uint32) * 255 + 32767) // 65535
    elif alpha.dtype != np.uint8:
        alpha = alpha * np.float32(255) + np.float32(0.5)
    alpha = alpha.astype(np.uint8)
    if (alpha == 255).all():
        return None
    op = EXIF_OPS.get(header.orientation)
    return Orientation(op=op).apply(alpha) if op is not None else alpha


def read_style(path: str | os.PathLike[str], max_side: int) -> np.ndarray:
    """A style photo as ``stylize`` reads it (HxWx3 float32 RGB in [0, 1]): shrunk to ``max_side`` as
    decoded, a long thin one keeping up to 8 pixels across, and its transparent pixels left out. The
    benches' frame-by-frame references read their style here too: read as a picture on white, or shrunk
    to 2 pixels across, theirs was another style than the pipeline's they are scored against."""
    return read_image(path, max_side=max_side, transparent="ignore")


def _check_file(p: Path) -> None:
    try:
        st = p.stat()
    except FileNotFoundError:
        raise UserError(f"image not found: {p}") from None
    except OSError as exc:
        raise UserError(f"cannot read {p}: {reason(exc)}") from exc
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"{p} is a folder, not an image")
    check_not_special(p, "image")
    if st.st_size == 0:
        raise UserError(f"image {p} is empty (0 bytes)")
    if st.st_size > MAX_FILE_BYTES:
        raise UserError(f"{p} is {st.st_size / 1e9:.1f} GB; image files of at most "
                        f"{MAX_FILE_BYTES / 1e9:.1f} GB are read")


@cache
def _pillow_formats() -> tuple[str, ...]:
    from PIL import Image

    known = set(Image.registered_extensions().values())  # AVIF: only a Pillow built with libavif
    return tuple(f for f in _PILLOW_FORMATS if f in known)


def _pillow_header(p: Path) -> ImageHeader | None:
    try:
        with open_header(p, _pillow_formats()) as im:
            w, h = im.size
            icc = im.info.get("icc_profile")
            return ImageHeader(str(im.format), w, h, orientation_to_apply(im), icc=icc or None)
    except Exception:  # noqa: BLE001 - whatever Pillow says, the file is none of the formats we read
        return None


def _tiff_header(p: Path) -> ImageHeader | None:
    """A TIFF's first directory, read with Pillow's tag parser: Pillow's Image.open refuses TIFFs that
    OpenCV decodes (float RGB). OpenCV applies the Orientation tag itself, and returns 8-bit colour
    multiplied by an alpha (associated or not: libtiff's RGBA reader premultiplies), 16-bit and float
    colour as stored (multiplied only where the alpha is associated, ExtraSamples 1)."""
    from PIL import TiffImagePlugin

    try:
        with p.open("rb") as f:
            first = f.read(4)
            ifd = TiffImagePlugin.ImageFileDirectory_v2(first + f.read(12 if first in _BIGTIFF_SIGNATURES else 4))
            f.seek(ifd.next)
            ifd.load(f)
        extra, bits = _first(ifd.get(_TIFF_EXTRA_SAMPLES)), _first(ifd.get(_TIFF_BITS))
        icc = ifd.get(_TIFF_ICC)
        return ImageHeader("TIFF", int(ifd[_TIFF_WIDTH]), int(ifd[_TIFF_HEIGHT]),
                           premultiplied=extra == 1 or (extra == 2 and bits == 8),
                           icc=bytes(icc) if isinstance(icc, bytes) and icc else None)
    except Exception:  # noqa: BLE001 - whatever the parser says, there is no directory we can use
        return None


def _first(value: object) -> object:
    """A TIFF tag's first value (Pillow gives a tuple for a tag that may hold several)."""
    return value[0] if isinstance(value, tuple) and value else value


def _read_bytes(p: Path) -> np.ndarray:
    try:
        return np.fromfile(p, dtype=np.uint8)  # + imdecode: works for non-ASCII paths too
    except OSError as exc:
        raise UserError(f"cannot read {p}: {reason(exc)}") from exc


def _decode(data: np.ndarray, header: ImageHeader, p: Path, max_side: int | None = None) -> np.ndarray:
    """The pixels as OpenCV decodes them (orientation and channels are handled by the caller)."""
    if header.format == "PNG":
        data = _png_for_opencv(data, p)
    try:
        img = cv2.imdecode(data, _decode_flags(header, max_side))
        if header.format == "AVIF" and img is not None and img.dtype == np.uint16:
            # OpenCV gives a 10- or 12-bit AVIF as uint16 without its bit depth; its 8-bit decode is
            # scaled right (without the alpha, which photos rarely have).
            img = cv2.imdecode(data, cv2.IMREAD_ANYCOLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error:
        img = None
    if img is None or img.size == 0:
        if header.format in ("AVIF", "GIF"):
            raise UserError(f"{p}: this OpenCV cannot decode {header.format} photos; convert it to JPEG or PNG")
        raise UserError(f"{p} is a damaged {header.format} image: its pixels cannot be decoded")
    return img


def _decode_flags(header: ImageHeader, max_side: int | None) -> int:
    """OpenCV's flags for decoding: as stored, or for a huge JPEG read at ``max_side``, libjpeg's own
    1/2, 1/4 or 1/8 scale decode (in colour, the orientation left to the caller as for the rest)."""
    if max_side is None or header.format not in ("JPEG", "MPO"):
        return cv2.IMREAD_UNCHANGED
    if header.width * header.height <= REDUCED_DECODE_PIXELS:
        return cv2.IMREAD_UNCHANGED
    long_side = max(header.width, header.height)
    for factor, flag in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                         (2, cv2.IMREAD_REDUCED_COLOR_2)):
        if long_side // factor >= 2 * max_side:
            return flag | cv2.IMREAD_IGNORE_ORIENTATION
    return cv2.IMREAD_UNCHANGED


def _png_for_opencv(data: np.ndarray, p: Path) -> np.ndarray:
    """The PNG's chunks OpenCV decodes, each checked first; UserError if one is cut short or damaged.

    libpng prints its errors and warnings on stderr ("libpng error: IHDR: CRC error", "libpng warning:
    iCCP: known incorrect sRGB profile"), around the one error line. The checks here catch what it
    would fail on, and the chunks it warns about (ICC profile, text, ...) are not passed to it. Deflate
    data damaged under a correct checksum is left to libpng.
    """
    raw = data.data
    pos, kept, skipped = 8, [raw[:8]], False
    while True:
        if pos + 12 > len(raw):
            raise UserError(f"{p} is a PNG that is cut short")
        length, kind = struct.unpack_from(">I4s", raw, pos)
        end = pos + 12 + length
        if end > len(raw):
            raise UserError(f"{p} is a PNG that is cut short (in its {kind.decode('latin-1')} chunk)")
        if kind in _PNG_CHUNKS_DECODED:
            if zlib.crc32(raw[pos + 4:end - 4]) != struct.unpack_from(">I", raw, end - 4)[0]:
                raise UserError(f"{p} is a damaged PNG (its {kind.decode('latin-1')} chunk fails its checksum)")
            kept.append(raw[pos:end])
        else:
            skipped = True
        if kind == b"IEND":
            break
        pos = end
    return np.frombuffer(b"".join(kept), np.uint8) if skipped or end < len(raw) else data


def _to_rgb01(img: np.ndarray, header: ImageHeader, max_side: int | None, p: Path,
              ignore_transparent: bool = False) -> np.ndarray:
    """Decoded pixels as contiguous float32 RGB in [0, 1], upright. The work is done in the decoded
    pixel type, at the size wanted, and turned into float once."""
    img = _supported(img, p)
    if ignore_transparent and img.ndim == 3 and img.shape[2] >= 4:
        img = _visible_part(img, header.premultiplied, p)
    img = _flatten_alpha(img, header.premultiplied)
    if max_side is not None:
        # A long thin style keeps up to _MIN_ACROSS pixels across: shrunk to 1024x2, a 4000x8 strip
        # averaged its height four rows at a time, and the transfer lost a third of its contrast.
        img = shrink_to(img, max_side, min_side=min(_MIN_ACROSS, *img.shape[:2]))
    rgb = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB if img.ndim == 2 else cv2.COLOR_BGR2RGB)
    op = EXIF_OPS.get(header.orientation)
    if op is not None:
        rgb = Orientation(op=op).apply(rgb)
    if header.icc is not None:
        rgb = _to_srgb(rgb, header.icc, p)
    if rgb.dtype == np.float32:
        return np.clip(rgb, 0.0, 1.0, out=rgb)
    return np.multiply(rgb, np.float32(1 / _white(rgb.dtype)), dtype=np.float32)


def _to_srgb(rgb: np.ndarray, icc: bytes, p: Path) -> np.ndarray:
    """RGB pixels in the colour space of the embedded profile ``icc``, in sRGB: a Display P3 or Adobe
    RGB photo read as sRGB has dull colours.

    Through LittleCMS in Pillow's ImageCms, where the installed Pillow has it (Pillow is a core
    dependency; LittleCMS is in its wheels, not in every build of it), and for 8-bit pixels only (what
    ImageCms transforms). An sRGB, non-RGB (a CMYK JPEG's, which OpenCV has turned into RGB) or unreadable
    profile is left alone.
    """
    try:
        from PIL import Image, ImageCms
    except ImportError:  # a Pillow built without LittleCMS: as the pixels are
        return rgb
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        name = ImageCms.getProfileDescription(profile).strip()
    except (OSError, ImageCms.PyCMSError):
        return rgb
    if profile.profile.xcolor_space.strip() != "RGB" or "srgb" in name.lower():
        return rgb
    if rgb.dtype != np.uint8:
        log.warning("%s: its colour profile (%s) is applied to 8-bit photos only; read as sRGB", p.name, name)
        return rgb
    to_srgb = ImageCms.buildTransform(profile, ImageCms.createProfile("sRGB"), "RGB", "RGB")
    for y in range(0, rgb.shape[0], 256):  # in bands: Pillow holds RGB in 4 bytes a pixel, twice over
        rgb[y:y + 256] = np.asarray(ImageCms.applyTransform(Image.fromarray(rgb[y:y + 256]), to_srgb))
    return rgb


def _supported(img: np.ndarray, p: Path) -> np.ndarray:
    """uint8 and uint16 as decoded; float as float32 in [0, 1] (NaN black, infinities the range's ends)."""
    if img.dtype in (np.uint8, np.uint16):
        return img
    if img.dtype not in (np.float16, np.float32, np.float64):
        raise UserError(f"{p} has an unsupported pixel type ({img.dtype})")
    f = img.astype(np.float32)
    if _holds_0_to_255(f):
        f *= np.float32(1 / 255)
    np.nan_to_num(f, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(f, 0.0, 1.0, out=f)


def _holds_0_to_255(f: np.ndarray) -> bool:
    """Whether float pixels hold 8-bit values (a TIFF of Pillow's mode F: read as 0..1 it was white)
    rather than 0..1: the brightest 1% is over 16. A float image with highlights over 1 (0..3, say)
    is not rescaled, only clipped; a float image of 0..255 that dark is, wrongly, read as 0..1."""
    sample = f.reshape(-1)[:: max(1, f.size // 1_000_000)]  # a percentile sorts: a million values are plenty
    sample = sample[np.isfinite(sample)]
    return sample.size > 0 and float(np.percentile(sample, 99)) > 16


def _flatten_alpha(img: np.ndarray, premultiplied: bool) -> np.ndarray:
    """HxW grey or HxWx3 BGR in ``img``'s pixel type, an alpha channel composited onto white.

    Of more channels than BGRA the fourth is taken as the alpha. ``premultiplied``: the colour is
    already multiplied by the alpha (multiplying again darkened half-transparent areas).
    """
    if img.ndim == 2 or img.shape[2] == 3:
        return img
    if img.shape[2] == 1:
        return np.ascontiguousarray(img[:, :, 0])
    *colour, alpha = cv2.split(img)[:4]
    top = _white(img.dtype)
    paper = alpha.dtype.type(top) - alpha
    out = [cv2.add(c if premultiplied else cv2.multiply(c, alpha, scale=1.0 / top), paper) for c in colour]
    return out[0] if len(out) == 1 else cv2.merge(out)


def _visible_part(img: np.ndarray, premultiplied: bool, p: Path) -> np.ndarray:
    """``img`` (with an alpha, its fourth channel) with its transparent pixels left out: cropped to the
    bounding box of its pixels that are at least half opaque, those kept in their own colour (divided
    by the alpha where ``premultiplied``), the others given the colour of the nearest kept pixel: HxWx3,
    without the alpha. An opaque image is returned as it is. UserError if no pixel is at least half
    opaque."""
    top = _white(img.dtype)
    alpha = img[:, :, 3]
    if (alpha >= top).all():
        return img  # opaque: compositing leaves it as it is
    kept = alpha >= (top / 2 if img.dtype.kind == "f" else (int(top) + 1) // 2)
    if not kept.any():
        raise UserError(f"{p} is transparent all over: it has no colours to take as a style")
    rows, cols = np.flatnonzero(kept.any(axis=1)), np.flatnonzero(kept.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    colour, kept, alpha = img[box][:, :, :3], kept[box], alpha[box]
    colour = np.ascontiguousarray(colour)
    if premultiplied:  # the colour as it is, not as it shows over black
        a = np.maximum(alpha.astype(np.float32), np.float32(top / 2))[..., None]  # kept: at least half
        colour = np.clip(colour.astype(np.float32) * (np.float32(top) / a), 0, top).astype(img.dtype)
    if not kept.all():
        # Labels of the nearest kept pixel (distance 0 there); each label's pixel is found once.
        _, labels = cv2.distanceTransformWithLabels((~kept).astype(np.uint8), cv2.DIST_L2, 5,
                                                    labelType=cv2.DIST_LABEL_PIXEL)
        source = np.zeros(int(labels.max()) + 1, np.intp)
        source[labels[kept]] = np.flatnonzero(kept)
        colour = colour.reshape(-1, colour.shape[2])[source[labels.reshape(-1)]].reshape(colour.shape)
    return colour


def _white(dtype: np.dtype) -> float:
    """Full intensity in a pixel type ``_supported`` passes."""
    return {np.uint8: 255.0, np.uint16: 65535.0}.get(dtype.type, 1.0)


ALPHA_EXTS = frozenset({".png", ".webp", ".tif", ".tiff"})  # image outputs that hold an alpha channel


def write_image(path: str | os.PathLike[str], rgb: np.ndarray, *, shown_as: str | os.PathLike[str] | None = None,
                alpha: np.ndarray | None = None) -> None:
    """Write HxWx3 RGB (float in [0, 1] or uint8; uint16 kept 16-bit for PNG/TIFF) atomically.
    ``shown_as``: the path error messages name, for a caller writing under a temporary name. ``alpha``:
    an HxW uint8 alpha channel to write with 8-bit RGB, in a format that holds one (:data:`ALPHA_EXTS`)."""
    p = Path(path)
    name = Path(shown_as) if shown_as is not None else p
    suffix = p.suffix.lower()
    if suffix not in WRITABLE_IMAGE_EXTS:
        raise UserError(f"cannot write image {p}: use one of {', '.join(sorted(WRITABLE_IMAGE_EXTS))}")
    if not p.parent.is_dir():
        raise UserError(f"output folder does not exist: {p.parent}")
    arr = np.asarray(rgb)
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError(f"expected HxWx3 or HxW image, got shape {arr.shape}")
    check_output_size(arr.shape[1], arr.shape[0], name)
    if arr.dtype == np.uint8 or (arr.dtype == np.uint16 and suffix in (".png", ".tif", ".tiff")):
        out = arr
    elif arr.dtype == np.uint16:
        out = (arr // 257).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        out = (np.clip(np.nan_to_num(arr), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    else:
        raise ValueError(f"unsupported image dtype {arr.dtype}")
    if out.ndim == 3:
        out = np.ascontiguousarray(out[:, :, ::-1])
    if alpha is not None:
        if suffix not in ALPHA_EXTS or out.dtype != np.uint8 or alpha.shape != out.shape[:2]:
            raise ValueError(f"an alpha channel of shape {alpha.shape} cannot go with {out.shape} {out.dtype} "
                             f"into {suffix}")
        grey = out.ndim == 2
        out = cv2.merge([*(3 * [out] if grey else cv2.split(out)), np.asarray(alpha, np.uint8)])
    params: list[int] = []
    if suffix in _JPEG_EXTS:
        params = [cv2.IMWRITE_JPEG_QUALITY, 95]
        suffix = ".jpg"  # OpenCV's encoder knows .jpe and .jfif by no name
    elif suffix == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, 95]
    try:
        ok, buf = cv2.imencode(suffix, out, params)
    except cv2.error as exc:
        raise UserError(f"cannot encode {name}: {str(exc).strip().splitlines()[-1]}") from exc
    if not ok:
        raise UserError(f"cannot encode {name} as {suffix}")
    try:
        with atomic_path(p) as tmp:
            tmp.write_bytes(buf.tobytes())
    except OSError as exc:
        raise UserError(f"cannot write {name}: {reason(exc)}") from exc
