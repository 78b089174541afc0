"""RemoteHive, the standard-library client of agents that coordinate: against loopback HTTP
servers that answer as an agent does (busy, refusing, closing connections) and against a
real running hive's agents (failing over from one that is gone)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
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
            if close_after_each:  # closed after answering, without saying so
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
        (
            401,
            "missing or wrong hive token",
            TransportError,
            "refused the request \\(401\\): missing or wrong",
        ),
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


def test_a_kept_alive_connection_the_server_closed_is_reopened() -> None:
    """The server closes each connection after answering without saying so (as one that
    drops idle connections): the next request finds it closed and is sent again, once."""
    with agent_like([(200, {}, {"hits": []})], close_after_each=True) as far:
        hive = RemoteHive(far["url"], TOKEN)
        for _ in range(3):
            assert list(hive.recall("owls")) == []
    assert len(far["requests"]) == 3  # each sent once
    assert len(far["connections"]) == 3  # on a new connection each time


@contextmanager
def swallower(*, answer: bool = False, delay_s: float = 0.0) -> Iterator[dict[str, Any]]:
    """A loopback server that reads a whole request, then closes without answering (or,
    with ``delay_s``, waits that long first); counts the requests it read."""
    seen: dict[str, Any] = {"requests": 0}
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, rest = data.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while len(rest) < length:
                    rest += conn.recv(65536)
                seen["requests"] += 1
                stop.wait(delay_s)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        seen["url"] = f"http://127.0.0.1:{listener.getsockname()[1]}"
        yield seen
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_a_write_that_got_no_answer_is_never_sent_again() -> None:
    with swallower() as first, swallower() as second:
        hive = RemoteHive([first["url"], second["url"]], TOKEN)
        with pytest.raises(TransportError, match="closed before an answer"):
            hive.forget("a" * 32)
        with pytest.raises(TransportError):
            hive.remember("Owls hunt at night")
    assert (first["requests"], second["requests"]) == (2, 0)  # one forget, one learn


def test_a_read_that_got_no_answer_goes_to_the_next_agent() -> None:
    with swallower(delay_s=5) as slow, agent_like([(200, {}, {"hits": [HIT]})]) as far:
        hive = RemoteHive([slow["url"], far["url"]], TOKEN, timeout_s=2.0)
        assert len(hive.recall("owls")) == 1  # after one timeout on the paused one
    assert slow["requests"] == 1 and len(far["requests"]) == 1


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
        with ThreadPoolExecutor(4) as pool:
            barrier = threading.Barrier(4)

            def learn() -> list[str]:
                barrier.wait()  # all four at once
                return hive.remember_many(["x"] * 3, batch=1)

            results = [f.result(timeout=30) for f in [pool.submit(learn) for _ in range(4)]]
    assert results == [["a"] * 3] * 4
    assert len(far["requests"]) == 12
    assert len(far["connections"]) == 4  # one kept-alive connection per thread


def test_bad_urls_are_refused_before_any_request() -> None:
    for url in ("ftp://host", "http://", "http://host:port", []):
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
