"""Small synthetic clips that reproduce real-footage defects of the interpolation (issue 12).

Each generator returns a :class:`Scene`: the frames as uint8 RGB in memory plus where the tests should
look. ``write_scene`` encodes it with the project's own H.264 writer, so the pipeline reads mildly
compressed footage like a phone's. Everything is seeded: the same call gives the same clip.

* ``flat_wall``: "boiling on flat areas". A light painted wall with fresh sensor noise every frame,
  a dark bottle sliding across it, a handheld camera (random-walk shake of a few pixels).
* ``arm_entering``: "object entering the frame". A textured background under a slow pan, a sleeved
  arm pushed in from the right edge over many frames.
* ``person_crossing``: "colour bleeding". A static camera over pavement, a person with dark
  trousers and a red top walking across.

All clips are 256x192: x264 (through ``VideoWriter``) is only bit-exact from run to run when the
width is a multiple of 128. At 192 or 160 px wide the same frames decoded differently on most runs
(x264 reads the uninitialised row padding of the chroma planes), which moved the key frames and
with them every number the tests compare.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mvstylizer.video.writer import VideoWriter

WIDTH, HEIGHT = 256, 192
FRAMES = 36
FPS = 30.0


@dataclass
class Scene:
    name: str
    frames: list[np.ndarray]  # uint8 RGB, HxWx3, before the H.264 encode
    object_masks: list[np.ndarray]  # per frame, bool HxW: where the moving object is
    # (y0, y1, x0, x1) of a wall area the moving object never reaches (flat_wall only).
    wall_patch: tuple[int, int, int, int] | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        h, w = self.frames[0].shape[:2]
        return w, h


def write_scene(scene: Scene, path: Path, crf: int = 23) -> Path:
    """Encode the clip as H.264. CRF 23 (x264's default) is a phone-like, mildly lossy encode: it
    takes the wall's 2.5 levels of sensor noise down to about 1 and adds the block structure real
    footage has; frame-by-frame dncm then shows the ~1.6 levels of wall spread measured on the real
    clip of the bug report."""
    w, h = scene.size
    with VideoWriter(path, w, h, FPS, crf=crf, preset="veryfast") as writer:
        for frame in scene.frames:
            writer.write(frame)
    return path


# --- building blocks -----------------------------------------------------------------------------------

def _smooth_noise(h: int, w: int, cell: int, rng: np.random.Generator, channels: int = 1) -> np.ndarray:
    """Band-limited noise in [0, 1], HxWxchannels: random values every ``cell`` px, cubic-interpolated."""
    small = rng.random((h // cell + 3, w // cell + 3, channels)).astype(np.float32)
    big = cv2.resize(small, (small.shape[1] * cell, small.shape[0] * cell), interpolation=cv2.INTER_CUBIC)
    big = big.reshape(big.shape[0], big.shape[1], channels)
    return np.clip(big[cell:cell + h, cell:cell + w], 0, 1)


def _shake_path(n: int, rng: np.random.Generator, step: float = 0.6, limit: float = 3.0) -> np.ndarray:
    """Handheld camera: a random walk of sub-pixel (dx, dy) translations, kept within ``limit`` px."""
    pos = np.zeros((n, 2), np.float32)
    for i in range(1, n):
        pos[i] = np.clip(pos[i - 1] + rng.normal(0, step, 2), -limit, limit)
    return pos


def _view(canvas: np.ndarray, x0: float, y0: float, w: int, h: int) -> np.ndarray:
    """The ``w`` x ``h`` window of ``canvas`` whose top-left corner is at (x0, y0), sub-pixel."""
    m = np.float32([[1, 0, -x0], [0, 1, -y0]])
    return cv2.warpAffine(canvas, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _sensor(img: np.ndarray, rng: np.random.Generator, noise: float, quality: int = 90) -> np.ndarray:
    """Float RGB in [0,1] -> uint8 as a camera delivers it: fresh Gaussian noise (``noise`` grey levels
    of luminance noise plus half that per channel) and a mild JPEG round trip (the ISP's
    compression; the H.264 encode of ``write_scene`` comes on top)."""
    x = img * 255.0 + rng.normal(0.0, noise, img.shape[:2] + (1,)) + rng.normal(0.0, noise * 0.5, img.shape)
    u8 = np.clip(x + 0.5, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _soft(mask: np.ndarray, sigma: float = 0.8) -> np.ndarray:
    """Anti-aliased edge of a 0/1 mask, HxWx1 float32 (real objects are never pixel-sharp)."""
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma)[..., None]


def _over(img: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """``colour`` (RGB, or an HxWx3 image) painted over ``img`` where ``mask`` is set, soft-edged."""
    a = _soft(mask)
    return img * (1 - a) + colour * a


# --- scenes --------------------------------------------------------------------------------------------

def flat_wall(seed: int = 1, noise: float = 2.5) -> Scene:
    """A dark bottle sliding across a light wall, handheld camera, fresh sensor noise every frame."""
    w, h, n = WIDTH, HEIGHT, FRAMES
    rng = np.random.default_rng(seed)
    margin = 8  # the camera looks at a wall larger than the frame, so the shake has room
    cw, ch = w + 2 * margin, h + 2 * margin
    # Evenly lit warm off-white paint with faint plaster blotches (+-1.3 levels): far below
    # flat_mask's threshold, as on a real painted wall.
    blotch = 0.01 * (_smooth_noise(ch, cw, 24, rng)[..., 0] - 0.5)
    wall = (0.80 + blotch)[..., None] * np.float32([1.0, 0.97, 0.91])
    glass = np.float32([0.10, 0.16, 0.12])  # dark green
    xx = np.arange(cw, dtype=np.float32)[None, :, None]
    belly_y = margin + h - 50
    shake = _shake_path(n, rng)
    frames, masks = [], []
    for i in range(n):
        cx = int(round(margin + 36 + 3.0 * i))  # 3 px per frame across the wall
        body = np.zeros((ch, cw), np.uint8)
        cv2.ellipse(body, (cx, belly_y), (16, 34), 0, 0, 360, 1, -1)
        cv2.rectangle(body, (cx - 5, belly_y - 56), (cx + 5, belly_y - 28), 1, -1)  # neck
        shade = 1.0 + 0.35 * np.clip((xx - cx) / 16.0, -1, 1)  # a highlight on one side
        img = _over(wall, body, glass * shade)
        x0, y0 = margin + shake[i, 0], margin + shake[i, 1]
        frames.append(_sensor(_view(img, x0, y0, w, h), rng, noise))
        masks.append(_view(body.astype(np.float32), x0, y0, w, h) > 0.05)
    # Wall only: above the bottle's neck (with the shake's 3 px to spare), clear of the frame border.
    top = belly_y - margin - 56 - 12
    return Scene("flat_wall", frames, masks, wall_patch=(12, top, 20, w - 20))


def arm_entering(seed: int = 2) -> Scene:
    """A textured room under a slow pan, and a sleeved arm pushed in from the right edge."""
    w, h, n = WIDTH, HEIGHT, FRAMES
    rng = np.random.default_rng(seed)
    margin = 24
    cw, ch = w + 2 * margin, h + 2 * margin
    # A busy but trackable background: large muted colour blobs with finer detail on top.
    colour = _smooth_noise(ch, cw, 24, rng, 3)
    base = 0.25 + 0.5 * (0.5 * colour + 0.5 * colour.mean(axis=2, keepdims=True))
    detail = 0.12 * (_smooth_noise(ch, cw, 4, rng, 3) - 0.5)
    room = np.clip(base + detail, 0, 1).astype(np.float32)
    skin = np.float32([0.85, 0.58, 0.45])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    sleeve = np.float32([0.15, 0.30, 0.75]) * (1.0 + 0.12 * np.sin(xx / 6.0 + yy / 9.0))[..., None]  # folds
    frames, masks = [], []
    for i in range(n):
        bg = _view(room, margin / 2 + 0.5 * i, margin, w, h)  # the camera pans 0.5 px per frame
        # The fingertips enter at frame 4 and advance 6 px per frame, for the rest of the clip.
        tip = int(round(w - 6.0 * (i - 4)))
        hand = np.zeros((h, w), np.uint8)
        arm = np.zeros((h, w), np.uint8)
        cy = 104
        cv2.ellipse(hand, (tip + 16, cy), (18, 14), 0, 0, 360, 1, -1)
        cv2.rectangle(hand, (tip + 24, cy - 11), (tip + 52, cy + 11), 1, -1)  # wrist
        cv2.rectangle(arm, (tip + 52, cy - 18), (w + 60, cy + 20), 1, -1)  # sleeve
        img = _over(_over(bg, hand, skin), arm, sleeve)
        frames.append(_sensor(np.clip(img, 0, 1), rng, noise=1.5))
        masks.append((hand | arm).astype(bool))
    return Scene("arm_entering", frames, masks)


def _pavement(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Grey concrete slabs: grain at two scales, darker joints every 48 px."""
    fine = _smooth_noise(h, w, 2, rng)[..., 0] - 0.5
    coarse = _smooth_noise(h, w, 12, rng)[..., 0] - 0.5
    grey = 0.55 + 0.22 * fine + 0.12 * coarse
    yy, xx = np.mgrid[0:h, 0:w]
    grey = np.where(((xx % 48) < 2) | (((yy + 7) % 48) < 2), grey * 0.7, grey)
    return np.clip(grey[..., None] * np.float32([1.0, 0.98, 0.93]), 0, 1).astype(np.float32)


def person_crossing(seed: int = 3) -> Scene:
    """A static camera over pavement; a person (dark trousers, red top) walks left to right."""
    w, h, n = WIDTH, HEIGHT, FRAMES
    rng = np.random.default_rng(seed)
    ground = _pavement(h, w, rng)
    trousers = np.float32([0.10, 0.10, 0.16])
    top = np.float32([0.80, 0.12, 0.12])
    face = np.float32([0.80, 0.60, 0.48])
    foot = h - 14
    hip, shoulder = foot - 46, foot - 88
    frames, masks = [], []
    for i in range(n):
        cx = 20 + 3 * i  # 3 px per frame: a walk at this scale
        stride = int(round(7 * np.sin(i * 0.6)))  # legs swing
        legs = np.zeros((h, w), np.uint8)
        cv2.line(legs, (cx - 3, hip), (cx - 3 - stride, foot), 1, 7)
        cv2.line(legs, (cx + 3, hip), (cx + 3 + stride, foot), 1, 7)
        body = np.zeros((h, w), np.uint8)
        cv2.rectangle(body, (cx - 10, shoulder), (cx + 10, hip + 2), 1, -1)
        head = np.zeros((h, w), np.uint8)
        cv2.circle(head, (cx, shoulder - 11), 9, 1, -1)
        img = _over(_over(_over(ground, legs, trousers), body, top), head, face)
        frames.append(_sensor(img, rng, noise=2.0))
        masks.append((legs | body | head).astype(bool))
    return Scene("person_crossing", frames, masks)


SCENES = {"flat_wall": flat_wall, "arm_entering": arm_entering, "person_crossing": person_crossing}
