"""metrics.photoreal on tiny synthetic images and masks: mask decoding, region palette, photorealism."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from helpers import texture, to8

from mvstylizer.metrics import lab_swd
from mvstylizer.metrics.color import lab_swd_pixels
from mvstylizer.metrics.photoreal import (
    clipped_share,
    label_code,
    mask_labels,
    photorealism_db,
    region_palette_distance,
    resize_labels,
)

RED, BLUE, WHITE, BLACK = (255, 0, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)


def two_region_mask(h: int, w: int, split: int, top=RED, bottom=BLUE) -> np.ndarray:
    m = np.zeros((h, w, 3), np.uint8)
    m[:split] = top
    m[split:] = bottom
    return m


def scene(h: int = 60, w: int = 80, seed: int = 0):
    """A content photo with a sky-ish top and a ground-ish bottom, its mask, a style with different
    colours per region (and a different split), and the style's mask."""
    tex = texture(h, w, seed=seed)
    content = np.empty((h, w, 3), np.float32)
    content[: h // 2] = 0.25 + 0.3 * tex[: h // 2] * [0.6, 0.8, 1.0]  # bluish top
    content[h // 2:] = 0.2 + 0.3 * tex[h // 2:] * [0.8, 1.0, 0.5]  # greenish bottom
    sh, ss = 50, 20
    stex = texture(sh, 70, seed=seed + 1)
    style = np.empty((sh, 70, 3), np.float32)
    style[:ss] = np.clip([0.9, 0.5, 0.2] + 0.1 * stex[:ss], 0, 1)  # orange top
    style[ss:] = np.clip([0.15, 0.1, 0.35] + 0.1 * stex[ss:], 0, 1)  # purple bottom
    return (np.clip(content, 0, 1), two_region_mask(h, w, h // 2), style.astype(np.float32),
            two_region_mask(sh, 70, ss))


def test_lab_swd_pixels_matches_lab_swd_and_p1_is_smaller():
    a, b = texture(30, 40, seed=1), np.clip(texture(20, 30, seed=2) * [1, 0.6, 0.3], 0, 1)
    assert lab_swd_pixels(a.reshape(-1, 3), b.reshape(-1, 3)) == pytest.approx(lab_swd(a, b), rel=1e-12)
    sw1 = lab_swd(a, b, p=1)
    assert 0 < sw1 <= lab_swd(a, b)
    assert lab_swd_pixels(to8(a).reshape(-1, 3), to8(a).reshape(-1, 3), p=1) == 0.0
    with pytest.raises(ValueError):
        lab_swd_pixels(a, b)  # images, not Nx3
    with pytest.raises(ValueError):
        lab_swd(a, b, p=3)


def test_mask_labels_exact_colours_and_shared_ids():
    m = two_region_mask(20, 30, 8)
    lab = mask_labels(m)
    assert lab.shape == (20, 30)
    assert set(np.unique(lab)) == {label_code(RED), label_code(BLUE)}
    assert (lab[:8] == label_code(RED)).all() and (lab[8:] == label_code(BLUE)).all()
    # another mask with the same colours gets the same ids; a one-colour mask is one label
    other = mask_labels(two_region_mask(30, 30, 10, top=BLUE, bottom=RED))
    assert set(np.unique(other)) == set(np.unique(lab))
    assert set(np.unique(mask_labels(np.full((9, 9, 3), 255, np.uint8)))) == {label_code(WHITE)}
    # a sliver with no 5x5 interior of >= 64 pixels is not a label of its own
    sliver = two_region_mask(30, 30, 2)
    assert set(np.unique(mask_labels(sliver))) == {label_code(BLUE)}


def test_mask_labels_antialiased_edge_and_jpeg_noise():
    """A black/white mask blurred across its boundary (greys 1..254, i.e. a 0.5 grey band) and noised
    by a few levels decodes to two labels, split where the raw colour is nearer."""
    h, w = 60, 80
    m = np.zeros((h, w, 3), np.uint8)
    cv2.circle(m, (40, 30), 18, WHITE, -1)
    noisy = cv2.GaussianBlur(m, (0, 0), 1.5).astype(np.int16)
    noisy += np.random.default_rng(0).integers(-3, 4, size=noisy.shape).astype(np.int16)
    noisy = np.clip(noisy, 0, 255).astype(np.uint8)
    assert len(np.unique(noisy.reshape(-1, 3), axis=0)) > 50  # many distinct colours
    lab = mask_labels(noisy)
    assert set(np.unique(lab)) == {label_code(BLACK), label_code(WHITE)}  # no grey label invented
    truth = np.where(m[..., 0] > 127, label_code(WHITE), label_code(BLACK))
    assert (lab == truth).mean() > 0.98
    # a red/yellow boundary band (orange) is snapped too
    ry = two_region_mask(40, 40, 20, top=RED, bottom=(255, 255, 0))
    ry = cv2.GaussianBlur(ry, (0, 0), 1.2)
    assert set(np.unique(mask_labels(ry))) == {label_code(RED), label_code((255, 255, 0))}


def test_mask_labels_keeps_a_real_grey_region_and_reads_grey_and_float_masks():
    m = np.zeros((60, 60, 3), np.uint8)
    m[:, 20:40] = 128  # a real grey class (DPST's "grey")
    m[:, 40:] = 255
    assert set(np.unique(mask_labels(m))) == {label_code(BLACK), label_code((128, 128, 128)), label_code(WHITE)}
    grey2d = m[..., 0]
    assert (mask_labels(grey2d) == mask_labels(m)).all()
    assert (mask_labels(m.astype(np.float32) / 255.0) == mask_labels(m)).all()
    with pytest.raises(ValueError):
        mask_labels(np.zeros((4, 4, 2), np.uint8))


def test_resize_labels_nearest():
    lab = np.array([[1, 2], [3, 4]])
    big = resize_labels(lab, 4, 6)
    assert big.shape == (4, 6) and set(np.unique(big)) == {1, 2, 3, 4}
    assert (big[:2, :3] == 1).all() and (big[2:, 3:] == 4).all()
    assert resize_labels(lab, 2, 2) is lab


def test_region_palette_regionwise_recolour_beats_global_recolour():
    content, cmask, style, smask = scene()
    cl, sl = mask_labels(cmask), mask_labels(smask)
    h = content.shape[0]
    # region-wise: each content region takes the mean colour of the matching style region (+ its texture)
    regional = content.copy()
    regional[: h // 2] = np.clip(content[: h // 2] - content[: h // 2].mean((0, 1)) + style[:20].mean((0, 1)), 0, 1)
    regional[h // 2:] = np.clip(content[h // 2:] - content[h // 2:].mean((0, 1)) + style[20:].mean((0, 1)), 0, 1)
    # global: the whole content shifted to the style's overall mean colour
    glob = np.clip(content - content.mean((0, 1)) + style.mean((0, 1)), 0, 1)
    d_in = region_palette_distance(content, style, cl, sl, min_pixels=100)
    d_reg = region_palette_distance(regional, style, cl, sl, min_pixels=100)
    d_glob = region_palette_distance(glob, style, cl, sl, min_pixels=100)
    assert d_reg < 0.5 * d_glob and d_glob < d_in, (d_reg, d_glob, d_in)
    # the global distance cannot tell them apart the same way
    assert lab_swd(glob, style) < 2 * lab_swd(regional, style)
    # uint8 images, and masks of a different size than their image, give the same kind of answer
    small = cv2.resize(cmask, (40, 30), interpolation=cv2.INTER_NEAREST)
    d_small = region_palette_distance(to8(regional), to8(style), mask_labels(small), sl, min_pixels=100)
    assert d_small == pytest.approx(d_reg, abs=1.0)
    # sliced W1 variant
    assert 0 < region_palette_distance(regional, style, cl, sl, min_pixels=100, p=1) <= d_reg + 1e-9


def test_region_palette_none_without_a_shared_label_and_min_pixels():
    content, cmask, style, smask = scene()
    cl = mask_labels(cmask)
    sl = mask_labels(np.full(smask.shape, 255, np.uint8))  # style all white: no label in common
    assert region_palette_distance(content, style, cl, sl) is None
    # at min_pixels=1500 only the blue region is large enough on the style side (20x70 red, 30x70 blue)
    sl = mask_labels(smask)
    only_blue = region_palette_distance(content, style, cl, sl, min_pixels=1500)
    assert only_blue is not None
    blue = label_code(BLUE)
    expect = lab_swd_pixels(content[cl == blue], style[sl == blue])
    assert only_blue == pytest.approx(expect)


def _blotches(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((h // 6, w // 6, 3)).astype(np.float32)
    return cv2.resize(noise, (w, h), interpolation=cv2.INTER_NEAREST)


def test_photorealism_affine_recolour_high_blotches_and_halos_low():
    content = texture(96, 128, seed=3)
    a = np.array([[0.8, 0.1, 0.0], [0.05, 0.7, 0.1], [0.0, 0.2, 0.5]], np.float32)
    recolour = np.clip(content @ a.T + [0.1, 0.05, 0.2], 0, 1)
    good = photorealism_db(recolour, content)
    assert good > 45, good
    assert photorealism_db(to8(recolour), to8(content)) > 40  # uint8 quantisation bounds it, still high
    blotchy = np.clip(recolour + 0.06 * _blotches(96, 128, 0), 0, 1)
    bad = photorealism_db(blotchy, content)
    assert bad < good - 10, (good, bad)
    # a halo: a bright ring around an edge that is not in the content
    halo = recolour.copy()
    yy, xx = np.mgrid[:96, :128]
    ring = np.exp(-((np.hypot(yy - 48, xx - 64) - 25) ** 2) / 8.0)[..., None]
    halo = np.clip(halo + 0.25 * ring, 0, 1)
    assert photorealism_db(halo, content) < good - 10
    with pytest.raises(ValueError):
        photorealism_db(recolour[:50], content)


def test_photorealism_unchanged_is_high_but_finite():
    content = texture(64, 64, seed=5)
    v = photorealism_db(content, content)
    assert 45 < v < 80


def test_clipped_share():
    img = np.full((10, 10, 3), 0.5, np.float32)
    assert clipped_share(img) == 0.0
    img[0, :, 1] = 1.0  # 10 pixels with a channel at 255
    img[1, :5] = 0.001  # rounds to 0
    assert clipped_share(img) == pytest.approx(0.15)
    assert clipped_share(to8(img)) == pytest.approx(0.15)
