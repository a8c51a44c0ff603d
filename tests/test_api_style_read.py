"""``VideoStylizer.stylize_frames`` given a style file reads it as ``stylize_file`` and the command line
do: shrunk as decoded (a long thin one keeping 8 pixels across), transparent pixels left out."""

from __future__ import annotations

import cv2
import numpy as np

import mvstylizer


def test_stylize_frames_reads_a_style_file_as_stylize_file_does(tmp_path):
    # A 4000x8 strip, dark rows over light: read whole and shrunk to 1024x2, its rows were averaged
    # four at a time and the frames came out with less contrast than stylize_file gives them.
    rows = np.repeat(np.linspace(0.1, 0.9, 8, dtype=np.float32)[:, None], 4000, axis=1)
    strip = (np.dstack([rows, rows * 0.8, rows * 0.5]) * 255 + 0.5).astype(np.uint8)
    style = tmp_path / "strip.png"
    cv2.imwrite(str(style), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
    frame = np.clip(np.random.default_rng(0).normal(128, 40, (48, 64, 3)), 0, 255).astype(np.uint8)
    src = tmp_path / "frame.png"
    cv2.imwrite(str(src), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    with mvstylizer.VideoStylizer(model="reinhard") as vs:
        vs.stylize_file(src, style, tmp_path / "out.png")
        (got,) = vs.stylize_frames([frame], style)
    want = cv2.cvtColor(cv2.imread(str(tmp_path / "out.png")), cv2.COLOR_BGR2RGB).astype(np.float32)
    got = got.astype(np.float32)
    assert np.abs(got.mean(axis=(0, 1)) - want.mean(axis=(0, 1))).max() < 2
    assert np.abs(got.std(axis=(0, 1)) - want.std(axis=(0, 1))).max() < 2, (got.std(axis=(0, 1)),
                                                                            want.std(axis=(0, 1)))
