"""JSON on the hot paths: agents' messages (over HTTP and in process) and the posting log.

orjson (a maintained Rust library) encodes these messages about 12x faster than the standard
``json`` module and decodes them 3x faster (a 2,000-posting put: 1.9 ms -> 0.15 ms, 1.3 ms
-> 0.43 ms); JSON was a tenth of an agent's and of a learning client's CPU. It differs from
``json`` in three ways, all handled where data enters:

- it writes NaN and infinities as ``null`` (``json`` writes ``NaN``, which is not JSON):
  no float we send may be one (fact times are bounded, metadata with one is refused,
  records._check_metadata);
- it refuses integers beyond 64 bits (so does metadata, for the same reason);
- it refuses dict keys that are not strings unless told: :data:`OPTIONS` converts them as
  ``json`` does.
"""

from __future__ import annotations

from typing import Any

import orjson

OPTIONS = orjson.OPT_NON_STR_KEYS
#: What :func:`loads` raises for text that is not JSON (a ValueError, as json's is).
JSONDecodeError = orjson.JSONDecodeError


def dumps(obj: Any) -> bytes:
    """``obj`` as compact UTF-8 JSON."""
    return orjson.dumps(obj, option=OPTIONS)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """The value JSON ``data`` stands for; JSONDecodeError (a ValueError) if it is not JSON,
    RecursionError (as json raises) if it is nested deeper than the parser goes."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc) or "recursion" in str(exc):
            raise RecursionError(f"JSON nested too deeply: {exc}") from None
        raise
