"""Media chores of the studio: probe an upload, pull its preview frames, check style photos, the gallery.

Everything here raises :class:`~mvstylizer.errors.UserError` with a message fit for the page for
bad input; server paths are replaced by the file's own name before a message leaves (see
:func:`as_user_message`).
"""

from __future__ import annotations

import importlib.util
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import UserError
from ..imaging import fit_within

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi")
STYLE_SIDE = 1024  # the edge shrinks styles to this anyway (EdgeConfig.max_style_side)
THUMB_SIDE = 200

# Colour photos that ship inside scikit-image (public domain / CC0; skimage/data/README.txt), shown
# as the style gallery when scikit-image is installed. Found by package location, not by import.
GALLERY = {
    "coffee": ("coffee.png", "Coffee"),
    "chelsea": ("chelsea.png", "Chelsea"),
    "astronaut": ("astronaut.png", "Astronaut"),
    "rocket": ("rocket.jpg", "Dusk"),
    "hubble": ("hubble_deep_field.jpg", "Deep field"),
    "motorcycle": ("motorcycle_left.png", "Motorcycle"),
}


def as_user_message(exc: BaseException | str, path: Path, name: str) -> str:
    """The error's (or message's) text with the server-side path (and its folder) replaced by the user's
    file name."""
    text = str(exc)
    for p in (str(path), str(path.resolve())):
        text = text.replace(p, name)
    # Checks that name the file alone ("original.heic: HEIC photos are not supported") as well.
    return text.replace(str(path.parent), "").replace(path.name, name).strip()


class _Warnings(logging.Handler):
    """Collects the warnings logged about one file, worded with the user's name for it."""

    def __init__(self, path: Path, name: str, found: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.path, self.file_name, self.found = path, name, found
        self.spellings = {str(path), str(path.resolve())}

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if any(s in text for s in self.spellings):
            message = as_user_message(text, self.path, self.file_name)
            if message not in self.found:  # a file is opened more than once (probe, then frames)
                self.found.append(message)


@contextmanager
def read_warnings(path: Path, name: str) -> Iterator[list[str]]:
    """The warnings the package logs about ``path`` while the block runs (frames that could not be
    decoded, a file cut short), as they come: they are for the page as well as the server log (a
    truncated upload rendered to half its length, marked done, and only the log said why)."""
    found: list[str] = []
    handler = _Warnings(path, name, found)
    logger = logging.getLogger("mvstylizer")
    logger.addHandler(handler)
    try:
        yield found
    finally:
        logger.removeHandler(handler)


# ------------------------------------------------------------------------------------------ video


@dataclass
class VideoFacts:
    width: int
    height: int
    fps: float
    frames: int  # declared, or estimated from the duration
    frames_exact: bool
    duration: float | None
    has_audio: bool
    codec: str

    def as_dict(self) -> dict:
        return {"width": self.width, "height": self.height, "fps": round(self.fps, 3), "frames": self.frames,
                "frames_exact": self.frames_exact, "duration": round(self.duration, 3) if self.duration else None,
                "has_audio": self.has_audio, "codec": self.codec}


def check_video_name(name: str) -> str:
    """The suffix of an uploaded video's name, refused unless it is a video format we read."""
    suffix = Path(name).suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise UserError(f"{name} is not a video: the studio takes {', '.join(VIDEO_SUFFIXES)} files")
    return suffix


def probe_video(path: Path) -> VideoFacts:
    """Size, rate and length of a video; UserError if it is not one or has no frames."""
    from ..video.reader import VideoReader

    with VideoReader(path, fast_color=True) as reader:
        info = reader.info
    exact = bool(info.frame_count)
    frames = info.frame_count or (round(info.duration * info.fps) if info.duration else 0)
    return VideoFacts(info.width, info.height, info.fps, int(frames), exact, info.duration, info.has_audio,
                      info.codec)


class FrameTooLarge(UserError):
    http_status = 413


def check_video_size(facts: VideoFacts, name: str, max_pixels: int) -> None:
    """Refuse a video whose frames are over ``max_pixels`` (a 3-frame 8000x8000 clip is a small
    file, and its render took 3 GB)."""
    if facts.width * facts.height > max_pixels:
        raise FrameTooLarge(f"{name} is {facts.width}x{facts.height}; the studio takes videos of at most "
                            f"{max_pixels / 1e6:.1f} megapixels a frame (4K UHD, 3840x2160, is 8.3)")


def pick_indices(total: int, n: int) -> list[int]:
    """``n`` evenly spread frame indices of ``total`` (the middle of each of n equal parts)."""
    if total <= 0:
        return []
    n = min(n, total)
    return sorted({min(total - 1, int((i + 0.5) * total / n)) for i in range(n)})


def preview_frames(path: Path, facts: VideoFacts, n: int, side: int) -> list[tuple[int, float, np.ndarray]]:
    """``n`` representative frames (index, seconds, upright uint8 RGB at most ``side`` px long side).

    Long videos are sampled by seeking (a few decodes, whatever the length); short ones, or files
    that do not seek well, by one pass over the frames.
    """
    size = fit_within(facts.width, facts.height, side, min_side=2)
    if facts.frames > 300 and facts.duration:
        try:
            picked = _seek_frames(path, facts, n, size)
            if len(picked) == min(n, facts.frames):
                return picked
        except Exception as exc:  # noqa: BLE001 - seeking is an optimisation; fall back to a pass
            log.info("seeking in %s failed (%s); sampling frames in one pass", path.name, exc)
    return _pass_frames(path, facts, n, size)


def _pass_frames(path: Path, facts: VideoFacts, n: int, size: tuple[int, int]) -> list[tuple[int, float, np.ndarray]]:
    from ..video.reader import VideoReader

    if facts.frames_exact:
        want = set(pick_indices(facts.frames, n))
        picked: list[tuple[int, float, np.ndarray]] = []
        with VideoReader(path, fast_color=True) as reader:
            for f in reader.frames():
                if f.index in want:
                    picked.append((f.index, f.time, _fit(f.rgb8, size)))
                    if len(picked) == len(want):
                        break
        if picked:
            return picked
    # Unknown (or wrong) length: keep a thinning sample of the whole video, then pick from it.
    sample: list[tuple[int, float, np.ndarray]] = []
    stride = 1
    with VideoReader(path, fast_color=True) as reader:
        for f in reader.frames():
            if f.index % stride == 0:
                sample.append((f.index, f.time, _fit(f.rgb8, size)))
                if len(sample) >= 64:
                    sample, stride = sample[::2], stride * 2
    if not sample:
        raise UserError("the video has no frames")
    return [sample[i] for i in pick_indices(len(sample), n)]


def _seek_frames(path: Path, facts: VideoFacts, n: int, size: tuple[int, int]) -> list[tuple[int, float, np.ndarray]]:
    from ..video.reader import VideoReader

    assert facts.duration
    targets = [facts.duration * (i + 0.5) / n for i in range(n)]
    # The reader's own seeking, so a preview shows what the render will: the same stream, colour
    # matrix, HDR conversion, pixel shape and orientation.
    with VideoReader(path, fast_color=True) as reader:
        return [(f.index, f.time, _fit(f.rgb8, size)) for f in reader.frames_near(targets)]


def _fit(rgb8: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (rgb8.shape[1], rgb8.shape[0]) == size:
        return np.ascontiguousarray(rgb8)
    return cv2.resize(rgb8, size, interpolation=cv2.INTER_AREA)


# ------------------------------------------------------------------------------------------ images


def jpeg_bytes(rgb8: np.ndarray, quality: int = 88) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 RGB image
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def read_jpeg(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise UserError(f"cannot read {path.name}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def to_rgb8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def load_style(path: Path, name: str, max_pixels: int) -> np.ndarray:
    """A style photo as uint8 RGB, at most :data:`STYLE_SIDE` px long side; UserError if it is no image.

    Its size comes from its header, before anything is decoded (a format whose header gives none, a
    Radiance .hdr, is refused: 9 MB of one decoded to 12000x12000), and it is shrunk as decoded, in
    its own pixel type (full-size float copies of a 7000x7000 PNG peaked at 1.3 GB; this, 0.3 GB).
    """
    from ..video.image import read_header, read_style

    try:
        w, h = read_header(path, max_pixels=max_pixels).upright_size
        if min(w, h) < 8:
            raise UserError(f"{name} is only {w}x{h} pixels: too small to take a look from")
        img = read_style(path, STYLE_SIDE)  # as stylize and the API read a style
    except UserError as exc:
        raise UserError(as_user_message(exc, path, name)) from None
    return to_rgb8(img)


def style_warnings(path: Path, name: str) -> list[str]:
    """What makes a style photo a poor one, by the pipeline's own measure (it warns of the same in
    the server log only, at every preview and render): too small or too thin to hold much colour."""
    from ..mobile.pipeline import MAX_STYLE_ASPECT, MIN_STYLE_SIDE, poor_style_size
    from ..video.image import read_header

    w, h = read_header(path).upright_size
    if poor_style_size(w, h):
        shape = "small" if min(w, h) < MIN_STYLE_SIDE else "thin"
        return [f"{name} is {w}x{h} pixels: a look is taken from a photo's colours and what they are on, and "
                f"so {shape} a photo holds little of either; one of at least {MIN_STYLE_SIDE} px a side, at "
                f"most {MAX_STYLE_ASPECT:g} times as long as it is wide, works best"]
    return []


def thumbnail(rgb8: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    """A centre-cropped square thumbnail (gallery tiles are square)."""
    h, w = rgb8.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return cv2.resize(rgb8[y:y + s, x:x + s], (side, side), interpolation=cv2.INTER_AREA)


# ------------------------------------------------------------------------------------------ gallery


def gallery() -> dict[str, tuple[Path, str]]:
    """Style photos from installed packages: id -> (file, title); empty without scikit-image."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return {}
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    return {key: (folder / file, title) for key, (file, title) in GALLERY.items() if (folder / file).is_file()}


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}".replace(".0 ", " ")
        n /= 1024
    return f"{n} GB"  # pragma: no cover


def told_apart(size: int, limit: int) -> tuple[str, str]:
    """``size`` and ``limit`` for a person, in bytes where rounding would show the two the same (a
    file one byte over a 12 MB limit was "12 MB; at most 12 MB")."""
    shown = human_bytes(size), human_bytes(limit)
    if shown[0] != shown[1]:
        return shown
    return f"{size:,} bytes", f"{limit:,} bytes ({shown[1]})"


def is_finite_number(x: object) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
