"""Fixtures shared by the federated-learning tests."""

from __future__ import annotations

import pytest


@pytest.fixture()
def task_identity():
    """Messages made outside a Flower process need a task identity (Flower sets one per process)."""
    from flwr.supercore.task_identity import TaskIdentity

    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1
    yield
    TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = saved
