"""EXIF orientation of photos: every orientation in every format read upright exactly once (OpenCV turns a
TIFF itself), and read from the header of photos over Pillow's decompression-bomb limits."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image

from mvstylizer.video.image import read_header, read_image

# What each EXIF orientation does to the stored pixels to show them upright (EXIF 2.32, table of tag 274).
UPRIGHT = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}
# Lossless writers, each with the orientation stored where that format keeps it.
SAVE = {
    "png": lambda im, path, o: im.save(path, exif=_exif(o)),
    "webp": lambda im, path, o: im.save(path, exif=_exif(o), lossless=True),
    "tif": lambda im, path, o: im.save(path, tiffinfo={274: o}),
    "tif-lzw": lambda im, path, o: im.save(path, tiffinfo={274: o}, compression="tiff_lzw"),
}


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def stored_pixels() -> np.ndarray:
    """6x10 RGB with no symmetry: every transform of it is different."""
    y, x = np.mgrid[0:6, 0:10]
    return np.dstack([x * 25, y * 40, (x * 7 + y * 3) % 50]).astype(np.uint8)


@pytest.mark.parametrize("fmt", sorted(SAVE))
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_in_every_format_is_read_upright(tmp_path, fmt, orientation):
    stored = stored_pixels()
    path = tmp_path / f"o.{fmt.split('-')[0]}"
    SAVE[fmt](Image.fromarray(stored), path, orientation)
    got = (read_image(path) * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(got, UPRIGHT[orientation](stored))


def jpeg_header(width: int, height: int, orientation: int) -> bytes:
    """A JPEG with an EXIF orientation whose frame header says ``width`` x ``height`` (its pixels are an
    8x8 picture's: only headers are read from it)."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "JPEG", exif=_exif(orientation))
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")  # SOF0: length (2), precision (1), height (2), width (2)
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


@pytest.mark.parametrize("size", [(12000, 9000), (16000, 12000)])  # 108 MP: Pillow warns; 192 MP: it refuses
def test_the_orientation_of_a_photo_over_pillows_limits_is_read_without_a_warning(tmp_path, size):
    path = tmp_path / "big.jpg"
    path.write_bytes(jpeg_header(*size, orientation=6))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_header(path).orientation == 6


def test_a_tiff_orientation_is_left_to_opencv(tmp_path):
    Image.fromarray(stored_pixels()).save(tmp_path / "o.tif", tiffinfo={274: 6})
    assert read_header(tmp_path / "o.tif").orientation == 1  # OpenCV's decoder turns a TIFF itself
