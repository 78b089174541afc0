"""How an agent process asks glibc's allocator to give memory back.

Under steady writes most of an agent's memory growth was not data but glibc holding on to
freed memory (benchmarks/bench_rss.py breaks RSS down by mapping):

- glibc raises its mmap threshold each time a large block is freed, up to 32 MB, so the
  large temporary buffers of every write batch and segment merge (numpy columns, query
  parameters and results) end up on the main heap instead of in mappings of their own, and
  the heap stays at its high-water mark: 100-200 MB of ``[heap]`` where the same writes
  keep it at 13 MB with the settings below;
- each thread that allocates may get an arena of its own (up to 8 per core), each kept at
  its own high-water mark.

So an agent process fixes the mmap threshold (which also stops the dynamic raise) and the
trim threshold at 128 kB, and allows two arenas: large blocks go back to the system when
freed, and the top of the heap is trimmed. A variable of glibc's own set in the environment
(``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``) is the
operator's choice and is left as it is. Nothing is done where the C library has no
``mallopt`` (macOS); a call it refuses (returns 0) is logged.

Only an agent process calls this: a program that embeds the library keeps its allocator as
it has it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

logger = logging.getLogger(__name__)

# mallopt parameters, from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

#: (parameter, value, the environment variable glibc reads for it)
SETTINGS = (
    (M_MMAP_THRESHOLD, 128 * 1024, "MALLOC_MMAP_THRESHOLD_"),
    (M_TRIM_THRESHOLD, 128 * 1024, "MALLOC_TRIM_THRESHOLD_"),
    (M_ARENA_MAX, 2, "MALLOC_ARENA_MAX"),
)


def tune_malloc() -> list[str]:
    """Apply :data:`SETTINGS` (before the process starts its threads); returns the names of
    those applied."""
    if not sys.platform.startswith("linux"):
        return []
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError) as exc:
        logger.debug("allocator left as it is: no mallopt in the C library (%s)", exc)
        return []
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    applied = []
    for param, value, env in SETTINGS:
        if env in os.environ:
            continue
        if mallopt(param, value) == 1:
            applied.append(env)
        else:
            logger.debug("allocator: mallopt(%d, %d) was refused", param, value)
    return applied
