"""agent/malloc.py: an agent process's allocator returns large freed blocks to the system."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from helpers import REPO_ROOT

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")

# glibc's own test of the dynamic threshold: free a 4 MB block (mmapped), then ask for 1 MB.
# Left as it is, glibc has raised its mmap threshold to 4 MB, so the 1 MB block comes from
# the heap (and stays there when freed); tuned, it is a mapping of its own again.
PROBE = textwrap.dedent(
    """
    import ctypes, ctypes.util, json, sys

    class Mallinfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    if not hasattr(libc, "mallinfo2"):
        print(json.dumps(None)); sys.exit(0)
    libc.mallinfo2.restype = Mallinfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    applied = []
    if sys.argv[1] == "tuned":
        from amplihack_hive.agent.malloc import tune_malloc
        applied = tune_malloc()
    libc.free(libc.malloc(4 << 20))
    before = libc.mallinfo2().hblks  # Python's own mapped blocks
    block = libc.malloc(1 << 20)
    mapped = libc.mallinfo2().hblks - before
    libc.free(block)
    print(json.dumps({"applied": applied, "mapped": mapped}))
    """
)


def probe(mode: str, **env: str) -> dict[str, object] | None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    environ.update(env, PYTHONPATH=str(REPO_ROOT))
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env=environ, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, object] | None = json.loads(out.stdout)
    if result is None:
        pytest.skip("this C library has no mallinfo2")
    return result


def test_a_large_block_is_its_own_mapping_after_tuning_and_not_before() -> None:
    untouched = probe("untouched")
    tuned = probe("tuned")
    assert untouched is not None and tuned is not None
    assert untouched["mapped"] == 0  # glibc's dynamic threshold put it on the heap
    assert tuned["mapped"] == 1
    assert tuned["applied"] == [
        "MALLOC_MMAP_THRESHOLD_",
        "MALLOC_TRIM_THRESHOLD_",
        "MALLOC_ARENA_MAX",
    ]


def test_a_setting_the_operator_made_in_the_environment_is_left_as_it_is() -> None:
    tuned = probe("tuned", MALLOC_ARENA_MAX="4", MALLOC_MMAP_THRESHOLD_="2097152")
    assert tuned is not None
    assert tuned["applied"] == ["MALLOC_TRIM_THRESHOLD_"]
    # glibc read the operator's 2 MB threshold: the 1 MB block is below it, on the heap
    assert tuned["mapped"] == 0
