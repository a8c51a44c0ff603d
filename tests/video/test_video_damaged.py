"""Damaged videos that players still play: the decodable frames are used, with one warning.

The files are built here: an AVI whose header claims more frames than it holds, an MP4 with garbage
over the middle of its data, reads that fail (injected), and an MP4 with no decodable frame at all.
"""

from __future__ import annotations

import errno
import logging
import struct
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from mvstylizer.cli import main
from mvstylizer.errors import UserError
from mvstylizer.video.reader import DecodedFrame, VideoReader
from mvstylizer.bench.synthetic import clip_frames, write_test_clip

FRAMES = 40
FPS = 10
AUDIO_RATE = 8000


# ---------------------------------------------------------------------------------------------
# building damaged files
# ---------------------------------------------------------------------------------------------


def write_avi(path: Path, frames: int = FRAMES) -> None:
    """A 64x48 MPEG-4 Part 2 AVI (the classic AVI codec) with PCM audio as long as the video."""
    rate = Fraction(FPS)
    samples = AUDIO_RATE // FPS
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=rate)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("pcm_s16le", rate=AUDIO_RATE, layout="mono")
        for t, rgb in enumerate(clip_frames(64, 48, frames)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = t, 1 / rate
            out.mux(video.encode(frame))
            tone = (3000 * np.sin(np.arange(t * samples, (t + 1) * samples) / 5)).astype(np.int16)
            sound = av.AudioFrame.from_ndarray(tone[None, :], format="s16", layout="mono")
            sound.sample_rate, sound.pts = AUDIO_RATE, t * samples
            out.mux(audio.encode(sound))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))


def riff_chunks(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int]]:
    """(fourcc, payload offset) of every chunk, depth first; LIST/RIFF lists name their list type."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        fourcc, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        payload = pos + 8
        if fourcc in (b"RIFF", b"LIST"):
            yield data[payload : payload + 4], payload
            yield from riff_chunks(data, payload + 4, payload + size)
        else:
            yield fourcc, payload
        pos = payload + size + (size & 1)


def declare_frames(path: Path, declared: int) -> None:
    """Make the AVI headers claim ``declared`` frames: avih.dwTotalFrames and the video strh.dwLength."""
    data = bytearray(path.read_bytes())
    patched = 0
    for fourcc, payload in riff_chunks(bytes(data)):
        if fourcc == b"avih":
            struct.pack_into("<I", data, payload + 16, declared)  # MainAVIHeader.dwTotalFrames
            patched += 1
        elif fourcc == b"strh" and data[payload : payload + 4] == b"vids":
            struct.pack_into("<I", data, payload + 32, declared)  # AVIStreamHeader.dwLength
            patched += 1
    assert patched == 2
    path.write_bytes(bytes(data))


def mp4_boxes(data: bytes) -> dict[bytes, tuple[int, int]]:
    """Top-level MP4 boxes: type -> (payload offset, payload size)."""
    boxes, pos = {}, 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        boxes[kind] = (pos + 8, size - 8)
        pos += size
    return boxes


def garble(path: Path, start: int, length: int) -> None:
    """Overwrite ``length`` bytes from ``start`` with random garbage (a bad sector, a broken copy)."""
    data = bytearray(path.read_bytes())
    data[start : start + length] = np.random.default_rng(0).integers(0, 256, length, np.uint8).tobytes()
    path.write_bytes(bytes(data))


def write_mp4_with_garbage_inside(path: Path) -> None:
    """A 60-frame H.264 MP4 with audio whose media data is garbage from 40% to 55% of its length."""
    write_test_clip(path, width=64, height=48, frames=60, fps=FPS, audio=True)
    start, size = mp4_boxes(path.read_bytes())[b"mdat"]
    garble(path, start + int(size * 0.40), int(size * 0.15))


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------


def read(path: Path, caplog: pytest.LogCaptureFixture) -> tuple[VideoReader, list[DecodedFrame], list[str]]:
    """All frames of ``path`` and the warnings logged while reading them."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mvstylizer"):
        with VideoReader(path) as reader:
            frames = list(reader.frames(audio_sink=lambda packet: None))
    return reader, frames, [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_avi_declaring_more_frames_than_it_holds(tmp_path, caplog):
    path = tmp_path / "in.avi"
    write_avi(path)
    declare_frames(path, 444)
    reader, frames, warnings = read(path, caplog)
    assert reader.info.frame_count == 444
    assert len(frames) == FRAMES
    assert [f.time for f in frames] == pytest.approx([i / FPS for i in range(FRAMES)])
    assert warnings == [f"{path} declares 444 frames but only {FRAMES} could be decoded; "
                        f"using the {FRAMES} decodable frames"]


def test_a_few_percent_of_the_frames_missing_is_reported(tmp_path, caplog):
    # Up to 5% of the declared frames went missing without a word: 30 s of a 10-minute clip.
    path = tmp_path / "in.avi"
    write_avi(path, frames=100)
    declare_frames(path, 103)
    _, frames, warnings = read(path, caplog)
    assert len(frames) == 100
    assert warnings == [f"{path} declares 103 frames but only 100 could be decoded; using the 100 decodable frames"]


def test_garbage_in_the_middle_skips_the_undecodable_packets(tmp_path, caplog):
    intact, damaged = tmp_path / "intact.mp4", tmp_path / "damaged.mp4"
    write_test_clip(intact, width=64, height=48, frames=60, fps=FPS, audio=True)
    write_mp4_with_garbage_inside(damaged)
    _, good, _ = read(intact, caplog)
    reader, frames, warnings = read(damaged, caplog)
    assert 0 < len(frames) < 60
    # Frames after the damage are decoded too, each at its own time: timing is kept, gaps and all.
    good_times = {round(f.time, 6) for f in good}
    assert {round(f.time, 6) for f in frames} <= good_times
    assert frames[-1].time == pytest.approx(good[-1].time)
    assert len(warnings) == 1
    assert warnings[0].startswith(f"{damaged} declares 60 frames but only {len(frames)} could be decoded (skipped ")
    assert "undecodable video packet" in warnings[0]
    assert warnings[0].endswith(f"; using the {len(frames)} decodable frames")


def test_intact_files_give_no_warning(tmp_path, caplog):
    write_avi(tmp_path / "in.avi")
    write_test_clip(tmp_path / "in.mkv", width=64, height=48, frames=20, fps=FPS, audio=True)
    for path in (tmp_path / "in.avi", tmp_path / "in.mkv"):
        assert read(path, caplog)[2] == []


class FailingReads:
    """A container whose reads fail after ``after`` packets: ``times`` times in a row, then work.

    Real demuxers resync on their own for the damage we can build in a test, so a failing read
    (a bad sector, a demuxer that gives up on a chunk) is injected around a real container.
    """

    def __init__(self, container: av.container.InputContainer, after: int, times: int) -> None:
        self.container, self.after, self.times = container, after, times
        self.read = self.failed = 0

    def demux(self, *streams: av.stream.Stream) -> Iterator[av.Packet]:
        packets = self.container.demux(*streams)
        while True:
            if self.read == self.after and self.failed < self.times:
                self.failed += 1
                raise av.error.InvalidDataError(errno.EINVAL, "Invalid data found when processing input")
            packet = next(packets, None)
            if packet is None:
                return
            self.read += 1
            yield packet

    def close(self) -> None:
        self.container.close()


def read_with_failing_reads(path: Path, caplog, after: int, times: int) -> tuple[list[DecodedFrame], list[str]]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mvstylizer"):
        with VideoReader(path) as reader:
            reader._container = FailingReads(reader._container, after, times)
            frames = list(reader.frames())
    return frames, [r.getMessage() for r in caplog.records]


def test_a_failed_read_is_skipped(tmp_path, caplog):
    path = tmp_path / "in.mp4"
    write_test_clip(path, width=64, height=48, frames=30, fps=FPS)
    frames, warnings = read_with_failing_reads(path, caplog, after=10, times=2)
    assert len(frames) == 30  # the failed reads lost nothing here: the retries read on
    assert warnings == [f"{path} is damaged (skipped 2 unreadable parts of the file: Invalid data found "
                        f"when processing input); using the 30 decodable frames"]


def test_reads_that_keep_failing_end_the_file_with_the_frames_read_so_far(tmp_path, caplog):
    path = tmp_path / "in.mp4"
    write_test_clip(path, width=64, height=48, frames=30, fps=FPS)  # x264 B-frames: decoding lags
    frames, warnings = read_with_failing_reads(path, caplog, after=12, times=1000)
    # Every packet read before the failures becomes a frame: the decoder is flushed at the end.
    assert len(frames) == 12
    assert warnings == [f"{path} declares 30 frames but only 12 could be decoded (reading stopped at an "
                        f"unreadable part of the file: Invalid data found when processing input); "
                        f"using the 12 decodable frames"]


def test_no_decodable_frame_is_an_error(tmp_path):
    path = tmp_path / "in.mp4"
    write_test_clip(path, width=64, height=48, frames=20, fps=FPS, audio=True)
    start, size = mp4_boxes(path.read_bytes())[b"mdat"]
    garble(path, start, size)
    with pytest.raises(UserError, match="none of its video frames could be decoded"):
        VideoReader(path)


# ---------------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------------


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.mark.parametrize("kind", ["avi-over-declared", "mp4-garbage"])
def test_stylize_uses_the_decodable_frames_with_one_warning(tmp_path, style, capsys, caplog, kind):
    if kind == "avi-over-declared":
        src = tmp_path / "in.avi"
        write_avi(src)
        declare_frames(src, 444)
    else:
        src = tmp_path / "in.mp4"
        write_mp4_with_garbage_inside(src)
    _, frames, _ = read(src, caplog)
    out = tmp_path / "out.mp4"
    capsys.readouterr()

    assert main(["stylize", str(src), "--style", str(style), "-o", str(out), "--model", "reinhard", "-q"]) == 0

    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"warning: {src} declares ")
    assert err[0].endswith(f"using the {len(frames)} decodable frames")
    # The garbage hit audio packets too: copied as they are, and counted in one line of their own.
    assert err[1:] == ([] if kind == "avi-over-declared" else [err[-1]])
    assert all("audio packets of" in line and "could not be decoded" in line for line in err[1:])
    assert decoded_frames(out) == len(frames)
    with av.open(str(out)) as container:
        assert container.streams.audio  # the audio is kept as far as it demuxes


def test_stylize_with_no_decodable_frame_fails(tmp_path, style, capsys):
    src, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    write_test_clip(src, width=64, height=48, frames=20, fps=FPS, audio=True)
    start, size = mp4_boxes(src.read_bytes())[b"mdat"]
    garble(src, start, size)

    assert main(["stylize", str(src), "--style", str(style), "-o", str(out), "--model", "reinhard", "-q"]) == 2

    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot decode ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]
