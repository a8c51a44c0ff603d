"""Sizes H.264 cannot hold are refused up front with a reason, not the encoder's generic error."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from mvstylizer.errors import UserError
from mvstylizer.video.writer import VideoWriter, fits_h264


@pytest.mark.parametrize("size", [(16386, 2), (2, 16386), (20000, 4)])
def test_a_side_over_16384_pixels_is_refused_with_the_reason_and_no_file(tmp_path, size):
    with pytest.raises(UserError, match=r"larger than H.264 output can hold \(at most 16384 pixels a side\)"):
        VideoWriter(tmp_path / "wide.mp4", *size, fps=25)
    assert list(tmp_path.iterdir()) == []


def test_16384_pixels_a_side_is_written(tmp_path):
    path = tmp_path / "wide.mp4"
    with VideoWriter(path, 16384, 2, fps=25, preset="ultrafast") as writer:
        writer.write(np.zeros((2, 16384, 3), np.uint8))
    with av.open(str(path)) as c:
        assert c.streams.video[0].width == 16384


@pytest.mark.parametrize("size", [(16384, 2), (16386, 2), (2, 16386), (640, 480)])
def test_fits_h264_agrees_with_the_encoder(size):
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = *size, "yuv420p", Fraction(1, 25)
    try:
        ctx.open()
        opens = True
    except av.FFmpegError:
        opens = False
    assert fits_h264(*size) == opens


def test_fits_h264_counts_ffmpeg_s_padded_picture_limit():
    assert fits_h264(16384, 16000) and not fits_h264(16384, 16384)
