"""The one exception root of amplihack-hive.

Every error the library raises on purpose derives from :class:`HiveError`, so a caller
(and the CLI, in one place) can catch exactly our errors and let real bugs surface::

    HiveError
    ├── ConfigError          a setting that does not parse; names its source
    │   └── IndexVersionError      a request's terms come from another tokenizer than the
    │                              agent's postings (a caller with an outdated hive config)
    ├── InvalidInputError    bad content, kind, name, N or R: refused before anything is written
    ├── NotFoundError        a hive, agent or fact that does not exist
    ├── ForbiddenError       the caller's credential gives no access to that scope (HTTP 403)
    ├── StorageError         the storage engine failed (Kuzu errors are mapped to this)
    ├── TransportError       an agent could not be reached or answered badly
    │   ├── AgentUnavailableError  every replica of some key was unreachable
    │   ├── BusyError              an agent's store is saturated: retry after ``retry_after`` s
    │   └── WriteQuorumError       some facts were not stored on W replicas (lists which)
    └── HiveStateError       the hive is not in a state for the request (stopped, running twice)
"""

from __future__ import annotations


class HiveError(Exception):
    """Root of every error amplihack-hive raises on purpose."""


class ConfigError(HiveError):
    """A configuration value that does not parse, with where it came from."""


class IndexVersionError(ConfigError):
    """An agent refused a request whose terms come from another tokenizer than its
    postings (memory/text.py): answering would mix terms of two versions (HTTP 409)."""


class InvalidInputError(HiveError, ValueError):
    """Input refused before anything was written."""


class NotFoundError(HiveError, LookupError):
    """A hive, agent or record that does not exist."""


class ForbiddenError(HiveError):
    """The caller's credential gives no access to the scope a request names (HTTP 403).
    The message says which scope, never what it holds."""


class StorageError(HiveError):
    """The storage engine failed."""


class TransportError(HiveError):
    """An agent could not be reached, or answered with an error."""


class AgentUnavailableError(TransportError):
    """No replica of a key could be reached."""


class BusyError(TransportError):
    """An agent refused a request because its store has more queued work than it can finish
    in time (HTTP 503 with ``Retry-After``). Nothing was done; the same request may be sent
    again after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class HiveStateError(HiveError):
    """The hive is not in a state that allows the request."""


class WriteQuorumError(TransportError):
    """Some facts of a write reached fewer than W of their replicas.

    ``stored`` holds the ids that were acknowledged, ``failed`` those that were not, so a
    caller can retry exactly what was lost (writes are idempotent); ``unreachable`` names
    the agents that did not answer."""

    def __init__(
        self,
        message: str,
        *,
        stored: list[str],
        failed: list[str],
        unreachable: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.stored = stored
        self.failed = failed
        self.unreachable = unreachable or []
