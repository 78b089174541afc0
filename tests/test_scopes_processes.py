"""Scopes with real agent processes: an agent's private facts never reach another agent,
through the CLI, the HTTP API or MCP, also after repair and a membership change."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from test_mcp import payload, server_params
from typer.testing import CliRunner, Result

from amplihack_hive.agent.runstate import read_records
from amplihack_hive.cli.app import app
from amplihack_hive.hive.supervisor import Supervisor
from amplihack_hive.hive.token import agent_credential, read_token

pytestmark = pytest.mark.slow

SECRET = "agent-0 keeps the vault code 4471 under the mat"
TEAM = "the ops team moved the vault budget to 1200"
PUBLIC = "the vault opens at noon on weekdays"


def cli(home: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(app, ["--home", str(home), *args], input=input)


def post(
    sup: Supervisor, path: str, body: dict[str, Any], token: str, agent: str = "agent-3"
) -> tuple[int, dict[str, Any]]:
    rec = next(r for r in read_records(sup.dir) if agent in r.agents)
    req = urllib.request.Request(
        rec.url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def recalled(home: Path, as_agent: str, question: str = "vault") -> set[str]:
    result = cli(home, "recall", "s", question, "--as", as_agent, "--json")
    assert result.exit_code == 0, result.stderr
    return {h["content"] for h in json.loads(result.stdout)}


def test_private_facts_stay_private_through_cli_http_mcp_repair_and_a_join(
    hive_home: Path,
) -> None:
    made = cli(hive_home, "create", "s", "--agents", "4", "--group", "ops=agent-0,agent-1")
    assert made.exit_code == 0, made.stderr
    assert cli(hive_home, "start", "s", "--timeout", "60").exit_code == 0
    sup = Supervisor(hive_home, "s")
    try:
        # the CLI, as each agent
        args = ["learn", "s", "-", "--quiet"]
        assert (
            cli(
                hive_home, *args, "--as", "agent-0", "--scope", "agent:agent-0", input=SECRET
            ).exit_code
            == 0
        )
        assert (
            cli(hive_home, *args, "--as", "agent-1", "--scope", "group:ops", input=TEAM).exit_code
            == 0
        )
        assert cli(hive_home, *args, input=PUBLIC).exit_code == 0
        refused = cli(hive_home, *args, "--as", "agent-2", "--scope", "group:ops", input="x y z")
        assert refused.exit_code == 1 and "no access to scope group:ops" in refused.stderr
        assert recalled(hive_home, "agent-0") == {SECRET, TEAM, PUBLIC}
        assert recalled(hive_home, "agent-1") == {TEAM, PUBLIC}
        assert recalled(hive_home, "agent-2") == {PUBLIC}
        admin = cli(hive_home, "recall", "s", "vault", "--json")
        assert {h["content"] for h in json.loads(admin.stdout)} == {PUBLIC}
        named = cli(hive_home, "recall", "s", "vault", "--scope", "agent:agent-0", "--json")
        [hit] = json.loads(named.stdout)
        assert (hit["content"], hit["scope"]) == (SECRET, "agent:agent-0")
        secret_id = hit["id"]

        # the HTTP API with agent-2's credential: nothing of agent-0's, not even that it exists
        token = read_token(sup.dir)
        mine = agent_credential(token, "agent-2")
        status, body = post(sup, "/recall", {"question": "vault code 4471"}, mine)
        assert status == 200 and [h["content"] for h in body["hits"]] == [PUBLIC]
        status, body = post(
            sup, "/recall", {"question": "vault", "scopes": ["agent:agent-0"]}, mine
        )
        assert status == 403 and "4471" not in json.dumps(body)
        assert post(sup, "/forget", {"id": secret_id}, mine) == (200, {"forgotten": False})
        status, _ = post(sup, "/escalate", {"id": secret_id, "scope": "hive"}, mine)
        assert status == 404
        # the agents' own protocol takes the hive token only
        status, body = post(sup, "/v1/memory/agent-0", {"op": "facts", "ids": [secret_id]}, mine)
        assert status == 403
        forged = mine.replace("agent-2", "agent-0", 1)
        assert post(sup, "/recall", {"question": "vault"}, forged)[0] == 401

        # MCP as agent-2: the same boundary
        async def session() -> None:
            params = server_params(hive_home, "s")
            params.args = [*params.args, "--as", "agent-2"]
            async with Client(params, read_timeout_seconds=60) as client:
                hits = payload(await client.call_tool("recall", {"question": "vault"}))
                assert [h["content"] for h in hits["hits"]] == [PUBLIC]
                bad = await client.call_tool(
                    "remember", {"content": "sneaky", "scope": "agent:agent-0"}
                )
                assert bad.is_error and "no access" in bad.content[0].text
                gone = payload(await client.call_tool("forget", {"fact_id": secret_id}))
                assert gone["forgotten"] is False

        anyio.run(session)

        # an agent joins group ops; repair and handoff move records onto it
        joined = cli(hive_home, "add-agent", "s", "agent-4", "--group", "ops")
        assert joined.exit_code == 0, joined.stderr
        assert cli(hive_home, "start", "s", "--timeout", "60").exit_code == 0
        time.sleep(1.5)  # agents re-read the membership every second
        for _ in range(3):
            for rec in read_records(sup.dir):
                post(sup, "/v1/admin/repair", {}, token, agent=rec.agents[0])
        assert recalled(hive_home, "agent-4") == {TEAM, PUBLIC}
        assert recalled(hive_home, "agent-2") == {PUBLIC}
        assert recalled(hive_home, "agent-0") == {SECRET, TEAM, PUBLIC}

        # escalate: agent-0 shares its fact with the hive, once
        moved = cli(hive_home, "escalate", "s", secret_id, "hive", "--as", "agent-0", "--json")
        assert moved.exit_code == 0, moved.stderr
        assert recalled(hive_home, "agent-2") == {SECRET, PUBLIC}
        hits = json.loads(
            cli(hive_home, "recall", "s", "vault code", "--as", "agent-0", "--json").stdout
        )
        assert [h["content"] for h in hits].count(SECRET) == 1
    finally:
        sup.stop()
