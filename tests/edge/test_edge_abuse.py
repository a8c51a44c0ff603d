"""The edge against a second security review's attacks on a running server (docs/EDGE.md, "Threat
table", rows 10-18), in process: each test failed on the code before its fix."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from mvstylizer.edge.auth import TokenSet
from mvstylizer.edge.ratelimit import AuthFailureConfig, RateLimitConfig
from mvstylizer.edge.server.app import create_app
from mvstylizer.edge.server.config import ServerConfig
from mvstylizer.edge.service import EdgeService

PHONE, OPS = "phone-token-5f2a9c0e7d1b", "ops-token-8c3e1a7f4b2d9"
OPEN = RateLimitConfig(rate=1e6, burst=10**6)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def secured() -> TestClient:
    config = ServerConfig(tokens=TokenSet.from_tokens({"phone": PHONE, "ops": OPS}), rate_limit=OPEN,
                          auth_failures=AuthFailureConfig(rate=1e6, burst=10**6))
    return TestClient(create_app(EdgeService(), config))


# ------------------------------------------------------------------------- 11: no token oracle in the query


def test_a_query_value_is_never_looked_up_in_the_token_table(secured):
    # Before: 400 "parameter b" for the one value that was a valid token, on a route needing none.
    guess = secured.get("/v1/health", params={"a": "x" * 24, "b": OPS, "c": "y" * 24})
    miss = secured.get("/v1/health", params={"a": "x" * 24, "b": "z" * 24, "c": "y" * 24})
    assert guess.status_code == miss.status_code == 200 and guess.content == miss.content
    guess = secured.get("/v1/models", params={"x": OPS}, headers=_bearer(PHONE))
    miss = secured.get("/v1/models", params={"x": "z" * 24}, headers=_bearer(PHONE))
    assert guess.status_code == miss.status_code == 200 and guess.content == miss.content


def test_credential_names_and_the_requests_own_token_are_refused(secured):
    anything = "not-a-token-at-all"
    for params, headers in (({"access_token": "anything"}, {}), ({"Key": "1"}, {}),
                            ({"x": PHONE}, _bearer(PHONE)), ({"x": anything}, _bearer(anything))):
        r = secured.get("/v1/models", params=params, headers=headers)
        assert r.status_code == 400, (params, r.text)
        assert "Authorization: Bearer" in r.json()["detail"]
