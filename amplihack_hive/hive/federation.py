"""Federation: a hive may name a parent hive (``parent:`` in its config, ``create
--parent``), as the design this project comes from had a root hive above its groups.

Two operations cross the boundary, each one hop, on the same core:

- :func:`escalate_to_parent` sends a fact of this hive's ``hive`` scope up: it is stored in
  the parent's ``hive`` scope (content, context, kind, time, subject and metadata kept; its
  id there is the parent's content address) and then forgotten here, so one copy remains.
  A private or group fact goes up only after it was escalated to this hive's scope: what
  leaves the hive is what every agent of it could see. Stopped in between, the fact is in
  both hives; escalating again finishes it (both steps are idempotent).
- :func:`recall_with_parent` asks this hive as usual and the parent for its ``hive``
  scope, and merges the two by score; hits from the parent carry ``hive`` (its name), and
  the result names the parent. Each hive's scores come from its own statistics (they are
  BM25 scores over different corpora), so the merged order is the usual federated-search
  approximation, not the one-agent exactness a hive keeps within itself.

The parent is reached through its agents' HTTP API: a local hive in the same home with its
own token, or ``url`` with the token in ``$AMPLIHACK_HIVE_PARENT_TOKEN`` (never in a file
of this hive).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amplihack_hive.errors import ConfigError, HiveStateError, NotFoundError
from amplihack_hive.memory.hits import Hit, Hits
from amplihack_hive.memory.scopes import HIVE

if TYPE_CHECKING:
    from amplihack_hive.api import Hive
    from amplihack_hive.hive.config import ParentConfig
    from amplihack_hive.remote import RemoteHive

PARENT_TOKEN_ENV = "AMPLIHACK_HIVE_PARENT_TOKEN"
#: The scope name ``escalate`` takes for "up to the parent hive".
PARENT = "parent"


def _parent(home: str | Path | None, name: str) -> ParentConfig:
    from amplihack_hive.hive.config import load_hive

    parent = load_hive(home, name).parent
    if parent is None:
        raise HiveStateError(
            f"hive {name!r} has no parent (set one with create --parent, or parent: in its "
            "config.yaml)"
        )
    return parent


def parent_name(home: str | Path | None, name: str) -> str:
    """How hive ``name``'s parent is named in results: its hive name, or its URL."""
    parent = _parent(home, name)
    return parent.hive or str(parent.url)


def open_parent(home: str | Path | None, name: str) -> RemoteHive:
    """A client of hive ``name``'s parent, through the parent's agents."""
    from amplihack_hive.remote import RemoteHive, through_agents

    parent = _parent(home, name)
    if parent.hive is not None:
        return through_agents(parent.hive, home)
    token = os.environ.get(PARENT_TOKEN_ENV, "").strip()
    if not token:
        raise ConfigError(
            f"hive {name!r}'s parent is {parent.url}: set ${PARENT_TOKEN_ENV} to its token"
        )
    return RemoteHive(str(parent.url), token)


def escalate_to_parent(local: Hive, parent: RemoteHive, fact_id: str) -> str:
    """Move fact ``fact_id`` (of this hive's ``hive`` scope) to the parent's ``hive`` scope;
    return its id there."""
    fact = local.fact(fact_id)
    if fact is None:
        raise NotFoundError(f"no fact {fact_id} (forgotten, or never remembered)")
    if fact.scope != HIVE:
        raise HiveStateError(
            f"fact {fact_id} is in scope {fact.scope}: only the hive's facts go to the parent "
            f"hive; escalate it to hive first"
        )
    item: dict[str, Any] = {
        "content": fact.content,
        "kind": fact.kind.value,
        "created": fact.created,
        "confidence": fact.confidence,
    }
    if fact.metadata:
        item["metadata"] = fact.metadata
    if fact.subject:
        item["subject"] = fact.subject
    if fact.context:
        item["context"] = fact.context
    [up] = parent.remember_many([item], scope=HIVE)
    local.forget(fact_id)
    return up


def recall_with_parent(
    local: Hive | RemoteHive,
    parent: RemoteHive,
    parent_label: str,
    question: str,
    limit: int = 10,
    scopes: Sequence[str] | None = None,
) -> Hits:
    """This hive's recall and the parent's (its ``hive`` scope), merged by score."""
    own = local.recall(question, limit, scopes)
    above = parent.recall(question, limit, [HIVE])
    marked = [_from(h, parent_label) for h in above]
    merged = Hits(sorted([*own, *marked], key=lambda h: -h.score)[:limit])
    merged.complete = own.complete and above.complete
    merged.unreachable = tuple(
        sorted({*own.unreachable, *(f"{parent_label}/{a}" for a in above.unreachable)})
    )
    merged.parent = parent_label
    return merged


def _from(hit: Hit, hive: str) -> Hit:
    from dataclasses import replace

    return replace(hit, hive=hive)
