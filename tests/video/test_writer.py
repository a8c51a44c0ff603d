"""VideoWriter: audio that survives bad packets, output paths FFmpeg would misread, constant-rate outputs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from mvstylizer.bench.footage import transcode as bare_transcode
from mvstylizer.errors import UserError
from mvstylizer.video import writer as writer_module
from mvstylizer.video.reader import VideoReader
from mvstylizer.video.writer import VideoWriter

W, H = 32, 24
RATE = 48000


def write_clip(path: Path, *, seconds: float = 2.0, fps: int = 25, audio: str = "aac", layout: str = "stereo",
               tamper: Callable[[int, av.Packet], list[av.Packet]] | None = None) -> None:
    """A tiny clip with ``seconds`` of video and of noise audio in ``layout``; ``tamper(n, packet)`` gives
    the packets muxed in place of the ``n``-th audio packet (a duplicate, a corrupt one)."""
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        a = c.add_stream(audio, rate=RATE, layout=layout)
        channels = a.codec_context.layout.nb_channels
        for i in range(round(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(np.full((H, W, 3), i * 7 % 256, np.uint8), format="rgb24")
            frame.pts = i
            c.mux(v.encode(frame))
        c.mux(v.encode(None))
        rng = np.random.default_rng(0)
        n = 0
        step = a.codec_context.frame_size or 1024
        for t in range(0, round(seconds * RATE), step):
            samples = rng.integers(-3000, 3000, (1, step * channels), dtype=np.int16)
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout=layout)
            frame.sample_rate, frame.pts = RATE, t
            for packet in a.encode(frame):
                c.mux(tamper(n, packet) if tamper else packet)
                n += 1
        c.mux(a.encode(None))


def copy_of(packet: av.Packet, data: bytes | None = None) -> av.Packet:
    out = av.Packet(bytes(packet) if data is None else data)
    out.pts, out.dts, out.duration, out.time_base = packet.pts, packet.dts, packet.duration, packet.time_base
    out.stream = packet.stream
    return out


def transcode(src: Path, dst: Path) -> None:
    """The pipeline minus the styling: the same frames at the same times, the audio handed on."""
    bare_transcode(src, dst, crf=18, preset="ultrafast")


def audio_channels(path: Path) -> tuple[str, int]:
    """(codec, channels) of ``path``'s audio."""
    with av.open(str(path)) as c:
        ctx = c.streams.audio[0].codec_context
        return ctx.name, ctx.layout.nb_channels


def audio_seconds(path: Path) -> float:
    """Seconds of audio that decode from ``path``."""
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        return sum(f.samples for f in c.decode(stream)) / stream.codec_context.sample_rate


# ---------------------------------------------------------------------------------------------
# one bad audio packet costs that packet, not the rest of the audio
# ---------------------------------------------------------------------------------------------


def test_a_duplicated_audio_packet_is_dropped_and_the_rest_copied(tmp_path, caplog):
    # The same AAC packet twice (a glitch players shrug off): MP4 refuses a DTS that does not increase.
    write_clip(tmp_path / "in.mkv", tamper=lambda n, p: [p, copy_of(p)] if n == 20 else [p])
    with caplog.at_level(logging.WARNING):
        transcode(tmp_path / "in.mkv", tmp_path / "out.mp4")
    assert audio_seconds(tmp_path / "out.mp4") == pytest.approx(2.0, abs=0.05)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipped 1 audio packet" in warnings[0]


def test_an_undecodable_audio_packet_is_skipped_when_re_encoding(tmp_path, caplog):
    # FLAC cannot go into .mov, so it is decoded and re-encoded as AAC: a corrupt frame costs itself.
    def corrupt(n: int, p: av.Packet) -> list[av.Packet]:
        return [copy_of(p, bytes(p)[:8] + bytes(p.size - 8))] if n == 3 else [p]

    write_clip(tmp_path / "in.mkv", audio="flac", tamper=corrupt)
    with caplog.at_level(logging.WARNING):
        transcode(tmp_path / "in.mkv", tmp_path / "out.mov")
    assert audio_seconds(tmp_path / "out.mov") == pytest.approx(2.0 - 4608 / RATE, abs=0.05)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipped 1 audio packet" in warnings[0] and "re-encoded" in warnings[0]


def test_audio_that_keeps_failing_is_dropped_without_failing_the_video(tmp_path, caplog):
    def corrupt(n: int, p: av.Packet) -> list[av.Packet]:
        return [copy_of(p, bytes(p)[:8] + bytes(p.size - 8))] if n >= 2 else [p]

    write_clip(tmp_path / "in.mkv", audio="flac", tamper=corrupt)
    with caplog.at_level(logging.WARNING):
        transcode(tmp_path / "in.mkv", tmp_path / "out.mov")
    with VideoReader(tmp_path / "out.mov") as reader:
        assert sum(1 for _ in reader.frames()) == 50
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "dropped the rest of the audio" in warnings[0]


# ---------------------------------------------------------------------------------------------
# output names
# ---------------------------------------------------------------------------------------------


def test_a_relative_output_name_with_a_colon_is_a_file_not_a_protocol(tmp_path, monkeypatch):
    write_clip(tmp_path / "in.mp4", seconds=0.4)
    monkeypatch.chdir(tmp_path)
    transcode(Path("in.mp4"), Path("./v1:styled.mp4"))
    assert audio_seconds(tmp_path / "v1:styled.mp4") > 0.3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "v1:styled.mp4"]


def test_an_output_name_of_the_longest_length_is_written(tmp_path):
    write_clip(tmp_path / "in.mp4", seconds=0.4)
    name = "a" * 251 + ".mp4"  # 255 bytes, the most ext4 and tmpfs allow
    transcode(tmp_path / "in.mp4", tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name, "in.mp4"]


def test_an_output_that_cannot_be_created_fails_before_any_frame(tmp_path, monkeypatch, caplog):
    # E.g. a folder that went away or refuses files: the one error comes at once, not after an audio
    # packet failed on it and a warning said the audio was dropped.
    class Unwritable(writer_module.TempTarget):
        def __init__(self, target: Path) -> None:
            super().__init__(target)
            self.temp = tmp_path / "gone" / self.temp.name

    write_clip(tmp_path / "in.mp4", seconds=0.4)
    monkeypatch.setattr(writer_module, "TempTarget", Unwritable)
    with VideoReader(tmp_path / "in.mp4") as reader, caplog.at_level(logging.WARNING):
        with pytest.raises(UserError, match="cannot create"):
            VideoWriter(tmp_path / "out.mp4", W, H, 25, reader.time_base, reader.audio_stream)
    assert not caplog.records
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


# ---------------------------------------------------------------------------------------------
# audio re-encoded as AAC keeps its channels
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("layout", "kept"), [
    ("2.1", 3), ("3 channels", 3), ("quad", 4), ("5.0", 5), ("5 channels", 5), ("7.0", 7), ("7 channels", 7),
    ("7.1", 8),
])
def test_re_encoded_audio_keeps_its_channels(tmp_path, caplog, layout, kept):
    # PCM cannot go into .m4v: it becomes AAC, with as many channels, in FFmpeg's layout for as many
    # where the input states none.
    write_clip(tmp_path / "in.mkv", seconds=0.4, audio="pcm_s16le", layout=layout)
    with caplog.at_level(logging.WARNING):
        transcode(tmp_path / "in.mkv", tmp_path / "out.m4v")
    assert audio_channels(tmp_path / "out.m4v") == ("aac", kept)
    assert audio_seconds(tmp_path / "out.m4v") == pytest.approx(0.4, abs=0.05)
    assert not caplog.records


def test_channels_aac_cannot_keep_are_mixed_down_with_a_warning(tmp_path, caplog):
    write_clip(tmp_path / "in.mkv", seconds=0.4, audio="pcm_s16le", layout="16 channels")
    with caplog.at_level(logging.WARNING):
        transcode(tmp_path / "in.mkv", tmp_path / "out.m4v")
    assert audio_channels(tmp_path / "out.m4v") == ("aac", 8)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "keeps 8 of its 16 channels" in warnings[0]


# ---------------------------------------------------------------------------------------------
# AVI: one frame per slot
# ---------------------------------------------------------------------------------------------


def test_avi_keeps_each_frame_of_a_variable_rate_within_a_slot_of_its_time(tmp_path, caplog):
    # A 60 fps burst then 10 fps: pushed on into the next free 1/fps slot one after the other, the
    # frames fell ever further behind their time (and the audio).
    times = [i / 60 for i in range(30)] + [0.5 + i / 10 for i in range(1, 21)]
    with av.open(str(tmp_path / "in.mkv"), "w") as c:
        v = c.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        v.codec_context.time_base = Fraction(1, 1000)
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(np.full((H, W, 3), 4 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = round(t * 1000), Fraction(1, 1000)
            c.mux(v.encode(frame))
        c.mux(v.encode(None))
    with caplog.at_level(logging.WARNING):
        transcode(tmp_path / "in.mkv", tmp_path / "out.avi")
    with av.open(str(tmp_path / "out.avi")) as c:
        stream = c.streams.video[0]
        slot = float(stream.time_base)
        # AVI stores no times, only slots; a frame's slot is its packet's place (empty ones repeat).
        slots = [p.dts for p in c.demux(stream) if p.size]
    with av.open(str(tmp_path / "out.avi")) as c:
        shown = [round(f.to_ndarray(format="gray").mean() / 4) for f in c.decode(video=0)]
    assert len(shown) == len(slots) < len(times) and shown == sorted(shown)
    late = [s * slot - times[i] for s, i in zip(slots, shown, strict=True)]
    assert -slot / 2 - 1e-6 <= min(late) and max(late) <= slot + 1e-6
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"dropped {len(times) - len(shown)} of the 50 frames" in warnings[0]


# ---------------------------------------------------------------------------------------------
# The track covers the last frame
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".mp4", ".mov", ".mkv"])
@pytest.mark.parametrize("times_ms", [[0, 100, 200, 300, 1300], [0, 100, 150, 1000, 1100, 1150, 1900, 2000],
                                      [100 * i for i in range(12)]])
def test_the_output_lasts_until_the_last_frame_has_shown(tmp_path, ext, times_ms):
    # x264's packets each last one frame and their dts lag two frames: an MP4 timed by dts steps ended
    # where the last decoded packet did (frames at 0..0.3 s and 1.3 s: a 0.5 s file, its last frame
    # past the end).
    src = tmp_path / "in.mkv"
    with av.open(str(src), "w") as c:
        v = c.add_stream("libx264", rate=10, options={"preset": "ultrafast"})
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        v.codec_context.time_base = Fraction(1, 1000)
        for i, t in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(np.full((H, W, 3), 20 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            c.mux(v.encode(frame))
        c.mux(v.encode(None))
    out = tmp_path / f"out{ext}"
    transcode(src, out)
    with av.open(str(out)) as c:
        shown = [round(float(f.time), 3) for f in c.decode(video=0)]
        duration = c.duration / 1e6
    assert shown == [t / 1000 for t in times_ms]
    assert duration == pytest.approx(times_ms[-1] / 1000 + 0.1, abs=0.002)


@pytest.mark.parametrize("ext", [".mp4", ".mov"])
def test_a_variable_rate_clip_ends_when_its_last_frame_does(tmp_path, ext):
    # 30 frames 1/30 s apart with a 1 s pause: 2.0 s at an average of 15 fps. The last frame was given
    # one average frame (1/15 s) instead of its own 1/30 s: the output ran 2.033 s.
    src = tmp_path / "in.mp4"
    with av.open(str(src), "w") as c:
        v = c.add_stream("libx264", rate=30, options={"preset": "ultrafast"})
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        v.time_base = Fraction(1, 15360)
        for i in range(30):
            frame = av.VideoFrame.from_ndarray(np.full((H, W, 3), 8 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i * 512 + (15360 if i >= 15 else 0), Fraction(1, 15360)
            c.mux(v.encode(frame))
        c.mux(v.encode(None))
    with av.open(str(src)) as c:
        assert float(c.streams.video[0].duration * c.streams.video[0].time_base) == pytest.approx(2.0)
    out = tmp_path / f"out{ext}"
    transcode(src, out)
    with av.open(str(out)) as c:
        assert c.duration / 1e6 == pytest.approx(2.0, abs=0.002)


def write_offset_clip(path: Path, frames: int, video_start: int, audio: str, audio_from: float, audio_to: float) -> None:
    """A 10 fps clip of ``frames`` frames from frame slot ``video_start``, and silent mono ``audio``
    from ``audio_from`` to ``audio_to`` seconds."""
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=10, options={"preset": "ultrafast"})
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        a = c.add_stream(audio, rate=RATE, layout="mono")
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((H, W, 3), 10 * i, np.uint8), format="rgb24")
            frame.pts = video_start + i
            c.mux(v.encode(frame))
        c.mux(v.encode(None))
        step = a.codec_context.frame_size or 1024
        for t in range(round(audio_from * RATE), round(audio_to * RATE), step):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, step), np.int16), format="s16", layout="mono")
            frame.sample_rate, frame.pts = RATE, t
            c.mux(a.encode(frame))
        c.mux(a.encode(None))


@pytest.mark.parametrize("ext", [".mp4", ".mov", ".mkv"])
def test_a_video_that_starts_after_its_audio_ends_with_its_last_frame(tmp_path, ext):
    # Its start (0.5 s) was added to the last frame's duration in MP4 and MOV: a 1.7 s file lasted 2.2 s.
    src = tmp_path / "in.mkv"
    write_offset_clip(src, 12, 5, "aac", 0.0, 1.0)
    out = tmp_path / f"out{ext}"
    transcode(src, out)
    with av.open(str(out)) as c:
        shown = [round(float(f.time), 3) for f in c.decode(video=0)]
        duration = c.duration / 1e6
    assert shown == [round(0.5 + 0.1 * i, 3) for i in range(12)]
    assert duration == pytest.approx(1.7, abs=0.002)


# ---------------------------------------------------------------------------------------------
# PCM goes into .mp4 as AAC (MP4's own PCM, 'ipcm', is one many players cannot play)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("out", "codec"), [("out.mp4", "aac"), ("out.mov", "pcm_s16le"), ("out.mkv", "pcm_s16le")])
def test_pcm_audio_is_re_encoded_for_mp4_only(tmp_path, out, codec):
    write_clip(tmp_path / "in.mov", seconds=0.4, audio="pcm_s16le", layout="stereo")
    transcode(tmp_path / "in.mov", tmp_path / out)
    assert audio_channels(tmp_path / out) == (codec, 2)
    assert audio_seconds(tmp_path / out) == pytest.approx(0.4, abs=0.05)


def test_an_undecodable_audio_packet_is_copied_and_counted(tmp_path, caplog):
    # Copied without a word: the README's "one warning counting them" held for re-encoded audio only.
    def corrupt(n: int, p: av.Packet) -> list[av.Packet]:
        return [copy_of(p, bytes(p.size))] if n == 30 else [p]

    def audio_packets(path: Path) -> int:
        with av.open(str(path)) as c:
            return sum(1 for p in c.demux(audio=0) if p.size)

    write_clip(tmp_path / "in.mkv", tamper=corrupt)
    with caplog.at_level(logging.WARNING):
        transcode(tmp_path / "in.mkv", tmp_path / "out.mp4")
    assert audio_packets(tmp_path / "out.mp4") == audio_packets(tmp_path / "in.mkv")  # every packet copied
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("1 audio packet of ") and "could not be decoded" in warnings[0]


@pytest.mark.parametrize("ext", [".avi", ".mp4"])
def test_avi_says_when_it_cannot_keep_the_audio_s_start(tmp_path, caplog, ext):
    # AVI starts every track at 0: audio half a second after the video played half a second early,
    # without a word. MP4 keeps the offset.
    src = tmp_path / "in.mkv"
    write_offset_clip(src, 15, 0, "pcm_s16le", 0.5, 1.5)
    with caplog.at_level(logging.WARNING):
        transcode(src, tmp_path / f"out{ext}")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if ext == ".avi":
        assert len(warnings) == 1 and "starts 0.50 s after the video" in warnings[0]
    else:
        assert warnings == []
