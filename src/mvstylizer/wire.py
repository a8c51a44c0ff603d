"""The phone <-> edge wire format: how frames and styles travel, shared by both sides.

Frames travel encoded, JPEG q95 4:4:4 by default, chosen by measurement (``mvstylizer bench edge``,
docs/EDGE.md): on 512x218 key frames of bikes.mp4 through the dncm model it costs ~27 KB up and ~33 KB
back per key frame (raw: 335 KB) at 46 dB PSNR against no transport at all, far above the pipeline's
own ~38 dB to frame-by-frame. WebP q90 is 3.5x smaller but loses 4 dB and costs ~5x the codec time;
WebP q100 only matches JPEG q90; PNG is lossless but 4.4x larger.
A batch of encoded frames is packed as ``[u32 big-endian length][bytes]`` repeated, which keeps one
HTTP round trip per batch without base64's 33 % overhead.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

FRAMES_MEDIA_TYPE = "application/vnd.mvstylizer.frames"


def bad_token_char(token: str) -> int | None:
    """Where ``token`` first holds a character a bearer token may not (printable ASCII without spaces is
    what a header carries unchanged), or None: one rule for the phone that sends and the edge that keeps."""
    return next((i for i, c in enumerate(token) if not "!" <= c <= "~"), None)

Size = tuple[int, int]  # (width, height)


class Codec(Protocol):
    """One way to compress a frame for transport: what ``Encoding.format`` names.

    The edge accepts exactly the codecs in :data:`CODECS`: as ``encoding=`` values, as style photo
    content types, and as the images whose size it reads from the header before decoding them.
    """

    @property
    def name(self) -> str: ...  # the ``encoding=`` value

    @property
    def media_type(self) -> str: ...  # the Content-Type of one encoded image

    def encode(self, rgb: np.ndarray, quality: int) -> bytes:
        """An HxWx3 uint8 RGB frame to bytes; ``quality`` 1..100 (lossless codecs ignore it)."""
        ...

    def decode(self, data: bytes) -> np.ndarray:
        """Bytes to an HxWx3 uint8 RGB frame; ValueError if they do not decode."""
        ...

    def image_size(self, data: bytes) -> Size | None:
        """(width, height) from the header alone, without decoding; None if ``data`` is not this codec's."""
        ...

    def check_cost(self, data: bytes) -> None:
        """Raise :class:`TooCostly` if decoding ``data`` would take far longer than its size suggests."""
        ...


class TooCostly(ValueError):
    """An image whose decoding would cost far more than its pixel count says (the edge answers 400)."""


def _no_check(data: bytes) -> None:
    return None


@dataclass(frozen=True)
class OpenCVCodec:
    """A :class:`Codec` that OpenCV encodes and decodes; the header is read by ``sniff``."""

    name: str
    media_type: str
    extension: str  # picks OpenCV's encoder
    sniff: Callable[[bytes], Size | None]
    params: Callable[[int], list[int]] = lambda quality: []  # OpenCV imwrite flags for a quality
    cost_check: Callable[[bytes], None] = _no_check  # raises TooCostly

    def encode(self, rgb: np.ndarray, quality: int) -> bytes:
        ok, buf = cv2.imencode(self.extension, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), self.params(quality))
        if not ok:
            raise ValueError(f"{self.name} encoding failed")
        return buf.tobytes()

    def decode(self, data: bytes) -> np.ndarray:
        self.cost_check(data)
        # Pixels as stored: an EXIF orientation tag is not followed, so a frame comes back the size its
        # header (image_size) says, which the answer must match (a tagged 64x32 JPEG came back 32x64).
        img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) \
            if data else None
        if img is None:
            raise ValueError("not a decodable image")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def image_size(self, data: bytes) -> Size | None:
        return self.sniff(data)

    def check_cost(self, data: bytes) -> None:
        self.cost_check(data)


def _png_size(data: bytes) -> Size | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24 and data[12:16] == b"IHDR":
        w, h = struct.unpack_from(">II", data, 16)
        return w, h
    return None


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> Size | None:
    if not data.startswith(b"\xff\xd8"):
        return None
    pos, n = 2, len(data)
    while pos < n:
        if data[pos] != 0xFF:
            return None
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            return None
        marker = data[pos]
        pos += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a payload
            continue
        if marker in (0xD9, 0xDA) or pos + 2 > n:  # end of image / start of scan before any frame header
            return None
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2:
            return None
        if marker in _JPEG_SOF:
            if pos + 7 > n:
                return None
            h, w = struct.unpack_from(">HH", data, pos + 3)
            return (w, h) if h > 0 else None  # h == 0 (DNL marker) is not worth supporting
        pos += length
    return None


# A progressive JPEG has ~10 scans; each one makes libjpeg pass over the whole image's coefficients
# again, so a 126 KB JPEG repeating one 12-byte refinement scan 10,000 times took 5.5 s to decode
# (0.025 s for the same 1024x1024 image with its own 10). Pixel limits cannot see that.
MAX_JPEG_SCANS = 64
MAX_JPEG_SEGMENTS = 1024  # marker segments of any kind; bounds this walk (a real JPEG has a few dozen)
# The next marker after a segment or inside entropy-coded data: 0xFF then a code that is neither a
# stuffed zero, a restart marker nor a fill byte (libjpeg skips those the same way).
_JPEG_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def _jpeg_check_cost(data: bytes) -> None:
    """Refuse a JPEG with more than :data:`MAX_JPEG_SCANS` scans (SOS markers) or
    :data:`MAX_JPEG_SEGMENTS` marker segments. Segments are skipped by their length, so an EXIF
    thumbnail's scans are not counted; the walk is one regex search per segment, C speed."""
    scans = segments = 0
    pos, n = 2, len(data)
    while (found := _JPEG_NEXT_MARKER.search(data, pos)) is not None:
        marker = data[found.start() + 1]
        pos = found.end()
        if marker in (0x01, 0xD8):  # TEM, SOI: no payload
            continue
        if marker == 0xD9 or pos + 2 > n:  # end of image, or truncated: the decoder stops there too
            return
        segments += 1
        scans += marker == 0xDA
        if scans > MAX_JPEG_SCANS:
            raise TooCostly(f"JPEG has more than {MAX_JPEG_SCANS} scans (a normal one has about 10); "
                            "re-encode it")
        if segments > MAX_JPEG_SEGMENTS:
            raise TooCostly(f"JPEG has more than {MAX_JPEG_SEGMENTS} marker segments; re-encode it")
        pos += struct.unpack_from(">H", data, pos)[0]


# libpng inflates every zTXt, iTXt and iCCP chunk it meets (up to ~8 MB each) before the first pixel,
# whatever the image's size: a 64x64 PNG carrying ~1000 zTXt chunks of zeros (7 MB on the wire) took
# 6-40 s to decode and held a worker all that time. A photo has a handful of such chunks, a few KB.
MAX_PNG_TEXT_CHUNKS = 8  # tEXt, zTXt, iTXt and iCCP chunks together: at most ~0.3 s of inflating
MAX_PNG_COMPRESSED_METADATA = 256 * 1024  # bytes of zTXt, iTXt and iCCP chunk data together
MAX_PNG_CHUNKS = 100_000  # bounds this walk; a 64 MiB PNG in 8 KB IDAT chunks has ~8,000
_PNG_TEXT = {b"tEXt", b"zTXt", b"iTXt", b"iCCP"}
_PNG_COMPRESSED = {b"zTXt", b"iTXt", b"iCCP"}


def _png_check_cost(data: bytes) -> None:
    """Refuse a PNG with more than :data:`MAX_PNG_TEXT_CHUNKS` text or colour-profile chunks, or more than
    :data:`MAX_PNG_COMPRESSED_METADATA` bytes of compressed ones. Only the chunks' 8-byte headers are
    read: their data is skipped by its length, so the walk costs little whatever the chunks hold."""
    text = compressed = chunks = 0
    pos, n = 8, len(data)
    while pos + 8 <= n:
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind == b"IEND":  # the decoder stops there too
            return
        chunks += 1
        if chunks > MAX_PNG_CHUNKS:
            raise TooCostly(f"PNG has more than {MAX_PNG_CHUNKS} chunks; re-encode it")
        if kind in _PNG_TEXT:
            text += 1
            if text > MAX_PNG_TEXT_CHUNKS:
                raise TooCostly(f"PNG has more than {MAX_PNG_TEXT_CHUNKS} text or colour-profile chunks "
                                "(a photo has a few); re-encode it without its metadata")
        if kind in _PNG_COMPRESSED:
            compressed += min(length, n - pos - 8)
            if compressed > MAX_PNG_COMPRESSED_METADATA:
                raise TooCostly(f"PNG has more than {MAX_PNG_COMPRESSED_METADATA >> 10} KiB of compressed "
                                "metadata; re-encode it without its metadata")
        pos += 12 + length  # length, type, data, CRC


def _webp_size(data: bytes) -> Size | None:
    if len(data) < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    kind = data[12:16]
    if kind == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack_from("<HH", data, 26)
        return w & 0x3FFF, h & 0x3FFF
    if kind == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


# Adding a codec is one entry here: the edge's ``encoding=`` choices, its accepted style photo types
# and its header checks all follow from this table.
CODECS: dict[str, Codec] = {c.name: c for c in (
    # Full-resolution chroma: style transfer is mostly a colour change, and 4:2:0 subsampling cost
    # ~2.8 dB PSNR of the final frame against frame-by-frame for ~20 % fewer bytes (bikes.mp4).
    OpenCVCodec("jpeg", "image/jpeg", ".jpg", _jpeg_size,
                lambda q: [cv2.IMWRITE_JPEG_QUALITY, q, cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                           cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444], _jpeg_check_cost),
    OpenCVCodec("png", "image/png", ".png", _png_size, cost_check=_png_check_cost),
    OpenCVCodec("webp", "image/webp", ".webp", _webp_size, lambda q: [cv2.IMWRITE_WEBP_QUALITY, q]),
)}


def codec_of(data: bytes) -> Codec | None:
    """The codec whose header ``data`` starts with; None if none of :data:`CODECS`."""
    return next((c for c in CODECS.values() if c.image_size(data) is not None), None)


def image_size(data: bytes) -> Size | None:
    """(width, height) from the header of an image in any of :data:`CODECS`, without decoding it."""
    codec = codec_of(data)
    return codec.image_size(data) if codec is not None else None


@dataclass(frozen=True)
class Encoding:
    """How a frame is compressed for transport: a codec of :data:`CODECS` and its quality."""

    format: str = "jpeg"
    quality: int = 95

    def __post_init__(self) -> None:
        if self.format not in CODECS:
            raise ValueError(f"unknown frame encoding {self.format!r}; choose from {sorted(CODECS)}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"encoding quality must be 1..100, got {self.quality}")

    @property
    def codec(self) -> Codec:
        return CODECS[self.format]

    @property
    def media_type(self) -> str:
        return self.codec.media_type


def encode_frame(rgb: np.ndarray, encoding: Encoding = Encoding()) -> bytes:
    """Encode an HxWx3 RGB frame (float in [0,1] or uint8) to compressed bytes."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 frame, got shape {rgb.shape}")
    if rgb.dtype != np.uint8:
        rgb = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return encoding.codec.encode(rgb, encoding.quality)


def decode_frame(data: bytes) -> np.ndarray:
    """Decode compressed bytes to an HxWx3 float32 RGB frame in [0,1]; ValueError if not an image of
    one of :data:`CODECS`."""
    codec = codec_of(data)
    if codec is None:
        raise ValueError("not a decodable image")
    return codec.decode(data).astype(np.float32) / 255.0


def pack_frames(blobs: list[bytes]) -> bytes:
    return b"".join(struct.pack(">I", len(b)) + b for b in blobs)


class BatchTooLarge(ValueError):
    """A frame batch over a limit (frame count or one frame's size): the server answers 413."""


class FrameBatchParser:
    """Incremental :func:`unpack_frames`: feed the body as it arrives, refuse a bad batch at its header.

    Each ``[u32 length]`` header is checked the moment its 4 bytes arrive, before any of the frame's
    bytes are kept: a frame beyond ``max_frames`` or larger than ``max_frame_bytes`` raises
    :class:`BatchTooLarge`, an empty frame (length 0) ``ValueError``. So a 64 MiB body of empty or
    tiny frames is refused after at most ``max_frames + 1`` headers, not unpacked into millions of
    objects. Work per ``feed`` is linear in the bytes fed.
    """

    def __init__(self, max_frames: int | None = None, max_frame_bytes: int | None = None) -> None:
        self.max_frames = max_frames
        self.max_frame_bytes = max_frame_bytes
        self.frames: list[bytes] = []
        self._buf = bytearray()
        self._need: int | None = None  # length of the frame being received; None: waiting for a header

    def feed(self, data: bytes) -> list[bytes]:
        """Take the next bytes of the body; returns the frames completed by them (possibly none)."""
        self._buf += data
        done: list[bytes] = []
        pos = 0
        buf = self._buf
        while True:
            if self._need is None:
                if len(buf) - pos < 4:
                    break
                (n,) = struct.unpack_from(">I", buf, pos)
                pos += 4
                index = len(self.frames)
                if self.max_frames is not None and index >= self.max_frames:
                    raise BatchTooLarge(f"more than {self.max_frames} frames in one batch")
                if n == 0:
                    raise ValueError(f"frame {index} is empty")
                if self.max_frame_bytes is not None and n > self.max_frame_bytes:
                    raise BatchTooLarge(f"frame {index} is {n} bytes; at most {self.max_frame_bytes} per frame")
                self._need = n
            if len(buf) - pos < self._need:
                break
            frame = bytes(buf[pos : pos + self._need])
            pos += self._need
            self._need = None
            self.frames.append(frame)
            done.append(frame)
        del buf[:pos]
        return done

    def finish(self) -> list[bytes]:
        """All frames; ValueError if the body ended inside a header or a frame."""
        if self._need is not None or self._buf:
            raise ValueError("truncated frame batch")
        return self.frames


def unpack_frames(data: bytes, max_frames: int | None = None, max_frame_bytes: int | None = None) -> list[bytes]:
    """Inverse of :func:`pack_frames`; ValueError on a truncated or malformed body or an empty frame,
    :class:`BatchTooLarge` (a ValueError) beyond ``max_frames`` frames or ``max_frame_bytes`` per frame."""
    parser = FrameBatchParser(max_frames, max_frame_bytes)
    parser.feed(data)
    return parser.finish()
