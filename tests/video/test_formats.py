"""Which photos are read (HEIC and JPEG XL refused as what they are, .jfif/.jpe/.avif read), pipes
refused up front, and output formats' size limits checked before any work."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
from PIL import Image

from mvstylizer.errors import UserError
from mvstylizer.video.formats import check_output_path, is_image_path
from mvstylizer.video.image import read_image, write_image


@pytest.mark.parametrize("name, kind", [("photo.heic", "HEIC"), ("IMG_1.HEIF", "HEIF"), ("p.jxl", "JPEG XL")])
def test_a_photo_format_we_cannot_decode_is_refused_as_a_photo_not_taken_for_a_video(tmp_path, name, kind):
    photo = tmp_path / name
    photo.write_bytes(b"\0\0\0\x18ftypheic")
    refused = f"{name}: {kind} photos are not supported; convert it to JPEG or PNG"
    with pytest.raises(UserError, match=refused):
        check_output_path(photo, tmp_path / "out.mp4")  # it was "a video", and gave a 1-frame mp4
    cv2.imwrite(str(tmp_path / "in.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(UserError, match=refused):
        check_output_path(tmp_path / "in.png", tmp_path / "out.png", photo)  # as the style
    with pytest.raises(UserError, match=refused):
        read_image(photo)


@pytest.mark.parametrize("ext", [".jfif", ".jpe", ".JFIF"])
def test_jpegs_other_names_are_images_read_and_written(tmp_path, ext):
    assert is_image_path(f"x{ext}")
    path = tmp_path / f"photo{ext}"
    write_image(path, np.full((6, 8, 3), 0.5, np.float32))
    assert path.read_bytes()[:2] == b"\xff\xd8"  # a JPEG
    np.testing.assert_allclose(read_image(path), 0.5, atol=2 / 255)
    check_output_path(path, tmp_path / "out.jfif")


def test_an_avif_photo_is_read_where_opencv_decodes_it(tmp_path):
    if "AVIF" not in Image.registered_extensions().values():
        pytest.skip("this Pillow has no AVIF support")
    x, y = np.meshgrid(np.linspace(40, 200, 16), np.linspace(60, 180, 12))
    rgb = np.dstack([x, y, np.full_like(x, 90.0)])
    Image.fromarray(rgb.astype(np.uint8)).save(tmp_path / "p.avif", quality=100)
    assert is_image_path(tmp_path / "p.avif")
    try:
        img = read_image(tmp_path / "p.avif")
    except UserError as exc:  # an OpenCV built without libavif: said so, in one line
        assert "this OpenCV cannot decode AVIF photos; convert it to JPEG or PNG" in str(exc)
        return
    expected = np.asarray(Image.open(tmp_path / "p.avif").convert("RGB")) / 255
    np.testing.assert_allclose(img, expected, atol=1.01 / 255)
    with pytest.raises(UserError, match="unsupported output extension '.avif'"):
        check_output_path(tmp_path / "p.avif", tmp_path / "out.avif")


def test_a_pipe_as_input_or_style_is_refused_before_anything_opens_it(tmp_path):
    os.mkfifo(tmp_path / "in.mp4")
    os.mkfifo(tmp_path / "style.png")
    cv2.imwrite(str(tmp_path / "in.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(UserError, match="input .*in.mp4 is not a regular file"):
        check_output_path(tmp_path / "in.mp4", tmp_path / "out.mp4")
    with pytest.raises(UserError, match="style photo .*style.png is not a regular file"):
        check_output_path(tmp_path / "in.png", tmp_path / "out.png", tmp_path / "style.png")


@pytest.mark.parametrize("size, out, limit", [((16384, 2), "o.webp", "WebP image is at most 16383 px"),
                                              ((2, 65501), "o.jpg", "JPEG image is at most 65500 px")])
def test_an_output_format_too_small_for_the_image_is_refused_before_any_work(tmp_path, size, out, limit):
    w, h = size
    cv2.imwrite(str(tmp_path / "in.png"), np.zeros((h, w), np.uint8))
    with pytest.raises(UserError, match=f"cannot write {out}: the image is {w}x{h} and a {limit}"):
        check_output_path(tmp_path / "in.png", tmp_path / out)
    check_output_path(tmp_path / "in.png", tmp_path / "o.png")
    with pytest.raises(UserError, match=limit):
        write_image(tmp_path / out, np.zeros((h, w, 3), np.uint8))


def test_the_output_size_limit_is_checked_on_the_image_as_shown(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 16384 wide, shown 16384 tall
    Image.fromarray(np.zeros((2, 16384, 3), np.uint8)).save(tmp_path / "in.png", exif=exif)
    with pytest.raises(UserError, match="the image is 2x16384"):
        check_output_path(tmp_path / "in.png", tmp_path / "o.webp")


def test_a_10_bit_avif_is_read_at_its_brightness(tmp_path):
    try:
        ok, buf = cv2.imencode(".avif", np.full((8, 8, 3), 512, np.uint16), [cv2.IMWRITE_AVIF_DEPTH, 10])
    except cv2.error:
        ok = False
    if not ok or "AVIF" not in Image.registered_extensions().values():
        pytest.skip("this OpenCV or Pillow has no AVIF support")
    (tmp_path / "deep.avif").write_bytes(buf.tobytes())
    # OpenCV decodes it as uint16 holding 0..1023: taken as 0..65535 it was black.
    np.testing.assert_allclose(read_image(tmp_path / "deep.avif"), 512 / 1023, atol=3 / 255)


def test_an_output_name_too_long_for_its_folder_is_one_error_line(tmp_path, capsys):
    import cv2
    import numpy as np

    from mvstylizer.cli import main

    src = tmp_path / "in.png"
    cv2.imwrite(str(src), np.full((8, 8, 3), 128, np.uint8))
    out = tmp_path / ("a" * 300 + ".png")
    assert main(["stylize", str(src), "--style", str(src), "-o", str(out), "--model", "reinhard", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "internal error" not in err
