"""A hive reached through agents that coordinate for their clients: the Azure entry app
(``learn``, ``recall``, ``ask --target azure``), or a local hive's agents (``recall``).

:class:`RemoteHive` speaks the agents' client API (``POST /learn``, ``/recall``, ``/ask``,
``/forget``, with the hive token) and gives back the library's own types, so the CLI's
commands run the same code against a local hive (:meth:`amplihack_hive.Hive.connect`, which
coordinates in the client) and one reached through an agent (which coordinates).

It is written on the standard library's :mod:`http.client` (one kept-alive connection per
thread and URL), not aiohttp: a ``recall`` in a shell loop pays for a process start each
time, and this client imports in milliseconds (no event loop, no numpy).
"""

from __future__ import annotations

import http.client
import json
import random
import ssl
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from amplihack_hive.agent.answer import Answer
from amplihack_hive.errors import (
    BusyError,
    ForbiddenError,
    HiveStateError,
    InvalidInputError,
    NotFoundError,
    TransportError,
    WriteQuorumError,
)
from amplihack_hive.memory.hits import Hit, Hits
from amplihack_hive.transport.busy import BUSY_ATTEMPTS, busy_pause

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
        superseded_by=data.get("superseded_by"),
        context=str(data.get("context") or ""),
        scope=str(data.get("scope") or "hive"),
        hive=str(data.get("hive") or ""),
    )


def _hits(data: dict[str, Any]) -> Hits:
    hits = Hits(_hit(h) for h in data.get("hits") or [])
    hits.complete = bool(data.get("complete", True))
    hits.unreachable = tuple(str(a) for a in data.get("unreachable") or ())
    return hits


def _check_url(url: str) -> str:
    if not url.startswith(("https://", "http://")):
        raise InvalidInputError(f"a hive URL starts with https:// (got {url!r})")
    parts = urlsplit(url)
    if not parts.hostname:
        raise InvalidInputError(f"a hive URL names a host (got {url!r})")
    try:
        parts.port  # noqa: B018 - it raises for a port that is not a number
    except ValueError:
        raise InvalidInputError(f"a hive URL's port is a number (got {url!r})") from None
    return url.rstrip("/")


#: How long ``recall`` through a local agent waits for it: a paused agent costs this, then
#: the next one is asked (the agent itself waits 5 s for each replica it asks).
THROUGH_AGENT_TIMEOUT_S = 15.0


def through_agents(
    name: str,
    home: str | Path | None = None,
    *,
    timeout_s: float = THROUGH_AGENT_TIMEOUT_S,
    as_agent: str | None = None,
    credential: str | None = None,
) -> RemoteHive:
    """The client of running local hive ``name`` through its agents: a request goes to one
    of the agent processes (in random order, so a loop of them spreads), which coordinates
    it as :meth:`amplihack_hive.Hive.connect` would in the client, with its own failure
    detector and ring. ``as_agent``: with that agent's credential (its scopes only, which
    the agents enforce), else with the hive token. ``credential``: that agent's credential
    as given (the token file is not read)."""
    from amplihack_hive.agent.runstate import process_of, read_records
    from amplihack_hive.hive.config import load_hive
    from amplihack_hive.hive.home import hive_dir
    from amplihack_hive.hive.token import agent_credential, read_token

    load_hive(home, name)  # a hive that does not exist, or a broken config, says so here
    directory = hive_dir(home, name)
    urls = sorted({rec.url for rec in read_records(directory) if process_of(rec, directory)})
    if not urls:
        raise HiveStateError(
            f"hive {name!r} is not running; start it with: amplihack-hive start {name}"
        )
    random.shuffle(urls)
    if credential is not None:
        return RemoteHive(urls, credential, timeout_s=timeout_s)
    token = read_token(directory)
    if as_agent is not None:
        token = agent_credential(token, as_agent)
    return RemoteHive(urls, token, timeout_s=timeout_s)


class _NotSent(TransportError):
    """One URL could not be connected to: the request never reached it."""


class _NoAnswer(TransportError):
    """One URL took the request (or may have) but no whole answer came back."""


#: Failures of a request that are the connection's, not the answer's.
_LOST = (OSError, http.client.HTTPException, UnicodeError)
#: ... of which these say the server closed it.
_CLOSED = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


def _why(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


class RemoteHive:
    """The client of a hive behind ``url`` (``https://...``; the token is the hive's), or
    behind any of several agents' URLs: a request goes to the first that answers. One that
    cannot be connected to moves it on to the next; a read (recall, ask) also moves on when
    it got no answer in ``timeout_s``; a write is never sent twice to two agents. An
    answer, even an error, ends it."""

    def __init__(self, url: str | Sequence[str], token: str, *, timeout_s: float = 120.0) -> None:
        urls = [url] if isinstance(url, str) else list(url)
        if not urls:
            raise InvalidInputError("no URL to reach the hive at")
        self.urls = [_check_url(u) for u in urls]
        self.url = self.urls[0]
        self._token = token
        self._timeout_s = timeout_s
        self._local = threading.local()  # each thread its own connections

    # -- HTTP -----------------------------------------------------------------------------

    def _connection(self, base: str) -> http.client.HTTPConnection:
        pool: dict[str, http.client.HTTPConnection] = self._local.__dict__.setdefault("pool", {})
        conn = pool.get(base)
        if conn is None:
            parts = urlsplit(base)
            host, port = parts.hostname or "", parts.port
            if parts.scheme == "https":
                conn = http.client.HTTPSConnection(
                    host, port, timeout=self._timeout_s, context=ssl.create_default_context()
                )
            else:
                conn = http.client.HTTPConnection(host, port, timeout=self._timeout_s)
            pool[base] = conn
        return conn

    def _lost(self, base: str, exc: BaseException, kind: type[TransportError]) -> TransportError:
        """Close the connection to ``base``; the error saying why no answer came."""
        self._drop(base)
        if isinstance(exc, TimeoutError):
            why = f"no answer in {self._timeout_s:g} s"
        elif isinstance(exc, _CLOSED):
            why = "the connection closed before an answer"
        else:
            why = _why(exc)
        return kind(f"{base} is unreachable: {why}")

    def _drop(self, base: str) -> None:
        conn = self._local.__dict__.get("pool", {}).pop(base, None)
        if conn is not None:
            conn.close()

    def _once(self, base: str, path: str, payload: bytes) -> dict[str, Any]:
        """One request to one URL. :class:`_NotSent` when it never reached the server (it
        could not be connected to); :class:`_NoAnswer` when it may have, but no whole
        answer came back. A kept-alive connection the server closed while idle is opened
        again and the request sent once more (it closed before reading it)."""
        prefix = urlsplit(base).path
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Content-Type": "application/json",
        }
        for attempt in (1, 2):
            conn = self._connection(base)
            reused = conn.sock is not None
            if not reused:
                try:
                    conn.connect()
                except _LOST as exc:
                    # on the second attempt the first may have reached the server
                    raise self._lost(base, exc, _NotSent if attempt == 1 else _NoAnswer) from exc
            try:
                conn.request("POST", prefix + path, body=payload, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
            except _LOST as exc:
                if isinstance(exc, _CLOSED) and reused and attempt == 1:
                    self._drop(base)
                    continue  # an idle connection the server had closed
                raise self._lost(base, exc, _NoAnswer) from exc
            return _reply(base, resp, body)
        raise AssertionError("unreachable")

    def _post(self, path: str, body: dict[str, Any], *, read: bool = False) -> dict[str, Any]:
        """POST to the first URL that answers; an agent that says it is busy is asked
        again after the pause it named (growing, with jitter), up to BUSY_ATTEMPTS.
        ``read``: the request changes nothing, so one that got no answer may go to the
        next URL too (a write goes elsewhere only when it never reached the first)."""
        payload = json.dumps(body, separators=(",", ":")).encode()
        for attempt in range(BUSY_ATTEMPTS):
            try:
                return self._first_answer(path, payload, read)
            except BusyError as exc:
                if attempt == BUSY_ATTEMPTS - 1:
                    raise
                time.sleep(busy_pause(exc, attempt))
        raise AssertionError("unreachable")

    def _first_answer(self, path: str, payload: bytes, read: bool) -> dict[str, Any]:
        failures: list[str] = []
        for base in self.urls:
            try:
                return self._once(base, path, payload)
            except _NotSent as exc:
                failures.append(str(exc))
            except _NoAnswer as exc:
                failures.append(str(exc))
                if not read:
                    break
        raise TransportError(failures[0] if len(failures) == 1 else "; ".join(failures))

    # -- the client API -------------------------------------------------------------------

    def remember_many(
        self, items: Iterable[Any], *, batch: int = BATCH, scope: str | None = None
    ) -> list[str]:
        """Store items (``scope``: of those that name none; default the hive); their ids in
        order. Items not stored on a write quorum raise :class:`WriteQuorumError`
        (``stored`` and ``failed`` say which)."""
        ids: list[str] = []
        pending = list(items)
        size = max(1, min(batch, BATCH))
        for start in range(0, len(pending), size):
            chunk = pending[start : start + size]
            request: dict[str, Any] = {"items": chunk}
            if scope is not None:
                request["scope"] = scope
            reply = self._post("/learn", request)
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

    def recall(
        self, question: str, limit: int | None = None, scopes: Sequence[str] | None = None
    ) -> Hits:
        body: dict[str, Any] = {"question": question, "limit": limit or 10}
        if scopes is not None:
            body["scopes"] = list(scopes)
        return _hits(self._post("/recall", body, read=True))

    def ask(
        self, question: str, limit: int | None = None, scopes: Sequence[str] | None = None
    ) -> Answer:
        body: dict[str, Any] = {"question": question, "limit": limit or 10}
        if scopes is not None:
            body["scopes"] = list(scopes)
        data = self._post("/ask", body, read=True)
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

    def escalate(self, fact_id: str, scope: str) -> str:
        """Move a fact to a wider scope; its id there."""
        return str(self._post("/escalate", {"id": fact_id, "scope": scope})["id"])

    def close(self) -> None:
        """Close this thread's connections (other threads' close when they end)."""
        for base in list(self._local.__dict__.get("pool", {})):
            self._drop(base)

    def __enter__(self) -> RemoteHive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reply(base: str, resp: http.client.HTTPResponse, body: bytes) -> dict[str, Any]:
    """The JSON object of a 200, else the error it stands for."""
    if resp.status == 200:
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise TransportError(f"{base} answered with something that is not JSON") from exc
        if not isinstance(data, dict):
            raise TransportError(f"{base} answered with a non-object")
        return data
    detail = None
    try:
        parsed = json.loads(body)
        detail = parsed.get("error") if isinstance(parsed, dict) else None
    except ValueError:
        pass  # not JSON: the status line says enough
    if resp.status == 401:
        # the hive token is wrong, or the credential's agent is not a member (its words)
        raise TransportError(f"{base} refused the request (401): {detail or 'wrong key'}")
    if resp.status == 403:
        raise ForbiddenError(str(detail or "refused (403)"))
    if resp.status == 404 and detail:
        raise NotFoundError(str(detail))
    if resp.status == 400 and detail:  # the request was refused as the library refuses it
        raise InvalidInputError(str(detail))
    message = f"{base} answered {resp.status}: {detail or resp.reason}"
    retry_after = resp.getheader("Retry-After")
    if resp.status == 503 and retry_after is not None:
        try:
            wait = max(0.0, float(retry_after))
        except ValueError:
            wait = 1.0
        raise BusyError(message, retry_after=wait)
    raise TransportError(message)
