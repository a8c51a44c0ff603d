"""The keys' maps follow the camera (InterpConfig.follow_motion): a frame between two keys of a panning
or zooming camera gets each key's grids moved to where that key's picture went, and a still camera
gets them where they were."""

import warnings

import cv2
import numpy as np
import pytest

from mvstylizer.metrics import psnr
from mvstylizer.mobile.grid import in_pixels
from mvstylizer.mobile.interpolate import InterpConfig, Interpolator, fit_similarity

from helpers import texture, to8


def scene_model(scene: np.ndarray) -> np.ndarray:
    """A region-aware model's output on a whole scene: local contrast changed in 16 px blocks and a
    warm left / cool right split, both tied to the scene's content, not to a frame's pixels."""
    h, w = scene.shape[:2]
    blocks = ((np.arange(h)[:, None] // 16 + np.arange(w)[None, :] // 16) % 2).astype(np.float32)
    gain = 0.55 + 0.7 * blocks[..., None]
    mean = scene.mean(axis=(0, 1), keepdims=True)
    out = mean + gain * (scene - mean)
    warm = (np.arange(w) < w // 2)[None, :, None]
    out = out + np.where(warm, [0.12, 0.02, -0.1], [-0.1, 0.0, 0.12]).astype(np.float32)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def render(follow: bool, step: int) -> tuple[float, float]:
    """PSNR to the model of the middle frame of a camera panning ``step`` px per frame across a scene,
    keys at frames 0 and 8, and of the key itself."""
    scene = texture(144, 256 + 8 * step + 16, seed=5)
    styled_scene = scene_model(scene)
    crop = [(slice(None), slice(8 + step * t, 8 + step * t + 256)) for t in range(9)]
    interp = Interpolator(InterpConfig(map_scale=1.0, follow_motion=follow), spatial=True)
    a, b = (interp.key(t, to8(scene[crop[t]]), styled_scene[crop[t]], to8(scene[crop[t]])) for t in (0, 8))
    frame = to8(scene[crop[4]])
    ours = interp.frame(4, frame, frame, a, b)
    inner = (slice(8, -8), slice(8, -8))
    return (psnr(ours[inner] / 255.0, styled_scene[crop[4]][inner]),
            psnr(a.styled8[inner] / 255.0, styled_scene[crop[0]][inner]))


def test_the_maps_follow_a_panning_camera():
    moving, key = render(True, step=4)  # 16 px from either key: a block and a half of the model's
    still, _ = render(False, step=4)
    assert moving > still + 3.0, (moving, still)
    assert moving > key - 1.5, (moving, key)  # mid-gap nearly as close to the model as the key itself


def test_a_still_camera_keeps_the_maps_in_place():
    moving, _ = render(True, step=0)
    still, _ = render(False, step=0)
    assert abs(moving - still) < 0.1, (moving, still)


def test_fit_similarity_finds_the_camera_and_ignores_a_walker():
    h, w = 144, 256
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    # The camera: zoom 3% about the centre, a 0.01 rad roll and a shift of (5, -3) px.
    scale, angle, shift = 1.03, 0.01, np.array([5.0, -3.0])
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    to_x = c * (xs - cx) - s * (ys - cy) + cx + shift[0]
    to_y = s * (xs - cx) + c * (ys - cy) + cy + shift[1]
    flow = np.stack([to_x - xs, to_y - ys], axis=2)
    flow[30:110, 40:110] = (-12.0, 4.0)  # a walker covering 30% of the frame moves its own way
    flow += np.random.default_rng(0).normal(0, 0.3, flow.shape).astype(np.float32)
    px = in_pixels(fit_similarity(flow), w, h)
    truth = np.array([[c, -s, cx + shift[0] - c * cx + s * cy], [s, c, cy + shift[1] - s * cx - c * cy]])
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], np.float64).T
    assert np.abs(px @ corners - truth @ corners).max() < 0.5, px


def test_fit_similarity_of_no_motion_is_the_identity():
    m = fit_similarity(np.zeros((72, 128, 2), np.float32))
    assert np.allclose(m, [[1, 0, 0], [0, 1, 0]], atol=1e-9), m


def test_a_frame_seen_by_a_key_and_moved_matches_the_moved_picture():
    # The same flow the interpolator reads: a picture shifted by (6, 2) px is found as that shift.
    img = to8(texture(144, 256, seed=2))
    moved = cv2.warpAffine(img, np.float32([[1, 0, 6], [0, 1, 2]]), (256, 144), borderMode=cv2.BORDER_REFLECT)
    interp = Interpolator(InterpConfig(map_scale=1.0))
    sigma = interp.config.detail_blur  # both blurred as the interpolator blurs them
    seen = cv2.cvtColor(cv2.GaussianBlur(moved, (0, 0), sigma), cv2.COLOR_RGB2GRAY)
    px = in_pixels(interp._motion(seen, cv2.GaussianBlur(img, (0, 0), sigma)), 256, 144)
    assert np.allclose(px[:, 2], [-6.0, -2.0], atol=0.3) and np.allclose(px[:, :2], np.eye(2), atol=0.01), px


def test_tiny_frames_render_without_a_motion_fit():
    rng = np.random.default_rng(0)
    for h, w in ((2, 2), (3, 40), (8, 8), (20, 12)):
        content = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        interp = Interpolator(InterpConfig())
        a, b = (interp.key(t, content, content[..., ::-1] / np.float32(255.0), content) for t in (0, 4))
        frame = np.roll(content, 1, axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert interp.frame(2, frame, frame, a, b).shape == (h, w, 3)
        assert fit_similarity(np.zeros((h, w, 2), np.float32)).shape == (2, 3)


def test_fit_similarity_keeps_a_still_camera_still_beside_a_walker_at_one_side():
    # Plain least squares explains a walker at one side as a zoom and a shift (3.7% and 8 px here).
    h, w = 144, 256
    flow = np.zeros((h, w, 2), np.float32)
    flow[:, 20:100, 0] = 10.0  # 31% of the frame, the whole height, moving on its own
    flow += np.random.default_rng(1).normal(0, 0.3, flow.shape).astype(np.float32)
    px = in_pixels(fit_similarity(flow), w, h)
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], np.float64).T
    assert np.abs(px @ corners - corners[:2]).max() < 0.5, px


def test_fit_similarity_of_a_thin_flow_is_the_identity():
    for shape in ((1, 40, 2), (40, 1, 2), (1, 1, 2)):
        assert np.allclose(fit_similarity(np.ones(shape, np.float32)), [[1, 0, 0], [0, 1, 0]]), shape


@pytest.mark.parametrize("full_scale", [1, 2])
def test_the_keys_of_a_pan_are_compared_with_their_maps_moved(full_scale):
    # Two keys of a camera panning 32 px across a region-aware scene: rendered through each key alone,
    # its maps moved with the camera as a frame between them is rendered, the middle frame comes out
    # alike from both, so the pan asks for no key between them; held where the camera left them, the
    # keys' maps disagree by more than the refinement threshold. With full-resolution frames twice the
    # key size, the keys' maps and pictures are at half the key size and the frame is compared there.
    step = 4
    scene = texture(144, 256 + 8 * step + 16, seed=5)
    styled_scene = scene_model(scene)
    crop = [(slice(None), slice(8 + step * t, 8 + step * t + 256)) for t in range(9)]
    for follow in (True, False):
        interp = Interpolator(InterpConfig(follow_motion=follow), spatial=True)
        a, b = (interp.key(t, to8(scene[crop[t]]), styled_scene[crop[t]],
                           cv2.resize(to8(scene[crop[t]]), None, fx=full_scale, fy=full_scale)) for t in (0, 8))
        assert a.picture is not None and a.picture.shape[1] == 256 // full_scale
        assert interp.keys_disagree(a, b, to8(scene[crop[4]])) is not follow
