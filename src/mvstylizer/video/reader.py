"""Decoding: upright ``rgb8`` frames and the audio packets, in one pass, through damage players skip.

* Frames cross module boundaries as ``HxWx3 uint8`` RGB (``rgb8``); everything else in the package can
  ignore pixel formats, colour ranges and rotation metadata (turned upright by
  :mod:`~mvstylizer.video.orientation`).
* Bad input is the user's problem, not a crash: anything wrong with a file surfaces as a one-line
  :class:`~mvstylizer.errors.UserError`; PyAV exceptions never escape for bad input.
* A damaged file that players still play (cut short, a header that over-counts its frames, garbage in
  the middle) is not refused: like FFmpeg, the reader skips what cannot be read or decoded, yields the
  frames that decode and logs one warning saying what was lost. Only a file with no decodable frame at
  all is an error.
"""

from __future__ import annotations

import heapq
import logging
import math
import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import av
import numpy as np

from mvstylizer.errors import UserError

from .orientation import Orientation, orientation_of

log = logging.getLogger(__name__)

AV_ERRORS = (av.FFmpegError, OSError)

_Interp = av.video.reformatter.Interpolation
VideoReformatter = av.video.reformatter.VideoReformatter
# swscale's default YUV<->RGB fast path rounds down: every decode comes out ~1.3 levels (of 255)
# too dark and every encode adds the same again, which shows up in PSNR/SSIM against references
# and accumulates over read-write generations. Accurate rounding with full chroma interpolation
# removes the bias (|mean error| < 0.1 level) for ~6 ms per 1080p frame on 2 cores; pass
# ``fast_color=True`` to trade that back.
SWS_ACCURATE_DECODE = _Interp.BILINEAR | _Interp.ACCURATE_RND | _Interp.FULL_CHR_H_INT
SWS_ACCURATE_ENCODE = _Interp.BILINEAR | _Interp.ACCURATE_RND | _Interp.FULL_CHR_H_INP
# Declared frame counts may legitimately differ a little from what decodes (mp4 edit lists drop a
# leading frame or two); more than this many missing means the file was cut short.
_MISSING_FRAMES_ABS = 2
_MISSING_FRAMES_FRAC = 0.01
# A failed read usually leaves the demuxer past the bad bytes, so the next read resyncs; reads that
# keep failing (a disk error, nothing readable left) end the file after this many in a row.
_MAX_FAILED_READS = 3


@dataclass(frozen=True)
class VideoInfo:
    """What a caller needs to plan the job and to create a matching writer."""

    width: int  # as shown (turned upright, pixels made square) == size of DecodedFrame.rgb8
    height: int
    fps: float  # average frame rate
    frame_count: int | None  # declared by the container, None if unknown
    duration: float | None  # seconds
    rotation: int  # 0/90/180/270: counter-clockwise turn applied to stored pixels to make them upright
    has_audio: bool
    codec: str
    # Bytes of the first frame as the decoder gave it (all planes, no padding): 1.5 per pixel for 8-bit
    # 4:2:0, 3 for 4:4:4 (as much as RGB); None for a format without components (hardware frames).
    decoded_frame_bytes: int | None = None
    # The file's own tags (creation_time, location, title...), for the writer's ``metadata``: ffmpeg
    # keeps them, and a phone's gallery files a video by its creation_time, not the day it was stylized.
    metadata: dict[str, str] = field(default_factory=dict)
    # The recording's start timecode (HH:MM:SS:FF, as cameras and iPhones write it), for the writer:
    # editors line clips up by it.
    timecode: str | None = None


@dataclass
class DecodedFrame:
    index: int  # 0-based decode (= presentation) order
    pts: int | None  # in the video stream's time_base
    time: float  # seconds
    rgb8: np.ndarray  # HxWx3 uint8, upright (rotation already applied), square pixels


# The colour matrix of YUV video that states none, as players take it: mpv, VLC and ffplay (SDL), like
# most players, read it as BT.709 from HD sizes on (mpv: 1280 wide or more than 576 high), as BT.601
# below. swscale takes BT.601 for every size, and the writer tags its output BT.709: an untagged HD
# clip (older cameras, screen recorders, many web downloads) came out with its saturated colours 15-20
# levels off the input as the same player showed it.
_SPC_UNSPECIFIED = 2  # AVCOL_SPC_UNSPECIFIED


def _has_alpha(frame: av.VideoFrame) -> bool:
    return any(c.is_alpha for c in frame.format.components)


def _over_black(rgba: np.ndarray) -> np.ndarray:
    """RGBA pixels (uint8 or uint16) as the RGB they show over black, rounded, in the same type."""
    top = np.iinfo(rgba.dtype).max
    rgb = (rgba[..., :3].astype(np.uint32) * rgba[..., 3:] + top // 2) // top
    return rgb.astype(rgba.dtype)


def _untagged_matrix(frame: av.VideoFrame) -> dict[str, str]:
    """``src_colorspace`` for swscale where ``frame`` states no matrix and players take it for BT.709."""
    if frame.colorspace != _SPC_UNSPECIFIED or not (frame.width >= 1280 or frame.height > 576):
        return {}
    return {"src_colorspace": "ITU709"} if _is_yuv(frame.format) else {}


def _is_yuv(fmt: av.VideoFormat) -> bool:
    """Whether pixels of ``fmt`` are luma and two colour differences (any subsampling): not RGB, grey,
    palette or XYZ. (PyAV's ``is_chroma`` is the plane's subsampling shift, 0 for 4:4:4.)"""
    if fmt.is_rgb or fmt.name.startswith(("gray", "ya", "pal", "mono", "xyz")):
        return False
    return sum(not c.is_alpha for c in fmt.components) >= 3


# HDR video: what phones record by default (iPhones HLG, or Dolby Vision on an HLG base; Android HLG
# or HDR10's PQ). Read as SDR it looks flat and grey (HLG) or dark (PQ). swscale (FFmpeg 8) converts
# it as BT.2408 describes: HDR reference white to SDR white, highlights rolled off, BT.2020 gamut
# mapped into BT.709. SDR video on BT.2020 primaries (phones' 10-bit SDR, transfer BT.709 or
# BT.2020-10/12) needs the same gamut mapping: read as BT.709 its colours came out washed out and
# shifted (a green patch 40, 140, 70 as 91, 133, 79: 53 levels off).
# On that path swscale's 8-bit RGB output is coarse (9 levels off on an SDR green, 9-10 on HDR
# colours that its 16-bit output gets within 0-5 of) and its full-chroma-interpolation flag with the
# bilinear or area filter gives wrong colours (a red patch 56 levels too blue), so each frame is
# converted once at its own size with bicubic chroma to 16-bit RGB, then to 8-bit RGB (the bytes of
# 10-bit 4:2:0), and scaled from there as any RGB video. Each thread's gamut-mapping context takes
# swscale several seconds to set up (once per file); BT.709 video never takes this path.
_TRC_BT709 = 1  # AVCOL_TRC_BT709, AVCOL_PRI_BT709 (the same code)
HDR_TRANSFERS = {16: "PQ", 18: "HLG"}  # AVCOL_TRC_SMPTE2084, AVCOL_TRC_ARIB_STD_B67
WIDE_PRIMARIES = {9: "BT.2020"}  # AVCOL_PRI_BT2020
# Transfers swscale cannot linearize by (unspecified, reserved): SDR on BT.2020 that states none is
# taken for BT.709's curve, as players take it.
_TRC_UNUSABLE = {0, 2, 3}
_SWS_HDR = _Interp.BICUBIC | _Interp.ACCURATE_RND
_SWS_TO_8BIT = _Interp.POINT | _Interp.ACCURATE_RND


def needs_mapping(frame: av.VideoFrame) -> bool:
    """Whether ``frame`` must be tone- or gamut-mapped to show as SDR BT.709 (HDR, or BT.2020 primaries)."""
    return frame.color_trc in HDR_TRANSFERS or frame.color_primaries in WIDE_PRIMARIES


def mapping_note(frame: av.VideoFrame) -> str | None:
    """What the reader says about a frame it maps (None for one it reads as it is)."""
    if frame.color_trc in HDR_TRANSFERS:
        kind = HDR_TRANSFERS[frame.color_trc]
        return f"HDR video ({kind}): read as the SDR picture it shows (BT.709), so the output is SDR"
    if frame.color_primaries in WIDE_PRIMARIES:
        return f"{WIDE_PRIMARIES[frame.color_primaries]} colour: mapped into BT.709, as players show it"
    return None


# A key-size view straight from the decoder's pixels: swscale scales and converts in one pass
# (2.3 ms for a 4K frame against 15.5 ms for the full RGB frame it was made from before), area
# averaging as for any downscale. On real 1080p and 4K frames it is within 0.6 levels (mean) of
# the full frame's own area downscale.
_SWS_SMALL = _Interp.AREA | _Interp.ACCURATE_RND | _Interp.FULL_CHR_H_INT


@dataclass(frozen=True)
class _ToRgb:
    """How a reader turns its decoded frames into upright RGB of the video's size."""

    sws: Any
    orientation: Orientation
    width: int
    height: int
    # The stored picture's size with square pixels (before turning upright), where its pixels are not
    # square; swscale scales to it in the same pass as the conversion.
    square: tuple[int, int] | None = None
    # The first frame's size as decoded: a frame of another size came from a mid-stream change.
    stored: tuple[int, int] | None = None
    # One swscale context per thread that converts, reused from frame to frame. A frame's own
    # (``frame.to_ndarray``) lives as long as the frame and keeps a worker thread per core: 25 frames
    # waiting for their keys kept ~60 idle threads alive on a 2-core box.
    _local: threading.local = field(default_factory=threading.local, compare=False, repr=False)
    # Called with each frame that is tone- or gamut-mapped (the reader tells the user once per file).
    on_mapped: Callable[[av.VideoFrame], None] | None = field(default=None, compare=False, repr=False)

    def _reformatter(self, use: str = "reformatter") -> Any:
        # One context per thread and use: swscale sets a context up anew whenever its conversion
        # changes, which for the gamut-mapping one takes seconds.
        reformatter = getattr(self._local, use, None)
        if reformatter is None:
            reformatter = VideoReformatter()
            setattr(self._local, use, reformatter)
        return reformatter

    def sdr(self, frame: av.VideoFrame) -> av.VideoFrame:
        """``frame`` itself, or for HDR video (HLG, PQ) and SDR on BT.2020 primaries the SDR BT.709
        picture it shows, as 8-bit RGB (decided by each frame's own tags, as the decoder gives them),
        or for a frame with transparency the picture over black (:meth:`_on_black`)."""
        if not needs_mapping(frame):
            return self._on_black(frame) if _has_alpha(frame) else frame
        if self.on_mapped is not None:
            self.on_mapped(frame)
        if frame.color_trc in _TRC_UNUSABLE:
            frame.color_trc = _TRC_BT709
        alpha = _has_alpha(frame)
        wide: av.VideoFrame = self._reformatter("mapper").reformat(
            frame, format="rgba64le" if alpha else "rgb48le", dst_color_trc=_TRC_BT709,
            dst_color_primaries=_TRC_BT709, interpolation=_SWS_HDR)
        if alpha:  # over black, as for an SDR frame with transparency (_on_black); mapped as rgb48le, alpha was lost
            wide = av.VideoFrame.from_ndarray(_over_black(wide.to_ndarray()), format="rgb48le")
        out: av.VideoFrame = self._reformatter("to8bit").reformat(wide, format="rgb24", interpolation=_SWS_TO_8BIT)
        return out

    def _on_black(self, frame: av.VideoFrame) -> av.VideoFrame:
        """A frame with an alpha channel (ProRes 4444, QuickTime Animation, FFV1 or PNG video with
        transparency) as 8-bit RGB shown over black, as players and editors show it without a
        background. Converted as it was, its alpha was dropped and what the file stores under
        transparent pixels (anything: often the keyed-out background) came out as if opaque."""
        rgba = self._reformatter("alpha").reformat(
            frame, format="rgba", interpolation=self.sws, **_untagged_matrix(frame)).to_ndarray()
        return av.VideoFrame.from_ndarray(_over_black(rgba), format="rgb24")

    def _rgb(self, frame: av.VideoFrame, **kwargs: Any) -> np.ndarray:
        frame = self.sdr(frame)
        kwargs.update(_untagged_matrix(frame))
        out: np.ndarray = self._reformatter().reformat(frame, format="rgb24", **kwargs).to_ndarray()
        return out

    def _placed(self, frame: av.VideoFrame, width: int, height: int, interpolation: Any) -> np.ndarray:
        """``frame`` as ``width`` x ``height`` RGB (stored orientation). Every frame has the size in
        ``info``, which the writer was created with; a frame whose size changed mid-stream (a screen
        recording turned from portrait to landscape, a video call's resolution steps) is scaled into
        it whole, keeping its shape, between black bars: stretched to fill it, a circle came out an
        ellipse and people squashed to half their width."""
        if self.stored is None or (frame.width, frame.height) == self.stored:
            return self._rgb(frame, width=width, height=height, interpolation=interpolation)
        sar = Fraction(self.square[0], self.stored[0]) if self.square is not None else Fraction(1)
        aspect = frame.width * sar / frame.height
        w = max(1, min(width, round(height * aspect)))
        h = max(1, min(height, round(width / aspect)))
        out = np.zeros((height, width, 3), np.uint8)
        x, y = (width - w) // 2, (height - h) // 2
        out[y : y + h, x : x + w] = self._rgb(frame, width=w, height=h, interpolation=interpolation)
        return out

    def full(self, frame: av.VideoFrame) -> np.ndarray:
        w, h = (self.height, self.width) if self.orientation.swaps_dims else (self.width, self.height)
        return self.orientation.apply(self._placed(frame, w, h, self.sws))

    def small(self, frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
        w, h = (height, width) if self.orientation.swaps_dims else (width, height)
        return self.orientation.apply(self._placed(frame, w, h, _SWS_SMALL))


@dataclass
class DeferredFrame:
    """A decoded frame kept as the decoder gave it, made RGB only when asked.

    Most video is 4:2:0 YUV, half the bytes of RGB: a pipeline that holds frames while their key
    frames are at the edge holds twice as many in the same memory (25 instead of 12 4K frames in
    320 MB), and the full-resolution conversion runs where the frame is used, not on the decoding
    thread. :meth:`rgb8` converts exactly as :meth:`VideoReader.frames` does; each call converts
    anew (nothing is cached, so the frame stays small). Thread-safe for one caller at a time.
    """

    index: int
    pts: int | None
    time: float
    frame: av.VideoFrame = field(repr=False)
    to_rgb: _ToRgb = field(repr=False)

    @property
    def nbytes(self) -> int:
        """Bytes of pixels held (all planes)."""
        return sum(p.buffer_size for p in self.frame.planes)

    def rgb8(self) -> np.ndarray:
        """The frame as :class:`DecodedFrame`'s ``rgb8``: HxWx3 uint8, upright, the video's size."""
        return self.to_rgb.full(self.frame)

    def small(self, width: int, height: int) -> np.ndarray:
        """The upright frame area-downscaled to ``width`` x ``height`` (uint8 RGB), from the decoder's
        pixels in one pass. A frame that changed resolution mid-stream is scaled to that size as well."""
        return self.to_rgb.small(self.frame, width, height)


def _frame_bytes(fmt: av.VideoFormat | None) -> int | None:
    """Bytes of a frame in pixel format ``fmt`` (of its size): each component's samples, whole bytes each."""
    if fmt is None or not fmt.components:
        return None
    return sum(c.width * c.height * ((c.bits + 7) // 8) for c in fmt.components)


def ffmpeg_name(path: Path) -> str:
    """``path`` as FFmpeg must be given it: absolute, because FFmpeg takes the part of a relative name
    before a colon for a protocol (``2024-05-01T10:30:00.mp4`` would be protocol ``2024-05-01T10``)."""
    return str(path.absolute())


def reason(exc: BaseException) -> str:
    """Short human text for a PyAV/OS error (no traceback, no errno soup)."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text).strip().rstrip(".")


@dataclass
class _Damage:
    """What reading had to skip to get through a damaged file (FFmpeg and players skip the same)."""

    bad_packets: int = 0  # video packets the decoder refused: their frames are lost
    failed_reads: int = 0  # reads the demuxer refused: the bytes it skipped are lost
    gave_up: bool = False  # reads kept failing: everything after that point is lost
    first_reason: str | None = None  # the first error's text, for the warning

    def note(self, exc: BaseException) -> None:
        if self.first_reason is None:
            self.first_reason = reason(exc)

    def __bool__(self) -> bool:
        return bool(self.bad_packets or self.failed_reads)

    def describe(self) -> str:
        """E.g. ``skipped 3 undecodable video packets: Invalid data found when processing input``."""
        parts = []
        if self.bad_packets:
            parts.append(f"skipped {_plural(self.bad_packets, 'undecodable video packet')}")
        if self.gave_up:
            parts.append("reading stopped at an unreadable part of the file")
        elif self.failed_reads:
            parts.append(f"skipped {_plural(self.failed_reads, 'unreadable part')} of the file")
        return f"{', '.join(parts)}: {self.first_reason}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _parse_hms(text: str | None) -> float | None:
    """Seconds from an ``HH:MM:SS.fraction`` tag (Matroska's per-track DURATION); None if absent."""
    if not text:
        return None
    try:
        h, m, sec = str(text).strip().split(":")
        value = int(h) * 3600 + int(m) * 60 + float(sec)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


# Tags that describe the file's format or the program that wrote it, not the recording: the writer's own
# container and encoder state their own.
_FORMAT_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder", "handler_name", "vendor_id"}


def _kept_tags(tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k.lower() not in _FORMAT_TAGS}


def _timecode(video: av.video.stream.VideoStream, container: av.container.InputContainer) -> str | None:
    """The start timecode FFmpeg reads: the video stream's tag (MP4, MOV, Matroska's TIMECODE), else a
    timecode track's."""
    for stream in (video, *container.streams.data):
        for key, value in stream.metadata.items():
            if key.lower() == "timecode" and value:
                return str(value)
    return None


def _is_video_stream(stream: av.stream.Stream) -> bool:
    # Cover art in audio files shows up as a one-picture "video" stream; it is not a video.
    return not (stream.disposition & av.stream.Disposition.attached_pic)


# FFmpeg's test for a clock that restarted: a packet this far from where its stream was heading
# (ffmpeg -dts_delta_threshold), or this far behind its stream's previous packet.
_TS_JUMP = Fraction(10)
_TS_STEP_BACK = Fraction(1, 10)


class _Timeline:
    """Input timestamps as FFmpeg's command line sees them (no ``-copyts``): starting at 0 and, where
    the format's clock may restart, always moving on.

    * Shifted by the input's start, the earliest of the video's and the audio tracks'. An MPEG-TS
      recording starts wherever the camera's or the broadcaster's clock was (10000 s in, or -0.5 s
      where it had just wrapped): kept as they are, such times made an AVI pad with thousands of empty
      frames and an MP4's edit list hide the frames before 0.
    * Formats whose clock may restart (FFmpeg's ``AVFMT_TS_DISCONT``: MPEG-TS and -PS, FLV) are joined
      end to end (``cat a.ts b.ts``, HLS downloads, a camera's .MTS parts): each part starts its own
      clock, and the second part's frames all collapsed onto the first part's last instant. A packet
      far from where its stream was heading, or well behind its previous one, starts a new part, whose
      shift puts it where its stream would have gone on.

    Video and audio of one part shift by the same time, so their sync is kept; each stream's shift is
    rounded down to its own ticks. A stream enters the next part on its own jump, not at the first
    stream's: the demuxer hands out the first part's last frame after the second part's first audio.
    """

    def __init__(self, start: Fraction, restarts: bool, frame: Fraction) -> None:
        self._start = start
        self._shifts = [-start]  # per part: seconds added to its timestamps
        self._restarts = restarts
        self._frame = frame  # a video packet's duration where it states none
        self._part: dict[int, int] = {}  # per stream: the part it is in
        self._last: dict[int, Fraction] = {}  # per stream: its last packet's DTS, on the output's timeline
        self._next: dict[int, Fraction] = {}  # per stream: where its next packet should be

    def place(self, packet: av.Packet, video: bool) -> None:
        """Move ``packet``'s timestamps (in place) onto the output's timeline."""
        time_base = packet.time_base
        if not time_base or (packet.dts is None and packet.pts is None):  # the demuxer's flush packets
            return
        if self._restarts and packet.dts is not None:
            shift = self._follow(packet.stream.index, packet.dts, packet.duration, time_base, video)
        else:  # a packet with a pts only (Matroska leaves B-frames' dts unset) moves with its stream's part
            shift = self._shifts[self._part.get(packet.stream.index, 0)]
        ticks = math.floor(shift / time_base)
        if packet.dts is not None:
            packet.dts += ticks
        if packet.pts is not None:
            packet.pts += ticks

    def _follow(self, index: int, dts_ticks: int, duration_ticks: int | None, time_base: Fraction,
                video: bool) -> Fraction:
        """The shift of the part a packet of stream ``index`` is in (a new one where it starts one);
        notes where the stream goes next."""
        part = self._part.get(index, 0)
        dts = dts_ticks * time_base + self._shifts[part]
        expected = self._next.get(index)
        if expected is not None and (abs(dts - expected) > _TS_JUMP or dts + _TS_STEP_BACK < self._last[index]):
            part += 1
            if part == len(self._shifts):  # the first stream to jump sets where the new part goes
                log.info("timestamps restart at %.3f s (joined recordings); continuing at %.3f s", dts, expected)
                self._shifts.append(self._shifts[-1] + expected - dts)
            self._part[index] = part
            dts = dts_ticks * time_base + self._shifts[part]
        self._last[index] = dts
        duration = duration_ticks * time_base if duration_ticks else (self._frame if video else 0)
        self._next[index] = dts + duration
        return self._shifts[part]

    def seconds(self, time: float) -> float:
        """An input time (seconds) on the output's timeline, before any restart."""
        return time - float(self._start)


# An H.264 decoder holds back at most 16 frames to reorder them, and frame threads (one per core, at
# most 16) as many again: a timestamp that no frame took after this many more packets never will.
_REORDER_DEPTH = 64


class _ShownOrder:
    """Presentation times for a container that stores decode order only (AVI).

    AVI keeps no presentation times: the demuxer makes each packet's pts from its position (its dts
    plus a guessed delay), and the decoder hands each frame out with the pts of the packet it came
    from. With B-frames, frames come out in presentation order but carry their packets' decode-order
    stamps (1, 3, 2, 5, 4...): the writer then pushed each one that went back past the one before,
    and the output ran one to three frames late against its audio with a jump at every reordered frame,
    or, written to AVI again, lost the frames whose slots were taken (4 of every 10). As players of
    AVI do, the k-th frame shown takes the k-th smallest stamp: the smallest still untaken. The same
    for a file without B-frames, whose stamps already rise.
    """

    def __init__(self) -> None:
        self._waiting: list[tuple[int, int]] = []  # (pts, packet number) of packets fed to the decoder
        self._fed = 0

    def fed(self, packet: av.Packet) -> None:
        if packet.size and packet.pts is not None:
            heapq.heappush(self._waiting, (packet.pts, self._fed))
            self._fed += 1

    def refused(self, packet: av.Packet) -> None:
        """The decoder refused ``packet``: no frame will come out with its stamp."""
        for i, (pts, _) in enumerate(self._waiting):
            if pts == packet.pts:
                self._waiting.pop(i)
                heapq.heapify(self._waiting)
                return

    def take(self, own: int | None) -> int | None:
        """The stamp of the next frame the decoder hands out (``own``: the stamp it came with)."""
        # A packet that made no frame (parameter sets only, a frame the decoder dropped) leaves the
        # smallest stamp behind, which would make every later frame a slot early.
        while self._waiting and self._waiting[0][1] < self._fed - _REORDER_DEPTH:
            heapq.heappop(self._waiting)
        return heapq.heappop(self._waiting)[0] if self._waiting else own


class VideoReader:
    """Streaming reader: upright ``rgb8`` frames plus the audio packets, in one pass over the file.

    Use as a context manager. ``info`` is complete right after construction (the first frame is
    decoded once to learn the display rotation, so the writer can be created before streaming).
    """

    def __init__(self, path: str | os.PathLike[str], *, fast_color: bool = False) -> None:
        self.path = Path(path)
        # After frames() has run: how long the last frame is shown, in time_base ticks, where the file
        # says (None: it does not). A variable-rate clip's last frame is not one average frame long.
        self.last_frame_ticks: int | None = None
        self._sws = None if fast_color else SWS_ACCURATE_DECODE
        if not self.path.exists():
            raise UserError(f"input video not found: {self.path}")
        if self.path.is_dir():
            raise UserError(f"input {self.path} is a folder, not a video file")
        try:
            size = self.path.stat().st_size
        except OSError as exc:
            raise UserError(f"cannot read {self.path}: {reason(exc)}") from exc
        if size == 0:
            raise UserError(f"input video {self.path} is empty (0 bytes)")

        self._container: av.container.InputContainer | None = None
        self._consumed = False
        self._decode_thread: threading.Thread | None = None
        self._decode_stop = threading.Event()
        self._mapped_said = False
        self._mapped_lock = threading.Lock()
        orientation, stored_size, frame_bytes, note = self._probe_first_frame()
        if note is not None:  # said before any work starts
            self._say_mapped(note)
        self._container = self._open()
        try:
            self._setup(orientation, stored_size, frame_bytes)
        except BaseException:
            self.close()
            raise

    # -- construction helpers ---------------------------------------------------------------

    def _open(self) -> av.container.InputContainer:
        try:
            container = av.open(ffmpeg_name(self.path), mode="r")
        except AV_ERRORS as exc:
            raise UserError(
                f"cannot read {self.path}: not a video file, or it is truncated or corrupt "
                f"({reason(exc)})"
            ) from exc
        return container

    def _video_stream_of(self, container: av.container.InputContainer, say: bool = False
                         ) -> av.video.stream.VideoStream:
        """The stream ``ffmpeg`` converts: a default-marked one first, then the largest picture (its
        map_auto_video); ties go to the first. ``streams.best`` (av_find_best_stream) goes by what the
        probe read and by bit rate, and took a file's small preview track over its main video.
        ``say``: where there are several, tell the user which one is used."""
        streams = [s for s in container.streams.video if _is_video_stream(s)]
        if not streams:
            raise UserError(f"{self.path} has no video stream")
        default = av.stream.Disposition.default

        def score(s: av.video.stream.VideoStream) -> int:
            ctx = s.codec_context
            return (ctx.width or 0) * (ctx.height or 0) + 5_000_000 * bool(s.disposition & default)

        best = max(streams, key=score)
        if say and len(streams) > 1:
            ctx = best.codec_context
            log.warning("%s has %d video streams; using stream %d (%dx%d), the %s", self.path, len(streams),
                        streams.index(best) + 1, ctx.width, ctx.height,
                        "default one" if best.disposition & default else "largest")
        return best

    def _probe_first_frame(self) -> tuple[Orientation, tuple[int, int], int | None, str | None]:
        """Decode the first frame once to read its display matrix (PyAV has no stream-level
        getter) and its real size, then close: :meth:`frames` reopens so audio and video start at
        the beginning without relying on seeking, which some containers do badly."""
        container = self._open()
        try:
            stream = self._video_stream_of(container)
            # Damage before the first good frame is skipped here as in frames(), which rereads it
            # and reports it: a file whose first packets are broken still plays from the next one.
            damage = _Damage()
            for packet in _packets(container, [stream], damage):
                for frame in _decode(packet, damage):
                    return (orientation_of(frame), (int(frame.width), int(frame.height)), _frame_bytes(frame.format),
                            mapping_note(frame))
            if damage:
                raise UserError(
                    f"cannot decode {self.path}: none of its video frames could be decoded, it is "
                    f"truncated or corrupt ({damage.describe()})"
                )
            raise UserError(f"{self.path} has no video frames (empty, truncated or corrupt)")
        finally:
            container.close()

    def _say_mapped(self, note: str) -> None:
        """Tell the user, once per file, that its frames are tone- or gamut-mapped. Keyed on the frames
        (which the conversion goes by), not on the stream's tags: a file whose first part is SDR and
        the rest HDR (joined recordings) states HDR on its frames only, or on its stream and its
        first frames not."""
        with self._mapped_lock:
            if self._mapped_said:
                return
            self._mapped_said = True
        (log.warning if note.startswith("HDR") else log.info)("%s is %s", self.path, note)

    def _on_mapped(self, frame: av.VideoFrame) -> None:
        if not self._mapped_said:
            note = mapping_note(frame)
            if note is not None:
                self._say_mapped(note)

    def _audio_streams_of(self, container: av.container.InputContainer) -> list[av.audio.stream.AudioStream]:
        """The audio tracks the output keeps: all of them, in file order (a phone's second language,
        a commentary track), as ``ffmpeg -map 0:a`` keeps them."""
        return list(container.streams.audio)

    def _setup(self, orientation: Orientation, stored_size: tuple[int, int], frame_bytes: int | None) -> None:
        container = self._container
        assert container is not None
        stream = self._video_stream_of(container, say=True)
        self._stream = stream
        self._orientation = orientation
        self.time_base: Fraction = stream.time_base or Fraction(1, 90000)
        # Every audio track, in file order: hand them all to VideoWriter(audio_template=...) and the
        # output keeps them all. ``audio_stream`` is the main one (marked default, else the first), for
        # callers that keep one.
        self.audio_streams: list[av.audio.stream.AudioStream] = self._audio_streams_of(container)
        self.audio_stream: av.audio.stream.AudioStream | None = next(
            (a for a in self.audio_streams if a.disposition & av.stream.Disposition.default),
            self.audio_streams[0] if self.audio_streams else None)

        ctx = stream.codec_context
        width, height = stored_size
        if width <= 0 or height <= 0:
            raise UserError(f"cannot read {self.path}: the video stream has no frame size")
        square = self._square_size(stream, width, height)
        if square is not None:
            width, height = square
        if orientation.swaps_dims:
            width, height = height, width

        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if rate is None or rate <= 0:
            log.warning("%s declares no frame rate; assuming 30 fps", self.path)
            rate = Fraction(30)
        self._rate = Fraction(rate)

        # Where the video starts, as the demuxer says on opening: FFmpeg fills a stream's start_time in
        # as it reads too, so read at the end it can differ (292 ms on a Matroska file of ours that
        # starts at 0), and a complete file warned that it was 0.3 s short.
        self._video_start = float(stream.start_time * self.time_base) if stream.start_time else 0.0
        # Video-only duration: Matroska/WebM's per-track DURATION tag, else the stream's own. The tag
        # first: Matroska states no stream duration, and FFmpeg fills one in from the whole file's, so
        # 20 s of video beside 30 s of audio "declared" 30 s and was warned of as cut short.
        self._video_duration: float | None = None
        # The tag is where the track ends (FFmpeg writes its last timestamp plus one frame), so a video
        # that starts after 0 (audio first) declares start + length.
        end = _parse_hms(stream.metadata.get("DURATION"))
        if end is not None:
            start = self._video_start
            self._video_duration = end - start if end > start else end
        elif stream.duration is not None and stream.duration > 0:
            self._video_duration = float(stream.duration * self.time_base)
        self._container_duration: float | None = (
            container.duration / av.time_base if container.duration and container.duration > 0 else None
        )
        self._container_start = (
            container.start_time / av.time_base if container.start_time is not None else 0.0
        )
        duration = self._video_duration or self._container_duration
        # PyAV's stub types a flag's value as the flag; it is AVFMT_TS_DISCONT's int.
        restarts = bool(container.format.flags & cast(int, av.format.Flags.ts_discont.value))
        self._decode_order_only = container.format.name == "avi"  # see _ShownOrder
        self._timeline = _Timeline(self._input_start(), restarts, 1 / self._rate)

        self._to_rgb = _ToRgb(self._sws, orientation, width, height, square, stored_size, on_mapped=self._on_mapped)
        self.info = VideoInfo(
            width=width,
            height=height,
            fps=float(self._rate),
            frame_count=int(stream.frames) if stream.frames else None,
            duration=duration,
            rotation=orientation.rotation,
            has_audio=bool(self.audio_streams),
            codec=ctx.name or "unknown",
            decoded_frame_bytes=frame_bytes,
            metadata=_kept_tags(container.metadata),
            timecode=_timecode(stream, container),
        )

    def _square_size(self, stream: av.video.stream.VideoStream, width: int, height: int) -> tuple[int, int] | None:
        """The stored size with square pixels, where the stream's are not (HDV's 1440x1080 shown at
        1920x1080, DV's 720x480 at 640x480); None where they are square. Players stretch such pixels
        when they show them; the writer stores square pixels and no aspect ratio, so frames are read
        as shown, or the output came out squeezed (1440x1080 shown as 4:3). The width is scaled, as
        FFmpeg's ``scale=iw*sar:ih``, to an even number where the stored one is even (4:2:0 output)."""
        sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
        if not sar or sar == 1 or not Fraction(1, 16) <= sar <= 16:  # unset (0/1) or not a real ratio
            return None
        exact = width * sar
        square = max(1, round(exact / 2) * 2 if width % 2 == 0 else round(exact))
        if square == width:
            return None
        log.info("%s has non-square pixels (aspect %s): reading its %dx%d frames at %dx%d, as players show them",
                 self.path, sar, width, height, square, height)
        return square, height

    def _input_start(self) -> Fraction:
        """Seconds where the input starts: the earliest of the video's and the audio tracks' first
        timestamps, as the demuxer states them (after an MP4's edit list, so the frames it hides stay
        before 0)."""
        streams = (self._stream, *self.audio_streams)
        starts = [s.start_time * s.time_base for s in streams if s is not None and s.start_time is not None
                  and s.time_base]
        return min(starts, default=Fraction(0))

    # -- sampling ------------------------------------------------------------------------

    def frames_near(self, times: Sequence[float]) -> Iterator[DecodedFrame]:
        """For each time (seconds on :meth:`frames`' timeline, which starts at the input's start), the
        first frame shown at or after it, or the last frame for a time past it, found by seeking:
        previews of a long video without decoding all of it. The frames are chosen and converted as
        :meth:`frames` does (stream, colour matrix, HDR, pixel shape, orientation); ``time`` is on the
        same timeline; ``index`` is the frame's place at the video's nominal frame rate (exact for a
        constant rate, an estimate for a variable one). A separate pass over the file: :meth:`frames`
        is unaffected."""
        container = self._open()
        try:
            stream = self._video_stream_of(container)
            stream.thread_type = "AUTO"
            tb = stream.time_base
            if tb is None:
                return
            origin = float(self._input_start())
            rate = float(self._rate)
            for target in times:
                container.seek(int((origin + target) / tb), stream=stream, backward=True, any_frame=False)
                found = None
                for frame in container.decode(stream):
                    t = float(frame.pts * tb) - origin if frame.pts is not None else target
                    found = (frame, t)
                    if t + 0.5 / rate >= target:
                        break
                if found is not None:
                    frame, t = found
                    yield DecodedFrame(index=max(0, round(t * rate)), pts=frame.pts, time=t,
                                       rgb8=self._to_rgb.full(frame))
        finally:
            container.close()

    # -- streaming ------------------------------------------------------------------------

    def frames(self, audio_sink: Callable[[av.Packet], None] | None = None, prefetch: int = 2,
               prepare: Callable[[Any], Any] | None = None, deferred: bool = False) -> Iterator[Any]:
        """Yield upright frames in presentation order; hand every audio packet, of every track in
        :attr:`audio_streams`, to ``audio_sink`` (``packet.stream`` says whose; the writer's
        ``mux_audio`` keeps those of the tracks it was given).

        One pass over the file, video and audio demuxed together, so the writer can remux audio
        while video is being processed and nothing has to be buffered or re-read. Packets that
        cannot be read or decoded are skipped; after the last frame, one warning is logged if frames
        were lost that way or the file turned out to be cut short.

        With ``prefetch`` > 0 a worker thread decodes and converts up to that many frames ahead
        (PyAV releases the GIL inside FFmpeg), so decoding overlaps the caller's work on the frame
        before; ``audio_sink`` is still called from the caller's thread, in file order. With 0, at
        most one decoded frame is held at a time (the decoder's own frame-thread queue aside).
        ``prepare``, if given, maps each frame (on the worker thread when prefetching) and its
        result is yielded instead: per-frame work that needs no state, such as downscaling.
        ``deferred``: yield (or prepare) :class:`DeferredFrame` s, converted to RGB only when asked,
        instead of :class:`DecodedFrame` s.
        """
        if self._container is None:
            raise RuntimeError("VideoReader is closed")
        if self._consumed:
            raise RuntimeError("VideoReader.frames() can be iterated only once; open a new reader")
        self._consumed = True
        if prefetch <= 0:
            for kind, item in self._items(audio_sink is not None, prepare, deferred):
                if kind == "audio":
                    assert audio_sink is not None  # audio items come only when there is a sink
                    audio_sink(item)
                else:
                    yield item
            return
        yield from self._prefetched(audio_sink, prefetch, prepare, deferred)

    def _prefetched(self, audio_sink: Callable[[av.Packet], None] | None, depth: int,
                    prepare: Callable[[Any], Any] | None, deferred: bool) -> Iterator[Any]:
        items: queue.Queue = queue.Queue(maxsize=depth)
        stop = threading.Event()
        done = object()

        def put(item: tuple[str, Any]) -> bool:
            """Queue ``item`` unless the caller stopped reading (then a full queue would never drain)."""
            while not stop.is_set():
                try:
                    items.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def work() -> None:
            try:
                for item in self._items(audio_sink is not None, prepare, deferred):
                    if not put(item):
                        return
                put(("end", done))
            except BaseException as exc:  # handed to the caller's thread below
                put(("error", exc))

        worker = threading.Thread(target=work, name="mvstylizer-decode", daemon=True)
        self._decode_thread, self._decode_stop = worker, stop
        worker.start()
        try:
            while True:
                kind, item = items.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise item
                if kind == "audio":
                    assert audio_sink is not None  # audio items come only when there is a sink
                    audio_sink(item)
                else:
                    yield item
        finally:
            stop.set()
            worker.join()

    def _items(self, want_audio: bool, prepare: Callable[[Any], Any] | None = None, deferred: bool = False
               ) -> Iterator[tuple[str, Any]]:
        """("audio", packet) and ("frame", frame or prepare(frame)) in file order (see :meth:`frames`)."""

        container = self._container
        assert container is not None  # frames() checked that the reader is open
        stream = self._stream
        stream.thread_type = "AUTO"
        # Audio is always demuxed (cheap: the demuxer reads its packets anyway) so its end time
        # can tell a truncated file from a short video; it is handed on only to a sink.
        wanted = [stream, *self.audio_streams]
        audio_indices = {a.index for a in self.audio_streams}

        index = 0
        video_end: float | None = None  # seconds covered by decoded frames
        audio_end: float | None = None  # seconds covered by audio packets
        damage = _Damage()
        shown = _ShownOrder() if self._decode_order_only else None
        for packet in _packets(container, wanted, damage):
            self._timeline.place(packet, video=packet.stream.index == stream.index)
            if packet.stream.index in audio_indices:
                if packet.dts is None:  # dts None marks the demuxer's flush packet
                    continue
                if packet.pts is not None and packet.time_base:
                    end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                    audio_end = end if audio_end is None else max(audio_end, end)
                if want_audio:
                    yield "audio", packet  # errors in the sink are the sink's, not the input's
                continue
            if shown is not None:
                shown.fed(packet)
                refused = damage.bad_packets
            decoded = _decode(packet, damage)
            if shown is not None and damage.bad_packets > refused:
                shown.refused(packet)
            while decoded:
                frame = decoded.pop(0)
                if shown is not None:
                    frame.pts = shown.take(frame.pts)
                out = self._defer(frame, index) if deferred else self._convert(frame, index)
                dur = frame.duration if frame.pts is not None and frame.duration else None
                self.last_frame_ticks = int(dur) if dur else None
                end = out.time + (float(dur * self.time_base) if dur else 1.0 / float(self._rate))
                video_end = end if video_end is None else max(video_end, end)
                del frame
                index += 1
                yield "frame", out if prepare is None else prepare(out)
                del out

        self._report_losses(index, video_end, audio_end, damage)

    def _time(self, frame: av.VideoFrame, index: int) -> float:
        return float(frame.pts * self.time_base) if frame.pts is not None else index / float(self._rate)

    def _convert(self, frame: av.VideoFrame, index: int) -> DecodedFrame:
        return DecodedFrame(index=index, pts=frame.pts, time=self._time(frame, index), rgb8=self._to_rgb.full(frame))

    def _defer(self, frame: av.VideoFrame, index: int) -> DeferredFrame:
        # An HDR frame is converted once, here: its key-size view and its full frame both come from it.
        return DeferredFrame(index, frame.pts, self._time(frame, index), self._to_rgb.sdr(frame), self._to_rgb)

    def _report_losses(
        self, decoded: int, video_end: float | None, audio_end: float | None, damage: _Damage
    ) -> None:
        """Log one warning if frames were skipped or the file is shorter than it declares.

        FFmpeg usually just stops early on a cut file, so the shortfall against the declared frame
        count (else duration) is the only sign of it; skipped packets are counted as they happen.
        """
        if decoded == 0:
            raise UserError(f"{self.path} has no video frames")
        shortfall = self._shortfall(decoded, video_end, audio_end, damaged=bool(damage))
        if shortfall is None and not damage:
            return
        what = f"{self.path} {shortfall or 'is damaged'}"
        if damage:
            what += f" ({damage.describe()})"
        log.warning("%s; using the %s", what, _plural(decoded, "decodable frame"))

    def _shortfall(
        self, decoded: int, video_end: float | None, audio_end: float | None, damaged: bool
    ) -> str | None:
        """``declares N frames but only M could be decoded`` (or the same in seconds), or None
        when what decoded matches what the file declares, within a little slack."""
        declared = self.info.frame_count
        by_time = self._time_shortfall(video_end, audio_end)
        if declared:
            missing = declared - decoded
            # The slack is for edit lists; once packets were skipped, every missing frame is lost.
            slack = 0 if damaged else max(_MISSING_FRAMES_ABS, _MISSING_FRAMES_FRAC * declared)
            # An MP4's edit list may hide any number of frames its count includes (the start of a
            # trimmed clip, kept only as reference for the frames after it). They are not in the
            # video's duration, which is what plays: an intact file that covers it is not cut short.
            hidden = not damaged and self._video_duration is not None and by_time is None
            if missing > slack and not hidden:
                return f"declares {declared} frames but only {decoded} could be decoded"
            return None
        return by_time

    def _time_shortfall(self, video_end: float | None, audio_end: float | None) -> str | None:
        """``declares X s of video but only Y s could be decoded``, or None when the time covered
        matches the declared duration: video against video, else everything against the container's."""
        if self._video_duration and video_end is not None:
            expected, covered = self._video_duration, video_end - self._timeline.seconds(self._video_start)
        elif self._container_duration and video_end is not None:
            expected = self._container_duration
            covered = max(video_end, audio_end or video_end) - self._timeline.seconds(self._container_start)
        else:
            return None
        slack = max(_MISSING_FRAMES_ABS / float(self._rate), _MISSING_FRAMES_FRAC * expected)
        if covered < expected - slack:
            return f"declares {expected:.2f} s of video but only {covered:.2f} s could be decoded"
        return None

    def close(self) -> None:
        """Release the file. Safe to call twice."""
        if self._decode_thread is not None:  # a prefetching frames() left unfinished
            self._decode_stop.set()
            self._decode_thread.join()
            self._decode_thread = None
        if self._container is not None:
            try:
                self._container.close()
            finally:
                self._container = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _packets(
    container: av.container.InputContainer, streams: Sequence[av.stream.Stream], damage: _Damage
) -> Iterator[av.Packet]:
    """``container.demux(*streams)`` that reads on past a failed read instead of ending there.

    A PyAV demux generator is finished once it raises, but the demuxer underneath keeps its place,
    so a fresh generator continues after the bad bytes (the demuxer resyncs, as players do).
    """
    failures = 0
    demuxer = container.demux(*streams)
    while True:
        try:
            packet = next(demuxer)
        except StopIteration:
            return
        except AV_ERRORS as exc:
            damage.failed_reads += 1
            damage.note(exc)
            failures += 1
            if failures == _MAX_FAILED_READS:
                break
            demuxer = container.demux(*streams)
            continue
        failures = 0
        yield packet
    # Reads keep failing: end the file here. PyAV ends a file with one empty packet per stream,
    # which flushes the decoders; do the same so the frames they still hold are not lost.
    damage.gave_up = True
    for stream in streams:
        flush = av.Packet()
        flush.stream = stream
        yield flush


def _decode(packet: av.Packet, damage: _Damage) -> list[av.VideoFrame]:
    """The packet's frames; none if the decoder refuses it (the decoder carries on with the next)."""
    try:
        return packet.decode()
    except AV_ERRORS as exc:
        damage.bad_packets += 1
        damage.note(exc)
        return []
