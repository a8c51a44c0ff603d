"""A studio frame hook for tests that need a render to wait at a known point (no sleeps in the tests)."""

from __future__ import annotations

import threading
from typing import Any


class Gate:
    """While closed, holds each render at its third frame until the gate is opened or the job is
    cancelled; ``held`` is set once a render is waiting there."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.open.set()
        self.held = threading.Event()

    def __call__(self, job: Any, index: int) -> None:
        if index == 2:
            self.held.set()
            while not (self.open.is_set() or job.cancel.is_set()):
                self.open.wait(0.02)
