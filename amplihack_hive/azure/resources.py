"""The Jinja templates and Bicep modules that ship with the package.

A built wheel carries the top-level ``templates/`` and ``bicep/`` directories as
``amplihack_hive/_data/templates`` and ``amplihack_hive/_data/bicep`` (hatch
``force-include`` in pyproject.toml); an editable install or a source checkout reads them
from the top of the source tree.
"""

from __future__ import annotations

import importlib.resources
from importlib.resources.abc import Traversable
from pathlib import Path

from amplihack_hive.errors import NotFoundError

DATA_PACKAGE = "amplihack_hive"
DATA_DIR = "_data"
_SOURCE_ROOT = Path(__file__).resolve().parents[2]


def data_dir(name: str) -> Traversable:
    """The packaged directory ``name`` (``templates`` or ``bicep``)."""
    packaged = importlib.resources.files(DATA_PACKAGE) / DATA_DIR / name
    if packaged.is_dir():
        return packaged
    source = _SOURCE_ROOT / name
    if source.is_dir():
        return source
    raise NotFoundError(
        f"this amplihack-hive install has no {name}/ directory (looked in {packaged} and "
        f"{source}); reinstall the package"
    )


def read_text(directory: Traversable, relative: str) -> str:
    """The text of ``relative`` (a ``/``-separated path) under ``directory``."""
    node = directory
    for part in relative.split("/"):
        node = node / part
    try:
        return node.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(f"this amplihack-hive install lacks {relative}; reinstall it") from None


def list_files(directory: Traversable, prefix: str = "") -> list[str]:
    """Every file under ``directory`` as sorted ``/``-separated relative paths."""
    found: list[str] = []
    for entry in directory.iterdir():
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue
        relative = f"{prefix}{entry.name}"
        if entry.is_dir():
            found.extend(list_files(entry, f"{relative}/"))
        else:
            found.append(relative)
    return sorted(found)
