"""Jobs in forked workers: nothing the parent left for the garbage collector is finalised in a child."""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

from mvstylizer.fl.population import run_jobs


class _Cycle:
    """Stands for a video decoder in a reference cycle (PyAV's container and its streams point at
    each other): finalising it in a forked child would wait forever for FFmpeg threads the child
    does not have. Records the process that finalises it."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.me = self

    def __del__(self) -> None:
        with self.log.open("a") as f:
            f.write(f"{os.getpid()}\n")


def _collect_in_child(i: int, ctx: Any, log: Any) -> int:
    gc.collect()
    return os.getpid()


def test_garbage_is_collected_before_forking(tmp_path):
    log = tmp_path / "finalised.txt"
    enabled = gc.isenabled()
    gc.disable()  # keep the cycle alive until run_jobs, as a busy parent may
    try:
        _Cycle(log)
        children = run_jobs(None, [(_collect_in_child, (i,)) for i in range(2)], workers=2)  # type: ignore[arg-type]
    finally:
        if enabled:
            gc.enable()
    assert os.getpid() not in children
    assert log.read_text().split() == [str(os.getpid())]  # finalised once, here
