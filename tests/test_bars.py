"""Letterbox and pillarbox bars (bars.py): found where a decoder gives them back, never in a dark scene."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from helpers import texture

from mvstylizer.bars import Bars, find_bars, within_bars
from mvstylizer.wire import decode_frame, encode_frame


def _boxed(h: int, w: int, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    img = np.zeros((h, w, 3), np.float32)
    img[top:h - bottom, left:w - right] = 0.2 + 0.6 * texture(h - top - bottom, w - left - right)
    return img


@pytest.mark.parametrize("bars", [(36, 36, 0, 0), (0, 0, 80, 80), (20, 12, 30, 6)], ids=str)
def test_bars_are_found_exactly(bars):
    assert find_bars(_boxed(288, 512, *bars)) == Bars(*bars)


def test_bars_are_found_through_a_jpeg_round_trip_and_uint8():
    img = _boxed(288, 512, 35, 35, 0, 0)  # 35: off the codec's 8-pixel blocks, so it rings at the edge
    back = decode_frame(encode_frame(img))
    found = find_bars(back)
    assert 33 <= found.top <= 35 and 33 <= found.bottom <= 35 and not found.left and not found.right
    assert find_bars((back * 255 + 0.5).astype(np.uint8)) == found


@pytest.mark.parametrize("case", ["night", "thin", "dark_left_half", "tiny_picture"])
def test_a_dark_scene_is_not_bars(case):
    rng = np.random.default_rng(0)
    h, w = 288, 512
    if case == "night":  # a dark sky at ~12 of 255 with noise, lights below
        img = np.clip(12 / 255 + rng.normal(0, 3 / 255, (h, w, 3)), 0, 1).astype(np.float32)
        img[200:] = 0.3 * texture(h - 200, w)
    elif case == "tiny_picture":  # a 6-row picture between bars: too little for a model's features
        img = _boxed(24, 64, 9, 9, 0, 0)
    elif case == "thin":  # one black row: the picture's own edge
        img = _boxed(h, w, 1, 0, 0, 0)
    else:  # most of the width dark: too little picture left to be bars
        img = _boxed(h, w, 0, 0, 400, 0)
    assert not find_bars(img)


def test_within_bars_styles_the_picture_and_keeps_the_bars():
    img = _boxed(120, 200, 15, 15, 0, 0)
    seen = []

    def lift(x: np.ndarray) -> np.ndarray:  # a transfer that maps black to a mid-tone
        seen.append(x.shape)
        return 0.3 + 0.5 * x

    out = within_bars(lift, img)
    assert seen == [(90, 200, 3)]
    np.testing.assert_array_equal(out[:15], img[:15])
    np.testing.assert_array_equal(out[-15:], img[-15:])
    np.testing.assert_allclose(out[15:-15], 0.3 + 0.5 * img[15:-15])
    plain = texture(120, 200)
    np.testing.assert_allclose(within_bars(lift, plain), 0.3 + 0.5 * plain)


def test_bars_survive_the_key_downscale():
    """A 1080p letterbox shrunk to the key size with area averaging keeps bars the edge can find."""
    img = _boxed(1080, 1920, 138, 138, 0, 0)
    small = cv2.resize(img, (512, 288), interpolation=cv2.INTER_AREA)
    found = find_bars(small)
    assert 35 <= found.top <= 37 and 35 <= found.bottom <= 37


def test_a_frame_black_to_the_last_pixel_stays_black():
    """A letterboxed fade's last frame has no picture left: styled whole, it flashed the style's dark
    tone (brown) between frames whose bars stayed black."""
    black = np.zeros((90, 160, 3), np.float32)
    assert find_bars(black).black
    out = within_bars(lambda x: 0.3 + 0.5 * x, black)
    np.testing.assert_array_equal(out, black)


def test_the_bars_two_pictures_share():
    wide, narrow = Bars(20, 30, 0, 0), Bars(20, 8, 0, 0)  # subtitles in the bottom bar of the second
    assert wide.common(narrow) == narrow.common(wide) == Bars(20, 8, 0, 0)
    assert Bars(black=True).common(wide) == wide.common(Bars(black=True)) == wide
    assert Bars().common(wide) == Bars()


def test_the_codecs_ringing_beside_a_bar_belongs_to_the_bar(tmp_path):
    """H.264 leaves rows a few levels above black between a bar and a bright picture; taken for picture
    on some frames and not on others, they were styled into a coloured line that came and went."""
    import av

    h, w, bar = 240, 320, 30  # 30: off the codec's 16-pixel macroblocks, so it rings across the edge
    rng = np.random.default_rng(0)
    path = tmp_path / "letterbox.mp4"
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=25, options={"preset": "ultrafast", "crf": "23"})
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        for i in range(8):
            img = np.zeros((h, w, 3), np.uint8)
            img[bar:h - bar] = np.clip(200 + rng.normal(0, 40, (h - 2 * bar, w, 3)), 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    beside = max(float((f.max(axis=2)[bar - 2:bar] > 12).mean()) for f in frames)
    assert beside > 0.01, "the clip should ring beside the bar, or this test tests nothing"
    assert {find_bars(f) for f in frames} == {Bars(bar, bar, 0, 0)}
