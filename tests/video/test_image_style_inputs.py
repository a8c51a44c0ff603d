"""read_image on style photos a demanding user gives: a logo on a transparent background (its
transparent pixels are no style colour) and a huge JPEG (shrunk as decoded, not decoded whole)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from mvstylizer.errors import UserError
from mvstylizer.video import image as image_mod
from mvstylizer.video.image import read_image


def logo_on_transparent(tmp_path, hidden=(0, 255, 0)):
    """A red-and-blue disc on a transparent background whose hidden pixels are bright green."""
    rgba = np.zeros((60, 80, 4), np.uint8)
    rgba[..., :3] = hidden
    yy, xx = np.mgrid[:60, :80]
    disc = (yy - 30) ** 2 + (xx - 40) ** 2 < 20**2
    rgba[disc] = (200, 30, 30, 255)
    rgba[disc & (yy < 30), :3] = (30, 30, 200)
    path = tmp_path / "logo.png"
    Image.fromarray(rgba, "RGBA").save(path)
    return path


def colours(img: np.ndarray) -> set[tuple[int, ...]]:
    return {tuple(int(v) for v in c) for c in np.unique(np.round(img * 255).reshape(-1, 3), axis=0)}


def test_a_style_logo_on_transparent_background_has_only_the_logos_colours(tmp_path):
    # Composited onto white, 48% of this style was white (or, through its hidden pixels, green).
    img = read_image(logo_on_transparent(tmp_path), max_side=1024, transparent="ignore")
    assert colours(img) == {(200, 30, 30), (30, 30, 200)}
    assert img.shape == (39, 39, 3)  # cropped to the disc


def test_transparent_pixels_are_ignored_on_request_and_composited_onto_white_by_default(tmp_path):
    path = logo_on_transparent(tmp_path)
    assert colours(read_image(path, transparent="ignore")) == {(200, 30, 30), (30, 30, 200)}
    shown = read_image(path)  # an image to stylize: shown on white, as a viewer shows it
    assert shown.shape == (60, 80, 3) and (255, 255, 255) in colours(shown)
    assert colours(read_image(path, max_side=1024)) == colours(shown)  # the callers choose "ignore" for a style
    with pytest.raises(ValueError):
        read_image(path, transparent="black")


def test_an_opaque_rgba_style_reads_as_its_rgb(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (20, 30, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]), "RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png", max_side=1024, transparent="ignore"),
                                  read_image(tmp_path / "rgb.png", max_side=1024, transparent="ignore"))


def test_a_16_bit_and_a_palette_logo_leave_transparent_pixels_out_too(tmp_path):
    bgra = np.zeros((40, 40, 4), np.uint16)
    bgra[10:30, 5:25] = (30 * 257, 60 * 257, 200 * 257, 65535)  # BGR: red-ish
    cv2.imwrite(str(tmp_path / "logo16.png"), bgra)
    img = read_image(tmp_path / "logo16.png", max_side=512, transparent="ignore")
    assert img.shape == (20, 20, 3)
    np.testing.assert_allclose(img.reshape(-1, 3), [[200 / 255, 60 / 255, 30 / 255]] * 400, atol=1e-6)
    pal = Image.new("P", (30, 30), 0)
    pal.putpalette([0, 255, 0, 250, 200, 10])
    pal.paste(1, (5, 5, 15, 25))
    pal.info["transparency"] = 0
    pal.save(tmp_path / "pal.png", transparency=0)
    assert colours(read_image(tmp_path / "pal.png", max_side=512, transparent="ignore")) == {(250, 200, 10)}


def test_half_transparent_edges_keep_their_own_colour_and_clear_ones_take_the_nearest(tmp_path):
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[2:8, 2:6] = (250, 0, 0, 255)
    rgba[2:8, 6:10] = (0, 0, 250, 140)  # over half opaque: its own colour, not faded
    rgba[4, 4] = (0, 255, 0, 20)  # a near-clear hole: filled from its neighbours
    Image.fromarray(rgba, "RGBA").save(tmp_path / "edge.png")
    img = np.round(read_image(tmp_path / "edge.png", max_side=64, transparent="ignore") * 255)
    assert img.shape == (6, 8, 3)
    assert (img[:, 4:] == (0, 0, 250)).all() and (img[:, :4] == (250, 0, 0)).all()


def test_a_fully_transparent_style_is_a_clear_error(tmp_path):
    Image.fromarray(np.zeros((10, 10, 4), np.uint8), "RGBA").save(tmp_path / "clear.png")
    with pytest.raises(UserError, match="transparent all over"):
        read_image(tmp_path / "clear.png", max_side=1024, transparent="ignore")
    assert read_image(tmp_path / "clear.png").min() == 1.0  # as an image to stylize: white paper


def test_a_huge_jpeg_style_is_decoded_at_a_reduced_scale(tmp_path, monkeypatch):
    # A 12000x9000 JPEG style peaked at 0.7 GB decoded whole before shrinking to 1024 px; libjpeg's
    # 1/4-scale decode: 0.12 GB. Shown here at a small size with the threshold lowered.
    rng = np.random.default_rng(0)
    small = cv2.resize(rng.integers(0, 256, (12, 16, 3)).astype(np.uint8), (1600, 1200), interpolation=cv2.INTER_CUBIC)
    im = Image.fromarray(small)
    exif = im.getexif()
    exif[0x0112] = 6  # rotated: the reduced decode must leave the orientation to read_image too
    im.save(tmp_path / "big.jpg", quality=92, exif=exif)
    whole = read_image(tmp_path / "big.jpg", max_side=200)
    flags = []
    real = cv2.imdecode
    monkeypatch.setattr(image_mod.cv2, "imdecode", lambda data, flag: flags.append(flag) or real(data, flag))
    monkeypatch.setattr(image_mod, "REDUCED_DECODE_PIXELS", 1_000_000)
    reduced = read_image(tmp_path / "big.jpg", max_side=200)
    assert flags == [cv2.IMREAD_REDUCED_COLOR_4 | cv2.IMREAD_IGNORE_ORIENTATION]  # 400 px long: twice 200
    assert reduced.shape == whole.shape == (200, 150, 3)
    assert np.abs(reduced - whole).mean() < 1 / 255
    flags.clear()
    read_image(tmp_path / "big.jpg")  # an image to stylize is decoded whole
    assert flags == [cv2.IMREAD_UNCHANGED]


def test_a_uniformly_see_through_style_keeps_its_colours_unfaded(tmp_path):
    rgb = np.random.default_rng(2).integers(0, 256, (20, 30, 3)).astype(np.uint8)
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)]), "RGBA").save(tmp_path / "a.png")
    np.testing.assert_allclose(read_image(tmp_path / "a.png", max_side=64, transparent="ignore"), rgb / 255, atol=1e-6)


def test_a_long_thin_style_keeps_8_pixels_across_when_shrunk(tmp_path):
    rng = np.random.default_rng(4)
    strip = np.repeat(rng.integers(0, 256, (8, 1, 3)).astype(np.uint8), 4000, axis=1)  # a colour a row
    Image.fromarray(strip).save(tmp_path / "strip.png")
    Image.fromarray(np.ascontiguousarray(strip.transpose(1, 0, 2))).save(tmp_path / "tall.png")
    wide = read_image(tmp_path / "strip.png", max_side=1024, transparent="ignore")
    assert wide.shape == (8, 1024, 3)  # was 2x1024: its 8 rows averaged four at a time
    assert read_image(tmp_path / "tall.png", max_side=1024, transparent="ignore").shape == (1024, 8, 3)
    np.testing.assert_allclose(wide, np.repeat(strip[:, :1] / 255, 1024, axis=1), atol=1e-6)


def test_an_animated_gif_style_is_read_as_its_first_frame(tmp_path):
    rng = np.random.default_rng(5)
    first = np.repeat(np.repeat(rng.integers(0, 256, (4, 5, 3)).astype(np.uint8), 8, axis=0), 8, axis=1)
    frames = [Image.fromarray(first), Image.fromarray(255 - first)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    want = np.asarray(Image.open(tmp_path / "anim.gif").convert("RGB")) / 255  # Pillow's first frame
    try:
        img = read_image(tmp_path / "anim.gif", max_side=1024, transparent="ignore")
    except UserError as exc:  # an OpenCV before 4.11 has no GIF decoder: said so, not "damaged"
        assert "cannot decode GIF" in str(exc)
        return
    np.testing.assert_allclose(img, want, atol=1e-6)


def test_a_gif_logo_leaves_its_transparent_colour_out(tmp_path):
    rgba = np.zeros((40, 50, 4), np.uint8)
    rgba[10:30, 10:40] = (200, 30, 30, 255)
    Image.fromarray(rgba).save(tmp_path / "logo.gif")
    try:
        img = read_image(tmp_path / "logo.gif", max_side=1024, transparent="ignore")
    except UserError as exc:
        assert "cannot decode GIF" in str(exc)
        return
    assert img.shape == (20, 30, 3) and colours(img) == {(200, 30, 30)}
