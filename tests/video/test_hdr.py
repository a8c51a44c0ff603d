"""HDR video (HLG or PQ on BT.2020, what phones record by default) is read as SDR BT.709 pictures."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np
import pytest

from mvstylizer.video.reader import VideoReader

HLG, PQ = 18, 16  # FFmpeg's transfer characteristic codes
# BT.709 -> BT.2020 primaries, linear light (BT.2087)
_TO_2020 = np.array([[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]])


def _sdr_to_hdr_signal(rgb8: np.ndarray, transfer: int) -> np.ndarray:
    """The HDR signal (16 bits per channel) of an SDR picture shown with SDR white at HDR reference
    white (203 cd/m2, BT.2408): what a phone's HDR video of the same scene holds."""
    nits = 203.0 * ((rgb8 / 255.0) ** 2.4) @ _TO_2020.T  # BT.1886 display light, BT.2020 primaries
    if transfer == PQ:
        m1, m2 = 2610 / 16384, 2523 / 4096 * 128
        c1, c2, c3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
        y = (nits / 10000.0) ** m1
        signal = ((c1 + c2 * y) / (1 + c3 * y)) ** m2
    else:  # HLG: the inverse OOTF of a 1000 cd/m2 display (system gamma 1.2), then the OETF
        luma = np.maximum(nits @ np.array([0.2627, 0.6780, 0.0593]), 1e-9)
        scene = nits / (1000.0 * (luma / 1000.0) ** (0.2 / 1.2))[..., None]
        a, b, c = 0.17883277, 0.28466892, 0.55991073
        signal = np.where(scene <= 1 / 12, np.sqrt(3 * scene), a * np.log(np.maximum(12 * scene - b, 1e-12)) + c)
    return np.round(np.clip(signal, 0, 1) * 65535).astype(np.uint16)


def _hdr_clip(path: Path, picture: np.ndarray, transfer: int, frames: int = 3) -> None:
    h, w = picture.shape[:2]
    tags = {HLG: "arib-std-b67", PQ: "smpte2084"}[transfer]
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=25, options={
            "preset": "ultrafast", "crf": "4",
            "x264-params": f"colorprim=bt2020:transfer={tags}:colormatrix=bt2020nc"})
        v.width, v.height, v.pix_fmt = w, h, "yuv420p10le"
        rgb16 = av.VideoFrame.from_ndarray(_sdr_to_hdr_signal(picture, transfer), format="rgb48le")
        for i in range(frames):
            frame = rgb16.reformat(format="yuv420p10le", dst_colorspace="BT2020", dst_color_range="MPEG")
            frame.pts = i
            c.mux(v.encode(frame))
        c.mux(v.encode(None))


def frames_deferred(clip: Path) -> list:
    with VideoReader(clip) as reader:
        return list(reader.frames(deferred=True))


def _picture(h: int = 64, w: int = 96) -> np.ndarray:
    """Flat patches of SDR colours (flat, so 4:2:0 chroma does not blur them), none brighter than
    the highlights a down-mapping may roll off."""
    colours = [(30, 30, 30), (118, 118, 118), (200, 200, 200), (180, 60, 40), (40, 140, 70), (60, 90, 190)]
    img = np.zeros((h, w, 3), np.uint8)
    for i, c in enumerate(colours):
        img[(i // 3) * (h // 2):(i // 3 + 1) * (h // 2), (i % 3) * (w // 3):(i % 3 + 1) * (w // 3)] = c
    return img


@pytest.mark.parametrize("transfer", [HLG, PQ], ids=["hlg", "pq"])
def test_hdr_video_reads_as_the_sdr_picture_it_shows(tmp_path, transfer, caplog):
    picture = _picture()
    clip = tmp_path / "hdr.mp4"
    _hdr_clip(clip, picture, transfer)
    with caplog.at_level(logging.WARNING), VideoReader(clip) as reader:
        frames = [f.rgb8 for f in reader.frames()]
    assert len(frames) == 3
    assert sum("HDR" in r.getMessage() for r in caplog.records) == 1
    # Patch centres (away from the 4:2:0 chroma edges): greys as the SDR picture; colours within
    # what FFmpeg's gamut mapping moves them, 3 (HLG) and 5 (PQ) levels through 16-bit RGB, 9 and 10
    # through swscale's 8-bit output (read as SDR, the grey 200 came out 133, the red 180,
    # 60, 40 as 116, 80, 60).
    got = frames[1][8::16, 8::16].astype(int).reshape(-1, 3)
    want = picture[8::16, 8::16].astype(int).reshape(-1, 3)
    grey = (want == want[:, :1]).all(axis=1)
    assert np.abs(got - want)[grey].max() <= 2, np.abs(got - want)[grey].max()
    assert np.abs(got - want).max() <= 6, np.abs(got - want).max()
    small = [f.small(48, 32) for f in frames_deferred(clip)]  # the key-size view, from the decoder's frame
    assert np.abs(small[1][4::8, 4::8].astype(int).reshape(-1, 3) - want).max() <= 14


def test_sdr_video_is_not_converted(tmp_path):
    """An SDR clip with no colour tags reads as before: only HLG and PQ are converted."""
    picture = _picture()
    clip = tmp_path / "sdr.mp4"
    with av.open(str(clip), "w") as c:
        v = c.add_stream("libx264", rate=25, options={"preset": "ultrafast", "crf": "4"})
        v.width, v.height, v.pix_fmt = 96, 64, "yuv420p"
        c.mux(v.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        c.mux(v.encode(None))
    with VideoReader(clip) as reader:
        (frame,) = [f.rgb8 for f in reader.frames()]
    assert np.abs(frame[8::16, 8::16].astype(int) - picture[8::16, 8::16]).max() <= 3
