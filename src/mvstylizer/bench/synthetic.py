"""Tiny real video files for tests: known motion, optional scene cut, audio and rotation metadata.

Real encoded files (not arrays) so tests exercise the same decode/encode path as user videos;
tiny and fast (a 64x48, 12-frame clip takes a few milliseconds) so every test can make its own.

The content is a smooth random texture with some hard-edged shapes, translated by exactly
:data:`MOTION_PX` pixels per frame, so optical flow has texture to track and the true flow is known:
for frames ``t -> t+1`` of the same scene, ``flow[y, x] == MOTION_PX`` (in the flow module's
convention, stored orientation) everywhere except the strip where new content enters.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import cv2
import numpy as np

from mvstylizer.files import atomic_path
from mvstylizer.video.writer import fps_fraction

MOTION_PX: tuple[int, int] = (2, 1)
"""(dx, dy): content moves this many pixels right and down per frame."""

_AUDIO_RATE = 44100
_TONE_HZ = 440.0


def _texture(rng: np.random.Generator, height: int, width: int, tint: np.ndarray) -> np.ndarray:
    """Smooth multi-scale colour noise plus random rectangles/circles (hard edges), uint8."""
    coarse = rng.random((max(2, height // 12), max(2, width // 12), 3), dtype=np.float32)
    fine = rng.random((max(2, height // 3), max(2, width // 3), 3), dtype=np.float32)
    tex = 0.65 * cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    tex += 0.35 * cv2.resize(fine, (width, height), interpolation=cv2.INTER_LINEAR)
    tex = np.clip(tex * tint, 0.0, 1.0)
    img = (tex * 255.0 + 0.5).astype(np.uint8)
    n_shapes = max(3, (height * width) // 1500)
    for _ in range(n_shapes):
        colour = tuple(int(c) for c in (rng.random(3) * 255 * tint).clip(0, 255))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = int(rng.integers(3, max(4, min(height, width) // 5)))
        if rng.random() < 0.5:
            cv2.rectangle(img, (x, y), (x + size, y + size), colour, thickness=-1)
        else:
            cv2.circle(img, (x, y), size // 2 + 1, colour, thickness=-1)
    return img


def clip_frames(
    width: int = 64,
    height: int = 48,
    frames: int = 12,
    scene_cut_at: int | None = None,
    seed: int = 0,
) -> Iterator[np.ndarray]:
    """The exact HxWx3 uint8 RGB frames :func:`write_test_clip` encodes (before compression).

    Frame ``t`` is a window onto a larger texture, shifted so content moves by :data:`MOTION_PX`
    per frame. From ``scene_cut_at`` on, a different texture with a different colour cast is used
    (histogram and structure both change completely), still moving the same way.
    """
    dx, dy = MOTION_PX
    pad_x, pad_y = dx * frames + 2, dy * frames + 2
    rng = np.random.default_rng(seed)
    tex_a = _texture(rng, height + pad_y, width + pad_x, np.array([1.15, 0.95, 0.7], np.float32))
    tex_b, cut = None, frames
    if scene_cut_at is not None and 0 <= scene_cut_at < frames:
        rng_b = np.random.default_rng(seed + 7919)
        tex_b = _texture(rng_b, height + pad_y, width + pad_x, np.array([0.55, 0.9, 1.3], np.float32))
        cut = scene_cut_at
    for t in range(frames):
        tex = tex_b if (tex_b is not None and t >= cut) else tex_a
        # Window moves up-left by (dx, dy) each frame -> content moves down-right.
        x0, y0 = pad_x - 1 - dx * t, pad_y - 1 - dy * t
        yield np.ascontiguousarray(tex[y0 : y0 + height, x0 : x0 + width])


def write_test_clip(
    path: str | os.PathLike[str],
    width: int = 64,
    height: int = 48,
    frames: int = 12,
    fps: float = 10.0,
    audio: bool = False,
    rotation: int = 0,
    scene_cut_at: int | None = None,
    seed: int = 0,
    audio_codec: str | None = None,
) -> None:
    """Write a small real video: frames from :func:`clip_frames`, H.264 (VP9 for .webm).

    ``width``/``height`` are the *stored* size; with ``rotation`` (counter-clockwise degrees, the
    convention of ``VideoStream.set_display_rotation`` and ``VideoInfo.rotation``) a display
    matrix is added, so a reader that honours it sees a 90/270 clip with width and height swapped.
    ``audio=True`` adds a 440 Hz sine exactly as long as the video (AAC; Opus for .webm; or
    ``audio_codec``, e.g. ``"pcm_s16le"`` in .mkv to exercise the writer's transcode path).
    Odd sizes are stored as yuv444p (4:2:0 needs even sizes), like :class:`VideoWriter` does.
    """
    p = Path(path)
    webm = p.suffix.lower() == ".webm"
    rate = fps_fraction(fps)
    if frames < 0:
        raise ValueError("frames must be >= 0")
    with atomic_path(p) as tmp, av.open(str(tmp), mode="w") as out:
        if webm:
            vp9 = {"deadline": "realtime", "cpu-used": "8", "crf": "20", "b": "0"}
            vs = out.add_stream("libvpx-vp9", rate=rate, options=vp9)
        else:
            vs = out.add_stream("libx264", rate=rate, options={"crf": "12", "preset": "veryfast"})
        vs.width, vs.height = width, height
        vs.pix_fmt = "yuv420p" if (width % 2 == 0 and height % 2 == 0) else "yuv444p"
        # Keep our own copy: muxers may replace vs.time_base once the header is written.
        tb = 1 / rate
        vs.time_base = tb
        vs.codec_context.time_base = tb
        if rotation % 360:
            vs.set_display_rotation(int(rotation))

        a_stream: av.audio.stream.AudioStream | None = None
        a_rate = 48000 if webm else _AUDIO_RATE
        if audio:
            codec = audio_codec or ("libopus" if webm else "aac")
            # add_stream's return type covers every codec kind; this codec is an audio one.
            a_stream = cast(av.audio.stream.AudioStream, out.add_stream(codec, rate=a_rate, layout="mono"))
            a_stream.time_base = Fraction(1, a_rate)
        samples_done = 0

        for t, rgb in enumerate(clip_frames(width, height, frames, scene_cut_at, seed)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = t
            frame.time_base = tb
            for packet in vs.encode(frame):
                out.mux(packet)
            if a_stream is not None:
                # Audio for [t, t+1) frame periods, so the track ends exactly with the video.
                end = round((t + 1) * a_rate / rate)
                n = end - samples_done
                tt = (np.arange(samples_done, end, dtype=np.float64)) / a_rate
                wave = (0.3 * np.sin(2 * np.pi * _TONE_HZ * tt)).astype(np.float32)[None, :]
                # The encoder converts to its own sample format (s16 for PCM, fltp for AAC).
                aframe = av.AudioFrame.from_ndarray(wave, format="fltp", layout="mono")
                aframe.sample_rate = a_rate
                aframe.pts = samples_done
                aframe.time_base = Fraction(1, a_rate)
                samples_done += n
                for packet in a_stream.encode(aframe):
                    out.mux(packet)
        for packet in vs.encode(None):
            out.mux(packet)
        if a_stream is not None:
            for packet in a_stream.encode(None):
                out.mux(packet)
