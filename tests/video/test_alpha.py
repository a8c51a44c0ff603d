"""Video with transparency (ProRes 4444, FFV1 with alpha) is read as its picture over black."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from helpers import bt2020_signal

from mvstylizer.video.reader import VideoReader

W, H = 64, 48
_STORED = (200, 40, 40)  # what the file holds under every pixel, whatever its alpha


def _clip(path: Path, codec: str, pix_fmt: str, options: dict[str, str] | None = None) -> None:
    """Columns: alpha 0 (transparent), 128 (half) and 255 (opaque), 16 + 16 + 32 pixels wide."""
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., :3] = _STORED
    rgba[:, :16, 3], rgba[:, 16:32, 3], rgba[:, 32:, 3] = 0, 128, 255
    with av.open(str(path), "w") as c:
        v = c.add_stream(codec, rate=10, options=options or {})
        v.width, v.height, v.pix_fmt = W, H, pix_fmt
        for i in range(2):
            frame = av.VideoFrame.from_ndarray(rgba, format="rgba").reformat(format=pix_fmt)
            frame.pts = i
            c.mux(v.encode(frame))
        c.mux(v.encode(None))


@pytest.mark.parametrize(("name", "codec", "pix_fmt", "options"), [
    ("prores4444.mov", "prores_ks", "yuva444p10le", {"profile": "4"}),
    ("ffv1.mkv", "ffv1", "yuva420p", None),
])
def test_transparent_pixels_read_as_black(tmp_path, name, codec, pix_fmt, options):
    """Transparent pixels came out as the colour stored under them (200, 40, 40: 200 levels off black)."""
    clip = tmp_path / name
    _clip(clip, codec, pix_fmt, options)
    with av.open(str(clip)) as c:
        assert any(comp.is_alpha for comp in next(c.decode(video=0)).format.components)  # the case at hand
    with VideoReader(clip) as reader:
        frames = list(reader.frames(deferred=True))
    rgb = frames[1].rgb8().astype(int)
    stored = np.array(_STORED)
    assert np.abs(rgb[:, 2:14] - 0).max() <= 2  # transparent: black
    assert np.abs(rgb[:, 18:30] - np.round(stored * 128 / 255)).max() <= 3  # half: half the colour
    assert np.abs(rgb[:, 34:] - stored).max() <= 3  # opaque: as stored
    small = frames[1].small(32, 24).astype(int)  # the key-size view, from the same picture
    assert np.abs(small[:, 1:7]).max() <= 2 and np.abs(small[:, 17:] - stored).max() <= 3


def test_opaque_video_takes_no_alpha_path(tmp_path):
    clip = tmp_path / "opaque.mkv"
    _clip(clip, "ffv1", "yuv420p")
    with VideoReader(clip) as reader:
        (frame, _) = list(reader.frames(deferred=True))
    assert reader._to_rgb.sdr(frame.frame) is frame.frame


def test_transparent_bt2020_video_is_mapped_and_read_over_black(tmp_path):
    """A frame that needs gamut mapping went through a 16-bit RGB step that dropped its alpha: the
    colour stored under transparent pixels came out as if opaque."""
    green = (40, 140, 70)  # as shown on BT.709; stored as the BT.2020 signal that shows so
    rgba = np.zeros((H, W, 4), np.uint16)
    rgba[..., :3] = bt2020_signal(np.array(green, np.uint8))
    rgba[:, 32:, 3] = 65535  # left half transparent, right half opaque
    clip = tmp_path / "bt2020_alpha.mkv"
    with av.open(str(clip), "w") as c:
        v = c.add_stream("ffv1", rate=10)
        v.width, v.height, v.pix_fmt = W, H, "yuva444p10le"
        v.codec_context.color_primaries, v.codec_context.color_trc = 9, 1  # BT.2020 primaries, BT.709 curve
        v.codec_context.colorspace, v.codec_context.color_range = 9, 1
        for i in range(2):
            frame = av.VideoFrame.from_ndarray(rgba, format="rgba64le").reformat(
                format="yuva444p10le", dst_colorspace="BT2020", dst_color_range="MPEG")
            frame.pts = i
            c.mux(v.encode(frame))
        c.mux(v.encode(None))
    with VideoReader(clip) as reader:
        frames = list(reader.frames(deferred=True))
    rgb = frames[1].rgb8().astype(int)
    assert np.abs(rgb[:, 2:30]).max() <= 2  # transparent: black (was the stored green)
    assert np.abs(rgb[:, 34:] - np.array(green)).max() <= 4  # opaque: mapped into BT.709
