import numpy as np
import pytest

from mvstylizer.mobile.keyframes import KeyframeConfig, KeyframeSelector, parse_keyframes

from helpers import shifted, texture, to8


def run(frames, **cfg):
    sel = KeyframeSelector(KeyframeConfig(**cfg))
    return [sel.push(to8(f)) for f in frames]


def test_first_frame_is_key_and_static_video_waits_for_max_gap():
    img = texture(90, 160)
    d = run([img] * 25, max_gap=10)
    keys = [i for i, x in enumerate(d) if x.is_key]
    assert keys == [0, 10, 20]
    assert d[0].reason == "first" and d[10].reason == "max-gap"


def test_fixed_stride():
    img = texture(90, 160)
    keys = [i for i, x in enumerate(run([img] * 12, mode="every", every=4)) if x.is_key]
    assert keys == [0, 4, 8]


def test_scene_cut_makes_both_sides_keys():
    a, b = texture(90, 160, seed=1), texture(90, 160, seed=2) * 0.3 + 0.6
    frames = [a] * 6 + [b] * 4
    d = run(frames, max_gap=100)
    assert d[6].is_key and d[6].reason == "cut" and d[6].previous_is_key
    assert not any(x.is_key for x in d[1:6])


def test_fast_motion_triggers_more_keys_than_slow_motion():
    base = texture(120, 200, seed=4)
    slow = [shifted(base, i) for i in range(30)]
    fast = [shifted(base, 4 * i) for i in range(30)]
    n_slow = sum(x.is_key for x in run(slow, max_gap=100))
    n_fast = sum(x.is_key for x in run(fast, max_gap=100))
    assert n_fast > n_slow >= 1


def test_bad_config_is_refused():
    with pytest.raises(ValueError):
        KeyframeConfig(mode="sometimes")


def _entering(n: int = 30, speed: int = 8) -> list[np.ndarray]:
    """A textured wall, and another texture sliding in from the right over it, ``speed`` px a frame."""
    wall, thing = texture(120, 200, seed=5), texture(120, 200, seed=6)[::-1] * 0.5 + 0.4
    frames = []
    for i in range(n):
        f = wall.copy()
        x = max(0, 200 - speed * i)
        f[:, x:] = thing[:, : 200 - x]
        frames.append(f)
    return frames


def test_occlusion_needs_the_backward_flow_only_when_enough_pixels_are_missed():
    """Something entering the view makes occlusion keys; the backward flow is computed only on frames
    where enough pixels are missed for it to change the answer."""
    frames = _entering()
    sel = KeyframeSelector(KeyframeConfig(max_gap=100))
    calls = []
    flow = sel._flow
    sel._flow = lambda a, b: (calls.append(1), flow(a, b))[1]
    decisions = [sel.push(to8(f)) for f in frames]
    assert any(d.reason == "occlusion" for d in decisions)
    # per frame after the first: the cut check's flow and the forward flow, plus a backward one at times
    assert 2 * (len(frames) - 1) <= len(calls) < 3 * (len(frames) - 1)


@pytest.mark.parametrize("text, parsed", [("auto", ("auto", 0)), ("every:1", ("every", 1)), ("every:12", ("every", 12))])
def test_keyframe_option_text_is_parsed(text, parsed):
    assert parse_keyframes(text) == parsed


@pytest.mark.parametrize("text", ["every:0", "every:", "every", "every:+3", "every: 3", "every:3_0", "every:-2",
                                  "every:²", "auto:", "auto:3", "Every:3", "every:3.0", ""])
def test_keyframe_option_text_that_is_not_auto_or_every_n_is_refused(text):
    """One parser for the command line and the API (the command line took "every:+3", "every: 3" and
    "every:3_0" through int(), the API did not)."""
    with pytest.raises(ValueError, match="expected 'auto' or 'every:N'"):
        parse_keyframes(text)
