"""A real local hive: agent processes on loopback, real HTTP, real signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from amplihack_hive import Hive
from amplihack_hive.agent.runstate import AGENT_MODULE, command_of, read_records
from amplihack_hive.errors import HiveStateError
from amplihack_hive.hive.config import create_hive
from amplihack_hive.hive.supervisor import Supervisor
from amplihack_hive.hive.token import read_token

pytestmark = pytest.mark.slow
BACKEND = "memory"


def agent_pids(directory: Path) -> set[int]:
    out = set()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = command_of(proc.info["cmdline"] or [])
        if AGENT_MODULE in cmd and str(directory) in cmd:
            out.add(proc.pid)
    return out


@pytest.fixture
def hive(hive_home: Path) -> Iterator[Supervisor]:
    create_hive(hive_home, "t", agents=5, replication=3, backend=BACKEND)
    sup = Supervisor(hive_home, "t")
    sup.start(timeout=60)
    try:
        yield sup
    finally:
        sup.stop(timeout=10)


def http(
    sup: Supervisor,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = "",
    raw: bytes | None = None,
    agent: str = "agent-0",
) -> tuple[int, dict[str, Any]]:
    rec = next(r for r in read_records(sup.dir) if agent in r.agents)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(rec.url + path, data=data, method=method)
    tok = read_token(sup.dir) if token == "" else token
    if tok:
        req.add_header("Authorization", f"Bearer {tok}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_agents_share_one_memory_over_http(hive: Supervisor, hive_home: Path) -> None:
    facts = [f"Employee {i} named Person{i} works in building B{i % 7}" for i in range(60)]
    with Hive.connect("t", hive_home) as client:
        ids = client.remember_many(facts)
        stats = client.stats()
    assert len(set(ids)) == 60
    per = stats["facts_per_agent"]
    assert sum(per.values()) == 60 * 3
    assert max(per.values()) < 60  # sharded: nobody holds everything
    # every agent answers for facts that live on other agents
    for agent in ["agent-0", "agent-2", "agent-4"]:
        status, body = http(hive, "POST", "/recall", {"question": "Who is Person37?"}, agent=agent)
        assert status == 200
        assert "Person37 " in body["hits"][0]["content"]
        assert body["complete"] is True
    status, body = http(hive, "POST", "/ask", {"question": "Where does Person12 work?"})
    assert status == 200 and "building B5" in body["answer"]


def test_status_rows_and_double_start(hive: Supervisor) -> None:
    rows = hive.status()
    assert [r.name for r in rows] == [f"agent-{i}" for i in range(5)]
    assert all(r.state == "healthy" and r.pid and r.url and r.rss_mb for r in rows)
    pids = {r.pid for r in rows}
    result = hive.start(timeout=30)
    assert result.started == [] and len(result.already_running) == 5
    assert {r.pid for r in hive.status()} == pids


def test_killed_agent_is_restarted_by_its_keeper_with_its_data(
    hive: Supervisor, hive_home: Path
) -> None:
    with Hive.connect("t", hive_home) as client:
        fid = client.remember("The backup key sits in locker 42")
    victim = next(r for r in hive.status() if r.name == "agent-3")
    assert victim.pid is not None and victim.restarts == 0 and victim.last_exit is None
    os.kill(victim.pid, signal.SIGKILL)
    psutil.Process(victim.pid).wait(timeout=10) if psutil.pid_exists(victim.pid) else None
    row = next(r for r in hive.status() if r.name == "agent-3")
    # the keeper restarts it after a 0.5 s backoff: restarting, or already back
    assert row.state in ("restarting", "unhealthy", "healthy"), row
    with Hive.connect("t", hive_home) as client:  # the hive answers meanwhile
        assert client.recall("backup key locker")[0].id == fid
    deadline = time.monotonic() + 30
    while (row := next(r for r in hive.status() if r.name == "agent-3")).state != "healthy":
        assert time.monotonic() < deadline, row
        time.sleep(0.2)
    assert row.pid not in (None, victim.pid)
    assert row.restarts == 1
    assert row.last_exit is not None and row.last_exit["signal"] == "SIGKILL"
    assert hive.start(timeout=60).started == []  # its keeper hosts it: nothing twice
    with Hive.connect("t", hive_home) as client:
        assert client.stats()["facts_per_agent"]["agent-3"] is not None
        assert client.recall("backup key locker")[0].id == fid


def test_stop_leaves_no_process_and_is_idempotent(hive_home: Path) -> None:
    create_hive(hive_home, "s", agents=3, backend="memory")
    sup = Supervisor(hive_home, "s")
    sup.start(timeout=60)
    assert len(agent_pids(sup.dir)) == 3
    result = sup.stop(timeout=10)
    assert result.stopped == ["agent-0", "agent-1", "agent-2"]
    assert agent_pids(sup.dir) == set()
    assert read_records(sup.dir) == []
    assert sup.stop(timeout=1).stopped == []
    assert all(r.state == "stopped" for r in sup.status())


def test_stale_record_with_a_reused_pid_is_not_trusted(hive_home: Path) -> None:
    create_hive(hive_home, "p", agents=1, backend="memory")
    sup = Supervisor(hive_home, "p")
    run = sup.dir / "run"
    run.mkdir(parents=True)
    # our own pid: alive, but not an agent of this hive
    (run / "agent-0.json").write_text(
        json.dumps(
            {
                "group": "agent-0",
                "pid": os.getpid(),
                "create_time": psutil.Process().create_time(),
                "url": "http://127.0.0.1:9",
                "agents": ["agent-0"],
                "started": time.time(),
            }
        )
    )
    assert sup.status()[0].state == "stopped"
    assert not (run / "agent-0.json").exists()
    sup.stop(timeout=1)  # must not signal us
    assert psutil.pid_exists(os.getpid())


def test_agents_per_process_packs_agents(hive_home: Path) -> None:
    create_hive(hive_home, "m", agents=6, backend="memory", agents_per_process=3)
    sup = Supervisor(hive_home, "m")
    try:
        sup.start(timeout=60)
        assert len(agent_pids(sup.dir)) == 2
        assert len({r.pid for r in sup.status()}) == 2
        # one process per failure domain, and the agents know the domains
        by_pid: dict[int, set[str]] = {}
        for r in sup.status():
            by_pid.setdefault(r.pid, set()).add(r.name)  # type: ignore[arg-type]
        assert sorted(map(sorted, by_pid.values())) == [
            ["agent-0", "agent-1", "agent-2"],
            ["agent-3", "agent-4", "agent-5"],
        ]
        members = json.loads((sup.dir / "run" / "members.json").read_text())
        assert members["domains"] == {f"agent-{i}": f"p{i // 3}" for i in range(6)}
        with Hive.connect("m", hive_home) as client:
            client.remember_many([f"packed fact {i}" for i in range(20)])
            assert client.recall("packed fact 7")[0].content == "packed fact 7"
    finally:
        sup.stop()
    assert agent_pids(sup.dir) == set()


def test_http_api_refuses_bad_requests_and_stays_up(hive: Supervisor) -> None:
    assert http(hive, "GET", "/health", token=None)[0] == 401
    assert http(hive, "GET", "/health", token="wrong")[0] == 401
    status, body = http(hive, "POST", "/learn", raw=b"{not json")
    assert status == 400 and "JSON" in body["error"]
    status, body = http(hive, "POST", "/learn", {"items": "not a list"})
    assert status == 400 and "items" in body["error"]
    status, body = http(hive, "POST", "/recall", {"question": 42})
    assert status == 400
    status, body = http(hive, "POST", "/v1/memory/agent-9", {"op": "ping"})
    assert status == 404
    status, body = http(hive, "POST", "/v1/memory/agent-0", {"op": "drop tables"})
    assert status == 400 and "unknown operation" in body["error"]
    status, body = http(hive, "POST", "/learn", raw=b'{"items": ["' + b"x" * (33 * 2**20) + b'"]}')
    assert status == 413
    status, body = http(
        hive, "POST", "/learn", {"items": ["good fact about otters", "", {"nope": 1}]}
    )
    assert status == 200 and body["stored"] == 1 and body["failed"] == 2
    # nested past the parser's bound, small (inline) and large (worker) alike
    for depth in (5_000, 200_000):
        deep = b"[" * depth + b"]" * depth
        for path in ("/learn", "/v1/memory/agent-0"):
            status, body = http(hive, "POST", path, raw=deep)
            assert status == 400 and "nested too deeply" in body["error"], (path, depth)
    # malformed operations: a 400 with a JSON error, never a 500, never a file path
    malformed: list[Any] = [
        {"op": "put", "facts": ["not an object"], "postings": []},
        {"op": "put", "facts": [], "postings": [["t"]]},
        {"op": "put", "facts": [], "postings": "rows"},
        {"op": "postings", "terms": ["t"], "after": {"t": [1]}},
        {"op": "postings", "terms": ["t"], "only": ["not", "a", "map"]},
        {"op": "forget", "tombstones": [["a" * 32]]},
        {"op": "facts", "ids": [None]},
        {"op": "import", "shard": {"facts": [1]}},
        {"op": "repair_put", "peer": "agent-1", "shard": []},
        {"op": 7},
    ]
    for message in malformed:
        status, body = http(hive, "POST", "/v1/memory/agent-0", message)
        assert status == 400, (message, status, body)
        assert str(hive.dir) not in body["error"] and "/" not in body["error"], body
    assert http(hive, "GET", "/health")[0] == 200


def _send_and_hang_up(sup: Supervisor, path: str, body: bytes, sent: int) -> None:
    """POST ``body`` (its full length announced) to agent-0, send only its first ``sent``
    bytes, and close the connection without reading a reply."""
    rec = next(r for r in read_records(sup.dir) if "agent-0" in r.agents)
    host, port = rec.url.removeprefix("http://").split(":")
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {read_token(sup.dir)}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(head + body[:sent])


def _recalled(sup: Supervisor, question: str) -> list[str]:
    status, body = http(sup, "POST", "/recall", {"question": question, "limit": 200})
    assert status == 200 and body["complete"] is True, body
    return [h["content"] for h in body["hits"]]


def test_a_client_that_hangs_up_mid_batch_leaves_no_half_written_batch(hive: Supervisor) -> None:
    """A learn cut off while its body is sent stores nothing of it; one whose client hangs
    up after sending it all is finished (no write is left on some replicas only); the agent
    serves on, and sending the batch again is acknowledged whole."""
    cut = [f"the quokka census {i} counted animals near lake Ustar" for i in range(150)]
    body = json.dumps({"items": cut}).encode()
    _send_and_hang_up(hive, "/learn", body, len(body) // 2)
    assert http(hive, "GET", "/health")[0] == 200
    assert _recalled(hive, "quokka census Ustar") == []

    whole = [f"the wombat survey {i} counted burrows near lake Ivar" for i in range(150)]
    _send_and_hang_up(hive, "/learn", json.dumps({"items": whole}).encode(), 10**9)
    deadline = time.monotonic() + 30
    while len(found := _recalled(hive, "wombat survey Ivar")) < len(whole):
        assert time.monotonic() < deadline, f"{len(found)} of {len(whole)} stored"
        time.sleep(0.2)
    assert sorted(found) == sorted(whole)

    status, reply = http(hive, "POST", "/learn", {"items": whole})
    assert status == 200 and reply["stored"] == len(whole) and reply["failed"] == 0
    assert sorted(_recalled(hive, "wombat survey Ivar")) == sorted(whole)
    assert http(hive, "GET", "/health")[0] == 200


def test_everything_in_the_hive_is_its_owners_alone(hive: Supervisor) -> None:
    http(hive, "POST", "/learn", {"items": ["a fact about owls", "a fact about larks"]})
    seen = 0
    for path in [hive.dir, *hive.dir.rglob("*")]:
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} has mode {mode:o}"
        seen += 1
    assert seen > 10  # config, token, run records, logs, every agent's database


def test_an_idle_or_trickling_connection_is_closed() -> None:
    from aiohttp import web

    from amplihack_hive._loop import LoopThread
    from amplihack_hive.agent.server import make_runner

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.add_routes([web.get("/", hello)])
    loop = LoopThread()
    runner = make_runner(app, idle_timeout_s=0.5)

    async def up() -> int:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    port = loop.run(up())
    try:
        for first in (b"", b"GET / HTTP/1.1\r\nHost: x\r\n"):  # nothing; half the headers
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                conn.sendall(first)
                started = time.monotonic()
                assert conn.recv(1024) == b""  # closed by the agent, not by our timeout
                assert time.monotonic() - started < 4
    finally:
        loop.run(runner.cleanup())
        loop.close()


def test_connect_to_a_stopped_hive_says_how_to_start_it(hive_home: Path) -> None:
    create_hive(hive_home, "q", agents=1, backend="memory")
    with pytest.raises(HiveStateError, match="amplihack-hive start q"):
        Hive.connect("q", hive_home)


def test_agents_answer_health_and_stop_cleanly_under_bulk_writes(hive_home: Path) -> None:
    """Kuzu agents busy storing a bulk learn still answer /healthz promptly (their store
    work runs off the event loop) and SIGTERM stops them without SIGKILL."""
    import threading

    create_hive(hive_home, "bulk", agents=3, replication=3, backend="kuzu")
    sup = Supervisor(hive_home, "bulk")
    sup.start(timeout=60)
    errors: list[BaseException] = []
    writing = threading.Event()

    def learn() -> None:
        try:
            with Hive.connect("bulk", hive_home) as client:
                for start in range(0, 20_000, 1000):
                    writing.set()
                    client.remember_many(
                        [f"bulk fact {i} about sensor {i % 97}" for i in range(start, start + 1000)]
                    )
        except BaseException as exc:  # the writer may be cut off by the stop below
            errors.append(exc)

    writer = threading.Thread(target=learn, daemon=True)
    writer.start()
    try:
        assert writing.wait(30)
        time.sleep(1.0)
        slowest = 0.0
        for _ in range(20):
            for rec in read_records(sup.dir):
                started = time.monotonic()
                with urllib.request.urlopen(rec.url + "/healthz", timeout=10) as resp:
                    assert resp.status == 200
                slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.05)
        # generous for a loaded CI machine; a store call on the loop took seconds
        assert slowest < 2.0, slowest
        assert writer.is_alive(), errors  # still writing while we probed
    finally:
        result = sup.stop(timeout=10)
    writer.join(timeout=30)
    assert result.killed == []
    assert agent_pids(sup.dir) == set()


def test_a_start_that_packs_agents_records_their_domains(hive_home: Path) -> None:
    from amplihack_hive.hive.config import load_hive

    create_hive(hive_home, "g", agents=4, backend="memory")
    sup = Supervisor(hive_home, "g")
    try:
        sup.start(timeout=60, agents_per_process=2)
        pinned = {a.name: a.domain for a in load_hive(hive_home, "g").agents}
        assert pinned == {
            "agent-0": "agent-0",
            "agent-1": "agent-0",
            "agent-2": "agent-2",
            "agent-3": "agent-2",
        }
        sup.stop()
        sup = Supervisor(hive_home, "g")
        sup.start(timeout=60)  # no option this time: the same processes, the same ring
        assert len({r.pid for r in read_records(sup.dir)}) == 2
        members = json.loads((sup.dir / "run" / "members.json").read_text())
        assert members["domains"] == pinned
    finally:
        sup.stop()
