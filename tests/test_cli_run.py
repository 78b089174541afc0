"""The lifecycle and memory commands through the real typer app and real agent processes.

Exit codes: 0 success, 1 an error explained on stderr, 2 bad usage, 3 ``status`` of a hive
that is not all healthy. Tests marked ``slow`` start agent processes; those that only read
share one running hive (``shared``), with their own words so they stay independent.

``learn`` of an empty input stores nothing and exits 0, with a warning on stderr: nothing
failed, and a pipeline that produced no items is not an error.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from helpers import REPO_ROOT, assert_one_line_error, installed, run_module
from typer.testing import CliRunner, Result

from amplihack_hive.agent.runstate import AGENT_MODULE, command_of
from amplihack_hive.cli import commands_memory, commands_run
from amplihack_hive.cli.app import app
from amplihack_hive.errors import TransportError, WriteQuorumError
from amplihack_hive.hive.learn_input import InputItem, InputProblem
from amplihack_hive.memory.records import MAX_CONTENT_BYTES, fact_id_for

Cli = Callable[..., Result]
AGENT_KEYS = {"name", "state", "pid", "url", "facts", "rss_mb"}
slow = pytest.mark.slow


def agent_pids(directory: Path) -> set[int]:
    """Live agent processes of the hive in ``directory`` (zombies do not count)."""
    out = set()
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        cmd = command_of(proc.info["cmdline"] or [])
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if AGENT_MODULE in cmd and str(directory) in cmd:
            out.add(proc.pid)
    return out


def kill9(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(pid).wait(timeout=10)  # reaps it when it is our child


def status_json(cli: Cli, *args: str) -> tuple[int, dict[str, Any]]:
    result = cli(*args, "--json")
    assert result.exit_code in (0, 3), (result.stdout, result.stderr)
    document = json.loads(result.stdout)
    assert set(document) >= {"hive", "target", "agents"}
    assert document["target"] == "local"
    for agent in document["agents"]:
        assert set(agent) >= AGENT_KEYS
        assert agent["state"] in ("healthy", "unhealthy", "restarting", "crashed", "stopped")
    return result.exit_code, document


def home_cli(home: Path) -> Cli:
    """Invoke the app with ``--home HOME`` (for the module-scoped hive, whose home is not
    the per-test ``$AMPLIHACK_HIVE_HOME``)."""
    runner = CliRunner()

    def invoke(*args: str, input: str | bytes | None = None) -> Result:
        return runner.invoke(app, ["--home", str(home), *args], input=input)

    return invoke


# --- a shared running hive ------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """A running 3-agent hive "sh" on the memory backend, for tests that only add facts with
    their own words; yields a ``cli`` bound to its home."""
    home = tmp_path_factory.mktemp("shared") / "hives"
    run = home_cli(home)
    assert run("create", "sh", "--agents", "3", "--backend", "memory").exit_code == 0
    started = run("start", "sh", "--timeout", "60")
    assert started.exit_code == 0, started.stderr
    try:
        yield run
    finally:
        run("stop", "sh")
        assert agent_pids(home / "sh") == set()


# --- no processes needed --------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["start", "nope"],
        ["status", "nope"],
        ["status", "nope", "--json"],
        ["stop", "nope"],
        ["logs", "nope"],
        ["learn", "nope", "-"],
        ["recall", "nope", "anything"],
        ["ask", "nope", "anything", "--json"],
    ],
)
def test_a_missing_hive_is_a_one_line_error(cli: Cli, hive_home: Path, args: list[str]) -> None:
    assert_one_line_error(cli(*args), "hive 'nope' not found")


@pytest.mark.parametrize(
    "args",
    [
        ["learn", "h", "--format", "csv"],
        ["learn", "h", "--batch", "0"],
        ["recall", "h", "q", "--limit", "0"],
        ["recall", "h"],
        ["ask", "h"],
        ["start", "h", "--target", "gcp"],
        ["start", "h", "--timeout", "soon"],
        ["status", "h", "--bogus"],
        ["stop", "h", "--timeout", "-1"],
        ["logs", "h", "-n", "-1"],
        ["logs"],
    ],
)
def test_bad_usage_exits_2(cli: Cli, args: list[str]) -> None:
    assert cli("create", "h", "--backend", "memory").exit_code == 0
    result = cli(*args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""


def test_azure_target_goes_to_the_azure_commands(
    cli: Cli, hive_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZURE_SUBSCRIPTION_ID", raising=False)
    assert cli("create", "h", "--backend", "memory").exit_code == 0
    token = (hive_home / "h" / "token").read_text().strip()
    plan = cli(
        "start", "h", "--target", "azure", "-g", "rg1", "--image", "reg.azurecr.io/h:1", "--dry-run"
    )
    assert plan.exit_code == 0, plan.stderr
    assert "az deployment group create --resource-group rg1" in plan.stdout
    assert "hiveToken=****" in plan.stdout and token not in plan.stdout + plan.stderr
    for command in ("status", "stop"):
        assert_one_line_error(cli(command, "h", "--target", "azure", "-g", "rg1"), "subscription")


def test_a_stopped_hive(cli: Cli, hive_home: Path) -> None:
    assert cli("create", "h", "--agents", "2", "--backend", "memory").exit_code == 0
    table = cli("status", "h")
    assert table.exit_code == 3
    assert table.stdout.count("stopped") == 2
    assert "0 of 2 agents healthy" in table.stdout
    code, document = status_json(cli, "status", "h")
    assert code == 3
    assert document["hive"] == "h"
    assert [(a["name"], a["state"], a["pid"]) for a in document["agents"]] == [
        ("agent-0", "stopped", None),
        ("agent-1", "stopped", None),
    ]
    stopped = cli("stop", "h")
    assert stopped.exit_code == 0
    assert stopped.stdout == "hive h is not running\n"
    start_hint = "amplihack-hive start h"
    assert_one_line_error(cli("learn", "h", "-", input="a fact\n"), "not running", start_hint)
    assert_one_line_error(cli("recall", "h", "anything", "--json"), "not running", start_hint)
    assert_one_line_error(cli("ask", "h", "anything"), "not running", start_hint)


def _write_logs(hive: Path) -> None:
    logs = hive / "logs"
    logs.mkdir()
    (logs / "agent-0.log").write_text("".join(f"zero {i}\n" for i in range(100)))
    (logs / "agent-1.log").symlink_to("agent-0.log")  # packed with agent-0
    (logs / "agent-2.log").write_text("two a\ntwo b [not markup]\n")


def test_logs_tail_each_file_once_with_prefixes(cli: Cli, hive_home: Path) -> None:
    assert cli("create", "h", "--agents", "4", "--backend", "memory").exit_code == 0
    _write_logs(hive_home / "h")
    result = cli("logs", "h", "-n", "3")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "agent-0,agent-1 | zero 97",
        "agent-0,agent-1 | zero 98",
        "agent-0,agent-1 | zero 99",
        "agent-2 | two a",
        "agent-2 | two b [not markup]",
    ]  # agent-3 has no log yet: nothing for it
    assert len(cli("logs", "h").stdout.splitlines()) == 50 + 2
    one = cli("logs", "h", "agent-1", "--lines", "2")
    assert one.exit_code == 0
    assert one.stdout == "zero 98\nzero 99\n"
    assert cli("logs", "h", "agent-2", "-n", "0").stdout == ""
    assert cli("logs", "h", "agent-2", "-n", "1000").stdout == "two a\ntwo b [not markup]\n"


def test_logs_since_a_time_or_a_duration(cli: Cli, hive_home: Path) -> None:
    from datetime import datetime, timedelta

    assert cli("create", "h", "--agents", "1", "--backend", "memory").exit_code == 0
    logs = hive_home / "h" / "logs"
    logs.mkdir()
    now = datetime.now().replace(microsecond=0)

    def at(minutes_ago: int, text: str) -> str:
        stamp = (now - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%d %H:%M:%S")
        return f"{stamp},123 INFO [1] x: {text}\n"

    (logs / "agent-0.log").write_text(
        at(30, "old")
        + at(20, "older error")
        + "Traceback (most recent call last):\n  a frame of the older error\n"
        + at(5, "recent")
        + "  a continuation of recent\n"
        + at(1, "newest")
    )
    ten = cli("logs", "h", "agent-0", "--since", "10m")
    assert ten.exit_code == 0, ten.stderr
    assert [ln.split(": ", 1)[-1] for ln in ten.stdout.splitlines()] == [
        "recent",
        "  a continuation of recent",
        "newest",
    ]
    since = (now - timedelta(minutes=25)).strftime("%Y-%m-%dT%H:%M:%S")
    older = cli("logs", "h", "agent-0", "--since", since).stdout.splitlines()
    assert len(older) == 6 and older[0].endswith("older error") and "frame" in older[2]
    capped = cli("logs", "h", "agent-0", "--since", since, "-n", "1").stdout
    assert capped.endswith("newest\n") and capped.count("\n") == 1
    assert cli("logs", "h", "--since", "0s").stdout == ""  # nothing logged from now on
    assert_one_line_error(cli("logs", "h", "--since", "tomorrow"), "--since 'tomorrow'")


def test_logs_errors_and_no_logs_yet(cli: Cli, hive_home: Path) -> None:
    assert cli("create", "h", "--agents", "2", "--backend", "memory").exit_code == 0
    none = cli("logs", "h")
    assert none.exit_code == 0
    assert none.stdout == ""
    assert "no logs yet for hive h" in none.stderr
    assert "amplihack-hive start h" in none.stderr
    assert "no logs yet for agent agent-1" in cli("logs", "h", "agent-1").stderr
    assert_one_line_error(cli("logs", "h", "agent-7"), "has no agent 'agent-7'", "agent-0")
    assert_one_line_error(cli("logs", "h", "../x"), "invalid agent name '../x'")
    (hive_home / "h" / "logs").mkdir()
    (hive_home / "h" / "logs" / "old-agent.log").write_text("kept after remove-agent\n")
    assert cli("logs", "h", "old-agent").stdout == "kept after remove-agent\n"
    assert cli("logs", "h").stdout == "old-agent | kept after remove-agent\n"


def test_logs_follow_prints_new_lines_until_ctrl_c(
    cli: Cli, hive_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("create", "h", "--agents", "3", "--backend", "memory").exit_code == 0
    hive = hive_home / "h"
    _write_logs(hive)
    zero = hive / "logs" / "agent-0.log"
    steps = [
        lambda: zero.open("a").write("zero new\npartial "),
        lambda: zero.open("a").write("line done\n"),
        lambda: zero.write_text("after truncation\n"),
        lambda: (hive / "logs" / "agent-2.log").open("a").write("two new\n"),
    ]

    def fake_sleep(_: float) -> None:
        if not steps:
            raise KeyboardInterrupt
        steps.pop(0)()

    monkeypatch.setattr(commands_run, "_sleep", fake_sleep)
    result = cli("logs", "h", "--follow", "-n", "1")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "agent-0,agent-1 | zero 99",
        "agent-2 | two b [not markup]",
        "agent-0,agent-1 | zero new",
        "agent-0,agent-1 | partial line done",
        "agent-0,agent-1 | after truncation",
        "agent-2 | two new",
    ]


def test_logs_follow_waits_for_logs_to_appear(
    cli: Cli, hive_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("create", "h", "--backend", "memory").exit_code == 0
    logs = hive_home / "h" / "logs"
    steps = [lambda: logs.mkdir(), lambda: (logs / "agent-0.log").write_text("hello\n")]

    def fake_sleep(_: float) -> None:
        if not steps:
            raise KeyboardInterrupt
        steps.pop(0)()

    monkeypatch.setattr(commands_run, "_sleep", fake_sleep)
    result = cli("logs", "h", "agent-0", "-f")
    assert result.exit_code == 0
    assert "waiting" in result.stderr
    assert result.stdout == "hello\n"


class FakeClient:
    """Stands in for ``Hive`` in ``learn``'s batch logic: ``lose`` contents miss their write
    quorum (WriteQuorumError names them), ``broken`` contents fail the whole request."""

    def __init__(self, lose: set[str] | None = None, broken: set[str] | None = None) -> None:
        self.lose, self.broken, self.calls = lose or set(), broken or set(), 0

    def remember_many(self, items: list[dict[str, Any]], batch: int) -> list[str]:
        self.calls += 1
        contents = [item["content"] for item in items]
        if self.broken & set(contents):
            raise TransportError("agent-1 did not answer")
        ids = [fact_id_for(c) for c in contents]
        lost = [fact_id_for(c) for c in contents if c in self.lose]
        if lost:
            raise WriteQuorumError(
                f"{len(lost)} of {len(ids)} facts were not stored on a write quorum of their "
                "replicas; unreachable: agent-1, agent-2",
                stored=[i for i in ids if i not in lost],
                failed=lost,
                unreachable=["agent-1", "agent-2"],
            )
        return ids


def _items(n: int) -> list[InputItem]:
    return [InputItem(line=2 * i + 1, content=f"fact number {i}") for i in range(n)]


def test_learn_counts_exactly_the_facts_a_partial_write_lost() -> None:
    client = FakeClient(lose={"fact number 2", "fact number 5"})
    failed: list[InputProblem] = []
    stored = commands_memory._store(client, _items(8), failed, [64])  # type: ignore[arg-type]
    assert stored == 6
    assert client.calls == 1
    assert [p.line for p in failed] == [5, 11]
    assert failed[0].message == (
        "not stored on a write quorum of replicas (unreachable: agent-1, agent-2)"
    )


def test_learn_splits_a_failed_batch_to_find_the_items_that_fail() -> None:
    client = FakeClient(broken={"fact number 6"})
    failed: list[InputProblem] = []
    budget = [64]
    stored = commands_memory._store(client, _items(16), failed, budget)  # type: ignore[arg-type]
    assert stored == 15
    assert [(p.line, p.message) for p in failed] == [(13, "not stored: agent-1 did not answer")]
    assert client.calls <= 1 + 2 * 4  # one split per level down to the bad item
    # no budget left: the whole failing chunk is counted as failed, never dropped
    failed = []
    client = FakeClient(broken={"fact number 6"})
    stored = commands_memory._store(client, _items(16), failed, [1])  # type: ignore[arg-type]
    assert (stored, len(failed)) == (0, 16)


# --- the shared running hive -------------------------------------------------------------------


@slow
def test_status_of_a_healthy_hive(shared: Cli) -> None:
    table = shared("status", "sh")
    assert table.exit_code == 0, table.stderr
    assert table.stderr == ""
    for word in ("agent-0", "agent-2", "healthy", "RSS MB", "uptime", "restarts", "127.0.0.1:"):
        assert word in table.stdout
    assert "3 of 3 agents healthy" in table.stdout
    code, document = status_json(shared, "status", "sh")
    assert code == 0
    assert document["hive"] == "sh"
    agents = document["agents"]
    assert [a["name"] for a in agents] == ["agent-0", "agent-1", "agent-2"]
    for agent in agents:
        assert agent["state"] == "healthy"
        assert isinstance(agent["pid"], int) and psutil.pid_exists(agent["pid"])
        assert agent["url"].startswith("http://127.0.0.1:")
        assert isinstance(agent["facts"], int)
        assert agent["rss_mb"] > 0


@slow
def test_start_of_a_running_hive_starts_nothing(shared: Cli) -> None:
    before = {a["pid"] for a in status_json(shared, "status", "sh")[1]["agents"]}
    result = shared("start", "sh")
    assert result.exit_code == 0
    assert result.stdout == "started 0 agents (3 already running)\n"
    assert result.stderr == ""
    assert {a["pid"] for a in status_json(shared, "status", "sh")[1]["agents"]} == before


@slow
def test_learn_text_jsonl_and_stdin_then_recall_and_ask(shared: Cli, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_bytes(
        b"The quokka colony lives on Rottnest island.\r\n\r\n"
        b"Quokka pups are called joeys;\r\nthey stay in the pouch for six months.\r\n"
    )
    result = shared("learn", "sh", str(notes))
    assert (result.exit_code, result.stdout, result.stderr) == (
        0,
        "stored 2 items (0 failed)\n",
        "",
    )

    piped = shared("learn", "sh", "-", input="The narwhal tusk is a tooth.\n\nNarwhals dive deep.")
    assert piped.stdout == "stored 2 items (0 failed)\n"
    implicit = shared("learn", "sh", "--json", input="Axolotls regrow their limbs.\n")
    assert json.loads(implicit.stdout) == {"stored": 1, "failed": 0}

    lines = [
        {"content": "The okapi is the closest relative of the giraffe", "kind": "semantic"},
        {"content": "Saw an okapi at the zoo", "kind": "episodic", "metadata": {"zoo": "Antwerp"}},
    ]
    data = tmp_path / "facts.jsonl"
    data.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    jsonl = shared("learn", "sh", str(data), "--format", "jsonl", "--json", "--batch", "1")
    assert jsonl.exit_code == 0, jsonl.stderr
    assert json.loads(jsonl.stdout) == {"stored": 2, "failed": 0}

    recalled = shared("recall", "sh", "Where do quokkas live?", "--json", "-k", "3")
    assert recalled.exit_code == 0, recalled.stderr
    assert recalled.stderr == ""
    hits = json.loads(recalled.stdout)
    assert 1 <= len(hits) <= 3
    assert {"id", "content", "score"} <= set(hits[0])
    assert "Rottnest" in hits[0]["content"]
    assert hits == sorted(hits, key=lambda h: -h["score"])
    okapi = json.loads(shared("recall", "sh", "okapi zoo", "--json").stdout)
    assert any(h["metadata"] == {"zoo": "Antwerp"} and h["kind"] == "episodic" for h in okapi)

    table = shared("recall", "sh", "narwhal tusk")
    assert table.exit_code == 0
    assert "rank" in table.stdout and "narwhal tusk is a tooth" in table.stdout
    nothing = shared("recall", "sh", "zzyzx")
    assert (nothing.exit_code, nothing.stdout) == (
        0,
        "nothing the hive remembers matches the question\n",
    )
    assert json.loads(shared("recall", "sh", "zzyzx", "--json").stdout) == []

    answer = shared("ask", "sh", "What regrows its limbs?")
    assert answer.exit_code == 0, answer.stderr
    first = answer.stdout.splitlines()[0]
    # one sentence of one fact, cited by its id and date
    assert re.fullmatch(r"Axolotls regrow their limbs\. \[[0-9a-f]{8}, \d{4}-\d\d-\d\d\]", first)
    assert "sources:" in answer.stdout
    document = json.loads(
        shared("ask", "sh", "How long do quokka joeys stay in the pouch?", "--json").stdout
    )
    assert "six months" in document["answer"]
    assert document["sources"] and {"id", "content", "score"} <= set(document["sources"][0])
    assert document["complete"] is True


@slow
def test_learn_counts_and_reports_every_bad_item(shared: Cli, tmp_path: Path) -> None:
    data = tmp_path / "mixed.jsonl"
    data.write_text(
        "\n".join(
            [
                json.dumps({"content": "The pangolin eats ants"}),
                "{oops",
                json.dumps({"content": 7}),
                json.dumps({"content": "x" * (MAX_CONTENT_BYTES + 1)}),
                "",
                json.dumps({"content": "Pangolins have scales", "kind": "gossip"}),
                json.dumps({"content": "The pangolin rolls into a ball"}),
            ]
        )
    )
    result = shared("learn", "sh", str(data), "--format", "jsonl", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {"stored": 2, "failed": 4}
    errors = result.stderr.splitlines()
    assert [line.split(":")[1].strip() for line in errors] == [
        "line 2",
        "line 3",
        "line 4",
        "line 6",
    ]
    assert "not valid JSON" in errors[0] and "must be a string" in errors[1]
    assert "bytes per fact" in errors[2] and "unknown kind 'gossip'" in errors[3]
    assert "Traceback" not in result.stderr
    human = shared("learn", "sh", str(data), "--format", "jsonl")
    assert human.exit_code == 1
    assert human.stdout == "stored 2 items (4 failed)\n"
    recalled = json.loads(shared("recall", "sh", "pangolin", "--json").stdout)
    assert {h["content"] for h in recalled} >= {
        "The pangolin eats ants",
        "The pangolin rolls into a ball",
    }


@slow
def test_learn_input_errors(shared: Cli, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    result = shared("learn", "sh", str(empty), "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"stored": 0, "failed": 0}
    assert "no items" in result.stderr
    assert shared("learn", "sh", input="").stdout == "stored 0 items (0 failed)\n"

    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Café au lait\n".encode("latin-1"))
    assert_one_line_error(shared("learn", "sh", str(latin1)), "not valid UTF-8", "line 1")
    assert_one_line_error(
        shared("learn", "sh", "-", input=b"ok\n\xff\n"), "not valid UTF-8", "line 2"
    )
    assert_one_line_error(shared("learn", "sh", str(tmp_path / "missing.txt")), "not found")
    assert_one_line_error(shared("learn", "sh", str(tmp_path)), "is a directory")


@slow
def test_learn_in_small_batches(shared: Cli) -> None:
    text = "\n\n".join(f"Lighthouse keeper {i} tends lamp L{i}" for i in range(23))
    result = shared("learn", "sh", "--batch", "5", "--json", input=text)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"stored": 23, "failed": 0}
    hits = json.loads(shared("recall", "sh", "keeper lamp L17", "--json", "-k", "1").stdout)
    assert hits[0]["content"] == "Lighthouse keeper 17 tends lamp L17"


@slow
def test_logs_of_a_running_hive(shared: Cli) -> None:
    result = shared("logs", "sh", "-n", "5")
    assert result.exit_code == 0
    assert "agent-1 | " in result.stdout
    assert "listening on http://127.0.0.1:" in result.stdout


# --- a hive's whole life -------------------------------------------------------------------------


@slow
def test_lifecycle_kill_restart_and_stop(cli: Cli, hive_home: Path, tmp_path: Path) -> None:
    directory = hive_home / "life"
    # no restarts: the agents killed below stay down, so quorums can be taken away
    made = cli("create", "life", "--agents", "5", "--backend", "memory", "--restart", "no")
    assert made.exit_code == 0
    started = cli("start", "life", "--timeout", "60")
    assert (started.exit_code, started.stdout) == (0, "started 5 agents (0 already running)\n")
    assert started.stderr == ""
    code, document = status_json(cli, "status", "life")
    assert code == 0
    assert document == {"hive": "life", "target": "local", "agents": document["agents"]}
    pids = {a["name"]: a["pid"] for a in document["agents"]}
    assert set(pids.values()) == agent_pids(directory)

    facts = tmp_path / "facts.txt"
    facts.write_text(
        "\n\n".join(f"Courier {i} delivers parcel P{i} to dock D{i}" for i in range(40))
    )
    assert cli("learn", "life", str(facts)).stdout == "stored 40 items (0 failed)\n"

    kill9(pids["agent-3"])
    # its keeper records the exit a moment after the process is gone (on a loaded machine
    # status may see the agent "unhealthy" first: gone, its end not yet recorded)
    deadline = time.monotonic() + 15
    while True:
        code, document = status_json(cli, "status", "life")
        states = {a["name"]: a["state"] for a in document["agents"]}
        if states["agent-3"] != "unhealthy" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert code == 3
    assert states == {**{n: "healthy" for n in pids}, "agent-3": "crashed"}
    crashed = next(a for a in document["agents"] if a["name"] == "agent-3")
    assert crashed["last_exit"]["signal"] == "SIGKILL" and crashed["restarts"] == 0
    assert crashed["reason"] == "killed by SIGKILL; policy no"
    table = cli("status", "life")
    assert table.exit_code == 3 and "crashed" in table.stdout
    # one agent down: every fact still reaches a write quorum (R=3, quorum 2)
    one_down = cli("learn", "life", "--json", input="Courier 99 is off sick today\n")
    assert json.loads(one_down.stdout) == {"stored": 1, "failed": 0}
    hits = json.loads(cli("recall", "life", "parcel P17 dock", "--json").stdout)
    assert hits[0]["content"] == "Courier 17 delivers parcel P17 to dock D17"

    # two agents down: a write still reaches W=2 replicas through stand-ins (hinted)
    kill9(pids["agent-1"])
    lines = [f"Van {i} carries crate C{i} for customer K{i}" for i in range(12)]
    two_down = cli("learn", "life", "--json", input="\n\n".join(lines))
    assert json.loads(two_down.stdout) == {"stored": 12, "failed": 0}, two_down.stderr

    # four agents down: one is left, no write can reach a quorum; counted, not lost silently
    kill9(pids["agent-0"])
    kill9(pids["agent-2"])
    lonely = cli("learn", "life", "--json", input="Truck 5 is parked at gate G5")
    assert lonely.exit_code == 1
    assert json.loads(lonely.stdout) == {"stored": 0, "failed": 1}
    assert "not stored" in lonely.stderr and "Traceback" not in lonely.stderr

    restarted = cli("start", "life")
    assert restarted.exit_code == 0, restarted.stderr
    assert restarted.stdout == "started 4 agents (1 already running)\n"
    code, document = status_json(cli, "status", "life")
    assert code == 0
    new_pids = {a["name"]: a["pid"] for a in document["agents"]}
    assert new_pids["agent-4"] == pids["agent-4"] and new_pids["agent-3"] != pids["agent-3"]
    again = cli("learn", "life", "--json", input="\n\n".join(lines))
    assert json.loads(again.stdout) == {"stored": 12, "failed": 0}

    stopped = cli("stop", "life", "--timeout", "10")
    assert (stopped.exit_code, stopped.stdout) == (0, "stopped 5 agents of hive life\n")
    code, document = status_json(cli, "status", "life")
    assert code == 3
    assert {a["state"] for a in document["agents"]} == {"stopped"}
    assert agent_pids(directory) == set()
    assert cli("stop", "life").stdout == "hive life is not running\n"


@slow
def test_start_timeout_names_the_late_agents(cli: Cli, hive_home: Path) -> None:
    assert cli("create", "late", "--agents", "2", "--backend", "memory").exit_code == 0
    try:
        result = cli("start", "late", "--timeout", "0")
        assert result.exit_code == 1
        line = result.stderr.strip()
        assert line.startswith("error: ") and "not healthy after 0s" in line
        assert "agent-" in line and "Traceback" not in line
    finally:
        assert cli("stop", "late").exit_code == 0
    assert agent_pids(hive_home / "late") == set()


@slow
@pytest.mark.skipif(
    importlib.util.find_spec("amplihack_hive.memory.kuzu_store") is None,
    reason="amplihack_hive/memory/kuzu_store.py (the Kuzu backend) does not exist yet",
)
def test_a_hive_on_the_default_kuzu_backend(cli: Cli, hive_home: Path) -> None:
    assert cli("create", "kz", "--agents", "3").exit_code == 0  # backend kuzu by default
    try:
        started = cli("start", "kz", "--timeout", "60")
        assert started.exit_code == 0, started.stderr
        learned = cli("learn", "kz", "--json", input="The tapir has a short trunk.\n\nOwls fly.")
        assert json.loads(learned.stdout) == {"stored": 2, "failed": 0}, learned.stderr
        hits = json.loads(cli("recall", "kz", "tapir trunk", "--json").stdout)
        assert hits[0]["content"] == "The tapir has a short trunk."
        code, document = status_json(cli, "status", "kz")
        assert code == 0 and sum(a["facts"] for a in document["agents"]) >= 2
    finally:
        assert cli("stop", "kz").exit_code == 0
    assert agent_pids(hive_home / "kz") == set()


# --- the real entry point ------------------------------------------------------------------------


@slow
def test_python_dash_m_start_status_stop(tmp_path: Path) -> None:
    home = tmp_path / "sub-home"
    base = ("--home", str(home))
    created = run_module(
        *base, "create", "sub", "--agents", "2", "--backend", "memory", cwd=tmp_path
    )
    assert created.returncode == 0, created.stderr
    try:
        started = run_module(*base, "start", "sub", "--timeout", "60", cwd=tmp_path)
        assert started.returncode == 0, started.stderr
        assert started.stdout == "started 2 agents (0 already running)\n"
        status = run_module(*base, "status", "sub", "--json", cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        assert [a["state"] for a in json.loads(status.stdout)["agents"]] == ["healthy"] * 2
    finally:
        stopped = run_module(*base, "stop", "sub", cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout == "stopped 2 agents of hive sub\n"
    assert agent_pids(home / "sub") == set()
    after = run_module(*base, "status", "sub", "--json", cwd=tmp_path)
    assert after.returncode == 3
    assert after.stderr == ""
    missing = run_module(*base, "start", "nope", cwd=tmp_path)
    assert missing.returncode == 1
    assert missing.stdout == ""
    assert missing.stderr.startswith("error: hive 'nope' not found")
    assert len(missing.stderr.splitlines()) == 1


@slow
def test_logs_follow_in_a_real_process_ends_with_exit_0_on_ctrl_c(
    cli: Cli, hive_home: Path
) -> None:
    assert cli("create", "fw", "--backend", "memory").exit_code == 0
    log = hive_home / "fw" / "logs" / "agent-0.log"
    log.parent.mkdir()
    log.write_text("old line\n")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "amplihack_hive", "logs", "fw", "agent-0", "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # a Ctrl-C must reach it even if this test runs with SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "old line\n"
        with log.open("a") as handle:
            handle.write("new line\n")
        assert proc.stdout.readline() == "new line\n"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out == "" and "Traceback" not in err


def test_restart_one_agent_then_all_and_status_at_80_columns(
    cli: Cli, hive_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert cli("create", "rs", "--agents", "3", "--backend", "memory").exit_code == 0
    assert cli("start", "rs").exit_code == 0
    try:
        before = {a["name"]: a["pid"] for a in status_json(cli, "status", "rs")[1]["agents"]}
        one = cli("restart", "rs", "agent-1")
        assert (one.exit_code, one.stdout) == (0, "restarted agent-1 of hive rs\n"), one.stderr
        code, document = status_json(cli, "status", "rs")
        after = {a["name"]: a["pid"] for a in document["agents"]}
        assert code == 0
        assert after["agent-1"] != before["agent-1"]
        assert {k: v for k, v in after.items() if k != "agent-1"} == {
            k: v for k, v in before.items() if k != "agent-1"
        }
        assert all(a["restarts"] == 0 for a in document["agents"])  # a restart is no crash
        every = cli("restart", "rs")
        assert (every.exit_code, every.stdout) == (0, "restarted 3 agents of hive rs\n")
        again = {a["name"]: a["pid"] for a in status_json(cli, "status", "rs")[1]["agents"]}
        assert not set(again.values()) & set(after.values())
        assert_one_line_error(cli("restart", "rs", "agent-9"), "has no agent 'agent-9'")
        # the table at 80 columns: names, states and URLs whole
        table = cli("status", "rs")
        assert table.exit_code == 0
        lines = table.stdout.splitlines()
        assert all(len(line) <= 80 for line in lines), table.stdout
        for name, pid in again.items():
            row = next(line for line in lines if line.startswith(name + " "))
            assert "healthy" in row and str(pid) in row and " 127.0.0.1:" in row
    finally:
        assert cli("stop", "rs").exit_code == 0


def test_learn_progress_lines_without_a_terminal() -> None:
    from io import StringIO

    from amplihack_hive.cli.commands_memory import LearnProgress

    now = [0.0]
    stream = StringIO()
    with LearnProgress(1000, quiet=False, every=5.0, clock=lambda: now[0], stream=stream) as p:
        for _ in range(10):
            now[0] += 1.0
            p.advance(100)
    assert stream.getvalue().splitlines() == [
        "learning: 500 of 1000 items sent (50%), 100 items/s",
        "learning: 1000 of 1000 items sent (100%), 100 items/s",
    ]
    quiet = StringIO()
    with LearnProgress(10, quiet=True, every=0.0, stream=quiet) as p:
        p.advance(10)
    assert quiet.getvalue() == ""


@slow
def test_ctrl_c_during_learn_says_how_many_were_stored_and_exits_130(tmp_path: Path) -> None:
    home = tmp_path / "int-home"
    base = ("--home", str(home))
    made = run_module(*base, "create", "int", "--agents", "3", "--backend", "memory", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    big = tmp_path / "big.txt"
    big.write_text(
        "\n\n".join(f"Pallet {i} waits at bay B{i} for truck T{i}" for i in range(60000))
    )
    env = dict(os.environ)
    if not installed():
        env["PYTHONPATH"] = str(REPO_ROOT)
    try:
        assert run_module(*base, "start", "int", cwd=tmp_path).returncode == 0
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "amplihack_hive",
                *base,
                "learn",
                "int",
                str(big),
                "--batch",
                "100",
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while True:  # until the hive holds some of the items: well into the learn
            status = run_module(*base, "status", "int", "--json", cwd=tmp_path)
            if sum(a["facts"] or 0 for a in json.loads(status.stdout)["agents"]) > 0:
                break
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.5)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130, (stdout, stderr)
        assert "Traceback" not in stderr
        assert "unreachable" not in stderr and "not stored" not in stderr  # no agent blamed
        line = next(ln for ln in stderr.splitlines() if "interrupted:" in ln)
        stored = int(line.split("interrupted: ")[1].split(" of ")[0])
        assert " of 60000 items stored" in line and 0 < stored < 60000
        status = run_module(*base, "status", "int", "--json", cwd=tmp_path)
        held = sum(a["facts"] for a in json.loads(status.stdout)["agents"])
        assert held >= stored * 3  # every acknowledged item is on its 3 replicas (R=3)
    finally:
        run_module(*base, "stop", "int", cwd=tmp_path)


def test_recall_that_misses_a_term_owners_says_so_and_exits_3(cli: Cli, hive_home: Path) -> None:
    from amplihack_hive.memory.records import CORPUS_TERM
    from amplihack_hive.memory.ring import HashRing

    names = [f"agent-{i}" for i in range(5)]
    ring = HashRing(names)
    corpus = set(ring.owners(CORPUS_TERM, 3))
    # a word all of whose owners can be stopped while the corpus list stays reachable
    word = next(
        w for w in (f"crate{i}" for i in range(1000)) if not corpus <= set(ring.owners(w, 3))
    )
    made = cli("create", "inc", "--agents", "5", "--backend", "memory", "--restart", "no")
    assert made.exit_code == 0
    assert cli("start", "inc").exit_code == 0
    try:
        learned = cli("learn", "inc", "--json", input=f"The {word} sits on shelf S9")
        assert json.loads(learned.stdout) == {"stored": 1, "failed": 0}
        whole = cli("recall", "inc", word, "--json")
        assert whole.exit_code == 0 and json.loads(whole.stdout)[0]["content"].startswith("The")
        pids = {a["name"]: a["pid"] for a in status_json(cli, "status", "inc")[1]["agents"]}
        gone = ring.owners(word, 3)
        for agent in gone:
            kill9(pids[agent])
        partial = cli("recall", "inc", word, "--json")
        assert partial.exit_code == 3, partial.stderr
        assert json.loads(partial.stdout) == []  # the --json list all the same
        assert "may be incomplete" in partial.stderr
        assert all(agent in partial.stderr for agent in gone)
        assert "ClientConnectorError" not in partial.stderr  # said in words, once
        table = cli("recall", "inc", word)
        assert table.exit_code == 3
    finally:
        assert cli("stop", "inc").exit_code == 0


def test_learn_recall_and_ask_through_an_entry_url_as_on_azure(
    cli: Cli, hive_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--target azure talks to one agent's URL, which coordinates (the Azure entry app);
    here the far end is a real local agent on loopback, with the hive's token."""
    from amplihack_hive.azure.deployment import save_entry

    assert cli("create", "az", "--agents", "3", "--backend", "memory").exit_code == 0
    assert cli("start", "az").exit_code == 0
    try:
        entry = status_json(cli, "status", "az")[1]["agents"][1]["url"]
        url = ("--target", "azure", "--url", entry)
        facts = "The forklift project has 80,000 euros left\n\nOwls hunt at night"
        learned = cli("learn", "az", "--json", *url, input=facts)
        assert learned.exit_code == 0, learned.stderr
        assert json.loads(learned.stdout) == {"stored": 2, "failed": 0}
        hits = json.loads(cli("recall", "az", "forklift euros", "--json", *url).stdout)
        assert hits[0]["content"] == "The forklift project has 80,000 euros left"
        answer = json.loads(
            cli("ask", "az", "How much money does the forklift have?", "--json", *url).stdout
        )
        assert "80,000" in answer["answer"] and answer["complete"] is True
        # the local client sees what went in through the entry
        local = json.loads(cli("recall", "az", "owls", "--json").stdout)
        assert local[0]["content"] == "Owls hunt at night"
        # without --url: the entry a deployment recorded
        save_entry(hive_home, "az", entry, "rg")
        recorded = cli("recall", "az", "owls", "--target", "azure", "--json")
        assert recorded.exit_code == 0 and json.loads(recorded.stdout)[0]["content"].startswith(
            "Owls"
        )
        (hive_home / "az" / "azure" / "entry.json").unlink()
        assert_one_line_error(cli("recall", "az", "owls", "--target", "azure"), "pass --url")
        assert_one_line_error(cli("recall", "az", "owls", "--url", entry), "--target azure")
        wrong = cli(
            "recall", "az", "owls", "--target", "azure", "--url", entry.replace("http://", "ftp://")
        )
        assert_one_line_error(wrong, "https://")
        monkeypatch.setenv("AMPLIHACK_HIVE_TOKEN", "not-the-token")  # as a CI job sets it
        assert_one_line_error(cli("recall", "az", "owls", *url), "missing or wrong hive token")
    finally:
        assert cli("stop", "az").exit_code == 0
