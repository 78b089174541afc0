"""Memory settings: one frozen :class:`MemoryConfig`, and where its values come from.

:meth:`MemoryConfig.resolve` takes each field from the first source that gives it:

1. explicit keyword arguments (``None`` means "not given");
2. environment variables ``AMPLIHACK_MEMORY_<FIELD>`` (peers as ``name=url,name=url``);
3. the YAML file: ``config_file=``, else ``$AMPLIHACK_MEMORY_CONFIG``, else
   ``~/.amplihack/memory.yaml`` (only this default file may be missing);
4. the defaults below.

A value that does not parse or is out of range raises :class:`ConfigError` naming its
source; it is never replaced by a default. Nothing is read at import time.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from amplihack_hive.errors import ConfigError
from amplihack_hive.memory.text import check_tokenizer

ENV_PREFIX = "AMPLIHACK_MEMORY_"
CONFIG_ENV = "AMPLIHACK_MEMORY_CONFIG"
DEFAULT_CONFIG_FILE = "~/.amplihack/memory.yaml"
DEFAULT_DATA_DIR = "~/.amplihack/memory"

_AGENT_NAME = re.compile(r"[a-z][a-z0-9-]*\Z")


def _int(minimum: int) -> Callable[[object], int]:
    expected = f"expected an integer >= {minimum}"

    def parse(value: object) -> int:
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise ValueError(expected) from None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(expected)
        return value

    return parse


def _power_of_two(minimum: int) -> Callable[[object], int]:
    """Kuzu accepts only a power of two for max_db_size."""
    base = _int(minimum)

    def parse(value: object) -> int:
        n = base(value)
        if n & (n - 1):
            raise ValueError(f"expected a power of two >= {minimum} (Kuzu requires it)")
        return n

    return parse


def _positive_float(value: object) -> float:
    expected = "expected a number > 0"
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(expected) from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(expected)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(expected)
    return float(value)


def _choice(*allowed: str) -> Callable[[object], str]:
    expected = "expected one of " + ", ".join(repr(a) for a in allowed)

    def parse(value: object) -> str:
        if not isinstance(value, str) or value.strip() not in allowed:
            raise ValueError(expected)
        return value.strip()

    return parse


def _path(value: object) -> Path:
    if not isinstance(value, str | os.PathLike) or not os.fspath(value):
        raise ValueError("expected a non-empty path")
    return Path(value).expanduser()


def _peer(name: object, url: object) -> tuple[str, str]:
    if not isinstance(name, str) or not _AGENT_NAME.match(name):
        raise ValueError(
            f"peer name {name!r}: expected lowercase letters, digits and '-', "
            "starting with a letter"
        )
    expected = f"peer {name!r}: expected an http:// or https:// base URL"
    if not isinstance(url, str):
        raise ValueError(expected)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(expected)
    return name, url.rstrip("/")


def _peers(value: object) -> dict[str, str]:
    if value is None:  # a bare `peers:` in YAML
        return {}
    if isinstance(value, str):
        if not value.strip():
            return {}
        pairs: list[tuple[str, str]] = []
        for item in value.split(","):
            name, sep, url = item.partition("=")
            if not sep:
                raise ValueError(f"expected name=url[,name=url...], got item {item.strip()!r}")
            pairs.append((name.strip(), url.strip()))
        if len({n for n, _ in pairs}) != len(pairs):
            raise ValueError("expected each peer name once")
    elif isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        raise ValueError("expected a mapping of agent name to URL, or 'name=url,name=url'")
    return dict(_peer(n, u) for n, u in pairs)


def _token(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty string (quote it in YAML)")
    return value


def _optional_tokenizer(value: object) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return check_tokenizer(value)  # InvalidInputError is a ValueError


_PARSERS: dict[str, Callable[[object], Any]] = {
    "backend": _choice("kuzu", "memory"),
    "engine": _choice("kuzu", "ladybug"),
    "replication": _int(1),
    "vnodes": _int(1),
    "buffer_pool_mb": _int(16),
    "max_db_size_mb": _power_of_two(64),
    "data_dir": _path,
    "peers": _peers,
    "token": _token,
    "recall_limit": _int(1),
    "request_timeout_s": _positive_float,
    "max_content_bytes": _int(1),
    "tokenizer": _optional_tokenizer,
}


def _show(name: str, value: object) -> str:
    """repr of a value for an error message; the token is never echoed."""
    if name == "token" and value not in ("", None):
        return "<hidden>"
    return repr(value)


def _parse(name: str, value: object, where: str, *, show_value: bool = True) -> Any:
    try:
        return _PARSERS[name](value)
    except ValueError as exc:
        got = f", got {_show(name, value)}" if show_value else ""
        raise ConfigError(f"{where}: {exc}{got}") from None


@dataclass(frozen=True)
class MemoryConfig:
    """Settings of one agent's memory. Build with :meth:`resolve`; direct construction
    validates too (``peers`` is copied; ``token`` is left out of ``repr``)."""

    backend: str = "kuzu"
    engine: str = "kuzu"
    replication: int = 3
    vnodes: int = 256
    buffer_pool_mb: int = 256
    max_db_size_mb: int = 4096
    data_dir: Path = field(default_factory=lambda: Path(DEFAULT_DATA_DIR).expanduser())
    peers: dict[str, str] = field(default_factory=dict)
    token: str | None = field(default=None, repr=False)
    recall_limit: int = 10
    request_timeout_s: float = 5.0
    max_content_bytes: int = 65536
    #: the tokenizer of the postings (memory/text.py); None: the one the agent's store
    #: was built with; a new store takes the newest without peers, 1 with peers (set it
    #: in every peer's config to move a hive of Memory peers to another)
    tokenizer: int | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = _parse(f.name, getattr(self, f.name), f"argument {f.name}")
            object.__setattr__(self, f.name, value)

    @classmethod
    def resolve(
        cls, config_file: str | os.PathLike[str] | None = None, **overrides: Any
    ) -> MemoryConfig:
        """Arguments, then ``AMPLIHACK_MEMORY_*``, then the YAML file, then defaults."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise ConfigError(
                f"unknown argument(s) {', '.join(unknown)}; known: {', '.join(names)}"
            )
        from_file = _read_file(config_file)
        values: dict[str, Any] = {}
        for name in names:
            var = ENV_PREFIX + name.upper()
            if overrides.get(name) is not None:
                values[name] = _parse(name, overrides[name], f"argument {name}")
            elif var in os.environ:
                raw = os.environ[var]
                where = f"{var}={_show(name, raw)} (environment variable)"
                values[name] = _parse(name, raw, where, show_value=False)
            elif name in from_file:
                path, value = from_file[name]
                values[name] = _parse(name, value, f"{path}: key {name!r}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready values for display; the token is shown as ``"***"``."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["data_dir"] = str(self.data_dir)
        out["peers"] = dict(self.peers)
        out["token"] = "***" if self.token is not None else None
        return out


def _read_file(explicit: str | os.PathLike[str] | None) -> dict[str, tuple[Path, object]]:
    """The YAML file's settings, each with the file's path; {} when the default is absent."""
    if explicit is not None:
        path, named_by = Path(explicit).expanduser(), "argument config_file"
    elif CONFIG_ENV in os.environ:
        path, named_by = Path(os.environ[CONFIG_ENV]).expanduser(), CONFIG_ENV
        if not os.environ[CONFIG_ENV]:
            raise ConfigError(f"{CONFIG_ENV} is set but empty")
    else:
        path, named_by = Path(DEFAULT_CONFIG_FILE).expanduser(), ""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if not named_by:
            return {}
        raise ConfigError(f"{path}: config file not found (named by {named_by})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(f"{path}: {at}malformed YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: malformed YAML: {exc}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(doc).__name__}")
    known = {f.name for f in fields(MemoryConfig)}
    for key in doc:
        if key not in known:
            raise ConfigError(
                f"{path}: unknown key {key!r}; known keys: {', '.join(sorted(known))}"
            )
    return {key: (path, value) for key, value in doc.items()}
