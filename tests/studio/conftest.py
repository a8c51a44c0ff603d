"""The studio fixture the studio tests share: an app in process, its renders held at a gate."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")

from test_studio import Studio, make_studio  # noqa: E402


@pytest.fixture
def studio(tmp_path):
    client, gate = make_studio(tmp_path)
    with client:
        yield Studio(client, gate)
        gate.open.set()
