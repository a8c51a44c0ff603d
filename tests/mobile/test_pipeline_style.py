"""What of a style photo the pipeline uses."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mvstylizer.mobile.edge_link import EmbeddedEdge
from mvstylizer.mobile.pipeline import StylizeConfig, VideoPipeline


def test_a_logo_on_a_transparent_background_styles_with_the_logo_colours(tmp_path: Path) -> None:
    # A red disc on a transparent background whose hidden pixels are white, as image editors save it.
    bgra = np.full((64, 64, 4), 255, np.uint8)
    bgra[..., 3] = 0
    cv2.circle(bgra, (32, 32), 20, (40, 30, 200, 255), -1)
    style, src, dst = tmp_path / "logo.png", tmp_path / "grey.png", tmp_path / "out.png"
    cv2.imwrite(str(style), bgra)
    rng = np.random.default_rng(0)
    cv2.imwrite(str(src), rng.integers(60, 200, (48, 64, 3), np.uint8))
    VideoPipeline(EmbeddedEdge(), StylizeConfig(model="reinhard", progress=False)).run(src, style, dst)
    b, g, r = cv2.imread(str(dst)).reshape(-1, 3).mean(axis=0)
    assert r > g + 80 and r > b + 80  # red; with the white background counted, a pale pink (~250, 210, 200)
