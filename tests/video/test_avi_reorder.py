"""AVI stores decode order only: frames of a B-frame stream must still come out at their own times."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from mvstylizer.video.reader import VideoReader
from mvstylizer.video.writer import VideoWriter

W, H, FPS, FRAMES = 32, 24, 25, 12


def write_avi(path: Path, bframes: int) -> None:
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast", "bf": str(bframes)})
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        for i in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(np.full((H, W, 3), i * 20, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(v.encode(frame))
        out.mux(v.encode(None))


def test_b_frames_in_avi_are_read_at_evenly_spaced_rising_times(tmp_path):
    path = tmp_path / "b.avi"
    write_avi(path, bframes=3)
    with VideoReader(path) as reader:
        frames = list(reader.frames(prefetch=0))
    assert [f.rgb8[0, 0, 0] // 20 for f in frames] == list(range(FRAMES))  # shown order, as decoded
    steps = np.diff([f.time for f in frames])
    assert np.allclose(steps, 1 / FPS), steps


def test_b_frames_in_avi_written_to_avi_keep_every_frame(tmp_path):
    src, dst = tmp_path / "b.avi", tmp_path / "out.avi"
    write_avi(src, bframes=2)
    with VideoReader(src) as reader:
        info = reader.info
        with VideoWriter(dst, info.width, info.height, info.fps, reader.time_base, preset="ultrafast") as writer:
            for f in reader.frames():
                writer.write(f.rgb8, f.pts)
    assert writer.frames_dropped == 0
    with av.open(str(dst)) as c:
        assert sum(1 for _ in c.decode(video=0)) == FRAMES


def test_avi_without_b_frames_keeps_its_times(tmp_path):
    path = tmp_path / "p.avi"
    write_avi(path, bframes=0)
    with av.open(str(path)) as c:
        as_stored = [f.pts for f in c.decode(video=0)]
    with VideoReader(path) as reader:
        assert [f.pts for f in reader.frames()] == as_stored
