"""Process-wide memory settings for a run that streams large frames through several threads.

glibc gives every thread that allocates its own malloc arena (up to eight per core) and keeps what is
freed in an arena for reuse. A run's frames are allocated on the decoding thread, freed on the
rendering one, and working images come and go on the key threads: each arena ends up holding
frames' worth of freed memory. At 4K a `stylize` run peaked at 2.1-2.2 GiB that way; with two arenas,
1.7-2.0 GiB in twelve runs, in the same time (docs/BENCHMARKS.md, "The edge's latency"). Process-wide,
so only the command line sets it (`stylize`, and the benchmark's stand-in for it), not the library.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_ARENA_MAX = -8  # mallopt parameter number, from glibc's malloc.h


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas for threads started from now on; True if it took effect.

    A no-op (False) off Linux or without glibc. Call it before the run starts its threads."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(_M_ARENA_MAX, int(arenas)))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
