"""memory: the arena cap and the trim take effect on glibc, and are quiet no-ops elsewhere."""

from __future__ import annotations

import platform
import subprocess
import sys


def test_arenas_are_capped_on_glibc_and_nothing_breaks_elsewhere():
    # In a child: the setting is process-wide.
    out = subprocess.run([sys.executable, "-c", "from mvstylizer.memory import limit_malloc_arenas as f; "
                          "from mvstylizer.memory import release_free_memory as g; "
                          "import numpy as np; print(f(2)); print(np.ones(10**6).sum()); print(g())"],
                         capture_output=True, text=True, check=True).stdout.split()
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert out == [str(glibc), "1000000.0", str(glibc)]

