"""The key's fine detail grid (InterpConfig.detail): closer to the model at the key, and never carried
onto picture that changed since the key."""

import numpy as np

from mvstylizer.metrics import psnr
from mvstylizer.mobile.interpolate import InterpConfig, Interpolator

from helpers import texture, to8


def reshaded(img: np.ndarray) -> np.ndarray:
    """A model that changes local contrast in 16 px blocks, as a region-aware model reshades within a
    region: too fine for the first grid's 12 px cells smoothed across their neighbours."""
    h, w = img.shape[:2]
    blocks = ((np.arange(h)[:, None] // 16 + np.arange(w)[None, :] // 16) % 2).astype(np.float32)
    gain = 0.55 + 0.7 * blocks[..., None]
    mean = img.mean(axis=(0, 1), keepdims=True)
    return np.clip(mean + gain * (img - mean), 0.0, 1.0).astype(np.float32)


def interpolators() -> tuple[Interpolator, Interpolator]:
    return (Interpolator(InterpConfig(map_scale=1.0), spatial=True),
            Interpolator(InterpConfig(map_scale=1.0, detail=None), spatial=True))


def test_detail_brings_the_key_closer_to_the_model():
    content = texture(144, 256, seed=3)
    styled = reshaded(content)
    with_detail, without = (i.key(0, to8(content), styled, to8(content)) for i in interpolators())
    inner = (slice(8, -8), slice(8, -8))
    ours, coarse = (psnr(k.styled8[inner] / 255.0, styled[inner]) for k in (with_detail, without))
    assert ours > coarse + 3.0, (ours, coarse)


def test_detail_is_not_carried_onto_changed_picture():
    content = texture(144, 256, seed=3)
    styled = reshaded(content)
    frame = content.copy()
    frame[40:100, 60:160] = texture(60, 100, seed=11)  # something else now covers this part
    changed = np.zeros(content.shape[:2], bool)
    changed[44:96, 64:156] = True  # inside the change, clear of its edges
    same = np.zeros(content.shape[:2], bool)
    same[8:-8, 8:-8] = True
    same[30:110, 50:170] = False  # clear of the change and of the frame's edges
    outs = []
    for interp in interpolators():
        a = interp.key(0, to8(content), styled, to8(content))
        b = interp.key(2, to8(content), styled, to8(content))
        outs.append(interp.frame(1, to8(frame), to8(frame), a, b).astype(np.float32))
    diff = np.abs(outs[0] - outs[1]).max(axis=2)
    assert diff[changed].mean() < 1.0, diff[changed].mean()  # the first grid alone there
    assert diff[same].mean() > 4.0, diff[same].mean()  # the detail holds where nothing changed
