"""OpenAPI fuzzing of the edge app with schemathesis (issue 14): every operation in the server's own
``/openapi.json``, valid and invalid inputs (schemathesis' positive and negative modes), sent to the
app in process (ASGI, no sockets, no network). No answer may be a 5xx and the app must not raise;
it must still answer its health check after each one. Bounded: ``max_examples`` per operation.

The hand-written Hypothesis strategies in test_edge_security.py / test_edge_http.py still run too."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")

import numpy as np  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.python.asgi import get_client  # noqa: E402

from mvstylizer.edge.auth import TokenSet  # noqa: E402
from mvstylizer.edge.ratelimit import AuthFailureConfig, RateLimitConfig  # noqa: E402
from mvstylizer.edge.server.app import create_app  # noqa: E402
from mvstylizer.edge.server.config import ServerConfig, served_models  # noqa: E402
from mvstylizer.edge.service import EdgeService  # noqa: E402
from mvstylizer.wire import FRAMES_MEDIA_TYPE, Encoding, encode_frame, pack_frames  # noqa: E402

TOKEN = "fuzz-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MODELS = ["mk", "reinhard"]  # cheap (numpy): the fuzz is about the HTTP surface, not the DNN
CONFIG = ServerConfig(tokens=TokenSet.from_tokens({"fuzzer": TOKEN}, {"fuzzer": ("stylize", "metrics")}),
                      models=served_models(MODELS), rate_limit=RateLimitConfig(rate=1e6, burst=10**6),
                      auth_failures=AuthFailureConfig(rate=1e6, burst=10**6), max_request_bytes=1 << 20,
                      max_frame_pixels=256 * 256, max_batch=4, body_timeout_s=5.0, log_level="warning")
APP = create_app(EdgeService(), CONFIG)
# The frame batch is raw bytes on the wire (`[u32 length][frame]...`): send what is generated as is.
schemathesis.serializer.alias(FRAMES_MEDIA_TYPE, "application/octet-stream")
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)

_STYLE_PNG = encode_frame(np.random.default_rng(3).uniform(0, 1, (16, 16, 3)).astype(np.float32), Encoding("png"))
_FRAMES = pack_frames([encode_frame(np.random.default_rng(4).uniform(0, 1, (16, 24, 3)).astype(np.float32))])
_style_id: list[str] = []


def _registered_style() -> str:
    if not _style_id:
        with get_client(APP) as c:
            r = c.post("/v1/styles", data=_STYLE_PNG, headers={"Content-Type": "image/png", **AUTH})
        assert r.status_code == 200, r.text
        _style_id.append(r.json()["style_id"])
    return _style_id[0]


def _steer(case) -> None:
    """Half of /v1/stylize's cases, chosen by the generated data itself (so a failure replays and
    shrinks), get a registered style and a served model, so they reach past the 404/400 of an unknown
    style or model into decoding; a few also get a well-formed frame batch."""
    if case.path != "/v1/stylize" or not isinstance(case.query, dict):
        return
    sid = case.query.get("style_id")
    if isinstance(sid, str) and len(sid) % 2 == 0:
        case.query["style_id"] = _registered_style()
        case.query["model"] = MODELS[len(sid) % 4 // 2]
        if len(sid) % 8 == 0:
            case.body = _FRAMES


@schema.parametrize()
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_openapi_fuzz_never_5xx_and_never_crashes(case):
    _steer(case)
    response = case.call(headers=AUTH)  # an exception raised by the app surfaces here: a crash
    assert response.status_code < 500, (case.method, case.path, case.query, response.status_code, response.text[:300])
    with get_client(APP) as c:
        assert c.get("/v1/health").status_code == 200
