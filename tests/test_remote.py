"""RemoteHive, the standard-library client of agents that coordinate: against loopback HTTP
servers that answer as an agent does (busy, refusing, closing connections) and against a
real running hive's agents (failing over from one that is gone)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from amplihack_hive.errors import BusyError, HiveStateError, InvalidInputError, TransportError
from amplihack_hive.remote import RemoteHive, through_agents

Cli = Callable[..., Result]
TOKEN = "t0ken"
HIT = {"id": "f1", "content": "Owls hunt at night", "score": 1.5, "kind": "semantic"}

#: (status, headers, body) per request, in order; the last one repeats
Script = list[tuple[int, dict[str, str], Any]]


@contextmanager
def agent_like(script: Script, *, close_after_each: bool = False) -> Iterator[dict[str, Any]]:
    """A loopback HTTP server answering POSTs by ``script``; yields its URL and what it
    received (paths, auth headers, bodies, connections)."""
    seen: dict[str, Any] = {"requests": [], "connections": set()}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length))
            seen["requests"].append((self.path, self.headers.get("Authorization"), body))
            seen["connections"].add(self.client_address)
            status, headers, reply = script[min(len(seen["requests"]), len(script)) - 1]
            data = json.dumps(reply).encode()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if close_after_each:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        seen["url"] = f"http://127.0.0.1:{server.server_address[1]}"
        yield seen
    finally:
        server.shutdown()
        server.server_close()


def dead_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_recall_reads_hits_sends_the_token_and_keeps_one_connection() -> None:
    reply = {"hits": [HIT], "complete": False, "unreachable": ["agent-3"]}
    with agent_like([(200, {}, reply)]) as far, RemoteHive(far["url"], TOKEN) as hive:
        first = hive.recall("owls", 3)
        second = hive.recall("owls")
    assert [h.content for h in first] == ["Owls hunt at night"] and first[0].score == 1.5
    assert (first.complete, first.unreachable) == (False, ("agent-3",))
    assert len(second) == 1
    paths = [(p, auth, b) for p, auth, b in far["requests"]]
    assert paths == [
        ("/recall", f"Bearer {TOKEN}", {"question": "owls", "limit": 3}),
        ("/recall", f"Bearer {TOKEN}", {"question": "owls", "limit": 10}),
    ]
    assert len(far["connections"]) == 1  # kept alive between the two


def test_a_busy_agent_is_asked_again_after_the_pause_it_names() -> None:
    busy = (503, {"Retry-After": "0.01"}, {"error": "busy"})
    with agent_like([busy, busy, (200, {}, {"hits": [HIT]})]) as far:
        hits = RemoteHive(far["url"], TOKEN).recall("owls")
    assert len(hits) == 1 and len(far["requests"]) == 3


def test_an_agent_that_stays_busy_is_reported_busy() -> None:
    busy = (503, {"Retry-After": "0"}, {"error": "queue full"})
    with agent_like([busy]) as far, pytest.raises(BusyError, match="queue full"):
        RemoteHive(far["url"], TOKEN).recall("owls")
    assert len(far["requests"]) == 6


@pytest.mark.parametrize(
    ("status", "error", "raised", "words"),
    [
        (401, "missing or wrong hive token", TransportError, "refused the hive token"),
        (400, "question must not be empty", InvalidInputError, "question must not be empty"),
        (503, "no owner answered", TransportError, "answered 503: no owner answered"),
    ],
)
def test_error_answers_become_the_library_errors(
    status: int, error: str, raised: type[Exception], words: str
) -> None:
    with agent_like([(status, {}, {"error": error})]) as far, pytest.raises(raised, match=words):
        RemoteHive(far["url"], TOKEN).recall("owls")
    assert len(far["requests"]) == 1  # an answer, even an error, is not retried elsewhere


def test_a_connection_the_server_closed_is_reopened() -> None:
    with agent_like([(200, {}, {"hits": []})], close_after_each=True) as far:
        hive = RemoteHive(far["url"], TOKEN)
        for _ in range(3):
            assert list(hive.recall("owls")) == []
    assert len(far["requests"]) == 3


def test_a_dead_url_moves_on_to_the_next_and_all_dead_says_why() -> None:
    gone = dead_url()
    with agent_like([(200, {}, {"hits": [HIT]})]) as far:
        assert len(RemoteHive([gone, far["url"]], TOKEN).recall("owls")) == 1
    with pytest.raises(TransportError, match="unreachable: Connection refused") as raised:
        RemoteHive([gone, dead_url()], TOKEN).recall("owls")
    assert raised.value.__class__ is TransportError
    assert "Traceback" not in str(raised.value)


def test_learn_through_several_threads_each_on_its_own_connection() -> None:
    reply = {"ids": ["a"], "errors": []}
    with agent_like([(200, {}, reply)]) as far:
        hive = RemoteHive(far["url"], TOKEN)
        threads = [
            threading.Thread(target=lambda: hive.remember_many(["x"] * 3, batch=1))
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(far["requests"]) == 12


def test_bad_urls_are_refused_before_any_request() -> None:
    for url in ("ftp://host", "http://", []):
        with pytest.raises(InvalidInputError):
            RemoteHive(url, TOKEN)


def test_through_agents_fails_over_from_a_killed_agent_process(cli: Cli, hive_home: Path) -> None:
    """A real hive of 3 processes: the client lists the live ones; one that died after the
    list was read is passed over."""
    assert cli("create", "ra", "--agents", "3", "--backend", "memory").exit_code == 0
    with pytest.raises(HiveStateError, match="not running"):
        through_agents("ra", hive_home)
    assert cli("start", "ra").exit_code == 0
    try:
        assert cli("learn", "ra", "--quiet", input="Owls hunt at night\n").exit_code == 0
        client = through_agents("ra", hive_home)
        assert len(client.urls) == 3
        # the first URL stops answering (as a process that died since): the next one does
        client.urls[0] = dead_url()
        hits = client.recall("owls")
        assert [h.content for h in hits] == ["Owls hunt at night"] and hits.complete
        client.urls[1] = dead_url()
        assert [h.content for h in client.recall("owls")] == ["Owls hunt at night"]
    finally:
        assert cli("stop", "ra").exit_code == 0
