"""The phone's streaming pipeline (mobile/pipeline.py): keys at the edge while frames keep coming."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from helpers import texture

from mvstylizer.errors import UserError
from mvstylizer.mobile.edge_link import EmbeddedEdge
from mvstylizer.mobile.keyframes import KeyframeConfig
from mvstylizer.mobile.pipeline import StylizeConfig, VideoPipeline


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


def _frames(n: int, pulled: list[int]):
    for i in range(n):
        pulled[0] = i + 1
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
