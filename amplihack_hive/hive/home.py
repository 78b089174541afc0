"""Where hives live: the home directory and the layout of one hive inside it.

The home is ``--home DIR``, else ``$AMPLIHACK_HIVE_HOME``, else ``~/.amplihack/hives``.
A hive is ``<home>/<NAME>/`` holding ``config.yaml``, its secret ``token``, a ``.lock`` for
read-modify-write, and its run state, logs and agent data. Every name is validated by
:func:`amplihack_hive.names.validate_name` before a path is built from it, so no hive path
can leave the home.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from amplihack_hive.names import is_valid_name, validate_name

HOME_ENV = "AMPLIHACK_HIVE_HOME"
DEFAULT_HOME = "~/.amplihack/hives"
CONFIG_FILE = "config.yaml"
LOCK_FILE = ".lock"

HomeArg = str | os.PathLike[str] | None


def resolve_home(home: HomeArg = None) -> Path:
    """The hive home as an absolute path: ``home`` if given, else the env var, else default.

    An empty ``$AMPLIHACK_HIVE_HOME`` counts as unset. ``~`` is expanded; symlinks are kept.
    Nothing is created.
    """
    if home is None or os.fspath(home) == "":
        home = os.environ.get(HOME_ENV) or DEFAULT_HOME
    return Path(os.path.abspath(os.path.expanduser(os.fspath(home))))


def hive_dir(home: HomeArg, name: str) -> Path:
    """``<home>/<name>``, after checking that ``name`` is a valid hive name."""
    return resolve_home(home) / validate_name(name, "hive name")


def config_path(directory: Path) -> Path:
    """The config file of the hive in ``directory``."""
    return directory / CONFIG_FILE


def hive_names(home: HomeArg = None) -> list[str]:
    """Sorted names of the hives under the home: directories with a valid name and a config.

    A missing home has no hives. Entries that are not hives (stray files, directories with
    names we would refuse, directories without ``config.yaml``) are skipped.
    """
    root = resolve_home(home)
    try:
        entries = list(root.iterdir())
    except FileNotFoundError:
        return []
    return sorted(
        entry.name
        for entry in entries
        if is_valid_name(entry.name) and config_path(entry).is_file()
    )


def write_file_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` so readers see the old file or the new one, never half.

    The bytes go to a new temporary file in the same directory, created with ``mode`` by
    ``os.open`` (and set to it, whatever the umask), so a secret is never readable by others
    even for an instant; it is fsynced, renamed over ``path`` with ``os.replace``, and the
    directory is fsynced so the rename survives a crash.
    """
    directory = path.parent
    tmp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)  # exactly ``mode``, whatever the umask
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
