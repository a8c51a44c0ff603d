"""The recording's own tags (creation time, title) can be carried from the input to the output."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from mvstylizer.video.reader import VideoReader
from mvstylizer.video.writer import VideoWriter

TAGS = {"creation_time": "2019-08-03T17:45:12.000000Z", "title": "holiday"}


def write_tagged(path: Path) -> None:
    with av.open(str(path), "w") as out:
        out.metadata.update(TAGS)
        v = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        v.width, v.height, v.pix_fmt = 32, 24, "yuv420p"
        for i in range(2):
            frame = av.VideoFrame.from_ndarray(np.zeros((24, 32, 3), np.uint8), format="rgb24")
            frame.pts = i
            out.mux(v.encode(frame))
        out.mux(v.encode(None))


def test_the_reader_gives_the_recording_s_tags_not_the_format_s(tmp_path):
    write_tagged(tmp_path / "in.mp4")
    with VideoReader(tmp_path / "in.mp4") as reader:
        assert reader.info.metadata == TAGS  # no major_brand, compatible_brands, encoder...


@pytest.mark.parametrize("ext", [".mp4", ".mov", ".mkv"])
def test_the_writer_writes_the_tags_it_is_given(tmp_path, ext):
    write_tagged(tmp_path / "in.mp4")
    out = tmp_path / f"out{ext}"
    with VideoReader(tmp_path / "in.mp4") as reader:
        info = reader.info
        with VideoWriter(out, info.width, info.height, info.fps, reader.time_base, preset="ultrafast",
                         metadata=info.metadata) as writer:
            for f in reader.frames():
                writer.write(f.rgb8, f.pts)
    with av.open(str(out)) as c:
        assert {k: c.metadata.get(k) for k in TAGS} == TAGS


def test_without_tags_the_writer_adds_none(tmp_path):
    out = tmp_path / "out.mp4"
    with VideoWriter(out, 32, 24, 25, preset="ultrafast") as writer:
        writer.write(np.zeros((24, 32, 3), np.uint8))
    with av.open(str(out)) as c:
        assert "creation_time" not in c.metadata and "title" not in c.metadata


@pytest.mark.parametrize(("src_ext", "out_ext"), [(".mov", ".mp4"), (".mp4", ".mov"), (".mkv", ".mp4"), (".mp4", ".mkv")])
def test_the_start_timecode_is_kept(tmp_path, src_ext, out_ext, style):
    # It was dropped: editors line clips up by it (cameras and iPhones write a timecode track).
    from mvstylizer.cli import main

    src = tmp_path / f"in{src_ext}"
    with av.open(str(src), "w") as out:
        v = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        v.width, v.height, v.pix_fmt = 32, 24, "yuv420p"
        v.metadata["timecode"] = "01:02:03:04"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), 60 * i, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
    with VideoReader(src) as reader:
        assert reader.info.timecode == "01:02:03:04"
    dst = tmp_path / f"out{out_ext}"
    assert main(["stylize", str(src), "--style", str(style), "-o", str(dst), "--model", "reinhard", "-q"]) == 0
    with av.open(str(dst)) as c:
        tags = {k.lower(): v for k, v in c.streams.video[0].metadata.items()}
    assert tags.get("timecode") == "01:02:03:04"
