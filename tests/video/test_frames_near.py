"""VideoReader.frames_near: seeking for previews, on the same timeline as frames()."""

from __future__ import annotations

import av
import numpy as np

from mvstylizer.video.reader import VideoReader

RATE = 48000


def _late_video(path, frames: int = 30, fps: int = 10, video_start: float = 0.5) -> None:
    """Audio from 0 s, video from ``video_start`` s (a camera whose sound starts first); each frame
    a different grey."""
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "g": "5"})
        v.width, v.height, v.pix_fmt = 32, 24, "yuv420p"
        a = c.add_stream("aac", rate=RATE, layout="mono")
        for t in range(0, round((frames / fps + video_start) * RATE), 1024):
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            f.sample_rate, f.pts = RATE, t
            c.mux(a.encode(f))
        c.mux(a.encode(None))
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(np.full((24, 32, 3), 20 + 7 * i, np.uint8), format="rgb24")
            f.pts = i + round(video_start * fps)
            c.mux(v.encode(f))
        c.mux(v.encode(None))


def test_frames_near_share_frames_timeline_and_a_time_past_the_end_gives_the_last_frame(tmp_path):
    clip = tmp_path / "late.mkv"
    _late_video(clip)
    with VideoReader(clip) as reader:
        every = {f.pts: (f.time, f.rgb8) for f in reader.frames()}
        near = list(reader.frames_near([0.8, 1.55, 99.0]))
    assert len(near) == 3
    for f in near:
        time, rgb = every[f.pts]
        assert abs(f.time - time) < 1e-6
        assert np.abs(f.rgb8.astype(int) - rgb).max() <= 1
    assert 0.8 <= near[0].time < 0.9 and 1.5 <= near[1].time < 1.65
    assert near[2].pts == max(every)  # past the end: the last frame, not nothing
