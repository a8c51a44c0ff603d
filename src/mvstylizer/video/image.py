"""Still images: read as HxWx3 float32 RGB in [0, 1], upright; written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from mvstylizer.errors import UserError
from mvstylizer.files import atomic_path

from .formats import IMAGE_EXTS
from .orientation import EXIF_OPS, Orientation, exif_orientation
from .reader import reason


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a still image as HxWx3 float32 RGB in [0, 1].

    Grey becomes 3 equal channels; an alpha channel is composited onto white (transparent areas of
    a style photo should read as paper, not as whatever colour the hidden pixels hold); 8- and
    16-bit and float images are scaled to [0, 1]; the EXIF orientation is applied so the image is
    upright the way photo viewers show it.
    """
    p = Path(path)
    if not p.exists():
        raise UserError(f"image not found: {p}")
    if p.is_dir():
        raise UserError(f"{p} is a folder, not an image")
    try:
        data = np.fromfile(p, dtype=np.uint8)  # + imdecode: works for non-ASCII paths too
    except OSError as exc:
        raise UserError(f"cannot read {p}: {reason(exc)}") from exc
    if data.size == 0:
        raise UserError(f"image {p} is empty (0 bytes)")
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)  # we handle orientation/channels ourselves
    except cv2.error:
        img = None
    if img is None or img.size == 0:
        raise UserError(f"{p} is not a readable image (supported: {', '.join(sorted(IMAGE_EXTS))})")

    if img.dtype == np.uint8:
        scaled = img.astype(np.float32) * np.float32(1 / 255)
    elif img.dtype == np.uint16:
        scaled = img.astype(np.float32) * np.float32(1 / 65535)
    elif img.dtype in (np.float32, np.float64, np.float16):
        scaled = np.nan_to_num(img.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    else:
        raise UserError(f"{p} has an unsupported pixel type ({img.dtype})")
    scaled = np.clip(scaled, 0.0, 1.0, out=scaled)

    if scaled.ndim == 2:
        rgb = np.repeat(scaled[:, :, None], 3, axis=2)
    elif scaled.shape[2] == 1:
        rgb = np.repeat(scaled, 3, axis=2)
    elif scaled.shape[2] == 2:  # grey + alpha
        grey, alpha = scaled[:, :, :1], scaled[:, :, 1:2]
        rgb = np.repeat(grey * alpha + (1.0 - alpha), 3, axis=2)
    elif scaled.shape[2] == 3:
        rgb = scaled[:, :, ::-1]
    else:  # BGRA (and CMYK-ish 4+ channel oddities): composite the first alpha onto white
        bgr, alpha = scaled[:, :, :3], scaled[:, :, 3:4]
        rgb = (bgr * alpha + (1.0 - alpha))[:, :, ::-1]

    op = EXIF_OPS.get(exif_orientation(p))
    if op is not None:
        rgb = Orientation(op=op).apply(rgb)
    return np.ascontiguousarray(rgb, dtype=np.float32)


def write_image(path: str | os.PathLike[str], rgb: np.ndarray, *, shown_as: str | os.PathLike[str] | None = None
                ) -> None:
    """Write HxWx3 RGB (float in [0, 1] or uint8; uint16 kept 16-bit for PNG/TIFF) atomically.
    ``shown_as``: the path error messages name, for a caller writing under a temporary name."""
    p = Path(path)
    name = Path(shown_as) if shown_as is not None else p
    suffix = p.suffix.lower()
    if suffix not in IMAGE_EXTS:
        raise UserError(f"cannot write image {p}: use one of {', '.join(sorted(IMAGE_EXTS))}")
    if not p.parent.is_dir():
        raise UserError(f"output folder does not exist: {p.parent}")
    arr = np.asarray(rgb)
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError(f"expected HxWx3 or HxW image, got shape {arr.shape}")
    if arr.dtype == np.uint8 or (arr.dtype == np.uint16 and suffix in (".png", ".tif", ".tiff")):
        out = arr
    elif arr.dtype == np.uint16:
        out = (arr // 257).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        out = (np.clip(np.nan_to_num(arr), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    else:
        raise ValueError(f"unsupported image dtype {arr.dtype}")
    if out.ndim == 3:
        out = np.ascontiguousarray(out[:, :, ::-1])
    params: list[int] = []
    if suffix in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, 95]
    elif suffix == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, 95]
    try:
        ok, buf = cv2.imencode(suffix, out, params)
    except cv2.error as exc:
        raise UserError(f"cannot encode {name}: {str(exc).strip().splitlines()[-1]}") from exc
    if not ok:
        raise UserError(f"cannot encode {name} as {suffix}")
    try:
        with atomic_path(p) as tmp:
            tmp.write_bytes(buf.tobytes())
    except OSError as exc:
        raise UserError(f"cannot write {name}: {reason(exc)}") from exc
