"""Reading ``learn`` input into items for :meth:`amplihack_hive.Hive.remember_many`.

Pure functions, no CLI: :func:`read_items` parses text or JSON Lines into
:class:`InputItem` s and a list of :class:`InputProblem` s (bad lines, with their line
numbers: reported and counted as failed, never silently skipped); :func:`check_items`
applies the library's own per-fact rules (size, NUL, kind, metadata) before anything is
sent, so one bad item cannot sink the batch it travels in.

- ``text``: each non-empty paragraph is one item, with the heading of its section (a
  one-line paragraph: ``# ...``, or short and without a sentence's end) and a paragraph
  before it that ends with a colon as its context (memory/index.py: found through it, at a
  lower weight; recall returns the paragraph). Paragraphs are separated by lines that
  are empty or hold only whitespace; ``\\r\\n`` and ``\\r`` count as line ends; trailing
  whitespace is removed from every line, and the lines of a paragraph are joined by ``\\n``.
- ``jsonl``: one JSON object per line, ``{"content": str}`` plus optional ``"kind"``
  (str), ``"metadata"`` (object), and the library's other item fields (``"subject"``,
  ``"supersedes"``, ``"confidence"``, ``"created"``, ``"context"``). Blank lines are
  skipped; a line that is not such an object is a problem with its line number.
- ``chat``: a conversation, one turn per item (``speaker: text``, with the speaker and the
  session in its metadata and its time as ``created``), in order, each with the turns
  before and after it in the same session as its context. Either JSON Lines of
  ``{"speaker", "text", "session"?, "time"?}`` (time: Unix seconds or ISO 8601), or a
  transcript: ``Speaker: text`` lines (a speaker of one to four words, after an optional
  ``[09:31]``), ``# name`` opening a new session (a date in its name, ``2026-11-30`` or
  ``2026-11-30 09:30``, dates its turns, a second apart), and indented or other lines
  continuing the turn before.

Input given as bytes must be UTF-8 (a leading BOM is dropped); anything else is refused
whole with :class:`~amplihack_hive.errors.InvalidInputError`, naming the line.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar

from amplihack_hive.errors import HiveError, InvalidInputError
from amplihack_hive.memory.coordinator import ITEM_FIELDS

FORMATS = ("text", "jsonl", "chat")
#: Turns before and after a turn of a conversation that make its context.
CHAT_WINDOW = 1
#: Item fields a jsonl object may carry: those ``Coordinator.prepare`` accepts.
FIELDS = ITEM_FIELDS
_LINE_END = re.compile(r"\r\n|\r|\n")

Source = str | bytes | IO[str] | IO[bytes]


@dataclass(frozen=True)
class InputItem:
    """One item to learn, and the line of the input where it starts (1-based)."""

    line: int
    content: str
    kind: str | None = None
    metadata: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fact_id(self) -> str:
        """The id the library gives this item's fact (its content address)."""
        from amplihack_hive.memory.records import (
            fact_id_for,
            normalize_content,
            normalize_context,
        )

        around = normalize_context(self.extra.get("context"))
        scope = self.extra.get("scope") or "hive"
        return fact_id_for(normalize_content(self.content), context=around, scope=scope)

    def as_item(self) -> dict[str, Any]:
        """The item as ``remember_many`` takes it (absent fields left out)."""
        item: dict[str, Any] = {"content": self.content}
        if self.kind is not None:
            item["kind"] = self.kind
        if self.metadata is not None:
            item["metadata"] = self.metadata
        item.update(self.extra)
        return item


@dataclass(frozen=True)
class InputProblem:
    """An input line that is not an item, or an item the library refuses."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def decode(data: bytes) -> str:
    """``data`` as UTF-8 text (BOM dropped); InvalidInputError naming the line otherwise."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidInputError(
            f"the input is not valid UTF-8 (line {line}, byte {exc.start}); "
            "convert it first, e.g. with iconv -t UTF-8"
        ) from None


def read_text(source: Source) -> str:
    """The whole of ``source`` as text: a str as is, bytes or a binary stream decoded."""
    if isinstance(source, str):
        return source
    if isinstance(source, bytes):
        return decode(source)
    try:
        data = source.read()
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"the input is not valid UTF-8: {exc.reason}") from None
    return decode(data) if isinstance(data, bytes) else data


def read_items(
    source: Source, fmt: str, *, context: bool = True
) -> tuple[list[InputItem], list[InputProblem]]:
    """Parse ``source`` (text, bytes or a stream) as ``fmt`` ("text", "jsonl" or "chat").
    Without ``context``, items carry none (a jsonl item's own is dropped too): a context
    is indexed beside its fact, which costs about twice the postings."""
    if fmt not in FORMATS:
        raise InvalidInputError(f"unknown input format {fmt!r}; use one of: {', '.join(FORMATS)}")
    text = read_text(source)
    problems: list[InputProblem] = []
    if fmt == "text":
        items = paragraphs(text)
    elif fmt == "chat":
        items, problems = chat_items(text)
    else:
        items, problems = jsonl_items(text)
    if not context:
        items = [
            dataclasses.replace(i, extra={k: v for k, v in i.extra.items() if k != "context"})
            for i in items
        ]
    return items, problems


def _tail(text: str) -> str:
    """The end of ``text`` that fits in a fact's context (the part nearest what follows),
    measured as the fact will store it (normalised)."""
    from amplihack_hive.memory.records import MAX_CONTEXT_BYTES, normalize_context

    text = normalize_context(text)
    data = text.encode("utf-8")
    if len(data) <= MAX_CONTEXT_BYTES:
        return text
    return data[-MAX_CONTEXT_BYTES:].decode("utf-8", errors="ignore")


#: The longest line taken for a heading when it has no "#".
HEADING_MAX = 60


def _heading(paragraph: str) -> bool:
    """A section heading: one line, "# ..." or short and without a sentence's end."""
    if "\n" in paragraph:
        return False
    line = paragraph.strip()
    return line.startswith("#") or (
        len(line) <= HEADING_MAX and not line.endswith((".", "!", "?", ",", ";", ":"))
    )


def _paragraph_context(previous: str | None, heading: str | None) -> str:
    """What a paragraph is found through besides its words: the heading of its section, and
    the paragraph before it when that one introduces it (it ends with a colon)."""
    parts = [heading] if heading else []
    if previous is not None and previous != heading and previous.rstrip().endswith(":"):
        parts.append(previous)
    return _tail("\n".join(parts)) if parts else ""


def paragraphs(text: str) -> list[InputItem]:
    """Each non-empty paragraph of ``text`` as an item, with the line it starts on and, as
    its context, the heading of its section and a paragraph before it that ends with a colon.

    Not every paragraph before (measured: in a plain sequence of self-contained
    paragraphs, a paragraph then ranked second for a question about the one before it, and
    `ask` answered with it; and a context doubles the postings)."""
    found: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    for number, raw in enumerate(_LINE_END.split(text), start=1):
        line = raw.rstrip()
        if line:
            if not current:
                start = number
            current.append(line)
        elif current:
            found.append((start, "\n".join(current)))
            current = []
    if current:
        found.append((start, "\n".join(current)))
    items: list[InputItem] = []
    heading: str | None = None
    previous: str | None = None
    for line, body in found:
        if _heading(body):
            items.append(InputItem(line, body))
            heading = previous = body
            continue
        context = _paragraph_context(previous, heading)
        items.append(InputItem(line, body, extra={"context": context} if context else {}))
        previous = body
    return items


@dataclass
class _Turn:
    line: int
    speaker: str
    text: str
    session: str
    time: float | None = None


def chat_items(text: str) -> tuple[list[InputItem], list[InputProblem]]:
    """The turns of a conversation (JSON Lines or a transcript) as items: see the module."""
    first = next((ln for ln in _LINE_END.split(text) if ln.strip()), "")
    turns, problems = (
        _chat_jsonl(text) if first.lstrip().startswith("{") else _chat_transcript(text)
    )
    items: list[InputItem] = []
    for i, turn in enumerate(turns):
        near = [
            f"{t.speaker}: {t.text}"
            for t in turns[max(0, i - CHAT_WINDOW) : i + CHAT_WINDOW + 1]
            if t is not turn and t.session == turn.session
        ]
        metadata: dict[str, Any] = {"speaker": turn.speaker}
        if turn.session:
            metadata["session"] = turn.session
        extra: dict[str, Any] = {"kind": "episodic"}
        if near:
            extra["context"] = _tail("\n".join(near))
        if turn.time is not None:
            extra["created"] = turn.time
        kind = extra.pop("kind")
        items.append(InputItem(turn.line, f"{turn.speaker}: {turn.text}", kind, metadata, extra))
    return items, problems


def _chat_time(value: Any) -> float:
    if isinstance(value, bool):
        raise _LineError(f'"time" must be Unix seconds or an ISO 8601 time, got {value!r}')
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise _LineError('"time" must be a finite number')
        return float(value)
    if isinstance(value, str):
        from datetime import UTC, datetime

        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _LineError(f'"time" is not an ISO 8601 time: {value!r}') from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.timestamp()
    raise _LineError(f'"time" must be Unix seconds or an ISO 8601 time, got {_type_name(value)}')


CHAT_FIELDS = ("speaker", "text", "session", "time")


def _chat_jsonl(text: str) -> tuple[list[_Turn], list[InputProblem]]:
    return _each_line(text, _chat_turn)


def _chat_turn(number: int, line: str) -> _Turn:
    value = _json_object(line, CHAT_FIELDS)
    for key in ("speaker", "text"):
        if not isinstance(value.get(key), str) or not value[key].strip():
            raise _LineError(f'"{key}" must be a non-empty string')
    session = value.get("session", "")
    if not isinstance(session, str | int) or isinstance(session, bool):
        raise _LineError(f'"session" must be a string, got {_type_name(session)}')
    when = _chat_time(value["time"]) if value.get("time") is not None else None
    return _Turn(number, value["speaker"].strip(), value["text"].strip(), str(session), when)


_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2})?)?\b")
#: "Speaker: text", the speaker one to four words without punctuation, after an optional
#: "[09:31]" time stamp; a session header is "#" and a space, then its name
_SPEAKER = re.compile(r"^(?:\[[^\]]{1,32}\]\s*)?([^\s:,.;!?#\[][^:,.;!?]{0,39}?):\s+(\S.*)$")
_HEADER = re.compile(r"^#+\s+(\S.*)$")
MAX_SPEAKER_WORDS = 4


def _chat_transcript(text: str) -> tuple[list[_Turn], list[InputProblem]]:
    turns: list[_Turn] = []
    problems: list[InputProblem] = []
    session = ""
    began: float | None = None
    in_session = 0
    for number, raw in enumerate(_LINE_END.split(text), start=1):
        line = raw.rstrip()
        if not line.strip():
            continue
        header = _HEADER.match(line)
        if header:
            session = header.group(1).strip()
            date = _DATE.search(session)
            began = _chat_time(date.group(0)) if date else None
            in_session = 0
            continue
        said = None if line[0].isspace() else _SPEAKER.match(line)
        if said and len(said.group(1).split()) <= MAX_SPEAKER_WORDS:
            # a session dated in its header: its turns a second apart from then, in order
            when = None if began is None else began + in_session
            in_session += 1
            turns.append(_Turn(number, said.group(1).strip(), said.group(2).strip(), session, when))
        elif turns and turns[-1].session == session:
            # an indented line, or one that is no "Speaker: text", continues the turn
            turns[-1].text += "\n" + line.strip()
        else:
            problems.append(InputProblem(number, 'expected "Speaker: text"'))
    return turns, problems


def jsonl_items(text: str) -> tuple[list[InputItem], list[InputProblem]]:
    """One item per non-blank line of JSON Lines ``text``; problems name their line."""
    return _each_line(text, _json_item)


T = TypeVar("T")


def _each_line(text: str, read: Callable[[int, str], T]) -> tuple[list[T], list[InputProblem]]:
    """``read(number, line)`` of every non-blank line; a line it refuses is a problem."""
    out: list[T] = []
    problems: list[InputProblem] = []
    for number, line in enumerate(_LINE_END.split(text), start=1):
        if not line.strip():
            continue
        try:
            out.append(read(number, line))
        except _LineError as exc:
            problems.append(InputProblem(number, str(exc)))
    return out, problems


def _json_object(line: str, allowed: Sequence[str]) -> dict[str, Any]:
    """One line of JSON Lines as an object with only ``allowed`` fields."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _LineError(f"not valid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(value, dict):
        raise _LineError(f"expected a JSON object, got {_type_name(value)}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise _LineError(
            f"unknown field(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}"
        )
    return value


class _LineError(Exception):
    pass


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def _json_item(number: int, line: str) -> InputItem:
    value = _json_object(line, FIELDS)
    if "content" not in value:
        raise _LineError('missing "content"')
    content = value["content"]
    if not isinstance(content, str):
        raise _LineError(f'"content" must be a string, got {_type_name(content)}')
    kind = value.get("kind")
    if kind is not None and not isinstance(kind, str):
        raise _LineError(f'"kind" must be a string, got {_type_name(kind)}')
    metadata = value.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _LineError(f'"metadata" must be an object, got {_type_name(metadata)}')
    extra: dict[str, Any] = {}
    for key in ("subject", "supersedes", "context", "scope"):
        if value.get(key) is not None:
            if not isinstance(value[key], str):
                raise _LineError(f'"{key}" must be a string, got {_type_name(value[key])}')
            extra[key] = value[key]
    for key in ("confidence", "created"):
        if value.get(key) is not None:
            number_value = value[key]
            if isinstance(number_value, bool) or not isinstance(number_value, int | float):
                raise _LineError(f'"{key}" must be a number, got {_type_name(number_value)}')
            if not math.isfinite(number_value):
                raise _LineError(f'"{key}" must be a finite number')
            extra[key] = number_value
    return InputItem(number, content, kind, metadata, extra)


def check_items(items: list[InputItem]) -> tuple[list[InputItem], list[InputProblem]]:
    """Split ``items`` into those the library accepts and problems for the rest, by the
    library's own rules (``Fact.new``: empty, NUL, over 64 KiB, unknown kind, metadata that
    is too large; ``check_fact_id`` for ``supersedes``). No I/O."""
    from amplihack_hive.memory.records import Fact, check_fact_id

    good: list[InputItem] = []
    problems: list[InputProblem] = []
    for item in items:
        try:
            if "supersedes" in item.extra:
                check_fact_id(item.extra["supersedes"])
            kind = item.kind if item.kind is not None else "semantic"
            Fact.new(
                item.content,
                kind=kind,
                metadata=item.metadata,
                confidence=item.extra.get("confidence", 1.0),
                context=item.extra.get("context"),
                scope=item.extra.get("scope") or "hive",
            )
        except HiveError as exc:
            problems.append(InputProblem(item.line, str(exc)))
        except UnicodeError:  # a lone surrogate from a JSON escape such as "\\ud800"
            problems.append(InputProblem(item.line, "content is not valid Unicode text"))
        else:
            good.append(item)
    return good, problems
