"""Hive and agent names: the one rule, checked before any path or resource is built.

Names become directory names under the hive home and Azure Container App names, so they
follow the stricter of the two: 1 to 32 lowercase ASCII letters, digits and ``-``, starting
with a letter, not ending with ``-`` and without ``--``. Anything else (``../x``, ``""``,
``Agent_1``, ``café``) is refused, never rewritten into something that passes.
"""

from __future__ import annotations

import re
import string

from amplihack_hive.errors import InvalidInputError

MAX_NAME_LENGTH = 32

NAME_RULE = (
    f"use 1-{MAX_NAME_LENGTH} lowercase letters (a-z), digits and '-', starting with a letter, "
    "not ending with '-' and without '--'"
)

_ALLOWED = frozenset(string.ascii_lowercase + string.digits + "-")
# [a-z] matches ASCII only, and \Z (unlike $) does not accept a trailing newline.
_NAME = re.compile(r"[a-z][a-z0-9-]*\Z")


def _problem(value: str) -> str | None:
    """What is wrong with ``value``, or None when it is a valid name."""
    if not value:
        return "it is empty"
    if len(value) > MAX_NAME_LENGTH:
        return f"it is {len(value)} characters long"
    if value[0] not in string.ascii_lowercase:
        return "it does not start with a lowercase letter"
    if not _NAME.match(value):
        bad = next(ch for ch in value if ch not in _ALLOWED)
        return f"it contains {bad!r}"
    if value.endswith("-"):
        return "it ends with '-'"
    if "--" in value:
        return "it contains '--'"
    return None


def validate_name(value: object, what: str = "hive name") -> str:
    """Return ``value`` if it is a valid hive or agent name, else raise InvalidInputError.

    The message names the value, what is wrong with it and the rule, e.g.
    ``invalid hive name '../x': it does not start with a lowercase letter; use ...``.
    """
    if not isinstance(value, str):
        raise InvalidInputError(
            f"invalid {what} {value!r}: expected a string, got {type(value).__name__}"
        )
    problem = _problem(value)
    if problem is not None:
        raise InvalidInputError(f"invalid {what} {value!r}: {problem}; {NAME_RULE}")
    return value


def is_valid_name(value: object) -> bool:
    """True when :func:`validate_name` would accept ``value``."""
    return isinstance(value, str) and _problem(value) is None
