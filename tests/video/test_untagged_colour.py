"""YUV video that states no colour matrix is read with the one players assume for its size."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from mvstylizer.video.reader import VideoReader

RED = (200, 30, 40)
UNSPECIFIED = 2


def write_untagged(path: Path, width: int, height: int, matrix: str, pix_fmt: str = "yuv420p") -> None:
    """A flat red clip converted to YUV with ``matrix`` but tagged with none."""
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=25, options={"preset": "ultrafast", "crf": "10"})
        v.width, v.height, v.pix_fmt = width, height, pix_fmt
        rgb = av.VideoFrame.from_ndarray(np.full((height, width, 3), RED, np.uint8), format="rgb24")
        for i in range(2):
            frame = rgb.reformat(format=pix_fmt, dst_colorspace=matrix, dst_color_range="MPEG")
            frame.colorspace, frame.pts = UNSPECIFIED, i
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
    with av.open(str(path)) as c:
        assert next(c.decode(video=0)).colorspace == UNSPECIFIED  # the clip really is untagged


@pytest.mark.parametrize(("size", "matrix", "pix_fmt"), [
    ((1280, 32), "ITU709", "yuv420p"),  # HD: players take BT.709
    ((320, 640), "ITU709", "yuv420p"),  # taller than 576: HD too
    ((640, 32), "ITU601", "yuv420p"),  # SD: BT.601
    # Full-resolution chroma is YUV all the same (PyAV reports its chroma planes' subsampling, 0, as
    # their is_chroma): it was read as BT.601 at every size, a red 20 levels off.
    ((1280, 32), "ITU709", "yuv444p"),
    ((640, 32), "ITU601", "yuv444p"),
])
def test_an_untagged_clip_reads_in_the_colours_players_show(tmp_path, size, matrix, pix_fmt):
    path = tmp_path / "untagged.mp4"
    write_untagged(path, *size, matrix, pix_fmt)
    with VideoReader(path) as reader:
        rgb = next(iter(reader.frames())).rgb8
    with VideoReader(path) as reader:  # the key-size view, made from the decoder's pixels
        small = next(iter(reader.frames(deferred=True))).small(16, 16)
    for pixels in (rgb, small):
        assert np.abs(pixels.reshape(-1, 3).mean(0) - RED).max() < 2.5
