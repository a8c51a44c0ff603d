"""Fades and cuts to darker shots through the whole pipeline (keys at the edge, frames between them on
the phone)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from helpers import texture, to8

from mvstylizer.mobile.edge_link import EmbeddedEdge
from mvstylizer.mobile.pipeline import StylizeConfig, VideoPipeline
from mvstylizer.video.image import write_image
from mvstylizer.video.reader import VideoReader
from mvstylizer.video.writer import VideoWriter


def _run(tmp_path: Path, frames: list[np.ndarray], strength: float = 1.0) -> list[float]:
    """Mean level of each output frame, the clip styled with mk and a bright style."""
    src, style, dst = tmp_path / "in.mp4", tmp_path / "style.png", tmp_path / "out.mp4"
    write_image(style, texture(48, 64, seed=1) * 0.5 + 0.4)
    with VideoWriter(src, 128, 96, 12.0, crf=4, preset="veryfast") as writer:
        for f in frames:
            writer.write(to8(f))
    config = StylizeConfig(model="mk", progress=False)
    config = replace(config, interp=replace(config.interp, strength=strength))
    VideoPipeline(EmbeddedEdge(), config).run(src, style, dst)
    with VideoReader(dst) as reader:
        out = [float(f.rgb8.mean()) / 255 for f in reader.frames()]
    assert len(out) == len(frames)
    return out


def test_a_fade_to_black_fades_out(tmp_path: Path) -> None:
    # The model takes every frame to the style's exposure: the fade stayed at full brightness for
    # its whole length (0.57-0.58 mean level here), then its black last frame popped to black.
    scene = texture(96, 128, seed=0)
    levels = [1.0] * 6 + list(np.linspace(1.0, 0.0, 19)[1:])
    out = _run(tmp_path, [np.roll(scene, i, axis=1) * a for i, a in enumerate(levels)])
    assert out[18] < 0.6 * out[0]  # the input at a third of its levels
    assert out[22] < 0.25 * out[0]  # at a ninth
    assert all(b < a + 0.01 for a, b in zip(out[6:], out[7:], strict=False))  # falling all the way, no step up
    assert out[-1] < 0.01  # ends black


def test_the_last_nearly_black_frames_of_a_fade_make_no_flash(tmp_path: Path) -> None:
    # A fade's last frames, too dark for any mid-tone, could not tell a fade from a cut; the cut
    # detector took one of them for a cut and started a shot of one frame, which the model lifted to
    # the style's brightness: a flash of 0.66 mean level between frames of 0.09 and 0 (a review
    # helper's clip: a warm gradient, a ball moving across it).
    y, x = np.mgrid[0:96, 0:128].astype(np.float32)
    out_frames = []
    for t in range(60):
        img = np.stack([120 + 100 * x / 128, 60 + 80 * y / 96, np.full_like(x, 40)], axis=-1) / 255
        img[(x - 20 - 2 * t) ** 2 + (y - 48) ** 2 < 15 ** 2] = (250 / 255, 230 / 255, 60 / 255)
        out_frames.append(img * max(0.0, 1.0 - max(0, t - 20) / 30))
    out = _run(tmp_path, out_frames)
    assert all(b < a + 0.01 for a, b in zip(out[20:], out[21:], strict=False)), np.round(out, 3)
    assert out[-1] < 0.01


def test_a_fade_to_white_fades_to_white(tmp_path: Path) -> None:
    # The mirror image: the style's exposure held to the end, and the white last frame came out in
    # the style's mean colour. (A still shot: where motion changes the levels more than the fade
    # does, a fade to white and a camera re-exposing predict them alike, and the fade is kept only
    # once the motion no longer dominates, near white.)
    scene = texture(96, 128, seed=0)
    levels = [0.0] * 6 + list(np.linspace(0.0, 1.0, 19)[1:])
    out = _run(tmp_path, [scene * (1 - a) + a for a in levels])
    assert out[18] > out[0] + 0.4 * (1 - out[0])  # the input two thirds of the way to white
    assert all(b > a - 0.01 for a, b in zip(out[6:], out[7:], strict=False))  # rising all the way
    assert out[-1] > 0.99  # ends white


def test_a_cut_to_a_darker_shot_is_styled_as_its_own_shot(tmp_path: Path) -> None:
    bright, dark = texture(96, 128, seed=0), texture(96, 128, seed=7) * 0.3
    out = _run(tmp_path, [np.roll(bright, i, axis=1) for i in range(8)] + [np.roll(dark, i, axis=1) for i in range(8)])
    assert out[12] > 0.8 * out[4]  # the style's exposure, as frame-by-frame gives it: not kept dark


def test_after_a_dip_through_black_the_shot_is_styled_afresh(tmp_path: Path) -> None:
    # A grey picture dips to black and comes back: the selector sees no cut (same hues), and the dip
    # used to leave the rest of the shot measured against the picture before it, ten times too dark.
    grey = np.repeat(texture(96, 128, seed=0).mean(axis=2, keepdims=True), 3, axis=2)
    down, up = list(np.linspace(1.0, 0.0, 13)[1:]), list(np.linspace(0.0, 1.0, 13)[1:])
    levels = [1.0] * 6 + down + [0.0, 0.0] + up + [1.0] * 6
    out = _run(tmp_path, [np.roll(grey, i, axis=1) * a for i, a in enumerate(levels)])
    assert out[-1] > 0.9 * out[0]


def test_at_strength_zero_a_fade_is_the_input(tmp_path: Path) -> None:
    # The look keeps 1 - strength of the frame's own fade; scaling the rest by the full deficit
    # darkened it twice (a tenth of the input's level at strength 0).
    scene = texture(96, 128, seed=0)
    levels = [1.0] * 6 + list(np.linspace(1.0, 0.05, 13)[1:])
    frames = [scene * a for a in levels]
    out = _run(tmp_path, frames, strength=0.0)
    want = [float(to8(f).mean()) / 255 for f in frames]
    np.testing.assert_allclose(out, want, atol=0.01)
