"""The phone's streaming pipeline (mobile/pipeline.py): keys at the edge while frames keep coming."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from dataclasses import replace

import av
import cv2
import numpy as np
import pytest
from helpers import texture

from mvstylizer.errors import UserError
from mvstylizer.mobile.edge_link import EmbeddedEdge
from mvstylizer.mobile.keyframes import KeyframeConfig
from mvstylizer.mobile.pipeline import StylizeConfig, StylizeReport, VideoPipeline
from mvstylizer.video.writer import VideoWriter


class _GatedEdge(EmbeddedEdge):
    """An in-process edge whose first key answers only once the phone has read ``ahead`` frames
    (or gives up after ``timeout`` s): a phone that waited for the edge would never get there."""

    def __init__(self, pulled: list[int], ahead: int, timeout: float = 30.0) -> None:
        super().__init__()
        self.pulled, self.ahead, self.timeout = pulled, ahead, timeout
        self.saw_frames_ahead: bool | None = None

    def stylize(self, style_id, model, frames):
        if self.saw_frames_ahead is None:
            end = time.monotonic() + self.timeout
            while self.pulled[0] < self.ahead and time.monotonic() < end:
                time.sleep(0.01)
            self.saw_frames_ahead = self.pulled[0] >= self.ahead
        return super().stylize(style_id, model, frames)


class _FailingEdge(EmbeddedEdge):
    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.calls, self.fail_at = 0, fail_at

    def stylize(self, style_id, model, frames):
        self.calls += 1
        if self.calls == self.fail_at:
            raise UserError("the edge refused this key frame")
        return super().stylize(style_id, model, frames)


def _frames(n: int, pulled: list[int], seconds: float = 0.0):
    """``n`` textured frames; ``seconds`` each after the first 20 (a camera, a decoder)."""
    for i in range(n):
        pulled[0] = i + 1
        if i >= 20:
            time.sleep(seconds)
        yield (texture(48, 64, seed=i) * 255).astype(np.uint8)


def _style() -> np.ndarray:
    return (texture(40, 56, seed=99) * 255).astype(np.uint8)


def test_frames_keep_coming_while_a_key_is_at_the_edge():
    pulled = [0]
    edge = _GatedEdge(pulled, ahead=6)
    pipe = VideoPipeline(edge, StylizeConfig(model="reinhard", progress=False,
                                             keyframes=KeyframeConfig(max_gap=4)))
    out = list(pipe.stream(_frames(12, pulled), _style()))
    assert edge.saw_frames_ahead is True
    assert len(out) == 12 and all(o.shape == (48, 64, 3) and o.dtype == np.uint8 for o in out)


def test_the_result_does_not_depend_on_how_long_the_edge_takes():
    quick = list(VideoPipeline(EmbeddedEdge(), StylizeConfig(model="reinhard", progress=False))
                 .stream(_frames(10, [0]), _style()))
    pulled = [0]
    slow = list(VideoPipeline(_GatedEdge(pulled, ahead=8), StylizeConfig(model="reinhard", progress=False))
                .stream(_frames(10, pulled), _style()))
    assert all(np.array_equal(a, b) for a, b in zip(quick, slow, strict=True))


def test_an_edge_error_on_a_later_key_reaches_the_caller():
    edge = _FailingEdge(fail_at=2)
    pipe = VideoPipeline(edge, StylizeConfig(model="reinhard", progress=False, keyframes=KeyframeConfig(max_gap=3)))
    with pytest.raises(UserError, match="refused"):
        list(pipe.stream(_frames(12, [0]), _style()))
    assert not [t for t in threading.enumerate() if t.name.startswith("mvstylizer-key")]


def _record_outputs(pipe: VideoPipeline, frames, style, pulled: list[int]) -> list[int]:
    """Runs ``pipe`` on ``frames``; returns how many frames had been pulled when each output came."""
    return [pulled[0] for _ in pipe.stream(frames, style)]


def test_decoding_keeps_the_lead_it_gained_while_a_key_was_out():
    # The first key answers only once 20 frames are read. From then on one frame is rendered per
    # frame read (until the input ends), so the later keys are still asked ~20 frames before their
    # frames are needed. Rendering every frame whose keys were back before reading on (five at a time
    # here) gave that lead away, and a slow edge was then waited for at every key.
    pulled = [0]
    edge = _GatedEdge(pulled, ahead=20)
    pipe = VideoPipeline(edge, StylizeConfig(model="reinhard", progress=False,
                                             keyframes=KeyframeConfig(mode="every", every=5)))
    seen = _record_outputs(pipe, _frames(40, pulled, seconds=0.02), _style(), pulled)
    assert edge.saw_frames_ahead is True and len(seen) == 40
    while_reading = [n for n in seen if n < 40]
    assert while_reading and all(b > a for a, b in itertools.pairwise(while_reading)), seen
    assert while_reading[0] >= 20


class _StagedEdge(EmbeddedEdge):
    """Every other answer is the key frame's negative, so neighbouring keys disagree everywhere.
    The second key (frame 5) answers once the third (frame 10) is asked; the first refinement (a
    frame between 0 and 5) answers once a frame after 5 is being refined too, or after ``timeout``."""

    def __init__(self, report: StylizeReport, timeout: float = 10.0) -> None:
        super().__init__()
        self.report, self.timeout, self.calls = report, timeout, 0
        self.timed_out = False

    def _wait_for(self, asked) -> None:
        end = time.monotonic() + self.timeout
        while not any(asked(k) for k in list(self.report.keys)):
            if time.monotonic() > end:
                self.timed_out = True
                return
            time.sleep(0.005)

    def stylize(self, style_id, model, frames):
        self.calls += 1
        if self.calls == 2:
            self._wait_for(lambda k: k["index"] == 10)
        elif self.calls == 4:
            self._wait_for(lambda k: k["reason"] == "refine" and k["index"] > 5)
        super().stylize(style_id, model, frames)
        return [1.0 - f if self.calls % 2 else f for f in frames]


def _panning(n: int):
    wide = (texture(48, 64 + n, seed=3) * 255).astype(np.uint8)
    for i in range(n):
        yield np.ascontiguousarray(wide[:, i:i + 64])


def test_a_gap_is_refined_as_soon_as_its_two_keys_are_back():
    # While the first gap waits for its refinement, the second gap's keys come back: it is checked
    # and its own refinement asked then, not once the first gap is rendered.
    report = StylizeReport("", "", "reinhard", "transform", 64, 48, 25.0)
    edge = _StagedEdge(report)
    pipe = VideoPipeline(edge, StylizeConfig(model="reinhard", progress=False, keyframes=KeyframeConfig(max_gap=5)))
    out = list(pipe.stream(_panning(21), _style(), report))
    assert len(out) == 21 and not edge.timed_out
    assert {k["index"] for k in report.keys if k["reason"] != "refine"} == {0, 5, 10, 15, 20}


class _SlowRemoteEdge(EmbeddedEdge):
    """An edge ``seconds`` away that takes ``max_in_flight`` keys at once; counts how many were out."""

    def __init__(self, max_in_flight: int, seconds: float = 0.05) -> None:
        super().__init__()
        self.max_in_flight, self.seconds = max_in_flight, seconds
        self._lock, self._out, self.most_out = threading.Lock(), 0, 0

    def stylize(self, style_id, model, frames):
        with self._lock:
            self._out += 1
            self.most_out = max(self.most_out, self._out)
        time.sleep(self.seconds)
        with self._lock:
            self._out -= 1
        return super().stylize(style_id, model, frames)


def test_keys_go_out_together_to_an_edge_that_takes_several_and_the_frames_are_the_same():
    config = StylizeConfig(model="reinhard", progress=False, keyframes=KeyframeConfig(mode="every", every=3))
    outs = {}
    for in_flight in (1, 3):
        edge = _SlowRemoteEdge(in_flight)
        outs[in_flight] = list(VideoPipeline(edge, config).stream(_panning(30), _style()))
        assert edge.most_out == 1 if in_flight == 1 else edge.most_out >= 2
    assert all(np.array_equal(a, b) for a, b in zip(outs[1], outs[3], strict=True))


class _ContentEdge(EmbeddedEdge):
    """Answers with the key's negative when its mean brightness is above the median of this clip's
    frames, after a random delay: the keys' colours clash (so gaps are refined) by what they show,
    not by the order they arrive in."""

    def __init__(self, max_in_flight: int, delays: bool) -> None:
        super().__init__()
        self.max_in_flight = max_in_flight
        self._rng = np.random.default_rng(7) if delays else None

    def stylize(self, style_id, model, frames):
        if self._rng is not None:
            time.sleep(float(self._rng.uniform(0.0, 0.03)))
        super().stylize(style_id, model, frames)
        return [1.0 - f if f.mean() > 0.5 else f for f in frames]


def _brightening(n: int):
    base = texture(48, 64, seed=5)
    for i in range(n):
        yield np.clip((base * 0.8 + 0.1 + 0.15 * np.sin(i / 3.0)) * 255, 0, 255).astype(np.uint8)


def test_keys_and_frames_do_not_depend_on_when_the_edge_answers():
    # Adaptive keys with refinements: an edge answering at once, one key at a time, against one that
    # answers after random delays with three keys out; the same keys, reasons and frames.
    runs = []
    for in_flight, delays in ((1, False), (3, True)):
        report = StylizeReport("", "", "reinhard", "transform", 64, 48, 25.0)
        pipe = VideoPipeline(_ContentEdge(in_flight, delays),
                             StylizeConfig(model="reinhard", progress=False, keyframes=KeyframeConfig(max_gap=6)))
        runs.append((list(pipe.stream(_brightening(40), _style(), report)), report.keys))
    (quick, quick_keys), (slow, slow_keys) = runs
    assert any(k["reason"] == "refine" for k in quick_keys)
    assert quick_keys == slow_keys
    assert all(np.array_equal(a, b) for a, b in zip(quick, slow, strict=True))


def test_a_stride_longer_than_the_frame_budget_is_shortened_to_fit(caplog):
    # every:8 with room for 5 frames: the frames between two keys wait in memory, so 8 of them would
    # overrun the budget (every:200 at 720p held 553 MB against 320 MB); keys come every 5, with a warning.
    config = StylizeConfig(model="reinhard", progress=False, max_buffer_mb=0.05,
                           keyframes=KeyframeConfig(mode="every", every=8))
    report = StylizeReport("", "", "reinhard", "transform", 64, 48, 25.0)
    with caplog.at_level("WARNING", logger="mvstylizer"):
        out = list(VideoPipeline(EmbeddedEdge(), config).stream(_panning(20), _style(), report))
    assert len(out) == 20 and [k["index"] for k in report.keys] == [0, 5, 10, 15, 19]
    assert report.max_buffered_frames <= 5 and "a key every 5 frames instead" in caplog.text


def test_frames_before_a_failed_key_come_out_before_its_error():
    edge = _FailingEdge(fail_at=3)  # the key at frame 6 (keys at 0, 3, 6, ...)
    pipe = VideoPipeline(edge, StylizeConfig(model="reinhard", progress=False, keyframes=KeyframeConfig(max_gap=3)))
    got = []
    with pytest.raises(UserError, match="refused"):
        for frame in pipe.stream(_panning(12), _style()):
            got.append(frame)
    assert len(got) >= 4  # frames 0-3: their keys came back


def test_large_frames_wait_for_their_keys_as_decoded_and_twice_as_many_fit(tmp_path):
    """Where the frame budget would hold fewer RGB frames than a key gap (4K), frames are held as the
    decoder gave them (4:2:0, half the bytes) and made RGB when rendered: more of them fit, the key
    gap is not cut as short, and the video comes out as it does with frames held as RGB."""
    from mvstylizer.bench.synthetic import write_test_clip
    from mvstylizer.video.image import write_image
    from mvstylizer.video.reader import VideoReader

    clip, style = tmp_path / "clip.mp4", tmp_path / "style.png"
    write_test_clip(clip, width=320, height=192, frames=40)
    write_image(style, _style())
    rgb_mb = 320 * 192 * 3 / 1e6
    small = StylizeConfig(model="reinhard", progress=False, max_buffer_mb=8 * rgb_mb)  # 8 RGB frames
    roomy = StylizeConfig(model="reinhard", progress=False, keyframes=KeyframeConfig(max_gap=13))
    pipe, plain = VideoPipeline(EmbeddedEdge(), small), VideoPipeline(EmbeddedEdge(), roomy)
    yuv420, rgb = 320 * 192 * 3 // 2, 320 * 192 * 3
    assert pipe._defer_frames((192, 320, 3), yuv420) and not plain._defer_frames((192, 320, 3), yuv420)
    assert not pipe._defer_frames((192, 320, 3), rgb) and not pipe._defer_frames((192, 320, 3), None)  # 4:4:4
    stride = replace(small, keyframes=KeyframeConfig(mode="every", every=4))  # 8 RGB frames hold two strides
    assert not VideoPipeline(EmbeddedEdge(), stride)._defer_frames((192, 320, 3), yuv420)
    report = pipe.run(clip, style, tmp_path / "deferred.mp4")
    assert report.frames == 40 and report.max_buffered_frames > 8  # 13 fit as decoded
    plain.run(clip, style, tmp_path / "rgb.mp4")
    with VideoReader(tmp_path / "deferred.mp4") as a, VideoReader(tmp_path / "rgb.mp4") as b:
        for fa, fb in zip(a.frames(), b.frames(), strict=True):
            mse = np.mean((fa.rgb8.astype(float) - fb.rgb8.astype(float)) ** 2)
            assert 10 * np.log10(255**2 / max(mse, 1e-9)) > 35


def test_a_style_photo_is_read_no_bigger_than_the_edge_needs(tmp_path, monkeypatch):
    # Read whole, a 54 MP style photo peaked at 1.6 GB only to be shrunk to 1024 px; read_image shrinks
    # it as decoded when asked to.
    import cv2

    from mvstylizer.video import image

    big = (texture(1500, 2500, seed=1) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "style.png"), big)
    sides = []
    real = image.read_image

    def spy(path, **kwargs):
        sides.append(kwargs.get("max_side"))
        return real(path, **kwargs)

    monkeypatch.setattr(image, "read_image", spy)  # read_style's decode
    vp = VideoPipeline(EmbeddedEdge(), StylizeConfig(model="reinhard", max_style_side=640, progress=False))
    style_id = vp._register_style(tmp_path / "style.png")
    assert sides == [640] and style_id


def test_letterbox_bars_stay_black_in_keys_and_in_between_frames():
    """A style's colour transfer lifts black to its dark tones (brown bars); the edge styles the picture
    inside the bars, and the phone's in-between frames keep them as the keys have them."""
    def boxed(i: int) -> np.ndarray:
        img = np.zeros((96, 160, 3), np.uint8)
        img[16:80] = (texture(64, 160, seed=i % 3) * 200 + 40).astype(np.uint8)
        return img

    style = np.full((64, 64, 3), (200, 150, 90), np.uint8)
    style[::2] = (150, 100, 60)  # warm, no black anywhere: a transfer maps black to ~brown
    pipe = VideoPipeline(EmbeddedEdge(), StylizeConfig(progress=False, keyframes=KeyframeConfig(max_gap=4)))
    out = list(pipe.stream((boxed(i) for i in range(9)), style))
    bars = np.concatenate([np.stack(out)[:, :14], np.stack(out)[:, 82:]], axis=1)
    assert bars.max() <= 3, f"bars lifted to {bars.max()} levels"
    assert np.stack(out)[:, 20:76].mean() > 60  # and the picture was styled


def test_something_entering_a_black_band_between_keys_is_styled():
    """The keys' bars were copied from the input on every frame between them: a ball rising into a
    crushed-black sky between two keys came out with its own colours (30 levels off frame-by-frame)."""
    def centre(i: int) -> tuple[int, int]:
        return 80, round(50 - 40 * np.sin(np.pi * i / 30))

    def frame(i: int) -> np.ndarray:
        img = np.zeros((96, 160, 3), np.uint8)
        img[24:] = (texture(72, 160, seed=0) * 200 + 40).astype(np.uint8)
        cv2.circle(img, centre(i), 6, (60, 200, 220), -1)  # a cyan ball rises into the black and falls back
        return img

    style = np.full((64, 64, 3), (200, 150, 90), np.uint8)
    style[::2] = (150, 100, 60)
    pipe = VideoPipeline(EmbeddedEdge(), StylizeConfig(model="mk", progress=False,
                                                       keyframes=KeyframeConfig(max_gap=30)))
    out = np.stack(list(pipe.stream((frame(i) for i in range(31)), style)))
    for i in range(10, 21):  # the ball inside the band
        ball = np.zeros((96, 160), np.uint8)
        cv2.circle(ball, centre(i), 4, 1, -1)
        inside = ball.astype(bool)
        inside[24:] = False
        assert np.abs(out[i][inside].astype(int) - frame(i)[inside]).mean() > 10, i  # styled, not copied
    assert out[0, :20].max() <= 3 and out[30, :20].max() <= 3  # the keys' bars still black


def test_the_recording_s_date_and_title_are_kept(tmp_path):
    """A phone's video carries when it was recorded; galleries sort by it. ffmpeg keeps it; so do we."""
    tags = {"creation_time": "2019-08-03T17:45:12.000000Z", "title": "holiday"}
    clip = tmp_path / "in.mp4"
    with VideoWriter(clip, 64, 48, 25.0, metadata=tags) as writer:
        for i in range(4):
            writer.write((texture(48, 64, seed=i) * 255).astype(np.uint8))
    style = tmp_path / "style.png"
    cv2.imwrite(str(style), cv2.cvtColor(_style(), cv2.COLOR_RGB2BGR))
    pipe = VideoPipeline(EmbeddedEdge(), StylizeConfig(model="reinhard", progress=False))
    pipe.run(clip, style, tmp_path / "out.mp4")
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert {k: c.metadata.get(k) for k in tags} == tags


class _HungEdge(EmbeddedEdge):
    """An edge whose answers never come: a key waits until the link is closed (as ``HttpEdge.close``
    ends its requests in flight), or ``timeout`` s (a request's timeout and retries)."""

    def __init__(self, timeout: float = 20.0) -> None:
        super().__init__()
        self.timeout, self.closed = timeout, threading.Event()

    def stylize(self, style_id, model, frames):
        if self.closed.wait(self.timeout):
            raise UserError("the request to the edge was abandoned")
        return super().stylize(style_id, model, frames)

    def close(self) -> None:
        self.closed.set()
        super().close()


def test_ctrl_c_does_not_wait_for_keys_at_a_hung_edge():
    edge = _HungEdge()
    pipe = VideoPipeline(edge, StylizeConfig(model="reinhard", progress=False, keyframes=KeyframeConfig(max_gap=4)))
    frames = ((texture(48, 64, seed=i) * 255).astype(np.uint8) for i in range(30))
    # Ctrl-C a second in, while the phone waits for its first key: a real SIGINT, so it interrupts the wait.
    ctrl_c = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    t0 = time.monotonic()
    ctrl_c.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            list(pipe.stream(frames, _style()))
    finally:
        ctrl_c.cancel()
    assert time.monotonic() - t0 < 10.0  # the hung requests end when the run does, not after 20 s each
    assert not [t for t in threading.enumerate() if t.name.startswith("mvstylizer-key")]


def test_a_caller_that_stops_reading_does_not_close_the_link():
    """Breaking out of stream() ends this run only: a link shared with other runs stays open."""
    closes = []

    class CountingEdge(EmbeddedEdge):
        def close(self) -> None:
            closes.append(1)
            super().close()

    pipe = VideoPipeline(CountingEdge(), StylizeConfig(model="reinhard", progress=False))
    for i, _ in enumerate(pipe.stream(_frames(12, [0]), _style())):
        if i == 2:
            break
    assert not closes


@pytest.mark.parametrize("model", ["reinhard", "regions"])
def test_a_letterboxed_dark_scene_is_styled_as_without_its_bars(model):
    """The phone fits its transforms to the picture inside the bars and passes the bars through, as
    the edge does: fit over the bars too, a global look mapped the picture's shadows towards the bars'
    black, and a grid lifted the bar rows next to the picture."""
    dark = [(texture(96, 160, seed=i % 2) * 70 + 3).astype(np.uint8) for i in range(8)]  # a dusk scene

    def boxed(f: np.ndarray) -> np.ndarray:
        out = np.zeros((128, 160, 3), np.uint8)
        out[16:112] = f
        return out

    style = np.full((64, 64, 3), (200, 150, 90), np.uint8)
    style[::2] = (120, 70, 40)
    cfg = StylizeConfig(model=model, progress=False, keyframes=KeyframeConfig(max_gap=4))
    plain = np.stack(list(VideoPipeline(EmbeddedEdge(), cfg).stream(iter(dark), style))).astype(int)
    lb = np.stack(list(VideoPipeline(EmbeddedEdge(), cfg).stream((boxed(f) for f in dark), style))).astype(int)
    assert max(lb[:, :16].max(), lb[:, 112:].max()) <= 1
    assert np.abs(lb[:, 16:112] - plain).mean() < 1.5, np.abs(lb[:, 16:112] - plain).mean()


def test_subtitles_in_a_bottom_bar_leave_the_rest_of_the_bar_black():
    """Keys with and without a subtitle line in the bottom bar find bars of different heights; the frames
    between them keep the bar rows both keys have as they are."""
    def boxed(i: int) -> np.ndarray:
        out = np.zeros((128, 160, 3), np.uint8)
        out[16:100] = (texture(84, 160, seed=i % 2) * 180 + 40).astype(np.uint8)
        if i % 8 < 4:  # a subtitle in rows 104-110, on for half the frames
            out[104:110, 40:120:3] = 230
        return out

    style = np.full((64, 64, 3), (200, 150, 90), np.uint8)
    style[::2] = (120, 70, 40)
    pipe = VideoPipeline(EmbeddedEdge(), StylizeConfig(model="reinhard", progress=False,
                                                       keyframes=KeyframeConfig(mode="every", every=4)))
    out = np.stack(list(pipe.stream((boxed(i) for i in range(12)), style)))
    assert out[:, :14].max() <= 1 and out[:, 114:].max() <= 1
