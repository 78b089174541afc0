"""The agent's loop: observe, orient, decide, act.

- observe: content to learn and questions arrive over HTTP;
- orient: content is checked and tokenized (its id is its content address, so a repeat
  is recognised as the same fact); a question is oriented by recalling from the hive;
- decide: which items can be stored and which are refused (and why); which recalled
  sentences answer the question;
- act: remember on a write quorum, or answer; and, on a timer, upkeep.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from amplihack_hive.agent.answer import Answer, extractive_answer
from amplihack_hive.errors import HiveError, InvalidInputError
from amplihack_hive.memory.coordinator import Coordinator
from amplihack_hive.memory.node import MemoryNode
from amplihack_hive.memory.records import Fact, Posting

logger = logging.getLogger(__name__)

#: Items accepted in one learn request.
MAX_LEARN_BATCH = 5000


class AgentBrain:
    def __init__(
        self,
        nodes: dict[str, MemoryNode],
        coordinator: Coordinator,
        prompts: dict[str, str] | None = None,
        upkeep_s: float = 30.0,
    ) -> None:
        self.nodes = nodes
        self.coordinator = coordinator
        self.prompts = prompts or {}
        self.upkeep_s = upkeep_s
        self.learned = 0
        self.answered = 0

    @property
    def hosted(self) -> list[str]:
        return list(self.nodes)

    def local_stats(self) -> dict[str, dict[str, int]]:
        return {
            name: {"facts": n.store.fact_count(), "postings": n.store.posting_count()}
            for name, n in self.nodes.items()
        }

    async def learn(self, items: list[Any]) -> dict[str, Any]:
        """Store items; each one is stored durably or reported as failed, never dropped."""
        if len(items) > MAX_LEARN_BATCH:
            raise InvalidInputError(f"at most {MAX_LEARN_BATCH} items per learn request")
        valid: list[tuple[Fact, list[Posting]]] = []
        errors: list[dict[str, Any]] = []
        for i, item in enumerate(items):
            try:
                valid.append(self.coordinator.prepare(item))
            except HiveError as exc:
                errors.append({"index": i, "error": str(exc)})
        ids: list[str] = []
        if valid:
            try:
                ids = await self.coordinator.remember_prepared(valid)
            except HiveError as exc:
                logger.warning("learn batch of %d failed: %s", len(valid), exc)
                return {
                    "stored": 0,
                    "failed": len(items),
                    "ids": [],
                    "errors": [*errors, {"index": None, "error": str(exc)}],
                }
        self.learned += len(ids)
        return {"stored": len(ids), "failed": len(errors), "ids": ids, "errors": errors}

    async def ask(self, question: str, limit: int = 10) -> Answer:
        hits = await self.coordinator.recall(question, limit)
        self.answered += 1
        return extractive_answer(
            question, list(hits), complete=hits.complete, unreachable=hits.unreachable
        )

    async def upkeep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.upkeep_s)
            try:
                logger.info(
                    "upkeep: records %s, learned %d, answered %d",
                    self.local_stats(),
                    self.learned,
                    self.answered,
                )
            except HiveError as exc:
                logger.warning("upkeep failed: %s", exc)
