"""A video whose frame size changes mid-stream: later frames keep their shape inside the first size."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from mvstylizer.video.reader import VideoReader


def write_ts(path: Path, width: int, height: int, frames: int = 3) -> None:
    """Dark grey frames with a white square of side height // 2 in the middle."""
    img = np.full((height, width, 3), 40, np.uint8)
    side = height // 2
    y, x = (height - side) // 2, (width - side) // 2
    img[y : y + side, x : x + side] = 255
    with av.open(str(path), "w", format="mpegts") as out:
        v = out.add_stream("libx264", rate=25, options={"preset": "ultrafast", "bf": "0"})
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            out.mux(v.encode(frame))
        out.mux(v.encode(None))


def turned(tmp_path: Path) -> Path:
    """A landscape recording that goes on in portrait (``cat a.ts b.ts``, as a screen recorder turned)."""
    a, b, both = tmp_path / "a.ts", tmp_path / "b.ts", tmp_path / "both.ts"
    write_ts(a, 96, 64)
    write_ts(b, 48, 96)
    both.write_bytes(a.read_bytes() + b.read_bytes())
    return both


def square_box(rgb: np.ndarray) -> tuple[int, int]:
    """(height, width) of the white square."""
    ys, xs = np.nonzero(rgb[:, :, 1] > 150)
    return int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)


def test_frames_after_a_size_change_keep_their_shape_between_black_bars(tmp_path):
    with VideoReader(turned(tmp_path)) as reader:
        frames = [f.rgb8 for f in reader.frames()]
    assert (reader.info.width, reader.info.height) == (96, 64) and len(frames) == 6
    assert all(f.shape == (64, 96, 3) for f in frames)
    h, w = square_box(frames[-1])
    assert abs(h - w) <= 2 and abs(h - 32) <= 2  # a square, the portrait frame scaled to 64 high
    assert frames[-1][:, :20].max() < 10 and frames[-1][:, -20:].max() < 10  # pillarbox bars


def test_the_key_size_view_of_a_changed_frame_matches_the_full_frame(tmp_path):
    path = turned(tmp_path)
    with VideoReader(path) as reader:
        last = [f for f in reader.frames(deferred=True)][-1]
        small, full = last.small(48, 32), last.rgb8()
    h, w = square_box(small)
    assert abs(h - w) <= 1 and abs(h - 16) <= 1
    assert small[:, :10].max() < 10 and small[:, -10:].max() < 10
    assert np.abs(small.astype(int) - full[::2, ::2]).mean() < 12
