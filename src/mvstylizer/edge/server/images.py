"""Image checks: dimensions from the header before decoding (no decompression bomb), then the decoded size."""

from __future__ import annotations

import numpy as np
from fastapi import HTTPException

from ... import wire


def checked_size(blob: bytes, what: str, max_pixels: int, min_side: int = 1,
                 why: str = "") -> tuple[int, int]:
    """(width, height) from the image header; 400 if not an image or under ``min_side``, 413 beyond
    ``max_pixels`` (``why``: how that limit was derived, for the message)."""
    size = wire.image_size(blob)
    if size is None:
        raise HTTPException(400, f"{what} is not an image in any of the edge's encodings ({', '.join(wire.CODECS)})")
    w, h = size
    if w < 1 or h < 1:
        raise HTTPException(400, f"{what} has invalid dimensions {w}x{h}")
    if min(w, h) < min_side:
        raise HTTPException(400, f"{what} is {w}x{h}; the edge needs at least {min_side} pixels per side")
    if w * h > max_pixels:
        raise HTTPException(413, f"{what} is {w}x{h} ({w * h} pixels); the edge accepts at most {max_pixels} "
                                 f"pixels per image{' (' + why + ')' if why else ''}")
    return w, h


def checked_decode(blob: bytes, what: str, max_pixels: int, min_side: int = 1, why: str = "") -> np.ndarray:
    """Header check, decode (refusing an image far costlier to decode than its size, 400), then a check
    of the decoded size (a header that lies is caught too)."""
    checked_size(blob, what, max_pixels, min_side, why)
    try:
        frame = wire.decode_frame(blob)
    except wire.TooCostly as e:  # e.g. a JPEG of thousands of scans; checked in the worker: it reads the whole blob
        raise HTTPException(400, f"{what} is refused: {e}") from None
    except ValueError:
        raise HTTPException(400, f"{what} is not a decodable image") from None
    if frame.shape[0] * frame.shape[1] > max_pixels:  # header and payload disagree
        raise HTTPException(413, f"{what} decodes to more than {max_pixels} pixels")
    return frame
