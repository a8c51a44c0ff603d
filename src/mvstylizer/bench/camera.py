"""Virtual-camera clips over still photos, with exactly known optical flow.

No real 1080p/4K video ships in any package we can install, so the
benchmarks film high-resolution photos with a virtual camera: a smooth trajectory of centre (pan),
zoom and a small rotation per frame, rendered with ``cv2.warpAffine``, and one scene cut to a second
photo midway. Because every frame is an affine image of the same flat photo, the optical flow
between any two frames of one scene is known analytically, which makes warping errors exact
instead of depending on a flow estimator.

Geometry. Frame ``t`` is rendered by the 2x3 map ``M_t`` taking *source* pixel coordinates (of the
photo after resizing, see below) to *output* pixel coordinates: ``out = z R(theta) (p - c) + o``,
with ``o`` the output centre. Pixel centres sit at integer coordinates, as in OpenCV. The flow of
reference frame ``a`` towards frame ``b`` is ``M_b M_a^-1 q - q`` for each pixel ``q`` of ``a``, in the
flow module's convention (``mvstylizer.video.flow``: ``warp(frame_b, flow)`` lands in ``a``'s geometry).

Sources. Each photo is first resized so that, at zoom 1, one source pixel is one output pixel and
the camera window (at the largest rotation) covers ``view`` of the photo along its tighter axis;
the rest is room to pan. A photo smaller than that is *upscaled* (package photos such as the
512x512 astronaut always are, at 720p and above); :attr:`Scene.upscale` records the factor so
reports can say so. The trajectory never shows a border: the slack for panning is computed at the
widest view (zoom 1, largest rotation) and every frame stays inside it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import UserError
from ..files import atomic_path
from ..video.image import read_image
from ..video.media import MATE_NATURE, package_media
from ..video.writer import VideoWriter

# Largest Debian mate-backgrounds photos first (2560x1920 / 2560x1600): least upscaling at 4K.
_MATE_DEFAULT = ("Wood.jpg", "YellowFlower.jpg")
_PACKAGE_DEFAULT = ("astronaut.png", "coffee.png")
_BORDER_MARGIN = 2.0  # source pixels kept clear of the photo's edge, for the interpolation kernel


@dataclass
class CameraConfig:
    width: int = 640
    height: int = 360
    frames: int = 60
    fps: float = 30.0
    seed: int = 0
    sources: tuple[str, ...] = ()  # photo paths or package media names; () -> default_sources()
    scene_cut: bool = True  # cut to the second source at ``cut_at``
    cut_at: int | None = None  # first frame of the second scene; None -> the middle frame
    view: float = 0.7  # fraction of the photo (tighter axis) the widest view covers
    pan_speed: float = 0.005  # peak pan speed, fraction of the output width per frame
    zoom: float = 0.25  # zoom goes 1 .. 1 + zoom (in, then back out)
    max_rotation_deg: float = 3.0

    def __post_init__(self) -> None:
        if self.width < 8 or self.height < 8:
            raise UserError(f"clip size must be at least 8x8, got {self.width}x{self.height}")
        if self.frames < 1:
            raise UserError(f"a clip needs at least one frame, got {self.frames}")
        if not 0.1 <= self.view <= 0.95:
            raise UserError(f"view must be in 0.1..0.95, got {self.view}")
        if self.zoom < 0 or self.pan_speed < 0 or not 0 <= self.max_rotation_deg <= 20:
            raise UserError("zoom and pan speed must be >= 0 and the rotation 0..20 degrees")

    @property
    def cut_frame(self) -> int | None:
        """First frame of the second scene, or None when the clip has one scene."""
        if not self.scene_cut or self.frames < 2:
            return None
        cut = self.frames // 2 if self.cut_at is None else self.cut_at
        if not 1 <= cut < self.frames:
            raise UserError(f"cut_at must be in 1..{self.frames - 1}, got {cut}")
        return cut


def default_sources() -> tuple[str, ...]:
    """Two high-resolution nature photos from Debian's mate-backgrounds when installed, else two
    scikit-image package photos (small, so they get upscaled)."""
    if all((MATE_NATURE / n).is_file() for n in _MATE_DEFAULT):
        return tuple(str(MATE_NATURE / n) for n in _MATE_DEFAULT)
    return _PACKAGE_DEFAULT


def _load_source(name: str) -> tuple[Path, np.ndarray]:
    """A source photo as uint8 RGB, by path, package media name, or mate-backgrounds file name."""
    path = Path(name)
    if not path.is_file():
        if (MATE_NATURE / name).is_file():
            path = MATE_NATURE / name
        else:
            path = package_media(name)  # UserError naming the known media if it is none of those
    rgb = read_image(path)
    return path, (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


@dataclass
class Scene:
    """One photo, resized for the camera, and its trajectory parameters."""

    name: str
    original_size: tuple[int, int]  # (w, h) of the photo as shipped
    image: np.ndarray  # the resized photo the frames are rendered from (uint8 RGB)
    upscale: float  # resize factor applied to the photo; > 1 means upscaled (less real detail)
    slack: tuple[float, float]  # how far the centre may move from the photo's centre, source px
    omega: tuple[float, float, float, float]  # angular speeds: pan x, pan y, zoom, rotation (rad/frame)
    phase: tuple[float, float, float, float]

    @property
    def upscaled(self) -> bool:
        return self.upscale > 1.0 + 1e-6

    def describe(self) -> dict:
        w, h = self.original_size
        return {"source": self.name, "source_size": [w, h], "resize_factor": round(self.upscale, 4),
                "upscaled": self.upscaled}


class CameraClip:
    """A deterministic virtual-camera clip: frames on demand, ground-truth flow between any two frames.

    Only the (resized) source photos are held, never the frames, so 4K clips stream in bounded memory.
    """

    def __init__(self, config: CameraConfig | None = None) -> None:
        self.config = cfg = config or CameraConfig()
        names = cfg.sources or default_sources()
        self.cut = cfg.cut_frame
        n_scenes = 1 if self.cut is None else 2
        if len(names) < n_scenes:
            raise UserError(f"a clip with a scene cut needs two source photos, got {len(names)}")
        rng = np.random.default_rng(cfg.seed)
        self.scenes = [self._scene(names[i], rng) for i in range(n_scenes)]
        self.matrices = np.stack([self._matrix(t) for t in range(cfg.frames)])  # (N, 2, 3) float64

    # --- construction --------------------------------------------------------------------
    def _half_extent(self) -> tuple[float, float]:
        """Half size, in source px at zoom 1, of the box around the view at the largest rotation."""
        cfg = self.config
        th = math.radians(cfg.max_rotation_deg)
        c, s = abs(math.cos(th)), abs(math.sin(th))
        hw, hh = (cfg.width - 1) / 2.0, (cfg.height - 1) / 2.0
        return c * hw + s * hh, s * hw + c * hh

    def _scene(self, name: str, rng: np.random.Generator) -> Scene:
        cfg = self.config
        path, photo = _load_source(name)
        ph, pw = photo.shape[:2]
        hx, hy = self._half_extent()
        # Resize so the widest view covers ``view`` of the photo along its tighter axis.
        factor = max((2 * hx + 1) / (cfg.view * pw), (2 * hy + 1) / (cfg.view * ph))
        size = (max(1, round(pw * factor)), max(1, round(ph * factor)))
        interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
        image = cv2.resize(photo, size, interpolation=interp) if size != (pw, ph) else photo
        sw, sh = size
        slack = (max(0.0, (sw - 1) / 2 - hx - _BORDER_MARGIN), max(0.0, (sh - 1) / 2 - hy - _BORDER_MARGIN))
        # Peak speeds: pan ``pan_speed * width`` px/frame along x (40% of it along y); one zoom
        # in-and-out every 4 s and one rotation sway every 5 s, whatever the clip length.
        speed = cfg.pan_speed * cfg.width
        omega = (
            min(speed / slack[0], 0.5) if slack[0] > 0 else 0.0,
            min(0.4 * speed / slack[1], 0.5) if slack[1] > 0 else 0.0,
            2 * math.pi / (4.0 * cfg.fps),
            2 * math.pi / (5.0 * cfg.fps),
        )
        p = rng.uniform(0, 2 * math.pi, 4)
        phase = (float(p[0]), float(p[1]), float(p[2]), float(p[3]))
        return Scene(path.name, (pw, ph), image, factor, slack, omega, phase)

    def _matrix(self, t: int) -> np.ndarray:
        """2x3 map from the scene's source pixels to frame ``t``'s pixels."""
        cfg = self.config
        scene = self.scenes[self.scene_of(t)]
        t0 = 0 if self.scene_of(t) == 0 else self.cut or 0
        k = t - t0  # each scene's trajectory starts afresh at its first frame
        wx, wy, wz, wr = scene.omega
        px, py, pz, pr = scene.phase
        sh, sw = scene.image.shape[:2]
        cx = (sw - 1) / 2 + scene.slack[0] * math.sin(wx * k + px)
        cy = (sh - 1) / 2 + scene.slack[1] * math.sin(wy * k + py)
        zoom = 1.0 + cfg.zoom * 0.5 * (1 - math.cos(wz * k + pz))  # always >= 1: never wider than the slack allows
        theta = math.radians(cfg.max_rotation_deg) * math.sin(wr * k + pr)
        a = zoom * np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        o = np.array([(cfg.width - 1) / 2, (cfg.height - 1) / 2])
        return np.hstack([a, (o - a @ np.array([cx, cy]))[:, None]])

    # --- frames ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.config.frames

    def scene_of(self, t: int) -> int:
        return 0 if self.cut is None or t < self.cut else 1

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` as HxWx3 uint8 RGB."""
        if not 0 <= t < len(self):
            raise IndexError(f"frame {t} out of range 0..{len(self) - 1}")
        cfg = self.config
        src = self.scenes[self.scene_of(t)].image
        return cv2.warpAffine(src, self.matrices[t], (cfg.width, cfg.height), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT101)

    def frames(self) -> Iterator[np.ndarray]:
        for t in range(len(self)):
            yield self.frame(t)

    # --- ground truth ------------------------------------------------------------------------
    def flow(self, ref: int, other: int, size: tuple[int, int] | None = None) -> np.ndarray | None:
        """Exact flow HxWx2 float32 of frame ``ref`` towards frame ``other`` (None across a cut).

        ``size`` = (w, h) gives the flow of the frames resized to that size (pixel-centre aligned,
        as ``cv2.resize`` does), in that size's pixel units.
        """
        if self.scene_of(ref) != self.scene_of(other):
            return None
        return affine_flow(self.matrices[ref], self.matrices[other], (self.config.width, self.config.height), size)

    def forward_flow(self, t: int, size: tuple[int, int] | None = None) -> np.ndarray:
        """Flow of frame ``t`` towards ``t + 1``: ``warp(frame(t + 1), flow)`` reproduces frame ``t``.

        Across the scene cut there is no flow: the array is all NaN.
        """
        f = self.flow(t, t + 1, size)
        if f is None:
            w, h = size or (self.config.width, self.config.height)
            return np.full((h, w, 2), np.nan, np.float32)
        return f

    def describe(self) -> dict:
        cfg = self.config
        return {
            "kind": "camera", "width": cfg.width, "height": cfg.height, "frames": cfg.frames, "fps": cfg.fps,
            "seed": cfg.seed, "scene_cut_at": self.cut, "scenes": [s.describe() for s in self.scenes],
            "upscaled": any(s.upscaled for s in self.scenes),
            "motion": {"pan_speed_px_per_frame": cfg.pan_speed * cfg.width, "zoom": [1.0, 1.0 + cfg.zoom],
                       "max_rotation_deg": cfg.max_rotation_deg},
        }

    # --- files -------------------------------------------------------------------------------
    def write(self, path: str | Path, crf: int = 18, preset: str = "medium",
              flow_path: str | Path | None = None) -> dict:
        """Encode the clip to an H.264 file (atomically); with ``flow_path`` also save its ground truth.

        The .npz holds the per-frame affine maps and scene ids, not dense flow (a 1080p clip's dense
        flow runs to gigabytes): :func:`load_flow` turns them back into the exact dense flow.
        """
        cfg = self.config
        with VideoWriter(path, cfg.width, cfg.height, cfg.fps, crf=crf, preset=preset) as writer:
            for rgb8 in self.frames():
                writer.write(rgb8)
        info = self.describe()
        info["path"] = str(path)
        if flow_path is not None:
            scene_ids = np.array([self.scene_of(t) for t in range(len(self))], np.int32)
            with atomic_path(Path(flow_path)) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, matrices=self.matrices, scene=scene_ids, size=np.array([cfg.width, cfg.height]))
            info["flow"] = str(flow_path)
        return info


def affine_flow(m_ref: np.ndarray, m_other: np.ndarray, full_size: tuple[int, int],
                size: tuple[int, int] | None = None) -> np.ndarray:
    """Dense flow of the frame rendered by ``m_ref`` towards the one rendered by ``m_other``.

    Both maps take the same source to frames of ``full_size`` (w, h); the flow is evaluated on a grid
    of ``size`` (default ``full_size``) after conjugating with the resize, so it is exact there too.
    """
    def h3(m: np.ndarray) -> np.ndarray:
        return np.vstack([np.asarray(m, np.float64), [0.0, 0.0, 1.0]])

    t = h3(m_other) @ np.linalg.inv(h3(m_ref))  # frame ref -> frame other, full resolution
    fw, fh = full_size
    w, h = size or full_size
    sx, sy = w / fw, h / fh
    # Full-res x -> resized u: u = sx (x + 0.5) - 0.5 (pixel centres line up, as in cv2.resize).
    s = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])
    t = s @ t @ np.linalg.inv(s)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    flow = np.empty((h, w, 2), np.float32)
    flow[..., 0] = (t[0, 0] - 1) * gx + t[0, 1] * gy + t[0, 2]
    flow[..., 1] = t[1, 0] * gx + (t[1, 1] - 1) * gy + t[1, 2]
    return flow


def load_flow(npz_path: str | Path, t: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """Forward flow t -> t+1 from a clip's .npz (see :meth:`CameraClip.write`); all NaN across the cut."""
    with np.load(npz_path) as data:
        m, scene = data["matrices"], data["scene"]
        full_w, full_h = (int(v) for v in data["size"])
    full = (full_w, full_h)
    if not 0 <= t < len(m) - 1:
        raise UserError(f"flow index {t} out of range 0..{len(m) - 2}")
    if scene[t] != scene[t + 1]:
        w, h = size or full
        return np.full((h, w, 2), np.nan, np.float32)
    return affine_flow(m[t], m[t + 1], full, size)


def visible_mask(flow: np.ndarray) -> np.ndarray:
    """True where the flow lands inside the frame (a flat photo has no occlusions, only the edges)."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    tx, ty = gx + flow[..., 0], gy + flow[..., 1]
    return np.isfinite(tx) & np.isfinite(ty) & (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)


def camera_clip(width: int, height: int, frames: int, seed: int = 0, sources: Sequence[str] = (),
                fps: float = 30.0) -> CameraClip:
    """Shorthand for the benchmarks: a default-motion clip of the given size."""
    return CameraClip(CameraConfig(width=width, height=height, frames=frames, seed=seed,
                                   sources=tuple(sources), fps=fps))


__all__ = ["CameraClip", "CameraConfig", "Scene", "affine_flow", "camera_clip", "default_sources",
           "load_flow", "visible_mask"]
