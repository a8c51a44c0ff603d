"""Video and image I/O: PyAV for every video, OpenCV for still images, atomic outputs everywhere.

Why this module exists as one place:

* Frames cross module boundaries as ``HxWx3 uint8`` RGB (``rgb8``) and images as ``HxWx3 float32``
  RGB in [0, 1]; everything else in the package can ignore pixel formats, colour ranges and
  rotation metadata.
* Phone videos are stored sideways with a display matrix. The reader turns every frame upright
  (the same way ``ffmpeg``'s autorotate does) and the writer stores upright pixels with no rotation
  metadata, so every player shows the output the same way and ``VideoInfo.width/height`` equal the
  output size.
* Output timing must match the input exactly (same frame count, fps, duration, audio sync), so the
  writer keeps the input's time base and presentation timestamps and copies the audio packets
  through untouched whenever the target container accepts them.
* Bad input is the user's problem, not a crash: anything wrong with a file surfaces as a one-line
  :class:`~mvstylizer.errors.UserError`; PyAV / OpenCV exceptions never escape for bad input.
* A damaged file that players still play (cut short, a header that over-counts its frames, garbage
  in the middle) is not refused: like FFmpeg, the reader skips what cannot be read or decoded, yields
  the frames that decode and logs one warning saying what was lost. Only a file with no decodable
  frame at all is an error.
* Outputs are written to a temporary file beside the target and renamed over it only on success,
  so a crash or Ctrl-C never leaves a half-written video, image or report.
"""

from __future__ import annotations

import io
import logging
import math
import os
import queue
import secrets
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import av
import cv2
import numpy as np

from mvstylizer.errors import UserError

log = logging.getLogger(__name__)

VIDEO_EXTS = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"}
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
# The writer always encodes H.264, which WebM cannot hold (VP8/VP9/AV1 only): .webm is read-only.
WRITABLE_VIDEO_EXTS = VIDEO_EXTS - {".webm"}

_AV_ERRORS = (av.FFmpegError, OSError)

_Interp = av.video.reformatter.Interpolation
# swscale's default YUV<->RGB fast path rounds down: every decode comes out ~1.3 levels (of 255)
# too dark and every encode adds the same again, which shows up in PSNR/SSIM against references
# and accumulates over read-write generations. Accurate rounding with full chroma interpolation
# removes the bias (|mean error| < 0.1 level) for ~6 ms per 1080p frame on 2 cores; pass
# ``fast_color=True`` to trade that back.
_SWS_ACCURATE_DECODE = _Interp.BILINEAR | _Interp.ACCURATE_RND | _Interp.FULL_CHR_H_INT
_SWS_ACCURATE_ENCODE = _Interp.BILINEAR | _Interp.ACCURATE_RND | _Interp.FULL_CHR_H_INP
# Declared frame counts may legitimately differ a little from what decodes (mp4 edit lists drop a
# leading frame or two); more than this many missing means the file was cut short.
_MISSING_FRAMES_ABS = 2
_MISSING_FRAMES_FRAC = 0.05
# A failed read usually leaves the demuxer past the bad bytes, so the next read resyncs; reads that
# keep failing (a disk error, nothing readable left) end the file after this many in a row.
_MAX_FAILED_READS = 3


# --------------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------------


def is_video_path(path: str | os.PathLike[str]) -> bool:
    """True if the extension is a video container we read (case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_EXTS


def is_image_path(path: str | os.PathLike[str]) -> bool:
    """True if the extension is a still-image format we read (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTS


def _temp_path_beside(path: Path) -> Path:
    """A fresh hidden name in ``path``'s folder with the same suffix.

    Same folder so ``os.replace`` is an atomic rename on one filesystem; same suffix so PyAV and
    OpenCV pick the right container / codec from the name. The file is not created here, so it gets
    normal permissions from whoever writes it (``mkstemp`` would make it 0600).
    """
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    return path.with_name(f".{path.name}.tmp-{token}{path.suffix}")


def _unlink_quiet(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:  # pragma: no cover - best effort cleanup
        log.warning("could not remove temporary file %s: %s", path, exc)


class _TempTarget:
    """A temp file beside ``target`` that becomes ``target`` on :meth:`commit` or vanishes on
    :meth:`discard`. Shared by :func:`atomic_path` and :class:`VideoWriter` (which cannot live
    inside one ``with`` block)."""

    def __init__(self, target: str | os.PathLike[str]) -> None:
        self.target = Path(target)
        self.temp = _temp_path_beside(self.target)
        self.done = False

    def commit(self) -> None:
        if self.done:
            return
        self.done = True
        try:
            os.replace(self.temp, self.target)
        except OSError as exc:
            _unlink_quiet(self.temp)
            raise UserError(f"cannot write {self.target}: {exc.strerror or exc}") from exc

    def discard(self) -> None:
        if self.done:
            return
        self.done = True
        _unlink_quiet(self.temp)


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside ``path`` (same suffix); rename it over ``path`` if the block
    succeeds, delete it if the block raises. Readers of ``path`` see the old file or the complete
    new one, never a partial write."""
    target = _TempTarget(path)
    try:
        yield target.temp
    except BaseException:
        target.discard()
        raise
    target.commit()


def check_overwrite(output_path: str | os.PathLike[str], overwrite: bool) -> None:
    """Refuse (UserError) to replace an existing file unless asked to (FFmpeg's ``-y``)."""
    if Path(output_path).exists() and not overwrite:
        raise UserError(f"{output_path} already exists; to replace it add -y (--overwrite) on the command line, "
                        "or pass overwrite=True from Python")


def check_output_path(input_path: str | os.PathLike[str], output_path: str | os.PathLike[str]) -> None:
    """Fail fast, before any work, on an output path that cannot or must not be written.

    Raises :class:`UserError` if the output folder is missing or read-only, the output is a folder,
    the output is the input (also through symlinks, ``..`` or hard links), or the output extension
    is not one we can write for this kind of input.
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
    parent = out.parent
    if not parent.is_dir():
        raise UserError(f"output folder does not exist: {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"output folder is not writable: {parent}")
    same = inp.resolve() == out.resolve()
    if not same and inp.exists() and out.exists():
        try:
            same = os.path.samefile(inp, out)
        except OSError:
            same = False
    if same:
        raise UserError(f"output {out} is the input file; choose a different output path")


# --------------------------------------------------------------------------------------------
# Orientation (display matrix)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Orientation:
    """How stored pixels become upright: one of the eight dihedral transforms.

    ``op`` names follow ffmpeg's ``transpose``/flip filters; ``rotation`` is the counter-clockwise
    rotation in degrees (PyAV's ``VideoFrame.rotation`` convention, mod 360), reported in
    :class:`VideoInfo` (flips are applied but not reported there).
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


def _orientation_of(frame: av.VideoFrame) -> _Orientation:
    """Decode the frame's display matrix the way ffmpeg's autorotate does (fftools, FFmpeg 7)."""
    matrix = None
    for sd in frame.side_data.keys():
        if sd.type == av.sidedata.sidedata.Type.DISPLAYMATRIX:
            raw = bytes(sd)
            if len(raw) >= 36:
                matrix = np.frombuffer(raw[:36], dtype=np.int32)
            break
    if matrix is None:
        return _Orientation()
    ccw = float(frame.rotation)  # av_display_rotation_get(): counter-clockwise degrees
    if not math.isfinite(ccw):
        return _Orientation()
    theta = (-round(ccw)) % 360  # clockwise degrees, as ffmpeg's get_rotation()
    snapped = int(round(theta / 90.0)) * 90 % 360
    if abs(((theta - snapped) + 180) % 360 - 180) > 1:
        log.warning("video has a %d degree display rotation; rounding to %d", theta, snapped)
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
    return _Orientation(op=op, rotation=(360 - snapped) % 360)


# --------------------------------------------------------------------------------------------
# Reading video
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoInfo:
    """What a caller needs to plan the job and to create a matching writer."""

    width: int  # display orientation (after applying rotation) == size of DecodedFrame.rgb8
    height: int
    fps: float  # average frame rate
    frame_count: int | None  # declared by the container, None if unknown
    duration: float | None  # seconds
    rotation: int  # 0/90/180/270: counter-clockwise turn applied to stored pixels to make them upright
    has_audio: bool
    codec: str


@dataclass
class DecodedFrame:
    index: int  # 0-based decode (= presentation) order
    pts: int | None  # in the video stream's time_base
    time: float  # seconds
    rgb8: np.ndarray  # HxWx3 uint8, upright (rotation already applied)


def _reason(exc: BaseException) -> str:
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
            self.first_reason = _reason(exc)

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


def _is_video_stream(stream: av.stream.Stream) -> bool:
    # Cover art in audio files shows up as a one-picture "video" stream; it is not a video.
    return not (stream.disposition & av.stream.Disposition.attached_pic)


class VideoReader:
    """Streaming reader: upright ``rgb8`` frames plus the audio packets, in one pass over the file.

    Use as a context manager. ``info`` is complete right after construction (the first frame is
    decoded once to learn the display rotation, so the writer can be created before streaming).
    """

    def __init__(self, path: str | os.PathLike[str], *, fast_color: bool = False) -> None:
        self.path = Path(path)
        self._sws = None if fast_color else _SWS_ACCURATE_DECODE
        if not self.path.exists():
            raise UserError(f"input video not found: {self.path}")
        if self.path.is_dir():
            raise UserError(f"input {self.path} is a folder, not a video file")
        try:
            size = self.path.stat().st_size
        except OSError as exc:
            raise UserError(f"cannot read {self.path}: {_reason(exc)}") from exc
        if size == 0:
            raise UserError(f"input video {self.path} is empty (0 bytes)")

        self._container: av.container.InputContainer | None = None
        self._consumed = False
        self._decode_thread: threading.Thread | None = None
        self._decode_stop = threading.Event()
        orientation, stored_size = self._probe_first_frame()
        self._container = self._open()
        try:
            self._setup(orientation, stored_size)
        except BaseException:
            self.close()
            raise

    # -- construction helpers ---------------------------------------------------------------

    def _open(self) -> av.container.InputContainer:
        try:
            container = av.open(str(self.path), mode="r")
        except _AV_ERRORS as exc:
            raise UserError(
                f"cannot read {self.path}: not a video file, or it is truncated or corrupt "
                f"({_reason(exc)})"
            ) from exc
        return container

    def _video_stream_of(self, container: av.container.InputContainer) -> av.video.stream.VideoStream:
        streams = [s for s in container.streams.video if _is_video_stream(s)]
        if not streams:
            raise UserError(f"{self.path} has no video stream")
        # Prefer the stream FFmpeg would pick (highest resolution / default disposition).
        try:
            best = container.streams.best("video")
        except Exception:  # noqa: BLE001 - best() is only a hint
            best = None
        return best if best in streams else streams[0]

    def _probe_first_frame(self) -> tuple[_Orientation, tuple[int, int]]:
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
                    return _orientation_of(frame), (int(frame.width), int(frame.height))
            if damage:
                raise UserError(
                    f"cannot decode {self.path}: none of its video frames could be decoded, it is "
                    f"truncated or corrupt ({damage.describe()})"
                )
            raise UserError(f"{self.path} has no video frames (empty, truncated or corrupt)")
        finally:
            container.close()

    def _setup(self, orientation: _Orientation, stored_size: tuple[int, int]) -> None:
        container = self._container
        assert container is not None
        stream = self._video_stream_of(container)
        self._stream = stream
        self._orientation = orientation
        self.time_base: Fraction = stream.time_base or Fraction(1, 90000)
        audio = container.streams.audio
        self.audio_stream: av.audio.stream.AudioStream | None = audio[0] if audio else None

        ctx = stream.codec_context
        width, height = stored_size
        if width <= 0 or height <= 0:
            raise UserError(f"cannot read {self.path}: the video stream has no frame size")
        if orientation.swaps_dims:
            width, height = height, width

        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if rate is None or rate <= 0:
            log.warning("%s declares no frame rate; assuming 30 fps", self.path)
            rate = Fraction(30)
        self._rate = Fraction(rate)

        # Video-only duration: the stream's own, else Matroska/WebM's per-track DURATION tag.
        self._video_duration: float | None = None
        if stream.duration is not None and stream.duration > 0:
            self._video_duration = float(stream.duration * self.time_base)
        else:
            self._video_duration = _parse_hms(stream.metadata.get("DURATION"))
        self._container_duration: float | None = (
            container.duration / av.time_base if container.duration and container.duration > 0 else None
        )
        self._container_start = (
            container.start_time / av.time_base if container.start_time is not None else 0.0
        )
        duration = self._video_duration or self._container_duration

        self.info = VideoInfo(
            width=width,
            height=height,
            fps=float(self._rate),
            frame_count=int(stream.frames) if stream.frames else None,
            duration=duration,
            rotation=orientation.rotation,
            has_audio=self.audio_stream is not None,
            codec=ctx.name or "unknown",
        )

    # -- streaming ------------------------------------------------------------------------

    def frames(self, audio_sink: Callable[[av.Packet], None] | None = None, prefetch: int = 2,
               prepare: Callable[[DecodedFrame], Any] | None = None) -> Iterator[Any]:
        """Yield upright frames in presentation order; hand every audio packet to ``audio_sink``.

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
        """
        if self._container is None:
            raise RuntimeError("VideoReader is closed")
        if self._consumed:
            raise RuntimeError("VideoReader.frames() can be iterated only once; open a new reader")
        self._consumed = True
        if prefetch <= 0:
            for kind, item in self._items(audio_sink is not None, prepare):
                if kind == "audio":
                    audio_sink(item)  # type: ignore[misc]
                else:
                    yield item
            return
        yield from self._prefetched(audio_sink, prefetch, prepare)

    def _prefetched(self, audio_sink: Callable[[av.Packet], None] | None, depth: int,
                    prepare: Callable[[DecodedFrame], Any] | None) -> Iterator[Any]:
        items: queue.Queue = queue.Queue(maxsize=depth)
        stop = threading.Event()
        done = object()

        def work() -> None:
            try:
                for item in self._items(audio_sink is not None, prepare):
                    while not stop.is_set():
                        try:
                            items.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                items.put(("end", done))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
                items.put(("error", exc))

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
                    audio_sink(item)  # type: ignore[misc]
                else:
                    yield item
        finally:
            stop.set()
            worker.join()

    def _items(self, want_audio: bool, prepare: Callable[[DecodedFrame], Any] | None = None
               ) -> Iterator[tuple[str, Any]]:
        """("audio", packet) and ("frame", frame or prepare(frame)) in file order (see :meth:`frames`)."""

        stream = self._stream
        stream.thread_type = "AUTO"
        # Audio is always demuxed (cheap: the demuxer reads its packets anyway) so its end time
        # can tell a truncated file from a short video; it is handed on only to a sink.
        wanted = [stream] + ([self.audio_stream] if self.audio_stream is not None else [])
        audio_index = self.audio_stream.index if self.audio_stream is not None else None

        index = 0
        video_end: float | None = None  # seconds covered by decoded frames
        audio_end: float | None = None  # seconds covered by audio packets
        damage = _Damage()
        for packet in _packets(self._container, wanted, damage):
            if packet.stream.index == audio_index:
                if packet.dts is None:  # dts None marks the demuxer's flush packet
                    continue
                if packet.pts is not None and packet.time_base:
                    end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                    audio_end = end if audio_end is None else max(audio_end, end)
                if want_audio:
                    yield "audio", packet  # errors in the sink are the sink's, not the input's
                continue
            decoded = _decode(packet, damage)
            while decoded:
                frame = decoded.pop(0)
                out = self._convert(frame, index)
                dur = frame.duration if frame.pts is not None and frame.duration else None
                end = out.time + (float(dur * self.time_base) if dur else 1.0 / float(self._rate))
                video_end = end if video_end is None else max(video_end, end)
                del frame
                index += 1
                yield "frame", out if prepare is None else prepare(out)
                del out

        self._report_losses(index, video_end, audio_end, damage)

    def _convert(self, frame: av.VideoFrame, index: int) -> DecodedFrame:
        rgb8 = frame.to_ndarray(format="rgb24", interpolation=self._sws)
        rgb8 = self._orientation.apply(rgb8)
        if rgb8.shape[:2] != (self.info.height, self.info.width):
            # Mid-stream resolution change (rare, e.g. some screen recordings): keep the contract
            # that every frame has the size in ``info``, which the writer was created with.
            rgb8 = cv2.resize(rgb8, (self.info.width, self.info.height), interpolation=cv2.INTER_AREA)
        pts = frame.pts
        time = float(pts * self.time_base) if pts is not None else index / float(self._rate)
        return DecodedFrame(index=index, pts=pts, time=time, rgb8=rgb8)

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
        if declared:
            missing = declared - decoded
            # The slack is for edit lists; once packets were skipped, every missing frame is lost.
            slack = 0 if damaged else max(_MISSING_FRAMES_ABS, _MISSING_FRAMES_FRAC * declared)
            if missing > slack:
                return f"declares {declared} frames but only {decoded} could be decoded"
            return None
        # No frame count (Matroska, WebM, streams): compare the time covered with the declared
        # duration, video against video, else everything against the container's.
        if self._video_duration and video_end is not None:
            start = float(self._stream.start_time * self.time_base) if self._stream.start_time else 0.0
            expected, covered = self._video_duration, video_end - start
        elif self._container_duration and video_end is not None:
            expected = self._container_duration
            covered = max(video_end, audio_end or video_end) - self._container_start
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
    container: av.container.InputContainer, streams: list[av.stream.Stream], damage: _Damage
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
        except _AV_ERRORS as exc:
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
    except _AV_ERRORS as exc:
        damage.bad_packets += 1
        damage.note(exc)
        return []


# --------------------------------------------------------------------------------------------
# Writing video
# --------------------------------------------------------------------------------------------


def fps_fraction(fps: float | Fraction) -> Fraction:
    """Exact rational frame rate for a float one: 29.97... -> 30000/1001, 25.0 -> 25."""
    if isinstance(fps, Fraction):
        return fps
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    ntsc = Fraction(fps).limit_denominator(1001)
    if abs(float(ntsc) - fps) < 1e-6 * fps:
        return ntsc
    return Fraction(fps).limit_denominator(1_000_000)


def _can_remux(format_name: str, template: av.stream.Stream) -> bool:
    """Whether ``template`` can be copied into ``format_name`` without re-encoding.

    Asking the muxer to write a real header into memory is the only reliable test: the format's
    codec tag tables (``supported_codecs``) accept some codecs its header writer then rejects.
    """
    try:
        with av.open(io.BytesIO(), mode="w", format=format_name) as probe:
            probe.add_stream_from_template(template)
            probe.start_encoding()
        return True
    except Exception:  # noqa: BLE001 - any failure just means "not remuxable"
        return False


_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)


class VideoWriter:
    """H.264 writer with input-matching timing and pass-through audio; atomic output.

    Use as a context manager: leaving the block normally closes (flush + rename over ``path``),
    leaving it with an exception aborts (temp file deleted, existing ``path`` untouched).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        width: int,
        height: int,
        fps: float,
        time_base: Fraction | None = None,
        audio_template: av.audio.stream.AudioStream | None = None,
        crf: int = 18,
        preset: str = "medium",
        *,
        fast_color: bool = False,
        pix_fmt: str | None = None,
        background: bool = True,
    ) -> None:
        self.path = Path(path)
        # Encoding runs on one worker thread (PyAV releases the GIL inside FFmpeg), so the caller's
        # next frame is decoded and processed while this one is converted and encoded. Every
        # container operation (video and audio) goes through that one thread, in call order.
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="mvstylizer-encode") if background else None
        self._pending: deque[Future] = deque()
        self._sws = None if fast_color else _SWS_ACCURATE_ENCODE
        self._pix_fmt_wanted = pix_fmt  # None: 4:2:0 where the size allows (see _setup_video)
        suffix = self.path.suffix.lower()
        if suffix not in WRITABLE_VIDEO_EXTS:
            raise UserError(
                f"cannot write video {self.path}: use one of {', '.join(sorted(WRITABLE_VIDEO_EXTS))}"
            )
        if not self.path.parent.is_dir():
            raise UserError(f"output folder does not exist: {self.path.parent}")
        if int(width) <= 0 or int(height) <= 0:
            raise ValueError(f"bad video size {width}x{height}")
        self.width, self.height = int(width), int(height)
        self.rate = fps_fraction(fps)
        self.time_base: Fraction = Fraction(time_base) if time_base else 1 / self.rate
        self.frames_written = 0
        self._last_pts: int | None = None
        self._closed = False
        self._audio_mode = "none"  # "copy" | "aac" | "none"
        self._audio_failed = False

        self._target = _TempTarget(self.path)
        try:
            self._container = av.open(str(self._target.temp), mode="w")
        except _AV_ERRORS as exc:
            self._target.discard()
            raise UserError(f"cannot create {self.path}: {_reason(exc)}") from exc
        try:
            self._setup_video(crf, preset)
            if audio_template is not None:
                self._setup_audio(audio_template)
        except BaseException:
            self.abort()
            raise

    def _setup_video(self, crf: int, preset: str) -> None:
        stream = self._container.add_stream(
            "libx264", rate=self.rate, options={"crf": str(int(crf)), "preset": str(preset)}
        )
        stream.width, stream.height = self.width, self.height
        # 4:2:0 needs even dimensions. For odd sizes (e.g. 1919x1079) use 4:4:4 rather than crop
        # or pad, so the output keeps the input's exact size (High 4:4:4 profile; fine for
        # FFmpeg-based players, some hardware decoders refuse it).
        even = self.width % 2 == 0 and self.height % 2 == 0
        self._pix_fmt = self._pix_fmt_wanted or ("yuv420p" if even else "yuv444p")
        stream.pix_fmt = self._pix_fmt
        # Keep the input's time base so the input pts can be reused verbatim (exact timing).
        # AVI is the exception: it counts frames, one tick per frame, so it needs 1/fps (with a
        # 1/10240 clock it would declare 10240 fps and pad with empty frames).
        if self._container.format.name == "avi":
            self._enc_tb = 1 / self.rate
            # AVI stores no presentation times, only decode order: B-frames would scramble pts.
            stream.codec_context.max_b_frames = 0
        else:
            self._enc_tb = self.time_base
        stream.time_base = self._enc_tb
        ctx = stream.codec_context
        ctx.time_base = self._enc_tb
        # Convert and tag as BT.709 limited range, so players don't guess (and guess differently).
        ctx.colorspace = 1  # AVCOL_SPC_BT709
        ctx.color_primaries = 1  # AVCOL_PRI_BT709
        ctx.color_trc = 1  # AVCOL_TRC_BT709
        ctx.color_range = 1  # AVCOL_RANGE_MPEG
        self._video = stream

    def _setup_audio(self, template: av.audio.stream.AudioStream) -> None:
        fmt = self._container.format.name
        if _can_remux(fmt, template):
            self._audio = self._container.add_stream_from_template(template)
            self._audio_mode = "copy"
            return
        try:
            in_ctx = template.codec_context
            rate = int(in_ctx.sample_rate or 48000)
            if rate not in _AAC_RATES:
                rate = 48000
            channels = in_ctx.layout.nb_channels if in_ctx.layout else 2
            layout = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}.get(channels, "stereo")
            self._audio = self._container.add_stream("aac", rate=rate, layout=layout)
            self._audio.codec_context.bit_rate = 64000 * min(channels, 2) + 32000 * max(channels - 2, 0)
            self._audio_decoder = in_ctx
            self._audio_rate = rate
            self._audio_mode = "aac"
            log.info("audio %s cannot be copied into %s; re-encoding it as AAC", in_ctx.name, fmt)
        except Exception as exc:  # noqa: BLE001 - fall back to a silent video, loudly
            log.warning("dropping the audio track: cannot copy or re-encode it for %s (%s)", self.path, exc)
            self._audio_mode = "none"

    # -- writing --------------------------------------------------------------------------

    def write(self, rgb8: np.ndarray, pts: int | None = None) -> None:
        """Encode one upright frame. ``pts`` is in :attr:`time_base`; ``None`` -> from the index.

        Timestamps must increase; a non-increasing one (broken input) is nudged one tick forward
        rather than making the encoder fail.
        """
        if self._closed:
            raise RuntimeError("VideoWriter is closed")
        if rgb8.dtype != np.uint8 or rgb8.shape != (self.height, self.width, 3):
            raise ValueError(
                f"expected {self.height}x{self.width}x3 uint8, got {rgb8.shape} {rgb8.dtype}"
            )
        if pts is None:
            pts = round(self.frames_written / (self.rate * self._enc_tb))
        elif self._enc_tb != self.time_base:
            pts = round(pts * self.time_base / self._enc_tb)
        pts = int(pts)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts

        # A copy in the caller's thread: the caller may reuse its array as soon as this returns.
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb8), format="rgb24")
        self._run(self._encode_video, frame, pts)
        self.frames_written += 1

    def _encode_video(self, frame: av.VideoFrame, pts: int) -> None:
        frame = frame.reformat(
            format=self._pix_fmt, dst_colorspace="ITU709", dst_color_range="MPEG", interpolation=self._sws
        )
        frame.pts = pts
        frame.time_base = self._enc_tb
        try:
            for packet in self._video.encode(frame):
                self._container.mux(packet)
        except _AV_ERRORS as exc:
            raise UserError(f"failed writing {self.path}: {_reason(exc)}") from exc

    def _run(self, fn: Callable[..., None], *args: object) -> None:
        """``fn(*args)`` on the encode thread (or here without one). At most two jobs wait, which
        bounds the frames held in memory; the first failure surfaces on the next call."""
        if self._worker is None:
            fn(*args)
            return
        self._pending.append(self._worker.submit(fn, *args))
        while self._pending and (len(self._pending) > 2 or self._pending[0].done()):
            self._pending.popleft().result()

    def _drain(self) -> None:
        """Wait for every queued job; re-raises the first failure."""
        while self._pending:
            self._pending.popleft().result()

    def mux_audio(self, packet: av.Packet) -> None:
        """Audio sink for :meth:`VideoReader.frames`: copy (or re-encode) one input audio packet.

        An audio failure drops the rest of the audio with a warning instead of failing the video.
        """
        if self._closed or self._audio_mode == "none" or self._audio_failed or packet.dts is None:
            return
        self._run(self._mux_audio, packet)

    def _mux_audio(self, packet: av.Packet) -> None:
        if self._audio_failed:
            return
        try:
            if self._audio_mode == "copy":
                packet.stream = self._audio
                self._container.mux(packet)
            else:
                for frame in self._audio_decoder.decode(packet):
                    self._encode_audio(frame)
        except _AV_ERRORS as exc:
            self._audio_failed = True
            log.warning("dropping the rest of the audio of %s: %s", self.path, _reason(exc))

    def _encode_audio(self, frame: av.AudioFrame | None) -> None:
        if frame is not None and frame.pts is not None and frame.time_base:
            # Keep the input's audio timing (A/V sync) in the encoder's 1/sample_rate clock.
            out_tb = Fraction(1, self._audio_rate)
            frame.pts = round(frame.pts * frame.time_base / out_tb)
            frame.time_base = out_tb
        for packet in self._audio.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        """Flush the encoder, finish the container and atomically rename it over ``path``."""
        if self._closed:
            return
        if self.frames_written == 0:
            self.abort()
            raise UserError(f"no frames were written to {self.path}")
        try:
            self._drain()
            self._stop_worker()
            for packet in self._video.encode(None):
                self._container.mux(packet)
            if self._audio_mode == "aac" and not self._audio_failed:
                try:
                    for frame in self._audio_decoder.decode(None):
                        self._encode_audio(frame)
                    self._encode_audio(None)
                except _AV_ERRORS as exc:
                    log.warning("audio of %s may end early: %s", self.path, _reason(exc))
            self._container.close()
        except _AV_ERRORS as exc:
            self.abort()
            raise UserError(f"failed writing {self.path}: {_reason(exc)}") from exc
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._target.commit()

    def abort(self) -> None:
        """Give up: close the container and delete the temp file; ``path`` is left untouched."""
        if self._closed:
            return
        self._closed = True
        try:
            self._stop_worker()
            self._container.close()
        except BaseException:  # noqa: BLE001 - the file is being thrown away anyway
            pass
        self._target.discard()

    def _stop_worker(self) -> None:
        """Let the queued jobs finish (their errors no longer matter here) and end the thread."""
        if self._worker is not None:
            self._pending.clear()
            self._worker.shutdown(wait=True)
            self._worker = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------

_EXIF_ORIENTATION_TAG = 0x0112
_EXIF_OPS = {2: "hflip", 3: "rot180", 4: "vflip", 5: "transpose", 6: "clock", 7: "antitranspose", 8: "cclock"}


def _exif_orientation(path: Path) -> int:
    """EXIF orientation (1-8) read with Pillow's lazy header parse; 1 if none or unreadable."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            value = int(im.getexif().get(_EXIF_ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - no EXIF / format Pillow lacks -> as stored
        return 1
    return value if 1 <= value <= 8 else 1


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a still image as HxWx3 float32 RGB in [0, 1].

    Grey becomes 3 equal channels; an alpha channel is composited onto white (transparent areas of
    a style photo should read as paper, not as whatever colour the hidden pixels hold); 8- and
    16-bit and float images are scaled to [0, 1]; the EXIF orientation is applied so the image is
    upright the way photo viewers show it.
    """
    p = Path(path)
    if not p.exists():
        raise UserError(f"image not found: {p}")
    if p.is_dir():
        raise UserError(f"{p} is a folder, not an image")
    try:
        data = np.fromfile(p, dtype=np.uint8)  # + imdecode: works for non-ASCII paths too
    except OSError as exc:
        raise UserError(f"cannot read {p}: {_reason(exc)}") from exc
    if data.size == 0:
        raise UserError(f"image {p} is empty (0 bytes)")
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)  # we handle orientation/channels ourselves
    except cv2.error:
        img = None
    if img is None or img.size == 0:
        raise UserError(f"{p} is not a readable image (supported: {', '.join(sorted(IMAGE_EXTS))})")

    if img.dtype == np.uint8:
        scaled = img.astype(np.float32) * np.float32(1 / 255)
    elif img.dtype == np.uint16:
        scaled = img.astype(np.float32) * np.float32(1 / 65535)
    elif img.dtype in (np.float32, np.float64, np.float16):
        scaled = np.nan_to_num(img.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    else:
        raise UserError(f"{p} has an unsupported pixel type ({img.dtype})")
    scaled = np.clip(scaled, 0.0, 1.0, out=scaled)

    if scaled.ndim == 2:
        rgb = np.repeat(scaled[:, :, None], 3, axis=2)
    elif scaled.shape[2] == 1:
        rgb = np.repeat(scaled, 3, axis=2)
    elif scaled.shape[2] == 2:  # grey + alpha
        grey, alpha = scaled[:, :, :1], scaled[:, :, 1:2]
        rgb = np.repeat(grey * alpha + (1.0 - alpha), 3, axis=2)
    elif scaled.shape[2] == 3:
        rgb = scaled[:, :, ::-1]
    else:  # BGRA (and CMYK-ish 4+ channel oddities): composite the first alpha onto white
        bgr, alpha = scaled[:, :, :3], scaled[:, :, 3:4]
        rgb = (bgr * alpha + (1.0 - alpha))[:, :, ::-1]

    op = _EXIF_OPS.get(_exif_orientation(p))
    if op is not None:
        rgb = _Orientation(op=op).apply(rgb)
    return np.ascontiguousarray(rgb, dtype=np.float32)


def write_image(path: str | os.PathLike[str], rgb: np.ndarray) -> None:
    """Write HxWx3 RGB (float in [0, 1] or uint8; uint16 kept 16-bit for PNG/TIFF) atomically."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in IMAGE_EXTS:
        raise UserError(f"cannot write image {p}: use one of {', '.join(sorted(IMAGE_EXTS))}")
    if not p.parent.is_dir():
        raise UserError(f"output folder does not exist: {p.parent}")
    arr = np.asarray(rgb)
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError(f"expected HxWx3 or HxW image, got shape {arr.shape}")
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
    params: list[int] = []
    if suffix in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, 95]
    elif suffix == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, 95]
    try:
        ok, buf = cv2.imencode(suffix, out, params)
    except cv2.error as exc:
        raise UserError(f"cannot encode {p}: {str(exc).strip().splitlines()[-1]}") from exc
    if not ok:
        raise UserError(f"cannot encode {p} as {suffix}")
    try:
        with atomic_path(p) as tmp:
            tmp.write_bytes(buf.tobytes())
    except OSError as exc:
        raise UserError(f"cannot write {p}: {_reason(exc)}") from exc
