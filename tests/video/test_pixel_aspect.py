"""Non-square pixels (HDV, DV, broadcast): frames are read as players show them, and written so."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from mvstylizer.video.reader import VideoReader
from mvstylizer.video.writer import VideoWriter

W, H = 48, 24


def write_clip(path: Path, sar: Fraction | None) -> None:
    """Black left half, white right half, stored at W x H with pixels ``sar`` wide."""
    img = np.zeros((H, W, 3), np.uint8)
    img[:, W // 2:] = 255
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        if sar is not None:
            v.codec_context.sample_aspect_ratio = sar
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            out.mux(v.encode(frame))
        out.mux(v.encode(None))


def test_wide_pixels_are_read_at_the_width_players_show(tmp_path):
    path = tmp_path / "hdv.mp4"
    write_clip(path, Fraction(4, 3))
    with VideoReader(path) as reader:
        frames = list(reader.frames())
    assert (reader.info.width, reader.info.height) == (64, 24)
    rgb = frames[0].rgb8
    assert rgb.shape == (24, 64, 3)
    row = rgb[H // 2, :, 1].astype(int)
    assert row[:30].max() < 40 and row[34:].min() > 215  # the halves still meet in the middle


def test_the_output_of_wide_pixels_is_shown_at_the_input_s_shape(tmp_path):
    src, dst = tmp_path / "hdv.mkv", tmp_path / "out.mp4"
    write_clip(src, Fraction(4, 3))
    with VideoReader(src) as reader:
        info = reader.info
        with VideoWriter(dst, info.width, info.height, info.fps, reader.time_base, preset="ultrafast") as writer:
            for f in reader.frames():
                writer.write(f.rgb8, f.pts)
    with av.open(str(dst)) as c:
        v = c.streams.video[0]
        sar = v.sample_aspect_ratio or Fraction(1)
        assert Fraction(v.width) * sar / v.height == Fraction(W) * Fraction(4, 3) / H


def test_square_pixels_keep_their_size(tmp_path):
    for name, sar in (("unset.mp4", None), ("square.mp4", Fraction(1))):
        path = tmp_path / name
        write_clip(path, sar)
        with VideoReader(path) as reader:
            assert (reader.info.width, reader.info.height) == (W, H)
            assert next(iter(reader.frames())).rgb8.shape == (H, W, 3)
