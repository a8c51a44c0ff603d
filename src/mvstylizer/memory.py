"""Process-wide memory settings for a run that streams large frames through several threads.

glibc gives every thread that allocates its own malloc arena (up to eight per core) and keeps what is
freed in an arena for reuse. A run's frames are allocated on the decoding thread, freed on the
rendering one, and working images come and go on the key threads: each arena ends up holding
frames' worth of freed memory. At 4K a `stylize` run peaked at 2.1-2.2 GiB that way, with two arenas
mostly under 2 GiB, in the same time (docs/BENCHMARKS.md, "The edge's latency"). The cap is
process-wide, so only the command line sets it (`stylize`, and the benchmark's stand-in for it), not
the library; the trim below is the pipeline's own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from typing import Any

_M_ARENA_MAX = -8  # mallopt parameter number, from glibc's malloc.h


@functools.lru_cache(maxsize=1)
def _glibc() -> Any:
    """glibc, or None (not Linux, or a C library without mallopt / malloc_trim, e.g. musl)."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas for threads started from now on; True if it took effect.

    A no-op (False) off Linux or without glibc. Call it before the run starts its threads."""
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(_M_ARENA_MAX, int(arenas)))


def release_free_memory() -> bool:
    """Hand the free pages inside malloc's heaps back to the system (glibc's ``malloc_trim``); True if
    it ran. With two arenas, 6 of 22 4K runs still peaked over 2 GiB (2.01-2.17), as freed 25 MB frames
    left holes that the next frames did not fit; trimmed every 5 or 10 frames, 1.72-1.87 GiB (seven
    runs), for ~6% of the run's time, so the pipeline does it for frames of 16 MB or more only."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
