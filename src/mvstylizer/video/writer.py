"""Encoding: H.264 with the input's exact timing, audio copied through, never a half-written file.

Output timing must match the input exactly (same frame count, fps, duration, audio sync), so the
writer keeps the input's time base and presentation timestamps and copies the audio packets through
untouched whenever the target container accepts them (else re-encodes them to AAC). Every audio track
it is given is kept, in order, with its language, title and disposition. Pixels are stored upright
with no rotation metadata, so every player shows the output the same way.
"""

from __future__ import annotations

import io
import logging
import math
import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from mvstylizer.errors import UserError
from mvstylizer.files import TempTarget

from .formats import WRITABLE_VIDEO_EXTS
from .reader import AV_ERRORS, SWS_ACCURATE_ENCODE, ffmpeg_name, reason

log = logging.getLogger(__name__)


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


# libx264 takes no side over this; FFmpeg no picture of (w + 128) x (h + 128) pixels from INT_MAX / 8 up.
H264_MAX_SIDE = 16384
_MAX_PADDED_PIXELS = (2**31 - 1) // 8


def fits_h264(width: int, height: int) -> bool:
    """Whether the encoder opens for a ``width`` x ``height`` picture."""
    return max(width, height) <= H264_MAX_SIDE and (width + 128) * (height + 128) < _MAX_PADDED_PIXELS


def _can_remux(format_name: str, template: av.stream.Stream) -> bool:
    """Whether ``template`` can be copied into ``format_name`` without re-encoding.

    Asking the muxer to write a real header into memory is the only reliable test: the format's
    codec tag tables (``supported_codecs``) accept some codecs its header writer then rejects.
    """
    layout = getattr(getattr(template, "codec_context", None), "layout", None)
    if format_name in ("mp4", "ipod", "mov") and layout is not None and layout.name.endswith(" channels"):
        # Channels in no stated order (stereo PCM from AVI or MKV): the MP4 muxer takes the header and
        # refuses at the trailer, after the whole video is encoded. Re-encoded, they get one.
        return False
    codec = getattr(getattr(template, "codec_context", None), "name", None) or ""
    if format_name == "mp4" and codec.startswith("pcm_"):
        # FFmpeg stores PCM in MP4 as ISO 23003-5 'ipcm', a recent addition many players do not decode
        # yet (they play the video silent); .m4v refuses it already. AAC, as ffmpeg itself writes to .mp4.
        # MOV, MKV and AVI have always held PCM.
        return False
    try:
        with av.open(io.BytesIO(), mode="w", format=format_name) as probe:
            probe.add_stream_from_template(template)
            probe.start_encoding()
        return True
    except Exception:  # any failure just means "not remuxable"
        return False


# A bad audio packet (a duplicate, a corrupt frame) costs that packet only, as in FFmpeg; audio the muxer
# or encoder keeps refusing is dropped after this many errors in a row rather than fail every packet.
_MAX_AUDIO_ERRORS = 8

_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)
# FFmpeg's layout for so many channels in no stated order (av_channel_layout_default), up to 7.1.
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def _aac_takes(layout: str, rate: int) -> bool:
    """Whether FFmpeg's AAC encoder opens for ``layout`` (most named layouts up to 16 channels)."""
    ctx = av.CodecContext.create("aac", "w")
    try:
        ctx.layout, ctx.sample_rate, ctx.format = layout, rate, "fltp"
        ctx.open()
        return True
    except Exception:  # any failure just means "not this layout"
        return False


def _aac_layout(layout: av.AudioLayout | None, rate: int) -> str:
    """The layout audio in ``layout`` is re-encoded to: its own where it has a name the encoder takes,
    else FFmpeg's default for as many channels (at most 8: more are mixed down)."""
    if layout is None or layout.nb_channels < 1:
        return "stereo"
    if not layout.name.endswith(" channels") and _aac_takes(layout.name, rate):
        return layout.name
    return _DEFAULT_LAYOUTS[min(layout.nb_channels, 8)]


# Stream tags that say what an audio track is: kept on its output track (a template copies none).
_TRACK_TAGS = ("language", "title")


class _AudioTrack:
    """One input audio track's way into the output: copied, or re-encoded to AAC, or dropped."""

    def __init__(self, source: int, name: str) -> None:
        self.source = source  # the input stream's index (its packets' packet.stream.index)
        self.name = name  # for messages: "the audio" or "audio track 2"
        self.only = name == "the audio"  # the output's one audio track: messages need not say which
        self.stream: av.audio.stream.AudioStream | None = None
        self.mode = "none"  # "copy" | "aac" | "none"
        self.decoder: av.audio.codeccontext.AudioCodecContext | None = None  # "aac": the input's decoder
        self.rate = 0  # "aac": the output's sample rate
        self.failed = False
        self.errors = 0  # in a row
        self.skipped = 0
        self.reason: str | None = None  # the first skipped packet's, for the warning
        self.last_dts: Fraction | None = None  # seconds, of the last copied packet
        self.start: Fraction | None = None  # seconds, of the first packet or frame handed in
        # "copy": the input's decoder, each packet tried on it before it is copied (None: not checked)
        self.check: av.audio.codeccontext.AudioCodecContext | None = None
        self.decoded = False  # "copy": the check has decoded a packet (so its decoder works here)
        self.undecodable = 0  # "copy": packets copied although they did not decode
        self.undecodable_reason: str | None = None
        self.shift: int | None = None  # AVI: ticks added to every packet (see VideoWriter._mux_packet)

    def skip(self, why: str) -> None:
        self.skipped += 1
        if self.reason is None:
            self.reason = why


def _templates(
    audio_template: av.audio.stream.AudioStream | Sequence[av.audio.stream.AudioStream] | None,
) -> list[av.audio.stream.AudioStream]:
    if audio_template is None:
        return []
    if isinstance(audio_template, av.audio.stream.AudioStream):
        return [audio_template]
    return list(audio_template)


def _say_tracks_left_out(template: av.audio.stream.AudioStream) -> None:
    """Where a caller keeps one track of an input that has more, tell the user which one stays."""
    container = getattr(template, "container", None)
    audio = list(getattr(getattr(container, "streams", None), "audio", None) or [])
    if container is not None and len(audio) > 1 and template in audio:
        lang = template.metadata.get("language")
        log.warning("%s has %d audio tracks; only track %d%s is kept", container.name, len(audio),
                    audio.index(template) + 1, f" ({lang})" if lang else "")


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
        audio_template: av.audio.stream.AudioStream | Sequence[av.audio.stream.AudioStream] | None = None,
        crf: int = 18,
        preset: str = "medium",
        *,
        fast_color: bool = False,
        pix_fmt: str | None = None,
        background: bool = True,
        metadata: Mapping[str, str] | None = None,
        timecode: str | None = None,
    ) -> None:
        self.path = Path(path)
        # Encoding runs on one worker thread (PyAV releases the GIL inside FFmpeg), so the caller's
        # next frame is decoded and processed while this one is converted and encoded. Every
        # container operation (video and audio) goes through that one thread, in call order.
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="mvstylizer-encode") if background else None
        self._pending: deque[Future] = deque()
        self._sws = None if fast_color else SWS_ACCURATE_ENCODE
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
        if not fits_h264(self.width, self.height):
            # Else the encoder refuses it with no more than "Generic error in an external library".
            raise UserError(f"cannot write {self.path}: a {self.width}x{self.height} video is larger than H.264 "
                            f"output can hold (at most {H264_MAX_SIDE} pixels a side)")
        self.rate = fps_fraction(fps)
        self.time_base: Fraction = Fraction(time_base) if time_base else 1 / self.rate
        self.frames_written = 0
        self.frames_dropped = 0  # AVI only: frames of a variable rate that found no slot (see _place)
        self._last_pts: int | None = None
        # The newest video packet waits until the next one (or the end): the last one's duration must be
        # set so that the track covers the last frame (see _mux_video).
        self._held: av.Packet | None = None
        self._first_dts: int | None = None
        self._first_pts: int | None = None  # the first frame's, in the encoder's clock
        # How long the last frame is shown, in time_base ticks (VideoReader.last_frame_ticks); None: one
        # frame at the nominal rate. Set before close().
        self.last_frame_ticks: int | None = None
        self._dts_timed = suffix in (".mp4", ".mov", ".m4v")  # ISO media: sample times are dts steps
        self._closed = False
        # Per input audio stream index, in the templates' order (the output's track order).
        self._tracks: dict[int, _AudioTrack] = {}

        self._target = TempTarget(self.path)
        try:
            self._container = av.open(ffmpeg_name(self._target.temp), mode="w")
        except AV_ERRORS as exc:
            self._target.discard()
            raise UserError(f"cannot create {self.path}: {reason(exc)}") from exc
        try:
            self._setup_video(crf, preset)
            templates = _templates(audio_template)
            if len(templates) == 1 and isinstance(audio_template, av.stream.Stream):
                _say_tracks_left_out(templates[0])
            for number, template in enumerate(templates, 1):
                if template.index in self._tracks:
                    continue  # the same track given twice
                name = f"audio track {number}" if len(templates) > 1 else "the audio"
                track = self._tracks[template.index] = _AudioTrack(template.index, name)
                self._setup_audio(template, track)
            self._container.metadata.update(metadata or {})
            if timecode:  # MP4 and MOV store it as a timecode track, Matroska as a tag
                self._video.metadata["timecode"] = timecode
            self._start()
        except BaseException:
            self.abort()
            raise

    def _start(self) -> None:
        """Create the file and write its header now (PyAV would on the first packet), so an output that
        cannot be written fails here, with its own error, before any work and before the first audio
        packet could fail on it and drop the audio."""
        try:
            self._container.start_encoding()
        except AV_ERRORS as exc:
            raise UserError(f"cannot create {self.path}: {reason(exc)}") from exc

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
        self._one_per_slot = self._container.format.name == "avi"
        if self._one_per_slot:
            self._enc_tb = 1 / self.rate
            # AVI stores no presentation times, only decode order: B-frames would scramble pts.
            stream.codec_context.max_b_frames = 0
        else:
            self._enc_tb = self.time_base
        stream.time_base = self._enc_tb
        self._frame_ticks = max(1, round(1 / (self.rate * self._enc_tb)))  # one frame at the nominal rate
        ctx = stream.codec_context
        ctx.time_base = self._enc_tb
        # Convert and tag as BT.709 limited range, so players don't guess (and guess differently).
        ctx.colorspace = 1  # AVCOL_SPC_BT709
        ctx.color_primaries = 1  # AVCOL_PRI_BT709
        ctx.color_trc = 1  # AVCOL_TRC_BT709
        ctx.color_range = 1  # AVCOL_RANGE_MPEG
        self._video = stream

    def _setup_audio(self, template: av.audio.stream.AudioStream, track: _AudioTrack) -> None:
        fmt = self._container.format.name
        if _can_remux(fmt, template):
            track.stream = self._container.add_stream_from_template(template)
            track.mode, track.check = "copy", template.codec_context
            self._label(track.stream, template)
            return
        try:
            in_ctx = template.codec_context
            rate = int(in_ctx.sample_rate or 48000)
            if rate not in _AAC_RATES:
                rate = 48000
            layout = _aac_layout(in_ctx.layout, rate)
            stream = self._container.add_stream("aac", rate=rate, layout=layout)
            kept = stream.codec_context.layout.nb_channels
            stream.codec_context.bit_rate = 64000 * min(kept, 2) + 32000 * max(kept - 2, 0)
            track.stream, track.decoder, track.rate, track.mode = stream, in_ctx, rate, "aac"
            self._label(stream, template)
            log.info("%s (%s) cannot be copied into %s; re-encoding it as AAC", track.name, in_ctx.name, fmt)
            channels = in_ctx.layout.nb_channels if in_ctx.layout else kept
            if kept < channels:
                log.warning("%s of %s is re-encoded as AAC, which keeps %d of its %d channels (%s)",
                            track.name.capitalize(), self.path, kept, channels, layout)
        except Exception as exc:  # fall back to a silent video, loudly
            log.warning("dropping %s: cannot copy or re-encode it for %s (%s)",
                        "the audio track" if track.only else track.name, self.path, exc)
            track.mode = "none"

    @staticmethod
    def _label(stream: av.stream.Stream, template: av.stream.Stream) -> None:
        """What the track is, as the input says: its language and title, and its disposition (default,
        commentary, dub...), which a template does not copy."""
        tags = dict(template.metadata)
        if "name" in tags and "title" not in tags:  # a MOV track's title, as FFmpeg reads it back
            tags["title"] = tags["name"]
        for key in _TRACK_TAGS:
            if tags.get(key):
                stream.metadata[key] = tags[key]
        stream.disposition = template.disposition

    # -- writing --------------------------------------------------------------------------

    def write(self, rgb8: np.ndarray, pts: int | None = None) -> None:
        """Encode one upright frame. ``pts`` is in :attr:`time_base`; ``None`` -> from the index.

        Timestamps must increase; a non-increasing one (broken input) is nudged one tick forward
        rather than making the encoder fail. AVI holds one frame per 1/fps: there a frame that would
        land more than a slot after its time is dropped (see :meth:`_place`).
        """
        if self._closed:
            raise RuntimeError("VideoWriter is closed")
        if rgb8.dtype != np.uint8 or rgb8.shape != (self.height, self.width, 3):
            raise ValueError(
                f"expected {self.height}x{self.width}x3 uint8, got {rgb8.shape} {rgb8.dtype}"
            )
        placed = self._place(pts)
        if placed is None:
            self.frames_dropped += 1
            return

        # A copy in the caller's thread: the caller may reuse its array as soon as this returns.
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb8), format="rgb24")
        self._run(self._encode_video, frame, placed)
        self.frames_written += 1

    def _place(self, pts: int | None) -> int | None:
        """The frame's pts in the encoder's clock, after the previous frame's; None: drop the frame.

        In AVI a tick is a frame slot (1/fps), so frames of a variable rate that come closer together
        (a burst) share slots. Pushing each on into the next slot piled up: after a burst the video
        ran up to 1.5 s behind its audio. As FFmpeg does for a constant-rate output, a frame is kept
        at most one slot late and dropped beyond that; a gap stays a gap (the AVI muxer repeats the
        frame before it).
        """
        if pts is None:
            exact = Fraction(self.frames_written) / (self.rate * self._enc_tb)
        else:
            exact = pts * self.time_base / self._enc_tb
        placed = round(exact)
        if self._last_pts is not None and placed <= self._last_pts:
            placed = self._last_pts + 1
            if self._one_per_slot and placed - exact > 1:
                return None
        self._last_pts = placed
        if self._first_pts is None:
            self._first_pts = placed
        return placed

    def _encode_video(self, frame: av.VideoFrame, pts: int) -> None:
        frame = frame.reformat(
            format=self._pix_fmt, dst_colorspace="ITU709", dst_color_range="MPEG", interpolation=self._sws
        )
        frame.pts = pts
        frame.time_base = self._enc_tb
        try:
            for packet in self._video.encode(frame):
                self._mux_video(packet)
        except AV_ERRORS as exc:
            raise UserError(f"failed writing {self.path}: {reason(exc)}") from exc

    def _mux_video(self, packet: av.Packet | None) -> None:
        """Mux the packet held back and hold ``packet``; None (at the end) muxes the last one, its
        duration stretched to the end of the last frame. x264 gives every packet one frame of duration
        and dts two frames behind the pts: the track (from the first dts, by dts steps, plus the last
        packet's duration) then ended where the last *decoded* packet did. With a variable rate whose
        last frame came late (frames at 0, 0.1, 0.2, 0.3, 1.3 s), an MP4 lasted 0.5 s and the last
        frame lay past its end. Matroska times the track by pts and was right already. The track's
        dts run from the first frame's pts less the encoder's delay, not from 0: a video that starts
        later than its file (0.5 s after its audio) had that start added to its last frame."""
        held, self._held = self._held, packet
        if packet is not None and self._first_dts is None:
            self._first_dts = packet.dts
        if held is None:
            return
        first, start, last_pts, dts = self._first_dts, self._first_pts, self._last_pts, held.dts
        if (packet is None and self._dts_timed and first is not None and start is not None and last_pts is not None
                and dts is not None):
            shown = self._frame_ticks
            if self.last_frame_ticks:
                shown = max(1, round(self.last_frame_ticks * self.time_base / self._enc_tb))
            end = last_pts + shown  # the last frame's own pts plus how long it is shown
            held.duration = max(int(held.duration or 0), end + (first - start) - dts)
        self._container.mux(held)

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
        """Audio sink for :meth:`VideoReader.frames`: copy (or re-encode) one input audio packet into
        the track made from its stream (``packet.stream``); a packet of a track not kept is ignored.

        A packet that cannot be muxed or decoded is skipped (counted in one warning at the end); only
        audio that keeps failing is dropped, and never fails the video.
        """
        if self._closed or packet.dts is None:
            return
        track = self._tracks.get(packet.stream.index)
        if track is None or track.mode == "none" or track.failed:
            return
        self._run(self._mux_audio, track, packet)

    def _mux_audio(self, track: _AudioTrack, packet: av.Packet) -> None:
        if track.failed:
            return
        if track.start is None and packet.pts is not None and packet.time_base:
            track.start = packet.pts * packet.time_base
        try:
            if track.mode == "copy":
                self._copy_audio(track, packet)
            else:
                assert track.decoder is not None
                for frame in track.decoder.decode(packet):
                    self._encode_audio(track, frame)
        except AV_ERRORS as exc:
            track.skip(reason(exc))
            track.errors += 1
            track.failed = track.errors >= _MAX_AUDIO_ERRORS
            return
        track.errors = 0

    def _copy_audio(self, track: _AudioTrack, packet: av.Packet) -> None:
        # Without a dts (a demuxer that leaves it to the muxer) there is nothing to compare: muxed as is.
        dts = None if packet.dts is None or not packet.time_base else packet.dts * packet.time_base
        if dts is not None and track.last_dts is not None and dts <= track.last_dts:
            # A repeated or out-of-order packet (a glitch players ignore): muxers refuse a DTS that
            # does not increase, so it is dropped; it is no sign that the audio after it is bad.
            track.skip("its timestamp does not follow the previous packet's")
            return
        self._check_audio(track, packet)
        self._mux_packet(track, packet)
        if dts is not None:
            track.last_dts = dts

    def _mux_packet(self, track: _AudioTrack, packet: av.Packet) -> None:
        """Mux one audio packet of ``track``. AVI keeps no time of its own per packet: an AAC track's
        priming packet (just before 0: its samples are decoded and thrown away) made the muxer shift
        every track forward, and AVI's one-frame slots rounded that up to a whole frame, so the video
        played one frame late and the file ran one frame long. There the track starts at 0 instead:
        its sound comes at most a priming packet (~20 ms) late, below what anyone sees."""
        if self._one_per_slot and packet.pts is not None:
            if track.shift is None:
                track.shift = max(0, -packet.pts)
            packet.pts += track.shift
            if packet.dts is not None:
                packet.dts += track.shift
        packet.stream = track.stream
        self._container.mux(packet)

    @staticmethod
    def _check_audio(track: _AudioTrack, packet: av.Packet) -> None:
        """Count a packet that does not decode. It is still copied, as FFmpeg's stream copy does:
        players skip it, so it costs only itself, and the one warning says so. A decoder that has not
        decoded a packet yet (none in this FFmpeg, or a damaged first packet) checks nothing."""
        if track.check is None:
            return
        try:
            track.check.decode(packet)
            track.decoded = True
        except AV_ERRORS as exc:
            if not track.decoded:
                track.check = None
                return
            track.undecodable += 1
            track.undecodable_reason = track.undecodable_reason or reason(exc)

    def _warn_avi_audio_start(self) -> None:
        """AVI gives a track no start time of its own: audio that starts after the video plays that much
        early (the AVI muxer starts every track at 0). Said, rather than padded with silence."""
        if not self._one_per_slot or self._first_pts is None:
            return
        video = self._first_pts * self._enc_tb  # seconds
        for track in self._tracks.values():
            late = float(track.start - video) if track.start is not None else 0.0
            if track.mode != "none" and late > 1 / self.rate:
                log.warning("%s starts %.2f s after the video, and AVI keeps no start time per track: it "
                            "plays %.2f s early in %s (write .mp4 or .mkv to keep it in sync)",
                            track.name.capitalize(), late, late, self.path)

    def _warn_audio_losses(self) -> None:
        for track in self._tracks.values():
            if track.undecodable:
                log.warning("%d audio packet%s of %s%s could not be decoded (%s); copied as they are, players "
                            "skip them", track.undecodable, "" if track.undecodable == 1 else "s",
                            "" if track.only else f"{track.name} of ", self.path, track.undecodable_reason)
            if not track.skipped:
                continue
            of = "" if track.only else f"{track.name} of "
            if track.failed:
                log.warning("dropped the rest of %s of %s after %d audio packets in a row failed (%s)",
                            track.name, self.path, _MAX_AUDIO_ERRORS, track.reason)
            else:
                packets = f"{track.skipped} audio packet{'' if track.skipped == 1 else 's'}"
                log.warning("skipped %s of %s%s that could not be %s (%s)", packets, of, self.path,
                            "copied" if track.mode == "copy" else "re-encoded", track.reason)

    def _encode_audio(self, track: _AudioTrack, frame: av.AudioFrame | None) -> None:
        if frame is not None and frame.pts is not None and frame.time_base:
            # Keep the input's audio timing (A/V sync) in the encoder's 1/sample_rate clock.
            out_tb = Fraction(1, track.rate)
            frame.pts = round(frame.pts * frame.time_base / out_tb)
            frame.time_base = out_tb
        assert track.stream is not None
        for packet in track.stream.encode(frame):
            self._mux_packet(track, packet)

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
                self._mux_video(packet)
            self._mux_video(None)
            for track in self._tracks.values():
                if track.mode != "aac" or track.failed:
                    continue
                assert track.decoder is not None
                try:
                    for frame in track.decoder.decode(None):
                        self._encode_audio(track, frame)
                    self._encode_audio(track, None)
                except AV_ERRORS as exc:
                    of = "audio of " if track.only else f"{track.name} of "
                    log.warning("%s%s may end early: %s", of, self.path, reason(exc))
            self._container.close()
            self._warn_audio_losses()
            self._warn_avi_audio_start()
            if self.frames_dropped:
                log.warning("%s holds one frame per 1/%g s: dropped %d of the %d frames of a variable frame "
                            "rate that came closer together", self.path, float(self.rate), self.frames_dropped,
                            self.frames_dropped + self.frames_written)
        except AV_ERRORS as exc:
            self.abort()
            raise UserError(f"failed writing {self.path}: {reason(exc)}") from exc
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
        except BaseException:  # the file is being thrown away anyway
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
