"""read_image's checks before decoding: pixel and file-size caps from the header, formats whose header
has no size, pipes and devices, running out of memory; styles shrunk as decoded."""

from __future__ import annotations

import os
import struct
import threading
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from mvstylizer.errors import UserError
from mvstylizer.imaging import shrink_to
from mvstylizer.video import image
from mvstylizer.video.image import read_header, read_image


def png(width: int, height: int, rows: bytes | None = None) -> bytes:
    """An 8-bit grey PNG. ``rows`` None: all black, compressed as it streams (a 3000x3000 bomb is 9 KB);
    b"": a header whose pixels are missing (for checks that must not decode)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    if rows is None:
        co, row = zlib.compressobj(9), bytes(width + 1)  # filter byte 0, then black pixels
        idat = b"".join(co.compress(row) for _ in range(height)) + co.flush()
    else:
        idat = zlib.compress(rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


@pytest.fixture
def no_decoding(monkeypatch):
    """Fails the test if any pixel is decoded or the file read whole."""
    def refuse(*_args, **_kw):
        raise AssertionError("decoded or read whole")

    monkeypatch.setattr(image.cv2, "imdecode", refuse)
    monkeypatch.setattr(image.np, "fromfile", refuse)


def test_a_decompression_bomb_is_refused_from_its_header_before_decoding(tmp_path, monkeypatch, no_decoding):
    monkeypatch.setattr(image, "MAX_PIXELS", 4_000_000)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png(3000, 3000))
    assert bomb.stat().st_size < 20_000
    with pytest.raises(UserError, match=r"bomb.png is 3000x3000 pixels \(9 megapixels\); images of at most 4 "):
        read_image(bomb)


def test_the_default_cap_refuses_900_megapixels_and_takes_a_108_mp_photo_without_a_warning(tmp_path, no_decoding):
    (tmp_path / "huge.png").write_bytes(png(30000, 30000, rows=b""))
    with pytest.raises(UserError, match="900 megapixels.*at most 200 megapixels"):
        read_image(tmp_path / "huge.png")
    (tmp_path / "phone.png").write_bytes(png(12000, 9000, rows=b""))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning starts at 89 Mpixels
        assert read_header(tmp_path / "phone.png").upright_size == (12000, 9000)


def test_a_file_over_the_size_cap_is_refused_before_it_is_read(tmp_path, monkeypatch, no_decoding):
    monkeypatch.setattr(image, "MAX_FILE_BYTES", 1000)
    big = tmp_path / "big.png"
    big.write_bytes(png(10, 10) + bytes(2000))
    with pytest.raises(UserError, match="big.png is 0.0 GB; image files of at most"):
        read_image(big)


def test_a_format_whose_header_gives_no_size_is_refused(tmp_path):
    # Radiance .hdr: OpenCV decodes it, but nothing reads its size first (a 9 MB one held 12000x12000).
    ok, buf = cv2.imencode(".hdr", np.full((8, 8, 3), 0.5, np.float32))
    assert ok
    (tmp_path / "sky.png").write_bytes(buf.tobytes())
    with pytest.raises(UserError, match="sky.png is not a readable image"):
        read_image(tmp_path / "sky.png")


def test_running_out_of_memory_is_a_user_error(tmp_path, monkeypatch):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((6, 8, 3), np.uint8))

    def no_memory(*_args):
        raise MemoryError

    monkeypatch.setattr(image, "_to_rgb01", no_memory)
    with pytest.raises(UserError, match=r"not enough memory to read .*a.png \(8x6 pixels\)"):
        read_image(tmp_path / "a.png")


def test_a_device_is_not_a_regular_file():
    with pytest.raises(UserError, match="/dev/zero is not a regular file"):
        read_image("/dev/zero")


def test_a_named_pipe_is_refused_without_being_opened(tmp_path):
    fifo = tmp_path / "style.png"
    os.mkfifo(fifo)
    ok, buf = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))
    # A writer, so that a reader that opens the pipe gets an image instead of waiting forever.
    writer = threading.Thread(target=fifo.write_bytes, args=(buf.tobytes(),), daemon=True)
    writer.start()
    try:
        with pytest.raises(UserError, match="style.png is not a regular file"):
            read_image(fifo)
    finally:  # unblock the writer: open the read end without waiting, and let it write into the pipe
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        writer.join()
        os.close(fd)


@pytest.mark.parametrize("kind", ["rgb8", "rgba8", "rgb16", "grey8"])
def test_a_style_is_shrunk_as_decoded_like_the_full_image_shrunk(tmp_path, kind):
    rng = np.random.default_rng(0)
    top = 65535 if kind == "rgb16" else 255
    dtype = np.uint16 if kind == "rgb16" else np.uint8
    shape = {"rgba8": (90, 130, 4), "grey8": (90, 130)}.get(kind, (90, 130, 3))
    pixels = rng.integers(0, top + 1, shape).astype(dtype)
    path = tmp_path / f"{kind}.png"
    cv2.imwrite(str(path), pixels)
    small = read_image(path, max_side=40)
    assert small.shape == (28, 40, 3) and small.dtype == np.float32 and small.flags.c_contiguous
    np.testing.assert_allclose(small, shrink_to(read_image(path), 40), atol=1 / 255)
    ignored = read_image(path, max_side=40, transparent="ignore")  # and with transparent pixels left out
    np.testing.assert_allclose(ignored, shrink_to(read_image(path, transparent="ignore"), 40), atol=1 / 255)


def test_max_side_is_the_long_side_once_upright(tmp_path):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((30, 90, 3), np.uint8)).save(tmp_path / "o.jpg", exif=exif)
    assert read_image(tmp_path / "o.jpg", max_side=45).shape == (45, 15, 3)


def test_a_missing_path_a_folder_and_an_empty_file(tmp_path):
    with pytest.raises(UserError, match="image not found"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(UserError, match="is a folder"):
        read_image(tmp_path)
    Path(tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(UserError, match=r"empty \(0 bytes\)"):
        read_image(tmp_path / "e.png")
