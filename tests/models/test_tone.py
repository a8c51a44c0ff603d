"""Tone protection (models/tone.py)."""

import numpy as np

from mvstylizer.models.classic import MongeKantorovichTransfer
from mvstylizer.models.tone import soft_clip


def test_soft_clip_is_monotone_and_bounded():
    x = np.linspace(-0.5, 1.5, 2001, dtype=np.float32)
    y = soft_clip(x, 0.04)
    assert np.all(np.diff(y) >= 0) and y.min() > 0 and y.max() < 1
    mid = (x > 0.05) & (x < 0.95)
    np.testing.assert_allclose(y[mid], x[mid])


def test_classic_transfer_to_a_dark_style_keeps_shadow_detail():
    ramp = np.repeat(np.linspace(0.05, 0.95, 256, dtype=np.float32)[None, :, None], 32, axis=0).repeat(3, axis=2)
    style = np.full((32, 32, 3), 0.03, np.float32)
    style[:, :16] = 0.12  # a night photo: nearly all of it near black
    mk = MongeKantorovichTransfer()
    out = mk.stylize(ramp, mk.prepare_style(style))
    q = np.rint(out * 255)
    assert np.mean(q == 0) == 0.0  # nothing flattened to black...
    assert np.all(np.diff(out[0, :, 0]) >= 0)  # ...and the ramp keeps its order
