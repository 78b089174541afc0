"""``amplihack-hive mcp NAME`` end to end: the MCP SDK's own client starts the command over
stdio, against a running local hive of real agent processes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from helpers import REPO_ROOT, installed, started_hive
from mcp import Client
from mcp.client.stdio import StdioServerParameters


def server_params(home: Path, name: str) -> StdioServerParameters:
    env = {"AMPLIHACK_HIVE_HOME": str(home)}
    if not installed():
        env["PYTHONPATH"] = str(REPO_ROOT)
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "amplihack_hive", "mcp", name],
        env=env,
        cwd=str(home),
    )


def payload(result: Any) -> dict[str, Any]:
    """A tool result's JSON: the structured content, which the text content repeats."""
    assert not result.is_error, result.content
    text = json.loads(result.content[0].text)
    if result.structured_content is not None:
        assert result.structured_content == text
    assert isinstance(text, dict)
    return text


@pytest.mark.slow
def test_an_mcp_client_remembers_recalls_asks_forgets_and_sees_status(hive_home: Path) -> None:
    sup = started_hive(hive_home, "m", 3, backend="memory")

    async def session() -> None:
        async with Client(server_params(hive_home, "m"), read_timeout_seconds=60) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert set(tools) == {"remember", "recall", "ask", "forget", "escalate", "status"}
            for tool in tools.values():
                assert tool.description and len(tool.description) > 40
            schema = tools["remember"].input_schema
            assert schema["required"] == ["content"]
            assert {"content", "kind", "subject", "metadata"} <= set(schema["properties"])
            assert tools["recall"].input_schema["properties"]["limit"]["maximum"] == 100

            stored = payload(
                await client.call_tool(
                    "remember",
                    {
                        "content": "The fleet dashboard is run by Priya Raman",
                        "subject": "fleet dashboard owner",
                        "metadata": {"source": "standup"},
                    },
                )
            )
            fid = stored["id"]
            payload(await client.call_tool("remember", {"content": "Owls hunt at night"}))
            hits = payload(await client.call_tool("recall", {"question": "who runs the fleet?"}))
            assert hits["complete"] is True and hits["unreachable"] == []
            assert hits["hits"][0]["id"] == fid
            answer = payload(
                await client.call_tool("ask", {"question": "Who runs the fleet dashboard?"})
            )
            assert "Priya Raman" in answer["answer"]
            assert answer["sources"][0]["id"] == fid

            status = payload(await client.call_tool("status", {}))
            assert status["hive"] == "m" and status["healthy"] == 3
            assert [a["state"] for a in status["agents"]] == ["healthy"] * 3

            gone = payload(await client.call_tool("forget", {"fact_id": fid}))
            assert gone == {"id": fid, "forgotten": True}
            after = payload(await client.call_tool("recall", {"question": "fleet dashboard"}))
            assert fid not in {h["id"] for h in after["hits"]}

            # errors are tool errors with our message, and the server goes on serving
            bad = await client.call_tool("forget", {"fact_id": "../../etc/passwd"})
            assert bad.is_error and "fact id" in bad.content[0].text
            empty = await client.call_tool("remember", {"content": "   "})
            assert empty.is_error and "Traceback" not in empty.content[0].text
            invalid = await client.call_tool("recall", {"question": "x", "limit": 0})
            assert invalid.is_error
            again = payload(await client.call_tool("recall", {"question": "owls"}))
            assert again["hits"][0]["content"] == "Owls hunt at night"

    try:
        anyio.run(session)
    finally:
        sup.stop()


def test_mcp_of_a_hive_that_is_not_running_is_a_one_line_error(hive_home: Path) -> None:
    from helpers import run_module

    from amplihack_hive.hive.config import create_hive

    create_hive(hive_home, "idle", agents=1, backend="memory")
    env_home = ("--home", str(hive_home))
    result = run_module(*env_home, "mcp", "idle", cwd=hive_home)
    assert result.returncode == 1
    assert result.stdout == ""  # stdout is the protocol: nothing there but messages
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "not running" in lines[0]
