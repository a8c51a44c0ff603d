"""The studio's preview frames (studio/media.py) are the frames the render will read."""

from __future__ import annotations

import av
import numpy as np

from mvstylizer.studio.media import preview_frames, probe_video
from mvstylizer.video.reader import VideoReader


def _two_stream_clip(path, frames: int = 320) -> None:
    """A small 24x16 stream first (a thumbnail track), then the 64x48 main video; each main frame a
    different grey, so a frame tells its own index."""
    with av.open(str(path), "w") as c:
        thumb = c.add_stream("libx264", rate=25, options={"preset": "ultrafast", "g": "25"})
        thumb.width, thumb.height, thumb.pix_fmt = 24, 16, "yuv420p"
        main = c.add_stream("libx264", rate=25, options={"preset": "ultrafast", "g": "25", "crf": "0"})
        main.width, main.height, main.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            t = av.VideoFrame.from_ndarray(np.full((16, 24, 3), 250, np.uint8), format="rgb24")
            m = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 16 + (i * 7) % 224, np.uint8), format="rgb24")
            t.pts = m.pts = i
            c.mux(thumb.encode(t))
            c.mux(main.encode(m))
        c.mux(thumb.encode(None))
        c.mux(main.encode(None))


def test_long_video_previews_come_from_the_main_stream_as_the_reader_converts_it(tmp_path):
    clip = tmp_path / "two.mkv"
    _two_stream_clip(clip)
    facts = probe_video(clip)
    assert facts.frames > 300  # long enough to be sampled by seeking
    picked = preview_frames(clip, facts, 4, 64)
    assert len(picked) == 4
    with VideoReader(clip) as reader:
        wanted = {i for i, _, _ in picked}
        rendered = {f.index: f.rgb8 for f in reader.frames() if f.index in wanted}
    for index, _, rgb in picked:
        assert rgb.shape == (48, 64, 3)
        assert np.abs(rgb.astype(int) - rendered[index]).max() <= 2, index
