"""The config commands through the real typer app: exit codes, output streams, errors.

Exit codes: 0 success, 1 an error explained on one line of stderr, 2 bad usage.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import assert_one_line_error, installed, run_module
from typer.testing import Result

from amplihack_hive._version import __version__
from amplihack_hive.cli.app import Backend
from amplihack_hive.hive.config import BACKENDS, load_hive
from amplihack_hive.hive.token import read_token

Cli = Callable[..., Result]
REPO_ROOT = Path(__file__).resolve().parent.parent


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


# --- global options -------------------------------------------------------------------------


def test_version(cli: Cli) -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout == f"amplihack-hive {__version__}\n"


def test_help_lists_the_commands(cli: Cli) -> None:
    result = cli("--help")
    assert result.exit_code == 0
    for command in ("create", "add-agent", "remove-agent", "list"):
        assert command in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["no-such-command"],
        ["create"],  # missing NAME
        ["create", "h", "--agents", "0"],
        ["create", "h", "--agents", "many"],
        ["create", "h", "--replication", "0"],
        ["create", "h", "--backend", "sqlite"],
        ["create", "h", "--bogus"],
        ["add-agent", "h"],  # missing AGENT
        ["remove-agent", "h"],
        ["list", "extra"],
    ],
)
def test_bad_usage_exits_2_and_writes_nothing(cli: Cli, hive_home: Path, args: list[str]) -> None:
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert not hive_home.exists()


def test_backend_choices_are_the_config_backends() -> None:
    assert tuple(b.value for b in Backend) == BACKENDS


def test_home_option_beats_the_env_var(cli: Cli, hive_home: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-home"
    assert cli("--home", str(other), "create", "h").exit_code == 0
    assert (other / "h" / "config.yaml").is_file()
    assert not hive_home.exists()
    assert cli("create", "h2").exit_code == 0  # from $AMPLIHACK_HIVE_HOME
    assert (hive_home / "h2" / "config.yaml").is_file()


def test_default_home_is_under_home(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, hive_home: Path
) -> None:
    monkeypatch.delenv("AMPLIHACK_HIVE_HOME")
    assert cli("create", "h").exit_code == 0
    assert (Path(os.environ["HOME"]) / ".amplihack" / "hives" / "h" / "config.yaml").is_file()


# --- create ------------------------------------------------------------------------------------


def test_create_prints_one_human_line(cli: Cli, hive_home: Path) -> None:
    result = cli("create", "h", "--agents", "3", "--replication", "2", "--prompt", "be brief")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        f"created hive h with 3 agents (replication 2, backend kuzu) in {hive_home / 'h'}"
    ]
    cfg = load_hive(None, "h")
    assert cfg.agent_names == ["agent-0", "agent-1", "agent-2"]
    assert {a.prompt for a in cfg.agents} == {"be brief"}


def test_create_json_is_one_document_on_stdout(cli: Cli, hive_home: Path) -> None:
    result = cli("create", "h", "--agents", "2", "--backend", "memory", "--json")
    assert result.exit_code == 0
    assert result.stderr == ""
    document = json.loads(result.stdout)
    assert document["hive"] == "h"
    assert document["path"] == str(hive_home / "h")
    assert document["config"]["backend"] == "memory"
    assert [a["name"] for a in document["config"]["agents"]] == ["agent-0", "agent-1"]
    assert read_token(hive_home / "h") not in result.stdout  # the secret stays in its file


def test_create_makes_a_0600_token(cli: Cli, hive_home: Path) -> None:
    assert cli("create", "h").exit_code == 0
    token = hive_home / "h" / "token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert len(token.read_text().strip()) >= 40


def test_create_existing_without_force_fails_and_changes_nothing(cli: Cli, hive_home: Path) -> None:
    assert cli("create", "h", "--agents", "2").exit_code == 0
    before = snapshot(hive_home / "h")
    result = cli("create", "h", "--agents", "5")
    assert_one_line_error(result, "hive 'h' already exists", "--force")
    assert snapshot(hive_home / "h") == before


def test_create_existing_json_error_leaves_stdout_empty(cli: Cli) -> None:
    assert cli("create", "h").exit_code == 0
    assert_one_line_error(cli("create", "h", "--json"), "already exists")


def test_create_force_replaces_config_token_and_state(cli: Cli, hive_home: Path) -> None:
    assert cli("create", "h", "--agents", "3").exit_code == 0
    old_token = read_token(hive_home / "h")
    (hive_home / "h" / "logs").mkdir()
    (hive_home / "h" / "logs" / "agent-2.log").write_text("old")
    result = cli("create", "h", "--force")
    assert result.exit_code == 0, result.stderr
    assert load_hive(None, "h").agent_names == ["agent-0"]
    assert read_token(hive_home / "h") != old_token
    assert not (hive_home / "h" / "logs").exists()


@pytest.mark.parametrize("name", ["../x", "Agent_1", "a--b", "x/y", "café", "-h-", "a" * 33])
def test_invalid_hive_names_are_refused_before_anything_is_written(
    cli: Cli, hive_home: Path, name: str
) -> None:
    result = cli("create", "--", name) if name.startswith("-") else cli("create", name)
    assert_one_line_error(result, f"invalid hive name {name!r}", "lowercase letters")
    assert not hive_home.exists()


def test_verbose_shows_the_traceback_and_still_exits_1(cli: Cli) -> None:
    result = cli("-v", "create", "../x")
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert "InvalidInputError" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("error: invalid hive name")


def test_a_home_that_is_a_file_is_a_one_line_error(cli: Cli, tmp_path: Path) -> None:
    home = tmp_path / "not-a-dir"
    home.write_text("x")
    assert_one_line_error(cli("--home", str(home), "create", "h"), str(home))


# --- add-agent / remove-agent -----------------------------------------------------------------


def test_add_agent(
    cli: Cli, hive_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("create", "h").exit_code == 0
    monkeypatch.chdir(tmp_path)
    result = cli("add-agent", "h", "helper", "--prompt", "you help", "--kuzu-db", "dbs/helper")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "added agent helper to hive h (2 agents)\n"
    agent = load_hive(None, "h").agent("helper")
    assert agent.prompt == "you help"
    assert agent.kuzu_db == str(tmp_path / "dbs" / "helper")  # made absolute by the CLI


def test_add_agent_errors(cli: Cli, hive_home: Path) -> None:
    assert cli("create", "h").exit_code == 0
    before = snapshot(hive_home / "h")
    assert_one_line_error(cli("add-agent", "h", "agent-0", "--prompt", "x"), "already has")
    assert_one_line_error(cli("add-agent", "h", "Bad_1", "--prompt", "x"), "invalid agent name")
    assert_one_line_error(cli("add-agent", "h", "../x", "--prompt", "x"), "invalid agent name")
    assert snapshot(hive_home / "h") == before
    missing = assert_one_line_error(cli("add-agent", "nope", "a", "--prompt", "x"), "not found")
    assert str(hive_home / "nope" / "config.yaml") in missing


def test_remove_agent(cli: Cli, hive_home: Path) -> None:
    assert cli("create", "h", "--agents", "2").exit_code == 0
    result = cli("remove-agent", "h", "agent-0")
    assert result.exit_code == 0
    assert result.stdout == "removed agent agent-0 from hive h (1 agent left)\n"
    assert load_hive(None, "h").agent_names == ["agent-1"]
    assert_one_line_error(cli("remove-agent", "h", "agent-0"), "has no agent 'agent-0'")
    assert_one_line_error(cli("remove-agent", "h", "agent-1"), "last agent")
    assert_one_line_error(cli("remove-agent", "nope", "agent-1"), "hive 'nope' not found")


def test_a_config_edited_into_nonsense_is_reported_not_overwritten(
    cli: Cli, hive_home: Path
) -> None:
    assert cli("create", "h").exit_code == 0
    config = hive_home / "h" / "config.yaml"
    config.write_text("name: h\nagents:\n  - name: agent-0\n   prompt: oops\n")
    before = config.read_bytes()
    line = assert_one_line_error(cli("add-agent", "h", "a1", "--prompt", "x"), str(config))
    assert "line 4" in line and "malformed YAML" in line
    assert config.read_bytes() == before

    config.write_text("name: h\nreplication: lots\nagents:\n  - name: agent-0\n")
    assert_one_line_error(
        cli("remove-agent", "h", "agent-0"), str(config), "replication: expected an integer"
    )


# --- list ---------------------------------------------------------------------------------------


def test_list_empty(cli: Cli, hive_home: Path) -> None:
    result = cli("list")
    assert result.exit_code == 0
    assert result.stdout == f"no hives in {hive_home}\n"
    assert json.loads(cli("list", "--json").stdout) == {"home": str(hive_home), "hives": []}


def test_list_shows_hives_and_broken_ones(cli: Cli, hive_home: Path) -> None:
    assert cli("create", "alpha", "--agents", "3").exit_code == 0
    assert cli("create", "beta", "--backend", "memory").exit_code == 0
    (hive_home / "beta" / "config.yaml").write_text("name: beta\nagents: 3\n")

    table = cli("list")
    assert table.exit_code == 0
    assert "alpha" in table.stdout and "beta" in table.stdout
    assert "broken" in table.stdout
    config = hive_home / "beta" / "config.yaml"
    assert f"beta: {config}: agents: expected a list, got an integer" in table.stdout.splitlines()

    result = cli("list", "--json")
    assert result.exit_code == 0
    assert result.stderr == ""
    hives = json.loads(result.stdout)["hives"]
    assert [h["name"] for h in hives] == ["alpha", "beta"]
    assert hives[0] == {
        "name": "alpha",
        "path": str(hive_home / "alpha"),
        "agents": 3,
        "replication": 3,
        "backend": "kuzu",
        "error": None,
    }
    assert hives[1]["agents"] is None and "agents: expected a list" in hives[1]["error"]


# --- the real entry points, in subprocesses ------------------------------------------------------


def test_python_dash_m_entry_point(tmp_path: Path) -> None:
    home = tmp_path / "sub-home"
    version = run_module("--version", cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout == f"amplihack-hive {__version__}\n"

    created = run_module(
        "--home", str(home), "create", "h", "--agents", "2", "--json", cwd=tmp_path
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["path"] == str(home / "h")
    assert stat.S_IMODE((home / "h" / "token").stat().st_mode) == 0o600

    again = run_module("--home", str(home), "create", "h", cwd=tmp_path)
    assert again.returncode == 1
    assert again.stdout == ""
    assert again.stderr.startswith("error: hive 'h' already exists")
    assert len(again.stderr.splitlines()) == 1

    usage = run_module("create", "h", "--agents", "0", cwd=tmp_path)
    assert usage.returncode == 2


def test_console_script(tmp_path: Path) -> None:
    script = shutil.which("amplihack-hive", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("amplihack-hive is not installed in this environment (pip install .)")
    home = tmp_path / "script-home"
    result = subprocess.run(
        [script, "--home", str(home), "create", "h", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["hive"] == "h"
    version = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert version.stdout == f"amplihack-hive {__version__}\n"


def test_concurrent_cli_calls_lose_no_update(tmp_path: Path, hive_home: Path) -> None:
    assert run_module("create", "h", cwd=tmp_path).returncode == 0
    env = dict(os.environ)
    if not installed():
        env["PYTHONPATH"] = str(REPO_ROOT)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "amplihack_hive",
                "add-agent",
                "h",
                f"extra-{i}",
                "--prompt",
                "x",
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(6)
    ]
    outcomes = [
        (proc.wait(timeout=60), proc.stderr.read() if proc.stderr else "") for proc in procs
    ]
    for proc in procs:
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert outcomes == [(0, "")] * 6
    names = load_hive(None, "h").agent_names
    assert sorted(names) == sorted(["agent-0", *(f"extra-{i}" for i in range(6))])


def test_create_records_agents_per_process(cli: Cli) -> None:
    result = cli("create", "packed", "--agents", "6", "--agents-per-process", "3", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["config"]["agents_per_process"] == 3
    assert cli("create", "bad", "--agents-per-process", "0").exit_code == 2
