import cv2
import numpy as np
import pytest

from mvstylizer.mobile.grid import GridConfig, ResidualGrid, fit_grid

from helpers import texture, to8


def luma8(img):
    return to8(img.mean(axis=2))


def test_grid_recovers_a_smooth_spatial_offset():
    img = texture(96, 160, seed=2)
    ramp = np.linspace(-0.1, 0.1, 160, dtype=np.float32)[None, :, None] * np.float32([1, 0, -1])
    offset = np.broadcast_to(ramp, img.shape)
    grid = fit_grid(luma8(img), img, offset, GridConfig(prior=1e-3))
    got = grid.slice(luma8(img), img)
    inner = (slice(16, -16), slice(32, -32))
    assert np.abs(got[inner] - offset[inner]).mean() < 0.01


def test_offsets_follow_brightness_not_just_position():
    # Dark and bright pixels side by side in every cell, with different offsets: the grid keeps them
    # apart by brightness, so a dark object moving anywhere gets the dark offset.
    rng = np.random.default_rng(0)
    bright = rng.random((64, 64)) > 0.5
    img = np.where(bright[..., None], 0.85, 0.15).astype(np.float32) * np.ones(3, np.float32)
    residual = np.where(bright[..., None], np.float32([0.05, 0, 0]), np.float32([0, 0, 0.05]))
    grid = fit_grid(luma8(img), img, residual.astype(np.float32))
    moved = np.full((64, 64, 3), 0.15, np.float32)  # all dark now
    got = grid.slice(luma8(moved), moved)
    assert got[..., 2].mean() > 0.04 and abs(got[..., 0].mean()) < 0.01


def test_unseen_brightness_falls_back_to_the_global_look():
    img = np.full((64, 64, 3), 0.8, np.float32)
    grid = fit_grid(luma8(img), img, np.full((64, 64, 3), 0.05, np.float32))
    dark_img = np.full((64, 64, 3), 0.05, np.float32)
    dark = grid.slice(luma8(dark_img), dark_img)
    assert np.abs(dark).max() < 0.01


def test_blend_and_checks():
    img = texture(32, 32, seed=1)
    a = fit_grid(luma8(img), img, np.zeros((32, 32, 3), np.float32))
    b = fit_grid(luma8(img), img, np.full((32, 32, 3), 0.1, np.float32))
    mid = a.blend(b, 0.5).coeffs
    assert np.allclose(mid, 0.5 * b.coeffs)
    with pytest.raises(ValueError):
        fit_grid(luma8(img), img, np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError):
        GridConfig(cell=1)


def test_frames_reaching_pure_white_keep_every_bin():
    # A uint8 max of 255 + 1 wrapped to 0 and the top bins were skipped for any frame with pure white.
    img = np.linspace(0, 1, 64, dtype=np.float32)[None, :, None] * np.ones((32, 1, 3), np.float32)
    grid = fit_grid(luma8(img), img, np.full((32, 64, 3), 0.05, np.float32), GridConfig(prior=1e-3))
    got = grid.slice(luma8(img), img)
    assert got[:, -4:].mean() > 0.03


def test_grid_recovers_a_local_contrast_change():
    # A local affine model (regions) changes contrast region by region: offsets alone cannot follow
    # that, a gain per cell and bin does.
    img = texture(96, 160, seed=5)
    left = (np.arange(160) < 80)[None, :, None]
    residual = np.where(left, 0.6 * (img - img.mean()), 0.0).astype(np.float32)
    grid = fit_grid(luma8(img), img, residual, GridConfig(prior=1e-3))
    got = grid.slice(luma8(img), img)
    inner = (slice(16, -16), slice(16, 56))
    err = np.abs(got[inner] - residual[inner]).mean()
    assert err < 0.2 * np.abs(residual[inner]).mean()


def test_a_flat_walls_noise_gets_no_gain():
    # Sensor noise on a plain wall carries no signal: a model whose output amplifies it must not
    # make the grid amplify the next frame's (different) noise into boiling patches.
    rng = np.random.default_rng(1)
    wall = np.clip(0.7 + rng.normal(0, 0.004, (64, 96, 3)), 0, 1).astype(np.float32)
    grid = fit_grid(luma8(wall), wall, 3.0 * (wall - 0.7))
    nxt = np.clip(0.7 + rng.normal(0, 0.004, (64, 96, 3)), 0, 1).astype(np.float32)
    assert np.std(grid.slice(luma8(nxt), nxt)) < 0.5 * np.std(nxt)


def _sliced_directly(grid, luma, content):
    """The trilinear slice written out: every bin resized to the frame, weighted by its tent."""
    gains, offsets = grid.affine
    bins, gh, gw = offsets.shape[:3]
    params = np.concatenate([gains.reshape(bins, gh, gw, 9), offsets], axis=3)
    h, w = luma.shape
    pos = luma.astype(np.float32) * (bins - 1) / 255.0
    co = np.zeros((h, w, 12), np.float32)
    for k in range(bins):
        layer = cv2.resize(params[k], (w, h), interpolation=cv2.INTER_LINEAR)
        co += layer * np.clip(1.0 - np.abs(pos - k), 0.0, 1.0)[..., None]
    gain = co[..., :9].reshape(h, w, 3, 3)
    return (gain @ content[..., None])[..., 0] + co[..., 9:]


@pytest.mark.parametrize("size", [(36, 64), (97, 151), (12, 20)])
def test_slice_is_trilinear_in_position_and_brightness(size):
    # Frames larger and smaller than the grid's key, at odd sizes, with brightness reaching 0 and 255.
    rng = np.random.default_rng(3)
    img = texture(72, 128, seed=5)
    residual = (rng.standard_normal((72, 128, 3)) * 0.05).astype(np.float32)
    grid = fit_grid(luma8(img), img, residual, GridConfig(cell=8, prior=1e-3))
    frame = cv2.resize(texture(72, 128, seed=6), size[::-1], interpolation=cv2.INTER_AREA)
    frame[0, 0], frame[-1, -1] = 0.0, 1.0
    got = grid.slice(luma8(frame), frame)
    want = _sliced_directly(grid, luma8(frame), frame)
    # remap samples on a 1/32-cell lattice: up to ~0.35 levels here, where noise made the maps steep
    assert np.abs(got - want).max() * 255 < 0.5
    assert np.abs(got - want).mean() * 255 < 0.02


def test_warped_grid_reads_the_moved_cells():
    rng = np.random.default_rng(1)
    gain, offset = rng.random((4, 6, 10, 3, 3)), rng.random((4, 6, 10, 3))
    grid = ResidualGrid.from_affine(gain, offset)
    assert np.allclose(grid.affine[0], gain) and np.allclose(grid.affine[1], offset)
    coeffs = grid.coeffs
    # A frame point u shows what the grid's frame showed at u + (2 cells, 1 cell).
    moved = grid.warped(np.array([[1.0, 0.0, 2 / 10], [0.0, 1.0, 1 / 6]]))
    assert np.allclose(moved.coeffs[:, :, :5, :8], coeffs[:, :, 1:, 2:])
    edge = coeffs[:, :, np.minimum(np.arange(6) + 1, 5)]  # the bottom row repeated
    assert np.allclose(moved.coeffs[:, :, :, 9], edge[:, :, :, 9])
    assert not moved.coeffs[..., 3].any()  # the parts' fourth channel stays 0
    assert grid.warped(None) is grid
    with pytest.raises(ValueError, match="shapes"):
        grid.blend(ResidualGrid.from_affine(gain[:, :5], offset[:, :5]), 0.5)


def test_warped_grid_reads_where_a_zoom_takes_each_cell_centre():
    # A zoom about the frame's centre on a grid whose offset is the cell centre's x (as a fraction of
    # the frame): a moved cell must read the x the motion gives its centre, on cells clear of the edge.
    gh, gw = 9, 16
    centres = (np.arange(gw) + 0.5) / gw
    offsets = np.zeros((2, gh, gw, 3), np.float32)
    offsets[..., 0] = centres[None, None, :]
    zoom = 0.8
    motion = np.array([[zoom, 0.0, 0.5 * (1 - zoom)], [0.0, zoom, 0.5 * (1 - zoom)]])
    moved = ResidualGrid.from_affine(np.zeros((2, gh, gw, 3, 3)), offsets).warped(motion).affine[1][..., 0]
    assert np.allclose(moved[0, 4], zoom * centres + 0.5 * (1 - zoom), atol=1e-3), moved[0, 4]
