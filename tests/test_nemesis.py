"""Nemesis: learn through Hive.connect while agents are killed with SIGKILL and restarted.

Afterwards every acknowledged fact is recalled, replicas converge to exactly their owners,
and no forgotten fact comes back. R=3, W=2, real agent processes on Kuzu.
``AMPLIHACK_NEMESIS_RUNS`` repeats the run (the closing note's 20 runs use it).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from amplihack_hive import Hive
from amplihack_hive.agent.runstate import ProcessRecord as ProcessRecordT
from amplihack_hive.agent.runstate import read_records
from amplihack_hive.errors import HiveError, WriteQuorumError
from amplihack_hive.hive.config import create_hive
from amplihack_hive.hive.supervisor import Supervisor
from amplihack_hive.hive.token import read_token
from amplihack_hive.memory.records import fact_id_for

pytestmark = pytest.mark.slow

RUNS = int(os.environ.get("AMPLIHACK_NEMESIS_RUNS", "1"))
AGENTS = 5
FACTS = 1200
BATCH = 40


def post(url: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def repair_everywhere(sup: Supervisor) -> list[dict[str, Any]]:
    token = read_token(sup.dir)
    return [post(r.url + "/v1/admin/repair", token, {}) for r in read_records(sup.dir)]


def holders(sup: Supervisor, fact_ids: list[str]) -> dict[str, set[str]]:
    """fact id -> agents holding its body, asked of every agent directly."""
    token = read_token(sup.dir)
    out: dict[str, set[str]] = {f: set() for f in fact_ids}
    for rec in read_records(sup.dir):
        for agent in rec.agents:
            for i in range(0, len(fact_ids), 500):
                reply = post(
                    f"{rec.url}/v1/memory/{agent}",
                    token,
                    {"op": "facts", "ids": fact_ids[i : i + 500]},
                )
                for fact in reply["facts"]:
                    out[fact["id"]].add(agent)
    return out


@pytest.mark.parametrize("run", range(RUNS))
def test_no_acknowledged_fact_is_lost_while_agents_are_killed(hive_home: Path, run: int) -> None:
    rnd = random.Random(run)
    create_hive(hive_home, "nem", agents=AGENTS, replication=3, backend="kuzu")
    sup = Supervisor(hive_home, "nem")
    sup.start(timeout=60)
    acked: dict[str, str] = {}  # content -> id
    forgotten: dict[str, str] = {}  # id -> content
    stop = threading.Event()
    kills = 0
    restart_errors: list[str] = []
    unacked: list[str] = []

    def nemesis() -> None:
        nonlocal kills
        while not stop.is_set():
            live = [s for s in sup.status() if s.state == "healthy" and s.pid]
            victims = rnd.sample(live, k=min(len(live), rnd.choice([1, 2])))
            for v in victims:
                assert v.pid is not None
                try:
                    os.kill(v.pid, signal.SIGKILL)
                    kills += 1
                except ProcessLookupError:
                    pass
            time.sleep(rnd.uniform(0.2, 0.8))
            try:
                Supervisor(hive_home, "nem").start(timeout=60)
            except HiveError as exc:
                restart_errors.append(str(exc))  # the next loop starts them again
            time.sleep(rnd.uniform(0.2, 0.6))

    killer = threading.Thread(target=nemesis, daemon=True)
    try:
        with Hive.connect("nem", hive_home, timeout_s=3.0) as client:
            killer.start()
            lines = [f"nemesis run {run} fact {i} token t{run}x{i}q" for i in range(FACTS)]
            for start in range(0, FACTS, BATCH):
                chunk = lines[start : start + BATCH]
                try:
                    ids = client.remember_many(chunk)
                    acked.update(zip(chunk, ids, strict=True))
                except WriteQuorumError as exc:
                    stored = set(exc.stored)
                    acked.update((c, fact_id_for(c)) for c in chunk if fact_id_for(c) in stored)
                except HiveError as exc:
                    unacked.append(str(exc))  # not acknowledged: nothing promised
                if start % 400 == 0 and acked:
                    victim = rnd.choice(sorted(acked))
                    try:
                        client.forget(acked[victim])
                        forgotten[acked.pop(victim)] = victim
                    except HiveError as exc:
                        # not acknowledged: it may or may not take effect; check neither way
                        unacked.append(str(exc))
                        acked.pop(victim)
            stop.set()
            killer.join(timeout=120)
        sup.start(timeout=60)
        for _ in range(3):
            repair_everywhere(sup)
        assert kills > 0
        assert len(acked) > FACTS // 2
        with Hive.connect("nem", hive_home) as client:
            # each fact carries a unique token: recall by it alone (one posting list)
            lost = [
                c
                for c in acked
                if not any(h.content == c for h in client.recall(c.split()[-1], limit=3))
            ]
            assert lost == [], f"{len(lost)} acknowledged facts not recalled, e.g. {lost[:3]}"
            for fid, content in forgotten.items():
                assert all(h.id != fid for h in client.recall(content.split()[-1], limit=3))
            ring_owners = client._coordinator.owners
            where = holders(sup, [*acked.values(), *forgotten])
        wrong = {
            f: (h, set(ring_owners(f)))
            for f, h in where.items()
            if f in set(acked.values()) and h != set(ring_owners(f))
        }
        assert wrong == {}, f"{len(wrong)} facts not on exactly their owners"
        assert all(not where[f] for f in forgotten)
    finally:
        stop.set()
        sup.stop(timeout=10)


PACKED_AGENTS = 20
PER_PROCESS = 5
PACKED_FACTS = 600
CYCLED = 40  # contents forgotten and remembered again, by two clients at once


def scored(hive: Hive, q: str) -> list[tuple[float, str]]:
    return sorted((round(h.score, 6), h.content) for h in hive.recall(q, limit=5000))


@pytest.mark.parametrize("run", range(RUNS))
def test_packed_hive_under_pauses_kills_a_wiped_process_and_re_remembers(
    hive_home: Path, run: int
) -> None:
    """20 agents, 5 per process: SIGSTOP pauses, kill -9 of whole processes, one process
    killed with its data wiped; two clients forget and re-remember the same contents at
    once while a third writes. After healing: no acknowledged fact lost, no forgotten fact
    back, every re-remembered fact there, and rankings equal to one agent holding the live
    facts."""
    rnd = random.Random(1000 + run)
    create_hive(
        hive_home,
        "pk",
        agents=PACKED_AGENTS,
        replication=3,
        backend="kuzu",
        agents_per_process=PER_PROCESS,
    )
    sup = Supervisor(hive_home, "pk")
    sup.start(timeout=90)
    stop = threading.Event()
    lock = threading.Lock()
    live: dict[str, str] = {}  # content -> its id, acknowledged
    gone: dict[str, str] = {}  # id -> content, forgotten (acknowledged)
    uncertain: set[str] = set()  # contents whose last operation was not acknowledged
    events: list[str] = []
    wiped = threading.Event()

    def processes() -> list[ProcessRecordT]:
        return list(read_records(sup.dir))

    def nemesis() -> None:
        step = 0
        while not stop.is_set():
            step += 1
            recs = processes()
            if not recs:
                time.sleep(0.2)
                continue
            rec = rnd.choice(recs)
            action = rnd.choice(["pause", "pause", "kill"]) if step != 3 else "wipe"
            try:
                if action == "pause":
                    os.kill(rec.pid, signal.SIGSTOP)
                    time.sleep(rnd.uniform(0.5, 2.0))
                    os.kill(rec.pid, signal.SIGCONT)
                else:
                    os.kill(rec.pid, signal.SIGKILL)
                    psutil_wait(rec.pid)
                    if action == "wipe" and not wiped.is_set():
                        for agent in rec.agents:
                            for p in (sup.dir / "data").glob(f"{agent}*"):
                                if p.name == agent or p.name.startswith(agent + "."):
                                    remove_path(p)
                        wiped.set()
                    time.sleep(rnd.uniform(0.2, 0.6))
                    Supervisor(hive_home, "pk").start(timeout=90)
                events.append(f"{action} {rec.group}")
            except (ProcessLookupError, HiveError) as exc:
                events.append(f"{action} {rec.group} failed: {exc}")
            time.sleep(rnd.uniform(0.3, 1.0))

    def writer() -> None:
        with Hive.connect("pk", hive_home, timeout_s=3.0) as client:
            for start in range(0, PACKED_FACTS, 30):
                chunk = [
                    f"packed run {run} fact {i} token p{run}x{i}q" for i in range(start, start + 30)
                ]
                try:
                    ids = client.remember_many(chunk)
                except WriteQuorumError as exc:
                    stored = set(exc.stored)
                    with lock:
                        for c in chunk:
                            if fact_id_for(c) in stored:
                                live[c] = fact_id_for(c)
                            else:
                                uncertain.add(c)
                    continue
                except HiveError:
                    with lock:
                        uncertain.update(chunk)
                    continue
                with lock:
                    live.update(zip(chunk, ids, strict=True))

    cycled = [f"cycled run {run} item {i} token c{run}x{i}q" for i in range(CYCLED)]

    def cycler(seed: int) -> None:
        """Forget a content's fact and remember it again, over and over; the other cycler
        does the same to the same contents at the same time."""
        r = random.Random(seed)
        with Hive.connect("pk", hive_home, timeout_s=3.0) as client:
            while not stop.is_set():
                content = r.choice(cycled)
                with lock:
                    fid = live.get(content)
                try:
                    if fid is None:
                        new = client.remember(content)
                        with lock:
                            assert new not in gone, "a forgotten id was stored again"
                            live[content] = new
                            uncertain.discard(content)
                    else:
                        client.forget(fid)
                        with lock:
                            gone[fid] = content
                            if live.get(content) == fid:
                                del live[content]
                except HiveError:
                    with lock:
                        uncertain.add(content)
                        live.pop(content, None)
                time.sleep(r.uniform(0.0, 0.05))

    threads = [
        threading.Thread(target=nemesis, daemon=True),
        threading.Thread(target=cycler, args=(run * 2,), daemon=True),
        threading.Thread(target=cycler, args=(run * 2 + 1,), daemon=True),
    ]
    try:
        for t in threads:
            t.start()
        writer()
        # every run has its wipe and a few faults besides
        while not wiped.is_set() or len(events) < 7:
            time.sleep(0.2)
        time.sleep(2)
        stop.set()
        for t in threads:
            t.join(timeout=180)
        sup = Supervisor(hive_home, "pk")
        sup.start(timeout=90)
        for _ in range(4):
            repair_everywhere(sup)
        with Hive.connect("pk", hive_home) as client:
            # the last word on contents whose last operation was not acknowledged
            for content in sorted(uncertain):
                token = content.split()[-1]
                hits = [h for h in client.recall(token, limit=5) if h.content == content]
                if hits:
                    live[content] = hits[0].id
                else:
                    live.pop(content, None)
            lost = []
            for content, fid in live.items():
                hits = client.recall(content.split()[-1], limit=5)
                if not any(h.id == fid and h.content == content for h in hits):
                    lost.append(content)
            assert lost == [], f"{len(lost)} acknowledged facts missing, e.g. {lost[:3]}"
            back = [
                fid
                for fid, content in gone.items()
                if any(h.id == fid for h in client.recall(content.split()[-1], limit=5))
            ]
            assert back == [], f"{len(back)} forgotten facts came back"
            with Hive.in_process(agents=1, replication=1) as one:
                one.remember_many(sorted(live))
                for q in ("packed", "cycled token", f"run {run} fact", "item 7"):
                    assert scored(client, q) == scored(one, q), q
        assert any(e.startswith("wipe") and "failed" not in e for e in events), events
        print(
            f"run {run}: {len(live)} live, {len(gone)} forgotten, {len(uncertain)} uncertain; "
            f"nemesis: {', '.join(events)}"
        )
    finally:
        stop.set()
        for rec in read_records(sup.dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(rec.pid, signal.SIGCONT)
        sup.stop(timeout=10)


def psutil_wait(pid: int) -> None:
    import psutil

    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(pid).wait(10)


def remove_path(p: Path) -> None:
    import shutil

    if p.is_dir():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)
