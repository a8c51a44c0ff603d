"""Embedded colour profiles: a photo in another RGB space is read in sRGB (JPEG, PNG, TIFF); an sRGB
profile changes nothing."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from mvstylizer.video.image import read_image

# sRGB's colorants as its ICC profiles hold them (adapted to the D50 of the profile connection space).
SRGB_RED, SRGB_GREEN, SRGB_BLUE = (0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141)
D50 = (0.9642, 1.0, 0.8249)


def matrix_profile(red: tuple, green: tuple, blue: tuple, name: str) -> bytes:
    """An ICC v2 RGB display profile: these colorants, a gamma 2.2 curve per channel."""
    def xyz(v: tuple) -> bytes:
        return b"XYZ \0\0\0\0" + b"".join(struct.pack(">i", round(c * 65536)) for c in v)

    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(2.2 * 256)) + b"\0\0"
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(name) + 1) + name.encode() + b"\0" + bytes(12 + 67)
    tags = [(b"desc", desc), (b"wtpt", xyz(D50)), (b"rXYZ", xyz(red)), (b"gXYZ", xyz(green)),
            (b"bXYZ", xyz(blue)), (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    offset, table, body = 128 + 4 + 12 * len(tags), b"", b""
    for sig, data in tags:
        data += bytes(-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (struct.pack(">I4sI4s4s4s", size, b"\0" * 4, 0x02100000, b"mntr", b"RGB ", b"XYZ ") + bytes(12)
              + b"acsp" + bytes(24) + struct.pack(">I", 0) + xyz(D50)[8:] + bytes(48))
    return header + struct.pack(">I", len(tags)) + table + body


# Red and green swapped: a pixel stored pure red is sRGB's green, and the other way round.
SWAPPED = matrix_profile(SRGB_GREEN, SRGB_RED, SRGB_BLUE, "red and green swapped")


def primaries() -> np.ndarray:
    rgb = np.zeros((600, 6, 3), np.uint8)  # tall: converted in bands of rows
    rgb[:300, :, 0] = 255  # red above
    rgb[300:, :, 1] = 255  # green below
    return rgb


@pytest.mark.parametrize("fmt, ext", [("PNG", "png"), ("JPEG", "jpg"), ("TIFF", "tif")])
def test_a_photo_in_another_rgb_space_is_read_in_srgb(tmp_path, fmt, ext):
    path = tmp_path / f"p.{ext}"
    Image.fromarray(primaries()).save(path, fmt, icc_profile=SWAPPED, **({"quality": 100} if fmt == "JPEG" else {}))
    img = read_image(path)
    np.testing.assert_allclose(img[:290], np.broadcast_to([0, 1, 0], img[:290].shape), atol=4 / 255)  # red: green
    np.testing.assert_allclose(img[310:], np.broadcast_to([1, 0, 0], img[310:].shape), atol=4 / 255)


def test_an_srgb_profile_changes_nothing(tmp_path):
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    rgb = np.random.default_rng(1).integers(0, 256, (8, 8, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "s.png", icc_profile=srgb)
    np.testing.assert_array_equal((read_image(tmp_path / "s.png") * 255 + 0.5).astype(np.uint8), rgb)


def test_a_16_bit_photo_keeps_its_pixels_and_says_its_profile_is_not_applied(tmp_path, caplog):
    cv2.imwrite(str(tmp_path / "d.png"), np.full((4, 4, 3), 40000, np.uint16))
    data = (tmp_path / "d.png").read_bytes()
    iccp = b"iCCP" + b"swapped\0\0" + zlib.compress(SWAPPED)  # name, NUL, deflate; after IHDR
    chunk = struct.pack(">I", len(iccp) - 4) + iccp + struct.pack(">I", zlib.crc32(iccp))
    (tmp_path / "d.png").write_bytes(data[:33] + chunk + data[33:])
    np.testing.assert_allclose(read_image(tmp_path / "d.png"), 40000 / 65535, atol=1e-6)
    assert "colour profile (red and green swapped) is applied to 8-bit photos only" in caplog.text
