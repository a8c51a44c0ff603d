"""The stylized video keeps every audio track of the input (a second language, a commentary track)."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np

from mvstylizer.mobile.edge_link import EmbeddedEdge
from mvstylizer.mobile.pipeline import StylizeConfig, VideoPipeline

_TRACKS = [(44100, "stereo", "eng"), (16000, "mono", "fra")]


def _clip(path: Path) -> None:
    """1 s of 10 fps 64x48 H.264 with two AAC tracks, told apart by rate, layout and language."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=10, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        tracks = []
        for rate, layout, lang in _TRACKS:
            a = out.add_stream("aac", rate=rate, layout=layout)
            a.metadata["language"] = lang
            tracks.append(a)
        rng = np.random.default_rng(0)
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (48, 64, 3), np.uint8), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        for a, (rate, layout, _) in zip(tracks, _TRACKS, strict=True):
            channels = 2 if layout == "stereo" else 1
            for pts in range(0, rate, 1024):
                wave = 0.3 * np.sin(2 * np.pi * 440 * (np.arange(1024) + pts) / rate).astype(np.float32)
                frame = av.AudioFrame.from_ndarray(np.tile(wave, (channels, 1)), format="fltp", layout=layout)
                frame.sample_rate, frame.pts = rate, pts
                out.mux(a.encode(frame))
            out.mux(a.encode(None))
        out.mux(video.encode(None))


def test_stylize_keeps_both_audio_tracks_in_order(tmp_path: Path) -> None:
    src, style, dst = tmp_path / "two_tracks.mp4", tmp_path / "style.png", tmp_path / "out.mp4"
    _clip(src)
    cv2.imwrite(str(style), np.dstack([np.full((32, 32), v, np.uint8) for v in (40, 90, 160)]))
    VideoPipeline(EmbeddedEdge(), StylizeConfig(model="reinhard", progress=False)).run(src, style, dst)
    with av.open(str(dst)) as c:
        got = [(a.codec_context.sample_rate, a.codec_context.layout.nb_channels, a.metadata.get("language"))
               for a in c.streams.audio]
    assert got == [(44100, 2, "eng"), (16000, 1, "fra")]
