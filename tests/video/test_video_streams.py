"""Files with several video streams: the one ffmpeg would convert is read, and the user is told."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np

from mvstylizer.video.reader import VideoReader


def write_streams(path: Path, sizes: list[tuple[int, int]], default: int | None = None) -> None:
    """One tiny H.264 stream per (width, height), each filled with its own grey level (40, 80...)."""
    with av.open(str(path), "w") as out:
        streams = []
        for w, h in sizes:
            s = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            streams.append(s)
        if default is not None:
            for i, s in enumerate(streams):
                s.disposition = av.stream.Disposition.default if i == default else av.stream.Disposition(0)
        for i in range(3):
            for k, s in enumerate(streams):
                frame = av.VideoFrame.from_ndarray(np.full((s.height, s.width, 3), 40 * (k + 1), np.uint8),
                                                   format="rgb24")
                frame.pts = i
                out.mux(s.encode(frame))
        for s in streams:
            out.mux(s.encode(None))


def test_the_largest_video_stream_is_read_and_the_user_told(tmp_path, caplog):
    path = tmp_path / "two.mkv"
    write_streams(path, [(32, 24), (64, 48)])  # a small preview first, the main video second
    with caplog.at_level(logging.WARNING, logger="mvstylizer"):
        with VideoReader(path) as reader:
            frames = list(reader.frames())
    assert (reader.info.width, reader.info.height) == (64, 48)
    assert len(frames) == 3 and abs(int(frames[0].rgb8.mean()) - 80) <= 3
    assert [r.getMessage() for r in caplog.records] == [
        f"{path} has 2 video streams; using stream 2 (64x48), the largest"]


def test_a_default_marked_video_stream_wins_over_a_larger_one(tmp_path, caplog):
    path = tmp_path / "two.mp4"
    write_streams(path, [(64, 48), (32, 24)], default=1)
    with caplog.at_level(logging.WARNING, logger="mvstylizer"):
        with VideoReader(path) as reader:
            assert (reader.info.width, reader.info.height) == (32, 24)
    assert "using stream 2 (32x24), the default one" in caplog.text


def test_one_video_stream_says_nothing(tmp_path, caplog):
    path = tmp_path / "one.mkv"
    write_streams(path, [(32, 24)])
    with caplog.at_level(logging.WARNING, logger="mvstylizer"):
        with VideoReader(path) as reader:
            assert len(list(reader.frames())) == 3
    assert not caplog.records
