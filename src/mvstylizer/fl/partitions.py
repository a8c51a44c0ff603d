"""Non-IID edges for the simulation: each edge sees one kind of scene, from real package media.

=========  ==========================================================  =========================
scene      frames                                                      held out
=========  ==========================================================  =========================
street     bikes.mp4 (real traffic)                                    the clip's last quarter
cg         bigbuckbunny.mp4 (rendered animation)                       the clip's last quarter
stills     Debian mate nature photos when installed, else scikit-image  every 4th photo
           photos
call       carphone_pristine.mp4 (real video call, 176x144)            the clip's last quarter
=========  ==========================================================  =========================

A video's held-out frames are a *later segment* of the clip, not frames interleaved with the training
ones, so "held out" means unseen content, not a neighbour of a training frame. With more edges than
scenes, edges of the same scene split its training frames between them (disjoint).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import UserError
from ..imaging import shrink_to
from .local import BANK_SIDE

SCENES = ("street", "cg", "stills", "call")


@dataclass(frozen=True)
class PartitionSpec:
    frames_per_edge: int = 12  # training frames per edge (an edge's opt-in store is small)
    held_out_per_edge: int = 8
    video_stride: int = 4  # frames apart within a clip

    def __post_init__(self) -> None:
        if self.frames_per_edge < 1 or self.held_out_per_edge < 1 or self.video_stride < 1:
            raise UserError("partition sizes must be >= 1")


@dataclass
class EdgeData:
    scene: str
    train: list[np.ndarray]  # uint8 HxWx3
    held_out: list[np.ndarray]


def _video_frames(name: str, stride: int) -> list[np.ndarray]:
    from ..video.media import package_media
    from ..video.reader import VideoReader

    with VideoReader(package_media(name)) as r:
        return [shrink_to(f.rgb8, BANK_SIDE) for f in r.frames() if f.index % stride == 0]


def _still_photos() -> list[np.ndarray]:
    from ..models.data import PACKAGE_IMAGES
    from ..video.formats import IMAGE_EXTS
    from ..video.image import read_image
    from ..video.media import MATE_NATURE, package_media

    paths = sorted(p for p in MATE_NATURE.iterdir() if p.suffix.lower() in IMAGE_EXTS) if MATE_NATURE.is_dir() else []
    if len(paths) < 4:  # a clean machine: scikit-image's photos stand in for the nature set
        paths = [package_media(n) for n in PACKAGE_IMAGES + ("hubble_deep_field.jpg",)]
    return [shrink_to((read_image(p) * 255 + 0.5).astype(np.uint8), BANK_SIDE) for p in paths]


@lru_cache(maxsize=8)
def _scene(scene: str, stride: int) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """(train pool, held-out pool) of one scene, frames in clip order."""
    if scene == "stills":
        photos = _still_photos()
        held = [p for i, p in enumerate(photos) if i % 4 == 3]
        return tuple(p for i, p in enumerate(photos) if i % 4 != 3), tuple(held)
    clip = {"street": "bikes.mp4", "cg": "bigbuckbunny.mp4", "call": "carphone_pristine.mp4"}[scene]
    frames = _video_frames(clip, stride)
    cut = int(len(frames) * 0.75)
    return tuple(frames[:cut]), tuple(frames[cut:])


def _spread(pool: tuple[np.ndarray, ...], count: int, part: int, parts: int) -> list[np.ndarray]:
    """``count`` frames spread evenly over this part's share of ``pool`` (disjoint across parts)."""
    share = pool[part::parts]
    if not share:
        raise UserError("too many edges for the scene's frames")
    idx = np.unique(np.linspace(0, len(share) - 1, min(count, len(share))).round().astype(int))
    return [share[i] for i in idx]


def edge_data(partition: int, num_partitions: int, spec: PartitionSpec | None = None) -> EdgeData:
    """The frames of simulated edge ``partition`` out of ``num_partitions``."""
    spec = spec or PartitionSpec()
    if not 0 <= partition < num_partitions:
        raise UserError(f"partition {partition} out of range for {num_partitions} edges")
    scene = SCENES[partition % len(SCENES)]
    sharing = [p for p in range(num_partitions) if SCENES[p % len(SCENES)] == scene]
    train_pool, held_pool = _scene(scene, spec.video_stride)
    train = _spread(train_pool, spec.frames_per_edge, sharing.index(partition), len(sharing))
    # Edges of one scene are scored on the same held-out frames: they differ in what they train on.
    held = _spread(held_pool, spec.held_out_per_edge, 0, 1)
    return EdgeData(scene=scene, train=train, held_out=held)
