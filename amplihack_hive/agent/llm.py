"""An optional LLM answerer: used by an agent's /ask only when an API key is configured.

``AMPLIHACK_HIVE_API_KEY`` (what the Azure deployment sets, from a secret) or
``ANTHROPIC_API_KEY`` enables it (``AMPLIHACK_HIVE_LLM_MODEL`` picks the model,
``ANTHROPIC_BASE_URL`` the endpoint). It answers from the recalled facts only; when the call
fails the agent logs why and answers extractively, so asking never depends on the model.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import aiohttp

from amplihack_hive.agent.answer import cite
from amplihack_hive.errors import TransportError
from amplihack_hive.memory.hits import Hit

#: The hive's own name for the model's key (the Azure apps get it through a secretRef).
API_KEY_ENV = "AMPLIHACK_HIVE_API_KEY"

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "claude-sonnet-4-5"
SYSTEM = (
    "You answer questions for a team from the facts its agents remember. Use only the facts "
    "given, each shown with its id and date. If they do not answer the question, say you "
    "don't know. Answer in one or two sentences, never joining what two facts say into one "
    "claim, and cite each fact you use by its id in brackets, like [3f2a9c1e]."
)


@dataclass(frozen=True)
class LlmAnswerer:
    api_key: str
    model: str = DEFAULT_MODEL
    base_url: str = "https://api.anthropic.com"
    timeout_s: float = 30.0

    @classmethod
    def from_env(cls) -> LlmAnswerer | None:
        key = (
            os.environ.get(API_KEY_ENV, "").strip()
            or os.environ.get("ANTHROPIC_API_KEY", "").strip()
        )
        if not key:
            return None
        return cls(
            api_key=key,
            model=os.environ.get("AMPLIHACK_HIVE_LLM_MODEL", DEFAULT_MODEL),
            base_url=os.environ.get("ANTHROPIC_BASE_URL", "https://api.anthropic.com").rstrip("/"),
        )

    def __repr__(self) -> str:  # never show the key
        return f"LlmAnswerer(model={self.model!r}, base_url={self.base_url!r})"

    async def answer(self, question: str, hits: list[Hit], prompt: str | None = None) -> str:
        """The model's answer from ``hits``; ``prompt`` (the agent's own) comes first in
        the system prompt, the rules of answering from facts after it."""
        facts = "\n".join(f"{cite(h)} {h.content}" for h in hits)
        body = {
            "model": self.model,
            "max_tokens": 300,
            "system": f"{prompt.strip()}\n\n{SYSTEM}" if prompt and prompt.strip() else SYSTEM,
            "messages": [{"role": "user", "content": f"Facts:\n{facts}\n\nQuestion: {question}"}],
        }
        headers = {"x-api-key": self.api_key, "anthropic-version": "2023-06-01"}
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(f"{self.base_url}/v1/messages", json=body, headers=headers) as resp,
            ):
                data = await resp.json(content_type=None)
                if resp.status != 200:
                    detail = (
                        data.get("error", {}).get("message") if isinstance(data, dict) else None
                    )
                    raise TransportError(
                        f"the model answered {resp.status}: {detail or resp.reason}"
                    )
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise TransportError(f"the model could not be reached: {exc!r}") from exc
        blocks = data.get("content") if isinstance(data, dict) else None
        if not isinstance(blocks, list):
            raise TransportError("the model answered with an unexpected body")
        parts = [
            str(b.get("text", ""))
            for b in blocks
            if isinstance(b, dict) and b.get("type") == "text"
        ]
        text = "".join(parts).strip()
        if not text:
            raise TransportError("the model returned no text")
        return text


def cited(text: str, hits: list[Hit]) -> list[Hit]:
    """The facts a model's answer cites by id (all of them when it cites none)."""
    named = [h for h in hits if f"[{h.id[:8]}" in text]
    return named or list(hits)
