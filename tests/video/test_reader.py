"""VideoReader: names FFmpeg would misread, input timelines made to start at 0 and keep increasing."""

from __future__ import annotations

import itertools
import logging
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from mvstylizer.bench.footage import transcode as bare_transcode
from mvstylizer.video.reader import VideoReader

W, H = 32, 24
RATE = 48000


def write_clip(path: Path, *, frames: int = 10, fps: int = 25, audio: bool = True, format: str | None = None,
               start: float = 0.0) -> None:
    """A tiny clip, its video and audio (noise) ``frames / fps`` seconds long, both starting at ``start``."""
    with av.open(str(path), "w", format=format) as c:
        v = c.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        a = c.add_stream("aac", rate=RATE, layout="stereo") if audio else None
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((H, W, 3), i * 7 % 256, np.uint8), format="rgb24")
            frame.pts = i + round(start * fps)
            c.mux(v.encode(frame))
        c.mux(v.encode(None))
        if a is None:
            return
        rng = np.random.default_rng(0)
        for t in range(0, round(frames / fps * RATE), 1024):
            samples = (rng.random((2, 1024)) * 0.2 - 0.1).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = RATE, t + round(start * RATE)
            c.mux(a.encode(frame))
        c.mux(a.encode(None))


def transcode(src: Path, dst: Path) -> None:
    """The pipeline minus the styling: the same frames at the same times, the audio handed on."""
    bare_transcode(src, dst, crf=18, preset="ultrafast")


def timeline(path: Path) -> tuple[list[float], list[float]]:
    """(frame times, audio packet times) in seconds, as the reader gives them."""
    audio: list[float] = []
    with VideoReader(path) as reader:
        frames = [f.time for f in reader.frames(audio_sink=lambda p: audio.append(float(p.pts * p.time_base)))]
    return frames, audio


def starts(path: Path) -> tuple[float, float]:
    """(video, audio) start in seconds, as the file states them."""
    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        return float(v.start_time * v.time_base), float(a.start_time * a.time_base)


def decoded(path: Path) -> list[float]:
    """The times of the frames FFmpeg (and so players) show."""
    with av.open(str(path)) as c:
        return [f.time for f in c.decode(video=0)]


def test_a_relative_name_with_a_colon_is_a_file_not_a_protocol(tmp_path, monkeypatch):
    # FFmpeg takes "2024-05-01T10" for a protocol name unless the path is absolute.
    write_clip(tmp_path / "clip.mp4")
    shutil.move(tmp_path / "clip.mp4", tmp_path / "2024-05-01T10:30:00.mp4")
    monkeypatch.chdir(tmp_path)
    with VideoReader("2024-05-01T10:30:00.mp4") as reader:
        assert sum(1 for _ in reader.frames()) == 10


# ---------------------------------------------------------------------------------------------
# time starts at 0, as in FFmpeg without -copyts
# ---------------------------------------------------------------------------------------------


def test_a_recording_that_starts_late_is_read_from_0_with_its_sync_kept(tmp_path):
    # A broadcast or camera TS starts where its clock was: here 10000 s.
    write_clip(tmp_path / "in.ts", frames=25, format="mpegts", start=10000.0)
    video_start, audio_start = starts(tmp_path / "in.ts")
    assert min(video_start, audio_start) > 9999
    frames, audio = timeline(tmp_path / "in.ts")
    assert min(frames[0], audio[0]) == 0
    assert frames[0] - audio[0] == pytest.approx(video_start - audio_start, abs=1e-9)
    assert len(frames) == 25 and frames == sorted(frames)


@pytest.mark.parametrize("ext", [".mkv", ".avi"])
def test_a_recording_that_starts_late_is_written_from_0(tmp_path, ext):
    # Kept as they were, such times made an MKV 10001 s long and an AVI refuse 250000 empty frames.
    write_clip(tmp_path / "in.ts", frames=25, format="mpegts", start=10000.0)
    transcode(tmp_path / "in.ts", tmp_path / f"out{ext}")
    with av.open(str(tmp_path / f"out{ext}")) as c:
        assert c.duration / av.time_base < 1.5
    shown = decoded(tmp_path / f"out{ext}")
    assert len(shown) == 25 and shown[0] < 0.2


def test_a_recording_whose_clock_wrapped_before_it_starts_at_0(tmp_path):
    # The 33-bit TS clock wrapped half a second in: the demuxer gives the first frames negative times,
    # which an MP4's edit list would hide.
    write_clip(tmp_path / "in.ts", frames=25, format="mpegts", start=2**33 / 90000 - 0.5)
    assert starts(tmp_path / "in.ts")[0] < 0
    frames, audio = timeline(tmp_path / "in.ts")
    assert min(frames[0], audio[0]) == 0
    transcode(tmp_path / "in.ts", tmp_path / "out.mp4")
    shown = decoded(tmp_path / "out.mp4")
    assert len(shown) == 25 and shown[0] < 0.1


# ---------------------------------------------------------------------------------------------
# joined recordings: time keeps increasing where the clock restarts
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("second_start", [0.0, 3600.0], ids=["restarted", "an-hour-later"])
def test_joined_ts_recordings_play_one_after_the_other(tmp_path, second_start):
    # `cat a.ts b.ts`, an HLS download, a camera's .MTS parts: each part has its own clock.
    write_clip(tmp_path / "a.ts", frames=25, format="mpegts")
    write_clip(tmp_path / "b.ts", frames=25, format="mpegts", start=second_start)
    (tmp_path / "in.ts").write_bytes((tmp_path / "a.ts").read_bytes() + (tmp_path / "b.ts").read_bytes())
    frames, audio = timeline(tmp_path / "in.ts")
    # Where the second part goes is set by whichever stream restarts first (here the audio, which
    # ran 24 ms longer): the frames may step a little more there, never back or onto one instant.
    assert len(frames) == 50 and all(0.039 < b - a < 0.1 for a, b in itertools.pairwise(frames))
    assert audio[-1] == pytest.approx(2.0, abs=0.1)
    transcode(tmp_path / "in.ts", tmp_path / "out.mp4")
    shown = decoded(tmp_path / "out.mp4")
    assert len(shown) == 50 and shown[-1] == pytest.approx(frames[-1], abs=1e-3)
    with av.open(str(tmp_path / "out.mp4")) as c:
        stream = c.streams.audio[0]
        assert sum(f.samples for f in c.decode(stream)) / RATE == pytest.approx(2.0, abs=0.1)


# ---------------------------------------------------------------------------------------------
# damage: only what is really lost is reported
# ---------------------------------------------------------------------------------------------


def test_frames_an_mp4_edit_list_hides_are_not_reported_as_lost(tmp_path, caplog):
    # A trimmed clip: the first 5 of its 10 frames are before 0, kept for reference and hidden by
    # the edit list. The file counts 10 frames; 5 play, and its duration says so.
    write_clip(tmp_path / "in.mp4", frames=10, start=-0.2)
    with av.open(str(tmp_path / "in.mp4")) as c:
        assert c.streams.video[0].frames == 10
    with caplog.at_level(logging.WARNING):
        frames, _ = timeline(tmp_path / "in.mp4")
    assert len(frames) == 5 and frames[0] == 0
    assert not caplog.records


def test_a_late_start_moves_frames_whose_packets_carry_no_dts_too(tmp_path):
    # Matroska stores no dts: PyAV leaves it unset on B-frames' packets, which were then not moved to
    # the new start with the others (frames at 5.0 and 5.4 s among frames at 0.x s).
    src = tmp_path / "late.mkv"
    with av.open(str(src), "w") as c:
        v = c.add_stream("libx264", rate=10, options={"preset": "veryfast"})
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        v.codec_context.time_base = Fraction(1, 1000)
        for i in range(12):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = 5000 + 100 * i, Fraction(1, 1000)
            c.mux(v.encode(frame))
        c.mux(v.encode(None))
    with av.open(str(src)) as c:
        assert any(p.dts is None for p in c.demux(video=0) if p.size)  # the case under test
    frames, _ = timeline(src)
    assert frames == pytest.approx([0.1 * i for i in range(12)], abs=1e-6)


def test_avi_from_an_aac_track_holds_one_chunk_per_frame(tmp_path):
    # An AAC track's priming packet (pts < 0) made the AVI muxer shift every track; in AVI's one-frame
    # slots that put an empty video chunk after frame 0: the video one frame later against its sound
    # and the file a frame longer.
    src, out = tmp_path / "in.mp4", tmp_path / "out.avi"
    write_clip(src, frames=10, fps=5)
    with av.open(str(src)) as c:
        assert next(p for p in c.demux(audio=0) if p.pts is not None).pts < 0  # the case: priming before 0
    transcode(src, out)
    with av.open(str(out)) as c:
        slots = [p.dts for p in c.demux(video=0) if p.dts is not None]
        assert slots == list(range(10)) and c.streams.video[0].frames == 10  # before: 0, 2, 3, ..., 10 of 11


def test_a_matroska_video_shorter_than_its_audio_is_not_called_cut_short(tmp_path, caplog):
    # FFmpeg fills a Matroska stream's duration in from the whole file (the audio's 4 s here): the video's
    # own DURATION tag (2.04 s) is what it declares.
    path = tmp_path / "slow.mkv"
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        a = c.add_stream("aac", rate=RATE, layout="stereo")
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((H, W, 3), 60 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i * 1000, Fraction(1, 1000)
            c.mux(v.encode(frame))
        c.mux(v.encode(None))
        for t in range(0, 4 * RATE, 1024):
            samples = np.zeros((2, 1024), np.float32)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = RATE, t
            c.mux(a.encode(frame))
        c.mux(a.encode(None))
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert float(stream.duration * stream.time_base) > 3.5  # the case: the file's length, not the video's
    with caplog.at_level(logging.WARNING, logger="mvstylizer"):
        frames, _ = timeline(path)
    assert frames == [0.0, 1.0, 2.0] and not [r for r in caplog.records if "declares" in r.getMessage()]
