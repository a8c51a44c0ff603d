"""VideoReader: names FFmpeg would misread, input timelines made to start at 0 and keep increasing."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np

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


def test_a_relative_name_with_a_colon_is_a_file_not_a_protocol(tmp_path, monkeypatch):
    # FFmpeg takes "2024-05-01T10" for a protocol name unless the path is absolute.
    write_clip(tmp_path / "clip.mp4")
    shutil.move(tmp_path / "clip.mp4", tmp_path / "2024-05-01T10:30:00.mp4")
    monkeypatch.chdir(tmp_path)
    with VideoReader("2024-05-01T10:30:00.mp4") as reader:
        assert sum(1 for _ in reader.frames()) == 10
