"""A damaged image on the command line ends in exactly one `error:` line on stderr: OpenCV's decoders
print nothing of their own (their log is off while the CLI runs, and restored after)."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from mvstylizer.cli import main


def cut_in_half(fmt: str) -> bytes:
    y, x = np.mgrid[0:64, 0:96]
    buf = io.BytesIO()
    Image.fromarray(np.dstack([x * 2, y * 3, (x + y) % 256]).astype(np.uint8)).save(buf, fmt)
    return buf.getvalue()[:len(buf.getvalue()) // 2]


# What each printed before: TIFF "[ WARN:0@..] ... TIFFReadDirectory: Bogus StripByteCounts" and three more
# lines; BMP "[ERROR:0@..] ... imdecode_(''): can't read data"; PNG "libpng error: PNG input buffer is incomplete".
@pytest.mark.parametrize("fmt", ["TIFF", "BMP", "PNG"])
def test_a_damaged_image_gives_one_error_line(tmp_path, capfd, style, fmt):
    name = f"cut.{fmt.lower()}"
    (tmp_path / name).write_bytes(cut_in_half(fmt))
    before = cv2.utils.logging.getLogLevel()
    assert main(["stylize", str(tmp_path / name), "--style", str(style), "-o", str(tmp_path / "o.png"),
                 "--model", "reinhard", "-q"]) == 2
    err = capfd.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert cv2.utils.logging.getLogLevel() == before


@pytest.mark.parametrize("output", ["o.mp4", "o.png"])
def test_a_missing_image_is_named_before_the_output(tmp_path, capfd, style, output):
    # With a video output it said "unsupported output extension '.mp4' ... an image output must end in ...".
    assert main(["stylize", str(tmp_path / "nothere.png"), "--style", str(style), "-o", str(tmp_path / output),
                 "-q"]) == 2
    assert capfd.readouterr().err == f"error: image not found: {tmp_path / 'nothere.png'}\n"


@pytest.mark.parametrize("output", ["o.png", "o.webp", "o.tif", "o.jpg"])
def test_an_image_keeps_its_transparency_where_the_output_can(tmp_path, style, output):
    # The alpha was dropped: a logo's transparent background came out as an opaque styled wash.
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[..., :3] = (90, 160, 40)  # BGR
    rgba[:, :20, 3], rgba[:, 20:30, 3], rgba[:, 30:, 3] = 0, 128, 255
    Image.fromarray(rgba[..., [2, 1, 0, 3]]).rotate(90, expand=True).save(tmp_path / "logo.png")
    assert main(["stylize", str(tmp_path / "logo.png"), "--style", str(style), "-o", str(tmp_path / output),
                 "--model", "reinhard", "-q"]) == 0
    out = cv2.imread(str(tmp_path / output), cv2.IMREAD_UNCHANGED)
    if output.endswith(".jpg"):
        assert out.shape == (60, 40, 3)
        return
    assert out.shape == (60, 40, 4)
    np.testing.assert_array_equal(out[..., 3], np.rot90(rgba[..., 3]))
