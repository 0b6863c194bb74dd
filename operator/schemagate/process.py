"""The operator process's memory: few malloc arenas, and freed memory handed back.

A burst (a thousand schemas created at once: their first checks, JSON bodies, patches
from many threads) leaves glibc's heap large and spread over one arena per thread that
touched it; Python frees the objects, the process keeps the pages. Two arenas and a
`malloc_trim` now and then give them back (RSS at idle with 1,000 schemas: see
docs/benchmarks.md). Elsewhere than glibc (musl), both do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from typing import Any

#: glibc's mallopt parameter for the most arenas.
_M_ARENA_MAX = -8
#: Arenas for the whole process: the event loop's and one for every thread.
ARENAS = 2
#: Seconds between two trims: at idle each costs well under a millisecond.
TRIM_EVERY = 30.0


def _glibc() -> Any:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name)
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


def keep_memory_small() -> None:
    """Call before any thread starts: later threads share the arenas."""
    libc = _glibc()
    if libc is None:
        return
    libc.mallopt(_M_ARENA_MAX, ARENAS)

    def trim() -> None:
        while not stop.wait(TRIM_EVERY):
            libc.malloc_trim(0)

    stop = threading.Event()
    threading.Thread(target=trim, name="malloc-trim", daemon=True).start()
