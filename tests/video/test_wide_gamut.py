"""SDR video on BT.2020 primaries (phones' 10-bit SDR) is gamut-mapped into BT.709, and the reader's
HDR/gamut note follows the frames it converts, not the stream's tags."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import bt2020_signal

from mvstylizer.video.reader import VideoReader

_COLOURS = [(30, 30, 30), (118, 118, 118), (200, 200, 200), (180, 60, 40), (40, 140, 70), (60, 90, 190)]


def _picture(h: int = 64, w: int = 96) -> np.ndarray:
    """Flat patches (flat, so 4:2:0 chroma does not blur them), two rows of three."""
    img = np.zeros((h, w, 3), np.uint8)
    for i, c in enumerate(_COLOURS):
        img[(i // 3) * (h // 2):(i // 3 + 1) * (h // 2), (i % 3) * (w // 3):(i % 3 + 1) * (w // 3)] = c
    return img


def _patches(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    return rgb[h // 4::h // 2, w // 6::w // 3].astype(int).reshape(-1, 3)


def _bt2020_clip(path: Path, picture: np.ndarray, transfer: str, pix_fmt: str, frames: int = 2) -> None:
    h, w = picture.shape[:2]
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=25, options={
            "preset": "ultrafast", "crf": "4",
            "x264-params": f"colorprim=bt2020:transfer={transfer}:colormatrix=bt2020nc"})
        v.width, v.height, v.pix_fmt = w, h, pix_fmt
        rgb16 = av.VideoFrame.from_ndarray(bt2020_signal(picture), format="rgb48le")
        for i in range(frames):
            frame = rgb16.reformat(format=pix_fmt, dst_colorspace="BT2020", dst_color_range="MPEG")
            frame.pts = i
            c.mux(v.encode(frame))
        c.mux(v.encode(None))


@pytest.mark.parametrize(("transfer", "pix_fmt"), [("bt2020-10", "yuv420p10le"), ("bt709", "yuv420p")],
                         ids=["10bit-bt2020-10", "8bit-bt709"])
def test_bt2020_sdr_is_mapped_into_bt709(tmp_path, transfer, pix_fmt, caplog):
    """Read as BT.709 the green patch (40, 140, 70) came out (91, 133, 79), 53 levels off; swscale's
    own 8-bit output of the mapping is 9 levels off. The reference is the picture the test encoded,
    i.e. the BT.2020 signal taken back through the inverse of BT.2087's matrix."""
    picture = _picture()
    clip = tmp_path / "bt2020.mp4"
    _bt2020_clip(clip, picture, transfer, pix_fmt)
    with caplog.at_level(logging.INFO, logger="mvstylizer"), VideoReader(clip) as reader:
        frames = list(reader.frames(deferred=True))
    want = _patches(picture)
    full = _patches(frames[1].rgb8())
    assert np.abs(full - want).max() <= 3, (full - want).tolist()
    small = _patches(frames[1].small(48, 32))  # the key-size view, from the mapped frame
    assert np.abs(small - want).max() <= 4, (small - want).tolist()
    assert sum("BT.2020 colour" in r.getMessage() for r in caplog.records) == 1
    assert "HDR" not in caplog.text


def test_bt709_frames_are_not_mapped(tmp_path):
    """Plain BT.709 video takes no mapping path: its decoded frame goes to RGB as it is."""
    clip = tmp_path / "bt709.mp4"
    with av.open(str(clip), "w") as c:
        v = c.add_stream("libx264", rate=25, options={
            "preset": "ultrafast", "x264-params": "colorprim=bt709:transfer=bt709:colormatrix=bt709"})
        v.width, v.height, v.pix_fmt = 96, 64, "yuv420p"
        c.mux(v.encode(av.VideoFrame.from_ndarray(_picture(), format="rgb24")))
        c.mux(v.encode(None))
    with VideoReader(clip) as reader:
        (frame,) = list(reader.frames(deferred=True))
    assert frame.frame.format.name == "yuv420p"  # kept as decoded, not turned to RGB up front
    assert reader._to_rgb.sdr(frame.frame) is frame.frame


# -- HDR note and conversion keyed on the frames ---------------------------------------------------

_HLG = "colorprim=bt2020:transfer=arib-std-b67:colormatrix=bt2020nc"


def _ts_part(path: Path, frames: int, level: int, vui: str | None) -> None:
    """An MPEG-TS recording of flat grey ``level`` frames, tagged HLG where ``vui`` says so."""
    options = {"preset": "ultrafast", **({"x264-params": vui} if vui else {})}
    with av.open(str(path), "w", format="mpegts") as c:
        v = c.add_stream("libx264", rate=25, options=options)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p10le"
        grey = av.VideoFrame.from_ndarray(np.full((48, 64, 3), level, np.uint8), format="rgb24")
        for i in range(frames):
            frame = grey.reformat(format="yuv420p10le")
            frame.pts = i
            c.mux(v.encode(frame))
        c.mux(v.encode(None))


def test_hdr_note_and_conversion_follow_the_frames(tmp_path, caplog):
    """An SDR recording joined to an HLG one (``cat a.ts b.ts``): with 8 s of SDR first, the probe
    sees no HLG and the stream is untagged. The HLG frames were converted but the user never told
    (the note went by the stream's tags). Now: one warning, also across a second pass over the file,
    the SDR frames as they are, the HLG frames converted."""
    sdr_frames = 200
    sdr, hlg, joined = tmp_path / "sdr.ts", tmp_path / "hlg.ts", tmp_path / "joined.ts"
    _ts_part(sdr, sdr_frames, 100, None)
    _ts_part(hlg, 10, 100, _HLG)
    joined.write_bytes(sdr.read_bytes() + hlg.read_bytes())
    with av.open(str(joined)) as c:
        stream_trc = c.streams.video[0].codec_context.color_trc
    assert stream_trc == 2  # what the case is about: the stream states no transfer
    with caplog.at_level(logging.WARNING, logger="mvstylizer"), VideoReader(joined) as reader:
        frames = [f.rgb8 for f in reader.frames()]
        list(reader.frames_near([0.0, 100.0]))  # a second pass over the file: no second warning
    assert len(frames) == sdr_frames + 10
    assert sum("is HDR video (HLG)" in r.getMessage() for r in caplog.records) == 1, caplog.text
    sdr_level, hlg_level = int(frames[0].mean().round()), int(frames[-1].mean().round())
    assert abs(sdr_level - 100) <= 2
    # The same code values read as HLG show brighter than as SDR (grey 100 reads 112).
    assert hlg_level > sdr_level + 8, (sdr_level, hlg_level)
