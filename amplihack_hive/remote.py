"""A hive reached through one agent that coordinates for its clients: the Azure entry app
(``learn``, ``recall``, ``ask --target azure``), or any agent's public URL.

:class:`RemoteHive` speaks the agents' client API (``POST /learn``, ``/recall``, ``/ask``,
``/forget``, with the hive token) and gives back the library's own types, so the CLI's
commands run the same code against a local hive (:meth:`amplihack_hive.Hive.connect`, which
coordinates in the client) and a remote one (coordinated by the agent behind the URL).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from amplihack_hive._loop import LoopThread
from amplihack_hive.agent.answer import Answer
from amplihack_hive.errors import InvalidInputError, TransportError, WriteQuorumError
from amplihack_hive.memory.coordinator import Hit, Hits
from amplihack_hive.transport.http import HttpTransport

#: Items per ``POST /learn`` (the agents take at most this many at once).
BATCH = 200


def _hit(data: dict[str, Any]) -> Hit:
    return Hit(
        id=str(data["id"]),
        content=str(data["content"]),
        score=float(data["score"]),
        kind=str(data.get("kind", "semantic")),
        created=float(data.get("created", 0.0)),
        subject=data.get("subject"),
        metadata=dict(data.get("metadata") or {}),
    )


def _hits(data: dict[str, Any]) -> Hits:
    hits = Hits(_hit(h) for h in data.get("hits") or [])
    hits.complete = bool(data.get("complete", True))
    hits.unreachable = tuple(str(a) for a in data.get("unreachable") or ())
    return hits


class RemoteHive:
    """The client of a hive behind ``url`` (``https://...``; the token is the hive's)."""

    def __init__(self, url: str, token: str, *, timeout_s: float = 120.0) -> None:
        if not url.startswith(("https://", "http://")):
            raise InvalidInputError(f"a hive URL starts with https:// (got {url!r})")
        self.url = url.rstrip("/")
        self._loop = LoopThread("amplihack-hive-remote")
        self._transport = HttpTransport({}, token=token, timeout_s=timeout_s)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._loop.run(self._transport.post(self.url + path, body))

    def remember_many(self, items: Iterable[Any], *, batch: int = BATCH) -> list[str]:
        """Store items; their ids in order. Items not stored on a write quorum raise
        :class:`WriteQuorumError` (``stored`` and ``failed`` say which)."""
        ids: list[str] = []
        pending = list(items)
        size = max(1, min(batch, BATCH))
        for start in range(0, len(pending), size):
            chunk = pending[start : start + size]
            reply = self._post("/learn", {"items": chunk})
            stored = [str(i) for i in reply.get("ids") or []]
            errors = reply.get("errors") or []
            refused = [e for e in errors if e.get("index") is not None]
            if refused:
                first = refused[0]
                raise InvalidInputError(f"item {first['index']}: {first.get('error')}")
            failed = [str(e["id"]) for e in errors if e.get("id")]
            if errors and not failed:  # the whole batch failed: nothing is known stored
                reason = "; ".join(sorted({str(e.get("error")) for e in errors}))
                raise TransportError(f"{len(chunk)} items not stored: {reason}")
            if failed:
                reason = "; ".join(sorted({str(e.get("error")) for e in errors}))
                raise WriteQuorumError(
                    f"{len(failed)} items not stored: {reason}",
                    stored=ids + stored,
                    failed=failed,
                )
            ids += stored
        return ids

    def remember(
        self, content: str, kind: str = "semantic", metadata: Any = None, **fields: Any
    ) -> str:
        item = {"content": content, "kind": kind, **fields}
        if metadata is not None:
            item["metadata"] = metadata
        return self.remember_many([item])[0]

    def recall(self, question: str, limit: int | None = None) -> Hits:
        return _hits(self._post("/recall", {"question": question, "limit": limit or 10}))

    def ask(self, question: str, limit: int | None = None) -> Answer:
        data = self._post("/ask", {"question": question, "limit": limit or 10})
        return Answer(
            question=str(data.get("question", question)),
            answer=str(data["answer"]),
            sources=[_hit(h) for h in data.get("sources") or []],
            complete=bool(data.get("complete", True)),
            unreachable=tuple(data.get("unreachable") or ()),
            answerer=str(data.get("answerer", "extractive")),
        )

    def forget(self, fact_id: str) -> bool:
        return bool(self._post("/forget", {"id": fact_id}).get("forgotten"))

    def close(self) -> None:
        try:
            self._loop.run(self._transport.close())
        finally:
            self._loop.close()

    def __enter__(self) -> RemoteHive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
