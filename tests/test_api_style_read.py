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



def test_export_lut_and_export_cube_read_a_style_file_as_stylize_does(tmp_path):
    # A red logo on a transparent background whose hidden pixels are white: export_cube made the LUT
    # of a pale pink style from it, the stylized video has the look of a red one. A style over the
    # edge's 1024 px: export_lut read it whole, the edge keeps it shrunk.
    from mvstylizer.models.dncm import export_cube
    from mvstylizer.video.image import read_style

    bgra = np.full((64, 64, 4), 255, np.uint8)
    bgra[..., 3] = 0
    cv2.circle(bgra, (32, 32), 20, (40, 30, 200, 255), -1)
    logo = tmp_path / "logo.png"
    cv2.imwrite(str(logo), bgra)
    export_cube(logo, tmp_path / "path.cube", size=9)
    export_cube(read_style(logo, 1024), tmp_path / "want.cube", size=9)
    assert (tmp_path / "path.cube").read_text() == (tmp_path / "want.cube").read_text()

    big = tmp_path / "big.png"
    rng = np.random.default_rng(1)
    cv2.imwrite(str(big), cv2.resize(rng.integers(0, 256, (9, 9, 3), np.uint8), (1600, 1600),
                                     interpolation=cv2.INTER_NEAREST))
    mvstylizer.export_lut(big, tmp_path / "api.cube", size=9)
    export_cube(read_style(big, 1024), tmp_path / "want_big.cube", size=9)
    assert (tmp_path / "api.cube").read_text() == (tmp_path / "want_big.cube").read_text()
