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
from amplihack_hive.hive.token import CREDENTIAL_ENV, agent_credential, read_token, token_path

pytestmark = pytest.mark.slow

SECRET = "agent-0 keeps the vault code 4471 under the mat"
TEAM = "the ops team moved the vault budget to 1200"
PUBLIC = "the vault opens at noon on weekdays"


def cli(
    home: Path, *args: str, input: str | None = None, env: dict[str, str] | None = None
) -> Result:
    return CliRunner().invoke(app, ["--home", str(home), *args], input=input, env=env)


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
        # records per agent count every scope's: /stats is the admin's
        rec = read_records(sup.dir)[0]
        peek = urllib.request.Request(
            rec.url + "/stats", headers={"Authorization": f"Bearer {mine}"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(peek, timeout=30)
        assert refused.value.code == 403
        # a true credential of an agent that is not (or no longer) a member opens nothing
        status, body = post(sup, "/recall", {"question": "vault"}, agent_credential(token, "gone"))
        assert status == 401 and "not a member" in json.dumps(body)

        # a client holding agent-2's credential and not the token file: the CLI with
        # $AMPLIHACK_HIVE_CREDENTIAL, agent-2's scopes only
        hidden = token_path(sup.dir).rename(sup.dir / "token.away")
        try:
            env = {CREDENTIAL_ENV: mine}
            got = cli(hive_home, "recall", "s", "vault", "--json", env=env)
            assert got.exit_code == 0, got.stderr
            assert [h["content"] for h in json.loads(got.stdout)] == [PUBLIC]
            peek = cli(hive_home, "recall", "s", "vault", "--scope", "agent:agent-0", env=env)
            assert peek.exit_code == 1 and "4471" not in peek.stdout + peek.stderr
            other = cli(hive_home, "recall", "s", "vault", "--as", "agent-0", env=env)
            assert other.exit_code == 1 and "is agent-2's" in other.stderr
            bad = cli(hive_home, "recall", "s", "vault", env={CREDENTIAL_ENV: "nope"})
            assert bad.exit_code == 1 and "not an agent credential" in bad.stderr
            fake = cli(hive_home, "recall", "s", "vault", env={CREDENTIAL_ENV: forged})
            assert fake.exit_code == 1
        finally:
            hidden.rename(token_path(sup.dir))

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

        # MCP with agent-2's credential in $AMPLIHACK_HIVE_CREDENTIAL and no token file
        async def held() -> None:
            params = server_params(hive_home, "s")
            params.env = {**(params.env or {}), CREDENTIAL_ENV: mine}
            async with Client(params, read_timeout_seconds=60) as client:
                # no status: it reads the token file and every scope's record counts
                tools = {t.name for t in (await client.list_tools()).tools}
                assert "recall" in tools and "status" not in tools
                hits = payload(await client.call_tool("recall", {"question": "vault code"}))
                assert [h["content"] for h in hits["hits"]] == [PUBLIC]
                peek = await client.call_tool(
                    "recall", {"question": "vault", "scopes": ["agent:agent-0"]}
                )
                assert peek.is_error and "4471" not in peek.content[0].text

        hidden = token_path(sup.dir).rename(sup.dir / "token.away")
        try:
            anyio.run(held)
        finally:
            hidden.rename(token_path(sup.dir))

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


def test_a_hive_sends_facts_up_to_its_parent_and_recalls_through_it(hive_home: Path) -> None:
    assert cli(hive_home, "create", "root", "--agents", "2", "--backend", "memory").exit_code == 0
    made = cli(
        hive_home, "create", "team", "--agents", "2", "--backend", "memory", "--parent", "root"
    )
    assert made.exit_code == 0, made.stderr
    assert cli(hive_home, "create", "lone", "--backend", "memory").exit_code == 0
    started = [cli(hive_home, "start", h, "--timeout", "60") for h in ("root", "team", "lone")]
    assert all(r.exit_code == 0 for r in started), [r.stderr for r in started]
    try:
        assert (
            cli(
                hive_home,
                "learn",
                "root",
                "-",
                "--quiet",
                input="the root hive says the vault opens at nine",
            ).exit_code
            == 0
        )
        args = ["learn", "team", "-", "--format", "jsonl", "--quiet"]
        lines = [
            {"content": "the team vault budget is 1200", "subject": "vault/budget"},
            {"content": "agent-0 keeps the vault key", "scope": "agent:agent-0"},
        ]
        assert cli(hive_home, *args, input="\n".join(map(json.dumps, lines))).exit_code == 0

        def recall(hive: str, *extra: str) -> list[dict[str, Any]]:
            result = cli(hive_home, "recall", hive, "vault", "--json", *extra)
            assert result.exit_code == 0, result.stderr
            return json.loads(result.stdout)

        assert {h["content"] for h in recall("team")} == {"the team vault budget is 1200"}
        both = recall("team", "--parent")
        assert {(h["content"], h.get("hive", "")) for h in both} == {
            ("the team vault budget is 1200", ""),
            ("the root hive says the vault opens at nine", "root"),
        }
        # a fact of the team's hive scope goes up: one copy, in the parent
        fid = next(h["id"] for h in both if not h.get("hive"))
        up = cli(hive_home, "escalate", "team", fid, "parent", "--json")
        assert up.exit_code == 0, up.stderr
        assert json.loads(up.stdout)["scope"] == "parent"
        assert recall("team") == []
        assert "the team vault budget is 1200" in {h["content"] for h in recall("root")}
        [moved] = [h for h in recall("root") if "budget" in h["content"]]
        assert moved["subject"] == "vault/budget"
        # a private fact does not leave the hive; a hive without a parent says so
        private = json.loads(
            cli(hive_home, "recall", "team", "key", "--scope", "agent:agent-0", "--json").stdout
        )[0]["id"]
        refused = cli(hive_home, "escalate", "team", private, "parent")
        assert refused.exit_code == 1 and "escalate it to hive first" in refused.stderr
        lone = cli(hive_home, "recall", "lone", "vault", "--parent")
        assert lone.exit_code == 1 and "has no parent" in lone.stderr
    finally:
        for h in ("root", "team", "lone"):
            cli(hive_home, "stop", h)
