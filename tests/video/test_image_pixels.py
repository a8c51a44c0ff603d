"""read_image's pixels where OpenCV's decode is not the picture as shown: float TIFFs of 0..255, TIFF
alpha that OpenCV premultiplies, PNG chunks that libpng would complain about on stderr."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from mvstylizer.errors import UserError
from mvstylizer.video.image import read_image


def test_a_float_tiff_of_0_to_255_is_scaled_to_0_to_1(tmp_path):
    grey = np.linspace(20, 230, 48, dtype=np.float32).reshape(6, 8)
    Image.fromarray(grey, "F").save(tmp_path / "f.tif")  # Pillow's mode F: 8-bit values as float
    np.testing.assert_allclose(read_image(tmp_path / "f.tif")[..., 0], grey / 255, atol=1e-6)


def test_a_float_image_with_highlights_over_1_is_clipped_not_rescaled(tmp_path):
    bright = np.linspace(0.2, 3.0, 48, dtype=np.float32).reshape(6, 8)
    Image.fromarray(bright, "F").save(tmp_path / "hdr.tif")
    np.testing.assert_allclose(read_image(tmp_path / "hdr.tif")[..., 0], np.minimum(bright, 1.0), atol=1e-6)


def rgba_with_every_alpha() -> np.ndarray:
    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 256, (16, 16, 4)).astype(np.uint8)
    rgba[..., 3] = np.arange(256, dtype=np.uint8).reshape(16, 16)
    return rgba


def test_an_rgba_tiff_is_composited_like_the_same_png(tmp_path):
    # OpenCV returns an 8-bit RGBA TIFF's colour already multiplied by its alpha; multiplied again,
    # half-transparent areas came out up to 0.25 too dark.
    rgba = rgba_with_every_alpha()
    for name in ("a.png", "a.tif"):
        Image.fromarray(rgba, "RGBA").save(tmp_path / name)
    png, tif = read_image(tmp_path / "a.png"), read_image(tmp_path / "a.tif")
    np.testing.assert_allclose(tif, png, atol=1.01 / 255)
    alpha = rgba[..., 3:] / 255
    np.testing.assert_allclose(png, rgba[..., :3] / 255 * alpha + (1 - alpha), atol=0.51 / 255)


def test_a_16_bit_rgba_tiff_is_composited_like_the_same_png(tmp_path):
    bgra = rgba_with_every_alpha()[..., [2, 1, 0, 3]].astype(np.uint16) * 257  # OpenCV keeps 16-bit as stored
    for name in ("a.png", "a.tif"):
        cv2.imwrite(str(tmp_path / name), bgra)
    np.testing.assert_allclose(read_image(tmp_path / "a.tif"), read_image(tmp_path / "a.png"), atol=1e-6)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def small_png() -> bytes:
    ok, buf = cv2.imencode(".png", np.full((6, 8, 3), 90, np.uint8))
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[:len(b) - 20], "cut short"),  # into the IDAT chunk
    (lambda b: b[:-12], "cut short"),  # no IEND
    (lambda b: b[:45] + bytes([b[45] ^ 1]) + b[46:], "IDAT chunk fails its checksum"),
    (lambda b: b[:29] + bytes([b[29] ^ 1]) + b[30:], "not a readable image"),  # Pillow checks IHDR's
])
def test_a_damaged_png_is_refused_without_libpng_printing(tmp_path, capfd, damage, message):
    (tmp_path / "d.png").write_bytes(damage(small_png()))
    with pytest.raises(UserError, match=message):
        read_image(tmp_path / "d.png")
    assert capfd.readouterr().err == ""


def test_a_png_chunk_libpng_warns_about_is_not_passed_to_it(tmp_path, capfd):
    data = small_png()
    # After IHDR, a profile too short to be one: libpng printed "libpng warning: iCCP: too short".
    bad_profile = png_chunk(b"iCCP", b"x\0\0" + zlib.compress(b"garbage" * 40))
    (tmp_path / "w.png").write_bytes(data[:33] + bad_profile + data[33:])
    np.testing.assert_allclose(read_image(tmp_path / "w.png"), 90 / 255, atol=1e-6)
    assert capfd.readouterr().err == ""
