"""Recall results: :class:`Hit` (one recalled fact) and :class:`Hits` (best first).

Kept apart from the coordinator (which needs numpy) so that the clients that only read
results, such as ``recall`` through one agent's HTTP API, import nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    content: str
    score: float
    kind: str
    created: float
    subject: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    #: the id of a newer fact in the same result that restates this one with another
    #: value (memory/restate.py); None when nothing newer does
    superseded_by: str | None = None
    #: the fact's context (Fact.context): what it was found through besides its content
    context: str = ""
    #: who may see it (memory/scopes.py): "hive", "agent:NAME" or "group:NAME"
    scope: str = "hive"
    #: the hive it comes from when not the one asked: its parent (hive/federation.py)
    hive: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = {
            "id": self.id,
            "content": self.content,
            "score": round(self.score, 6),
            "kind": self.kind,
            "created": self.created,
            "subject": self.subject,
            "metadata": self.metadata,
            "superseded_by": self.superseded_by,
            "scope": self.scope,
        }
        if self.context:
            d["context"] = self.context
        if self.hive:
            d["hive"] = self.hive
        return d


class Hits(list[Hit]):
    """Recall results, best first. ``complete`` is False when some replica set could not be
    reached, so the answer may miss facts."""

    complete: bool = True
    unreachable: tuple[str, ...] = ()
    #: the parent hive asked too (one hop more: hive/federation.py), or ""
    parent: str = ""
