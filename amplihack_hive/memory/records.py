"""Fact records, postings and tombstones: the data the memory core stores and moves.

A fact's id is content-addressed (a hash of its normalized content), so remembering the same
content twice is one fact and a retried write never duplicates.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
import unicodedata
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from amplihack_hive import wirejson
from amplihack_hive.errors import InvalidInputError
from amplihack_hive.memory.scopes import HIVE, check_scope

#: The term of the corpus list: every live fact has one posting on it (tf 1, its length),
#: so the hive's fact count and total length are that list's size and sum, as its owners
#: hold it. No text tokenizes to it (it starts with NUL).
CORPUS_TERM = "\x00facts"
#: Largest content accepted, in UTF-8 bytes. Facts are sentences or paragraphs, not files.
MAX_CONTENT_BYTES = 64 * 1024
#: The latest ``created`` a fact may have: the last second of the year 9999.
MAX_CREATED = 253_402_300_799.0
#: Largest metadata accepted, serialized as JSON.
MAX_METADATA_BYTES = 16 * 1024


class Kind(StrEnum):
    SEMANTIC = "semantic"
    EPISODIC = "episodic"
    PROCEDURAL = "procedural"
    WORKING = "working"
    STRATEGIC = "strategic"
    SOCIAL = "social"

    @classmethod
    def parse(cls, value: str | Kind) -> Kind:
        known = _KINDS.get(value) if isinstance(value, str) else None
        if known is not None:
            return known
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            allowed = ", ".join(k.value for k in cls)
            raise InvalidInputError(f"unknown kind {value!r}; use one of: {allowed}") from None


_KINDS: dict[str, Kind] = {k.value: k for k in Kind}


def normalize_content(content: str | bytes) -> str:
    """Validate and normalize content; raise InvalidInputError on anything unusable."""
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"content is not valid UTF-8 (byte {exc.start})") from None
    if not isinstance(content, str):
        raise InvalidInputError(f"content must be text, not {type(content).__name__}")
    text = unicodedata.normalize("NFC", content).strip()
    if not text:
        raise InvalidInputError("content is empty")
    if "\x00" in text:
        raise InvalidInputError("content contains a NUL character")
    size = len(text.encode("utf-8"))
    if size > MAX_CONTENT_BYTES:
        raise InvalidInputError(
            f"content is {size} bytes; the limit is {MAX_CONTENT_BYTES} bytes per fact"
        )
    return text


def fact_id_for(content: str, incarnation: int = 0, context: str = "", scope: str = HIVE) -> str:
    """The content address of normalized content: 32 hex digits of BLAKE2b.

    A fact with a context is addressed by its content and its context: its postings depend
    on both, so "Ana: Thanks." in two sessions are two facts, each found through its own
    neighbours (one id for both would leave postings of either context on one body).

    ``incarnation`` counts the times this content was forgotten before it was remembered
    again: a tombstone is for the id it names, so content remembered after a forget is
    stored under its next incarnation's id (the same content, a new fact) and no copy of
    the forgotten one can come back. Incarnation 0 is the plain content address.

    A fact in a scope other than ``hive`` is addressed by its scope too: the same words in
    two agents' private memories are two facts, and remembering content never tells the
    caller (by the id coming back, or a write refused) that another scope holds it."""
    data = content.encode("utf-8")
    if context:
        data += b"\x01" + context.encode("utf-8")
    if scope != HIVE:
        # after NUL, which content never holds (context holds none either): no content of
        # another scope can be made to hash to this one's bytes (a scope starts with a
        # letter, an incarnation with a digit)
        data += b"\x00" + scope.encode("utf-8")
    if incarnation:
        data += b"\x00" + str(int(incarnation)).encode()
    return hashlib.blake2b(data, digest_size=16).hexdigest()


_FACT_ID_CHARS = frozenset("0123456789abcdef")


def check_fact_id(fact_id: object) -> str:
    """``fact_id`` if it is a fact id (32 lowercase hex digits), else InvalidInputError. Agents
    check every id a request names, so no request can touch the store's reserved rows."""
    if not isinstance(fact_id, str) or len(fact_id) != 32 or not set(fact_id) <= _FACT_ID_CHARS:
        raise InvalidInputError(f"not a fact id: {fact_id!r} (expected 32 hex digits)")
    return fact_id


#: The most context one fact may carry (indexed beside the fact, and returned beside it).
MAX_CONTEXT_BYTES = 16384
#: The most dimensions a vector may have (float16: two bytes each).
MAX_DIMENSIONS = 4096


def encode_bytes(data: bytes) -> str:
    """Bytes in the wire's JSON: base64 (a vector of 384 float16 is 1,024 characters)."""
    return base64.b64encode(data).decode("ascii")


def decode_vector(value: object, width: int = 2) -> bytes:
    """A vector's bytes (float16: ``width`` 2; a query's float32: 4) from their wire form,
    or InvalidInputError."""
    if not isinstance(value, str):
        raise InvalidInputError("a vector must be base64 text")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError("a vector must be base64 text") from None
    if not data or len(data) % width or len(data) > width * MAX_DIMENSIONS:
        raise InvalidInputError(
            f"a vector is 1 to {MAX_DIMENSIONS} values of {width} bytes, not {len(data)} bytes"
        )
    return data


def normalize_context(context: object) -> str:
    """A fact's context as it is stored (NFC, stripped, NUL as space); "" for None."""
    if context is None:
        return ""
    if not isinstance(context, str):
        raise InvalidInputError(f"context must be text, not {type(context).__name__}")
    return unicodedata.normalize("NFC", context).strip().replace("\x00", " ")


def _check_context(context: object) -> str:
    text = normalize_context(context)
    size = len(text.encode("utf-8"))
    if size > MAX_CONTEXT_BYTES:
        raise InvalidInputError(
            f"context is {size} bytes; the limit is {MAX_CONTEXT_BYTES} bytes per fact"
        )
    return text


def _check_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidInputError(f"metadata must be a mapping, not {type(metadata).__name__}")
    try:
        # no NaN or infinity (not JSON; the wire would turn it into null) and no integer
        # beyond 64 bits (the wire refuses it): refused here, before anything is written
        encoded = json.dumps(metadata, sort_keys=True, allow_nan=False)
        wirejson.dumps(metadata)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"metadata is not JSON-serializable: {exc}") from None
    if len(encoded) > MAX_METADATA_BYTES:
        raise InvalidInputError(f"metadata is larger than {MAX_METADATA_BYTES} bytes")
    return dict(metadata)


@dataclass(frozen=True, slots=True)
class Fact:
    """One remembered fact. ``length`` is its token count, used by ranking."""

    id: str
    content: str
    kind: Kind = Kind.SEMANTIC
    agent: str = ""
    created: float = 0.0
    confidence: float = 1.0
    metadata: dict[str, Any] = field(default_factory=dict)
    subject: str | None = None
    supersedes: str | None = None
    length: int = 0
    #: Text around the fact that helps find it but is not part of it: for a turn of a
    #: conversation its neighbouring turns, for a paragraph its section's heading. Indexed as a
    #: second field at a lower weight (BM25F, memory/index.py); recall ranks and returns
    #: the fact, with its context beside it (Hit.context). Part of the fact's id.
    context: str = ""
    #: Who may see it (memory/scopes.py): "hive", "agent:NAME" or "group:NAME". Part of
    #: the fact's id (outside "hive") and of its postings' keys.
    scope: str = HIVE
    #: Its embedding (memory/semantic.py) as float16 bytes, when the hive recalls by
    #: meaning too: kept with the body so that forget, escalate and a retraining of the
    #: centroids find the vector's list without an embedder. None without one.
    vector: bytes | None = None

    @classmethod
    def new(
        cls,
        content: str | bytes,
        *,
        kind: str | Kind = Kind.SEMANTIC,
        agent: str = "",
        created: float | None = None,
        confidence: float = 1.0,
        metadata: dict[str, Any] | None = None,
        subject: str | None = None,
        supersedes: str | None = None,
        length: int = 0,
        context: str | None = None,
        scope: str = HIVE,
    ) -> Fact:
        text = normalize_content(content)
        around = _check_context(context)
        scope = check_scope(scope)
        if not 0.0 <= float(confidence) <= 1.0:
            raise InvalidInputError(f"confidence must be within 0..1, got {confidence}")
        meta = _check_metadata(metadata)
        if created is not None and not (
            isinstance(created, int | float)
            and not isinstance(created, bool)
            and 0.0 <= float(created) <= MAX_CREATED
        ):
            raise InvalidInputError(
                f"created is Unix seconds from 0 to {MAX_CREATED:.0f} (year 9999), got {created!r}"
            )
        if subject is not None:
            subject = str(subject).strip().lower() or None
        return cls(
            id=fact_id_for(text, context=around, scope=scope),
            content=text,
            kind=Kind.parse(kind),
            agent=agent,
            created=time.time() if created is None else float(created),
            confidence=float(confidence),
            metadata=meta,
            subject=subject,
            supersedes=supersedes or None,
            length=length,
            context=around,
            scope=scope,
        )

    def to_dict(self) -> dict[str, Any]:
        d = {
            "id": self.id,
            "content": self.content,
            "kind": self.kind.value,
            "agent": self.agent,
            "created": self.created,
            "confidence": self.confidence,
            "metadata": dict(self.metadata),
            "subject": self.subject,
            "supersedes": self.supersedes,
            "length": self.length,
        }
        if self.context:
            # only when there is one: the wire form of a fact without context is unchanged
            d["context"] = self.context
        if self.scope != HIVE:
            # likewise: a hive-wide fact is sent as before scopes existed
            d["scope"] = self.scope
        if self.vector is not None:
            d["vector"] = encode_bytes(self.vector)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Fact:
        return cls(
            id=str(d["id"]),
            content=str(d["content"]),
            kind=Kind.parse(d.get("kind", "semantic")),
            agent=str(d.get("agent", "")),
            created=float(d.get("created", 0.0)),
            confidence=float(d.get("confidence", 1.0)),
            metadata=dict(d.get("metadata") or {}),
            subject=d.get("subject"),
            supersedes=d.get("supersedes"),
            length=int(d.get("length", 0)),
            context=str(d.get("context") or ""),
            scope=check_scope(d.get("scope") or HIVE),
            vector=decode_vector(d["vector"]) if d.get("vector") is not None else None,
        )


@dataclass(slots=True)
class Posting:
    """One entry of a term's posting list: what BM25 needs to score the fact for the term.

    Not frozen, though nothing changes one after it is made: a frozen dataclass sets each
    field through ``object.__setattr__``, and a learning client makes ~15 postings per
    item (measured: 1.75 us against 0.29 us per posting; 4% of a client's CPU in
    bench_learn). Use ``dataclasses.replace`` for a changed copy.

    ``subject`` and ``created`` ride along so the coordinator can order facts about the
    same subject by time without fetching their bodies.
    """

    term: str
    fact_id: str
    tf: int
    length: int
    created: float
    subject: str | None = None
    #: the term's frequency in the fact's context, and the context's length (both 0 for a
    #: fact without one): the second field of BM25F (memory/index.py)
    ctx_tf: int = 0
    ctx_length: int = 0
    #: On a vector list (memory/semantic.py): the fact's embedding, float16 bytes.
    vector: bytes | None = None

    def to_list(self) -> list[Any]:
        row = [self.term, self.fact_id, self.tf, self.length, self.created, self.subject]
        if self.vector is not None:
            # nine fields with a vector: agents from before vectors refuse those (they
            # read six or eight) rather than keep the posting without its vector
            row += [self.ctx_tf, self.ctx_length, encode_bytes(self.vector)]
        elif self.ctx_tf or self.ctx_length:
            # eight fields only with a context: agents of the last version refuse those
            # (they read six) rather than drop the context's terms unnoticed
            row += [self.ctx_tf, self.ctx_length]
        return row

    @classmethod
    def from_list(cls, v: list[Any]) -> Posting:
        ctx = (int(v[6]), int(v[7])) if len(v) > 6 else (0, 0)
        vector = decode_vector(v[8]) if len(v) > 8 else None
        return cls(str(v[0]), str(v[1]), int(v[2]), int(v[3]), float(v[4]), v[5], *ctx, vector)


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A forgotten fact. Tombstones win over any copy of the fact, whenever it arrives."""

    fact_id: str
    at: float

    def to_list(self) -> list[Any]:
        return [self.fact_id, self.at]

    @classmethod
    def from_list(cls, v: list[Any]) -> Tombstone:
        return cls(str(v[0]), float(v[1]))


@dataclass(slots=True)
class ShardExport:
    """Everything one agent stores, in a form another agent can import."""

    facts: list[Fact] = field(default_factory=list)
    postings: list[Posting] = field(default_factory=list)
    tombstones: list[Tombstone] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "facts": [f.to_dict() for f in self.facts],
            "postings": [p.to_list() for p in self.postings],
            "tombstones": [t.to_list() for t in self.tombstones],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ShardExport:
        # a "corpus" entry (the counters of older agents) is ignored: the corpus list is
        # carried as postings
        return cls(
            facts=[Fact.from_dict(x) for x in d.get("facts", [])],
            postings=[Posting.from_list(x) for x in d.get("postings", [])],
            tombstones=[Tombstone.from_list(x) for x in d.get("tombstones", [])],
        )
