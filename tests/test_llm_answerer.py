"""The optional LLM answerer, against a loopback server playing the Messages API."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from amplihack_hive.agent.brain import AgentBrain
from amplihack_hive.agent.llm import LlmAnswerer
from amplihack_hive.memory.coordinator import Coordinator
from amplihack_hive.memory.node import MemoryNode
from amplihack_hive.memory.records import fact_id_for
from amplihack_hive.memory.ring import HashRing
from amplihack_hive.memory.store import InMemoryStore
from amplihack_hive.transport.inprocess import InProcessTransport


def brain(llm: LlmAnswerer | None, prompts: dict[str, str] | None = None) -> AgentBrain:
    node = MemoryNode("agent-0", InMemoryStore())
    transport = InProcessTransport({"agent-0": node})
    coordinator = Coordinator(HashRing(["agent-0"]), transport, replication=1)
    return AgentBrain({"agent-0": node}, coordinator, llm=llm, prompts=prompts)


async def with_fake_model(status: int, reply: dict[str, Any], run: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    async def messages(request: web.Request) -> web.Response:
        seen.append({"headers": dict(request.headers), "body": await request.json()})
        return web.json_response(reply, status=status)

    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        await run(f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()
    return seen


def test_llm_answers_from_the_recalled_facts() -> None:
    answers = []

    async def run(base: str) -> None:
        b = brain(
            LlmAnswerer("k-123", model="m-test", base_url=base),
            {"agent-0": "You are the ops team's agent; answer tersely."},
        )
        await b.learn(
            [
                "Sarah Chen's birthday is March 15",
                "Sarah Chen likes tea",  # recalled, not cited
                "Bob likes tea",
            ]
        )
        answers.append(await b.ask("When is Sarah Chen's birthday?"))

    birthday = fact_id_for("Sarah Chen's birthday is March 15")
    text = f"March 15 [{birthday[:8]}]."
    reply = {"content": [{"type": "text", "text": text}]}
    seen = asyncio.run(with_fake_model(200, reply, run))
    assert answers[0].answer == text and answers[0].answerer == "llm"
    # the sources are the facts the model cited, by id
    assert [h.id for h in answers[0].sources] == [birthday]
    assert seen[0]["headers"]["x-api-key"] == "k-123"
    assert seen[0]["headers"]["anthropic-version"] == "2023-06-01"
    assert seen[0]["body"]["model"] == "m-test"
    sent = seen[0]["body"]["messages"][0]["content"]
    assert f"[{birthday[:8]}, " in sent and "] Sarah Chen's birthday is March 15" in sent
    system = seen[0]["body"]["system"]
    assert system.startswith("You are the ops team's agent; answer tersely.\n\n")
    assert "cite each fact you use by its id" in system


def test_a_failing_model_falls_back_to_the_extractive_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers = []

    async def run(base: str) -> None:
        b = brain(LlmAnswerer("k", base_url=base))
        await b.learn(["The vault code is 7781"])
        answers.append(await b.ask("What is the vault code?"))

    asyncio.run(with_fake_model(529, {"error": {"message": "overloaded"}}, run))
    assert answers[0].answerer == "extractive"
    assert "7781" in answers[0].answer
    assert "overloaded" in caplog.text


def test_the_answerer_is_off_without_a_key_and_never_shows_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert LlmAnswerer.from_env() is None
    monkeypatch.setenv("ANTHROPIC_API_KEY", "secret-key")
    llm = LlmAnswerer.from_env()
    assert llm is not None and "secret-key" not in repr(llm)


def test_the_key_the_azure_apps_get_turns_the_answerer_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """agent-app.bicep hands the key over as AMPLIHACK_HIVE_API_KEY (a secretRef)."""
    module = (Path(__file__).resolve().parent.parent / "bicep/modules/agent-app.bicep").read_text()
    assert "name: 'AMPLIHACK_HIVE_API_KEY'" in module
    monkeypatch.setenv("AMPLIHACK_HIVE_API_KEY", "from-the-secret")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "from-the-shell")
    llm = LlmAnswerer.from_env()
    assert llm is not None and llm.api_key == "from-the-secret"


def test_agent_processes_read_their_prompts_from_the_hive_config(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from amplihack_hive.agent.process import AgentOptions, agent_prompts
    from amplihack_hive.hive.config import add_agent, create_hive
    from amplihack_hive.hive.home import config_path, hive_dir

    create_hive(tmp_path, "p", agents=2, prompt="You keep the team's notes.")
    add_agent(tmp_path, "p", "agent-9")  # --prompt is optional
    directory = hive_dir(tmp_path, "p")
    opts = AgentOptions(directory, ["agent-1", "agent-9"], ["agent-0", "agent-1", "agent-9"])
    assert agent_prompts(opts) == {"agent-1": "You keep the team's notes."}
    config_path(directory).write_text("agents: [oops")  # a hand edit gone wrong
    assert agent_prompts(opts) == {}
    assert "prompts are not used" in caplog.text
