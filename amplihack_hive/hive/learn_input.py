"""Reading ``learn`` input into items for :meth:`amplihack_hive.Hive.remember_many`.

Pure functions, no CLI: :func:`read_items` parses text or JSON Lines into
:class:`InputItem` s and a list of :class:`InputProblem` s (bad lines, with their line
numbers: reported and counted as failed, never silently skipped); :func:`check_items`
applies the library's own per-fact rules (size, NUL, kind, metadata) before anything is
sent, so one bad item cannot sink the batch it travels in.

- ``text``: each non-empty paragraph is one item. Paragraphs are separated by lines that
  are empty or hold only whitespace; ``\\r\\n`` and ``\\r`` count as line ends; trailing
  whitespace is removed from every line, and the lines of a paragraph are joined by ``\\n``.
- ``jsonl``: one JSON object per line, ``{"content": str}`` plus optional ``"kind"``
  (str), ``"metadata"`` (object), and the library's other item fields (``"subject"``,
  ``"supersedes"``, ``"confidence"``, ``"created"``). Blank lines are skipped; a line
  that is not such an object is a problem with its line number.

Input given as bytes must be UTF-8 (a leading BOM is dropped); anything else is refused
whole with :class:`~amplihack_hive.errors.InvalidInputError`, naming the line.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import IO, Any

from amplihack_hive.errors import HiveError, InvalidInputError
from amplihack_hive.memory.coordinator import ITEM_FIELDS

FORMATS = ("text", "jsonl")
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
        from amplihack_hive.memory.records import fact_id_for, normalize_content

        return fact_id_for(normalize_content(self.content))

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


def read_items(source: Source, fmt: str) -> tuple[list[InputItem], list[InputProblem]]:
    """Parse ``source`` (text, bytes or a stream) as ``fmt`` ("text" or "jsonl")."""
    if fmt not in FORMATS:
        raise InvalidInputError(f"unknown input format {fmt!r}; use one of: {', '.join(FORMATS)}")
    text = read_text(source)
    if fmt == "text":
        return paragraphs(text), []
    return jsonl_items(text)


def paragraphs(text: str) -> list[InputItem]:
    """Each non-empty paragraph of ``text`` as an item, with the line it starts on."""
    items: list[InputItem] = []
    current: list[str] = []
    start = 0
    for number, raw in enumerate(_LINE_END.split(text), start=1):
        line = raw.rstrip()
        if line:
            if not current:
                start = number
            current.append(line)
        elif current:
            items.append(InputItem(start, "\n".join(current)))
            current = []
    if current:
        items.append(InputItem(start, "\n".join(current)))
    return items


def jsonl_items(text: str) -> tuple[list[InputItem], list[InputProblem]]:
    """One item per non-blank line of JSON Lines ``text``; problems name their line."""
    items: list[InputItem] = []
    problems: list[InputProblem] = []
    for number, line in enumerate(_LINE_END.split(text), start=1):
        if not line.strip():
            continue
        try:
            items.append(_json_item(number, line))
        except _LineError as exc:
            problems.append(InputProblem(number, str(exc)))
    return items, problems


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
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _LineError(f"not valid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(value, dict):
        raise _LineError(f"expected a JSON object, got {_type_name(value)}")
    unknown = sorted(set(value) - set(FIELDS))
    if unknown:
        raise _LineError(
            f"unknown field(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(FIELDS)}"
        )
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
    for key in ("subject", "supersedes"):
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
            )
        except HiveError as exc:
            problems.append(InputProblem(item.line, str(exc)))
        except UnicodeError:  # a lone surrogate from a JSON escape such as "\\ud800"
            problems.append(InputProblem(item.line, "content is not valid Unicode text"))
        else:
            good.append(item)
    return good, problems
