"""Training images for the models: plain photos and video frames, no labels needed.

Every model the project trains is self-supervised (reconstruction, or pairs made by random colour
filters), so training data is just pictures: a folder of photos or clips, or the real media that
ships in installed packages (``package``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import UserError
from ..imaging import shrink_to
from ..video.formats import IMAGE_EXTS, VIDEO_EXTS
from ..video.image import read_image
from ..video.media import MATE_NATURE, package_media
from ..video.reader import VideoReader

log = logging.getLogger(__name__)

# Real photos and clips from installed packages; the Debian mate-backgrounds photos join when present.
PACKAGE_IMAGES = ("coffee.png", "chelsea.png", "astronaut.png", "rocket.jpg")
PACKAGE_VIDEOS = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")


def package_sources() -> list[Path]:
    paths = [package_media(n) for n in PACKAGE_IMAGES + PACKAGE_VIDEOS]
    mate = sorted(p for p in MATE_NATURE.iterdir() if p.suffix.lower() in IMAGE_EXTS) if MATE_NATURE.is_dir() else []
    # Said out loud: the same command trains on different data on a machine with or without that
    # Debian package, and the shipped weights' recipe names what they saw.
    log.info("training data 'package': %d files from Python packages + %d photos from %s%s", len(paths), len(mate),
             MATE_NATURE, "" if mate else " (not installed: apt-get install mate-backgrounds)")
    return paths + mate


def find_sources(dirs: Sequence[str | Path]) -> list[Path]:
    """Photos and videos under each entry (a file, a folder, or the word ``package``), sorted."""
    out: list[Path] = []
    for d in dirs:
        if str(d) == "package":
            out += package_sources()
            continue
        p = Path(d)
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS)
        elif p.exists():  # /dev/null, a pipe: "does not exist" sent the user looking for a typo
            raise UserError(f"training data {d} is neither a file nor a folder of photos or videos")
        else:
            raise UserError(f"training data {d} does not exist")
    if not out:
        raise UserError(f"no photos or videos found in {', '.join(map(str, dirs))}")
    return out


@dataclass
class ImageBank:
    """Pictures held in memory as uint8 at a bounded size, sampled as random crops.

    Videos contribute one frame every ``video_stride`` frames (neighbouring frames are near copies), and
    every picture, photo or frame, is drawn as often as any other: a long clip outweighs a few photos
    (2 photos and a 100 s clip at 30 fps give 302 pictures, 300 of them frames). The shipped weights
    were trained with this draw, so it stays; to weigh photos more, give more of them or shorter clips.
    """

    sources: list[Path]
    max_side: int = 768
    video_stride: int = 10
    images: list[np.ndarray] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        for src in self.sources:
            if src.suffix.lower() in VIDEO_EXTS:
                with VideoReader(src) as r:
                    self.images += [self._fit(f.rgb8) for f in r.frames() if f.index % self.video_stride == 0]
            else:
                self.images.append(self._fit((read_image(src) * 255 + 0.5).astype(np.uint8)))
        if not self.images:
            raise UserError("training data holds no usable pictures")

    def _fit(self, rgb8: np.ndarray) -> np.ndarray:
        return shrink_to(rgb8, self.max_side)

    def crops(self, rng: np.random.Generator, batch: int, size: int) -> np.ndarray:
        """``batch`` random crops (BxSxSx3 float32 in [0,1]), each at a random scale and mirrored half the time."""
        out = np.empty((batch, size, size, 3), np.float32)
        for i in range(batch):
            img = self.images[rng.integers(len(self.images))]
            h, w = img.shape[:2]
            side = int(rng.integers(min(size, h, w), min(h, w) + 1))
            y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            crop = cv2.resize(img[y : y + side, x : x + side], (size, size), interpolation=cv2.INTER_AREA)
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            out[i] = crop.astype(np.float32) / 255.0
        return out
