"""One agent's posting lists beside its Kuzu database: a small log-structured index.

Why not Kuzu edges (measured while writing this, Kuzu 0.11.3, one thread, 3,000 postings
per write): ``COPY`` into the ``Posts`` relation cost 76 ms into an empty store and 300 ms at
60k facts (1.2M edges), ``MERGE``-based writes far more, because each write rewrites the
CSR of every term it touches and terms are spread over the whole table. A B-tree
(SQLite, WAL, by (term, fact)) grew from 19 ms to 118 ms on the same load. Random inserts
into one sorted structure cost more as it grows; appending does not. So postings are
written the way an LSM tree writes (O'Neil et al. 1996; Lucene's segments):

- every write appends one frame to a write-ahead log and ``fsync``\\ s it before it returns
  (a frame is ``<crc32> <json>\\n``; a torn last frame, never acknowledged, is dropped on
  replay), and updates an in-memory table;
- when the table holds :data:`FLUSH_POSTINGS` postings it is written as an immutable segment
  (numpy columns sorted by ``term NUL fact id``, written to a temporary directory, fsync'd,
  renamed), and the log starts anew;
- segments of similar size are merged four at a time (size-tiered), so each posting is
  rewritten O(log n) times and no write pays for the whole index;
- reads look up a term by binary search in each segment (memory-mapped, so the page cache,
  not the heap, holds them) and in the table; the newest entry of a key wins, a deletion is
  an entry too, and postings of facts in :attr:`PostingIndex.dead` (tombstoned) are skipped
  and purged by the next merge that sees them.

Directory layout: ``wal-<gen>.log``, ``seg-<gen>/`` (``key.npy``, ``tf.npy``, ...), and
``FORMAT`` holding :data:`FORMAT_VERSION`. Postings of vector lists (memory/semantic.py)
carry their fact's vector: a segment keeps the vectors' bytes end to end in ``vec.npy``
and where each row's start in ``vec_off.npy`` (one more entry than rows; a row without a
vector is empty).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from amplihack_hive import wirejson
from amplihack_hive.errors import StorageError
from amplihack_hive.memory.records import Posting, decode_vector, encode_bytes

logger = logging.getLogger(__name__)

#: 2: postings may carry a context's tf and length (WAL rows of 8, ctx_*.npy columns). An
#: index of format 1 reads as one whose postings have no context, and is marked 2 when
#: opened, so that a version of this code from before contexts refuses it rather than
#: drop the context columns unnoticed.
#: 3: postings may carry a vector (WAL rows of 9, vec and vec_off columns); marked on open,
#: as 2 was, so that a version from before vectors refuses the index.
FORMAT_VERSION = 3
_READS = ("1", "2", "3")
#: Postings held in memory before they are written as a segment (about 10 MB).
FLUSH_POSTINGS = 50_000
#: Segments merged at once, when that many have sizes within this factor of each other.
MERGE_WIDTH = 4
_SEP = b"\x00"
_ESCAPED = re.compile(rb"\x01(.)", re.DOTALL)
#: (tf, length, created, subject, ctx tf, ctx length, vector) of a live posting; None marks
#: a deleted key.
Entry = tuple[int, int, float, "str | None", int, int, "bytes | None"] | None


def _prefix(term: str) -> bytes:
    """A term's key prefix: the term without NUL bytes (escaped), then NUL, so that no
    term's prefix is the start of another's."""
    raw = term.encode().replace(b"\x01", b"\x01\x01").replace(b"\x00", b"\x01\x02")
    return raw + _SEP


def _key(term: str, fact_id: str) -> bytes:
    return _prefix(term) + fact_id.encode()


def _split(key: bytes) -> tuple[str, str]:
    raw, _, fid = key.partition(_SEP)
    if b"\x01" in raw:
        raw = _ESCAPED.sub(lambda m: b"\x01" if m.group(1) == b"\x01" else b"\x00", raw)
    return raw.decode(), fid.decode()


def _open_log(path: Path) -> int:
    """The log is written with os.write, unbuffered: nothing is left in a user-space buffer
    to be written (or fail) later, when the file is closed."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


def _close_log(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Segment:
    """Immutable postings sorted by key; ``live`` False marks a deletion of the key."""

    gen: int
    key: np.ndarray  # S, sorted, unique
    tf: np.ndarray
    length: np.ndarray
    created: np.ndarray
    subject: np.ndarray  # S; b"" with has_subject False is None
    has_subject: np.ndarray
    live: np.ndarray
    #: The context field's tf and length (Posting.ctx_tf, ctx_length).
    ctx_tf: np.ndarray
    ctx_length: np.ndarray
    #: Vectors' bytes end to end (uint8), and where row i's are: vec[vec_off[i]:vec_off[i+1]]
    vec: np.ndarray
    vec_off: np.ndarray
    #: Generations this segment was merged from (their directories may be removed).
    merged: tuple[int, ...] = ()

    COLUMNS = ("key", "tf", "length", "created", "subject", "has_subject", "live")
    #: Columns a segment written before contexts existed lacks (read as zeros).
    OPTIONAL = ("ctx_tf", "ctx_length")
    #: Columns a segment written before vectors existed lacks (read as no vectors).
    VECTORS = ("vec", "vec_off")

    def __len__(self) -> int:
        return len(self.key)

    @classmethod
    def load(cls, path: Path, gen: int) -> Segment:
        cols = {c: np.load(path / f"{c}.npy", mmap_mode="r") for c in cls.COLUMNS}
        for c in cls.OPTIONAL:
            file = path / f"{c}.npy"
            cols[c] = (
                np.load(file, mmap_mode="r")
                if file.exists()
                else np.zeros(len(cols["key"]), np.int32)
            )
        if (path / "vec_off.npy").exists():
            cols["vec"] = np.load(path / "vec.npy", mmap_mode="r")
            cols["vec_off"] = np.load(path / "vec_off.npy", mmap_mode="r")
        else:
            cols["vec"] = np.zeros(0, np.uint8)
            cols["vec_off"] = np.zeros(len(cols["key"]) + 1, np.int64)
        merged = path / "merged.npy"
        parts = tuple(int(g) for g in np.load(merged)) if merged.exists() else ()
        return cls(gen, **cols, merged=parts)

    def write(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        columns = {c: getattr(self, c) for c in (*self.COLUMNS, *self.OPTIONAL)}
        if len(self.vec):  # a segment without vectors is written as before them
            columns.update(vec=self.vec, vec_off=self.vec_off)
        if self.merged:
            columns["merged"] = np.array(self.merged, np.int64)
        for c, values in columns.items():
            with open(tmp / f"{c}.npy", "wb") as fh:
                np.save(fh, values)
                fh.flush()
                os.fsync(fh.fileno())
        fsync_dir(tmp)
        tmp.rename(path)
        fsync_dir(path.parent)

    def span(self, prefix: bytes) -> tuple[int, int]:
        """Rows whose key starts with ``prefix`` (a term and the separator)."""
        lo = int(np.searchsorted(self.key, prefix, side="left"))
        hi = int(np.searchsorted(self.key, prefix[:-1] + b"\x01", side="left"))
        return lo, hi

    def entry(self, i: int) -> Entry:
        if not self.live[i]:
            return None
        subject = self.subject[i].decode() if self.has_subject[i] else None
        return (
            int(self.tf[i]),
            int(self.length[i]),
            float(self.created[i]),
            subject,
            int(self.ctx_tf[i]),
            int(self.ctx_length[i]),
            self.vector(i),
        )

    def vector(self, i: int) -> bytes | None:
        lo, hi = int(self.vec_off[i]), int(self.vec_off[i + 1])
        return bytes(self.vec[lo:hi]) if hi > lo else None

    def rows(self, lo: int = 0, hi: int | None = None) -> Iterator[tuple[bytes, Entry]]:
        hi = len(self) if hi is None else hi
        for i in range(lo, hi):
            yield bytes(self.key[i]), self.entry(i)

    @classmethod
    def build(
        cls, gen: int, entries: dict[bytes, Entry], keep_deletes: bool, merged: tuple[int, ...] = ()
    ) -> Segment:
        keys = sorted(k for k, e in entries.items() if keep_deletes or e is not None)
        n = len(keys)
        tf = np.zeros(n, np.int32)
        length = np.zeros(n, np.int32)
        created = np.zeros(n, np.float64)
        subject = []
        has_subject = np.zeros(n, bool)
        live = np.zeros(n, bool)
        ctx_tf = np.zeros(n, np.int32)
        ctx_length = np.zeros(n, np.int32)
        vec_len = np.zeros(n + 1, np.int64)
        vectors: list[bytes] = []
        for i, k in enumerate(keys):
            e = entries[k]
            if e is None:
                subject.append(b"")
                continue
            live[i] = True
            tf[i], length[i], created[i] = e[0], e[1], e[2]
            ctx_tf[i], ctx_length[i] = e[4], e[5]
            has_subject[i] = e[3] is not None
            subject.append((e[3] or "").encode())
            if e[6] is not None:
                vectors.append(e[6])
                vec_len[i + 1] = len(e[6])
        return cls(
            gen,
            np.array(keys, dtype=bytes) if n else np.array([], dtype="S1"),
            tf,
            length,
            created,
            np.array(subject, dtype=bytes) if n else np.array([], dtype="S1"),
            has_subject,
            live,
            ctx_tf,
            ctx_length,
            np.frombuffer(b"".join(vectors), np.uint8),
            np.cumsum(vec_len),
            merged,
        )


class PostingIndex:
    """Posting lists of one store, durable on every write. Not thread-safe: its store
    serialises calls (KuzuStore holds its lock around every call)."""

    def __init__(
        self,
        directory: str | Path,
        *,
        dead: Iterable[str] = (),
        flush_postings: int = FLUSH_POSTINGS,
    ) -> None:
        self.dir = Path(directory)
        self.flush_postings = flush_postings
        #: Facts whose postings are gone (tombstoned). The owning store passes its
        #: tombstones at open; :meth:`kill` adds to it.
        self.dead: set[str] = set(dead)
        #: Entries written since the last flush: term -> fact id -> entry.
        self._table: dict[str, dict[str, Entry]] = {}
        self._table_size = 0
        self._segments: list[Segment] = []  # oldest first
        self._gen = 0
        self._wal: int | None = None  # the log's file descriptor (unbuffered: see _log)
        self._count: int | None = None
        self._replayed: list[Path] = []
        #: Why this index refuses writes: after a failed write or fsync the log's state on
        #: disk is unknown (a later fsync may report success for lost pages), so nothing
        #: more is acknowledged until the agent restarts and replays what is really there.
        self.broken: str | None = None
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._check_format()
            self._load()
        except OSError as exc:
            raise StorageError(f"cannot open the posting index at {self.dir}: {exc}") from None

    # -- opening --------------------------------------------------------------------------

    def _check_format(self) -> None:
        marker = self.dir / "FORMAT"
        if not marker.exists():
            marker.write_text(f"{FORMAT_VERSION}\n")
            return
        found = marker.read_text().strip()
        if found in _READS and found != str(FORMAT_VERSION):
            tmp = marker.with_name("FORMAT.tmp")
            tmp.write_text(f"{FORMAT_VERSION}\n")
            os.replace(tmp, marker)
            return
        if found != str(FORMAT_VERSION):
            raise StorageError(
                f"the posting index at {self.dir} has format {found!r}; this version reads "
                f"{' and '.join(_READS)}. Upgrade amplihack-hive, or move the agent's data "
                "aside and let repair rebuild it."
            )

    def _load(self) -> None:
        for tmp in self.dir.glob("*.tmp"):
            shutil.rmtree(tmp, ignore_errors=True)  # a flush or merge that did not finish
        for staged in self.dir.glob("seg-*.new"):
            # a merge wrote its result completely, then stopped: finish it
            final = staged.with_suffix("")
            shutil.rmtree(final, ignore_errors=True)
            staged.rename(final)
        segs = sorted((int(p.name[4:]), p) for p in self.dir.glob("seg-*") if p.name[4:].isdigit())
        loaded = {g: Segment.load(p, g) for g, p in segs}
        for seg in list(loaded.values()):
            for part in seg.merged:
                if part != seg.gen and part in loaded:
                    shutil.rmtree(self.dir / f"seg-{part}")  # merged, not yet removed
                    del loaded[part]
        self._segments = [loaded[g] for g in sorted(loaded)]
        segs = [(g, p) for g, p in segs if g in loaded]
        covered = max((g for g, _ in segs), default=0)
        wals = sorted(
            (int(p.stem[4:]), p) for p in self.dir.glob("wal-*.log") if p.stem[4:].isdigit()
        )
        for gen, path in wals:
            if gen <= covered:
                path.unlink()  # its postings are in a segment already
                continue
            self._replay(path)
        self._gen = max([covered, *(g for g, _ in wals)]) + 1
        self._wal = _open_log(self.dir / f"wal-{self._gen}.log")
        # the replayed logs stay until the table holding them is flushed (opening writes
        # nothing but a new, empty log, so a store on a full disk still opens)
        self._replayed = [path for gen, path in wals if gen > covered]

    def _replay(self, path: Path) -> None:
        with open(path, "rb") as fh:
            for raw in fh:
                crc, _, payload = raw.rstrip(b"\n").partition(b" ")
                if not raw.endswith(b"\n") or f"{zlib.crc32(payload):08x}".encode() != crc:
                    logger.warning("dropping a torn record at the end of %s", path)
                    break
                self._apply(wirejson.loads(payload))

    # -- writing --------------------------------------------------------------------------

    def _set(self, term: str, fid: str, entry: Entry) -> None:
        plist = self._table.get(term)
        if plist is None:
            plist = self._table[term] = {}
        if fid not in plist:
            self._table_size += 1
        plist[fid] = entry

    def _apply(self, frame: dict[str, Any]) -> None:
        for row in frame.get("put", ()):
            term, fid, tf, length, created, subject = row[:6]
            ctx = (int(row[6]), int(row[7])) if len(row) > 6 else (0, 0)
            vector = decode_vector(row[8]) if len(row) > 8 else None
            if fid not in self.dead:
                self._set(term, fid, (int(tf), int(length), float(created), subject, *ctx, vector))
        for term, fid in frame.get("drop", ()):
            self._set(term, fid, None)
        for fid in frame.get("dead", ()):
            self.dead.add(fid)

    def _flat_table(self) -> dict[bytes, Entry]:
        return {
            _key(term, fid): e for term, plist in self._table.items() for fid, e in plist.items()
        }

    def _fail(self, what: str, exc: OSError) -> StorageError:
        self.broken = f"{what} in {self.dir} failed: {exc.strerror or exc}"
        logger.error("posting index refuses writes from now on: %s", self.broken)
        return StorageError(self.broken)

    def _log(self, frame: dict[str, Any]) -> None:
        if self.broken is not None:
            raise StorageError(f"the posting index is broken ({self.broken}); restart the agent")
        payload = wirejson.dumps(frame)
        try:
            assert self._wal is not None, "closed"
            data = memoryview(f"{zlib.crc32(payload):08x} ".encode() + payload + b"\n")
            while data:  # a raw write may take part of the frame; a torn tail is dropped
                data = data[os.write(self._wal, data) :]
            os.fsync(self._wal)
        except OSError as exc:
            raise self._fail("writing the posting log", exc) from None
        self._apply(frame)
        self._count = None
        if self._table_size >= self.flush_postings:
            self._flush()

    def put(self, postings: Sequence[Posting]) -> None:
        rows = [
            [p.term, p.fact_id, int(p.tf), int(p.length), float(p.created), p.subject]
            + (
                [int(p.ctx_tf), int(p.ctx_length), encode_bytes(p.vector)]
                if p.vector is not None
                else [int(p.ctx_tf), int(p.ctx_length)]
                if p.ctx_tf or p.ctx_length
                else []
            )
            for p in postings
            if p.fact_id not in self.dead
        ]
        if rows:
            self._log({"put": rows})

    def drop(self, keys: Iterable[tuple[str, str]]) -> None:
        rows = [[t, f] for t, f in keys]
        if rows:
            self._log({"drop": rows})

    def kill(self, fact_ids: Iterable[str]) -> None:
        """The facts are tombstoned: their postings are gone from now on."""
        ids = [i for i in dict.fromkeys(fact_ids) if i not in self.dead]
        if ids:
            self._log({"dead": ids})

    def _flush(self) -> None:
        """Write the table as a segment, start a new log, merge similar-sized segments."""
        gen = self._gen
        seg = Segment.build(gen, self._flat_table(), keep_deletes=bool(self._segments))
        try:
            seg.write(self.dir / f"seg-{gen}")
            _close_log(self._wal)
            (self.dir / f"wal-{gen}.log").unlink(missing_ok=True)
            for path in self._replayed:
                path.unlink(missing_ok=True)
            self._replayed = []
            self._gen += 1
            self._wal = _open_log(self.dir / f"wal-{self._gen}.log")
        except OSError as exc:
            raise self._fail("writing a posting segment", exc) from None
        self._segments.append(Segment.load(self.dir / f"seg-{gen}", gen))
        self._table = {}
        self._table_size = 0
        self._merge()

    def _merge(self) -> None:
        while len(self._segments) >= MERGE_WIDTH:
            tail = self._segments[-MERGE_WIDTH:]
            sizes = [len(s) for s in tail]
            if max(sizes) > MERGE_WIDTH * max(1, min(sizes)):
                return
            merged: dict[bytes, Entry] = {}
            for seg in tail:  # oldest first: newer entries overwrite
                merged.update(seg.rows())
            for k in [k for k in merged if _split(k)[1] in self.dead]:
                merged[k] = None
            base = len(self._segments) == MERGE_WIDTH  # nothing older: deletions can go
            gen = tail[-1].gen
            parts = tuple(s.gen for s in tail)
            out = Segment.build(gen, merged, keep_deletes=not base, merged=parts)
            path = self.dir / f"seg-{gen}"
            staged = self.dir / f"seg-{gen}.new"
            try:
                # the result is complete on disk (".new") before anything is removed; it
                # takes the newest part's generation and names its parts, so opening after
                # a crash at any point below finishes the merge (see _load)
                out.write(staged)
                shutil.rmtree(path)
                staged.rename(path)
                fsync_dir(self.dir)
                for g in parts[:-1]:
                    shutil.rmtree(self.dir / f"seg-{g}")
            except OSError as exc:
                raise self._fail("merging posting segments", exc) from None
            self._segments[-MERGE_WIDTH:] = [Segment.load(path, gen)]

    # -- reading --------------------------------------------------------------------------

    def _entries(self) -> dict[bytes, Entry]:
        """Every key with its newest entry."""
        out: dict[bytes, Entry] = {}
        for seg in self._segments:
            out.update(seg.rows())
        out.update(self._flat_table())
        return out

    def _live(self, entries: dict[bytes, Entry]) -> Iterator[Posting]:
        for k, e in entries.items():
            if e is None:
                continue
            term, fid = _split(k)
            if fid not in self.dead:
                yield Posting(term, fid, e[0], e[1], e[2], e[3], e[4], e[5], e[6])

    def term(self, term: str) -> list[Posting]:
        prefix = _prefix(term)
        entries: dict[bytes, Entry] = {}
        for seg in self._segments:
            lo, hi = seg.span(prefix)
            if hi > lo:
                entries.update(seg.rows(lo, hi))
        for fid, e in self._table.get(term, {}).items():
            entries[prefix + fid.encode()] = e
        return list(self._live(entries))

    def lookup(self, term: str, fact_id: str) -> Entry:
        """The live entry of one posting, or None (absent, dropped, or its fact dead)."""
        if fact_id in self.dead:
            return None
        plist = self._table.get(term)
        if plist is not None and fact_id in plist:
            return plist[fact_id]
        key = _key(term, fact_id)
        for seg in reversed(self._segments):  # newest first
            i = int(np.searchsorted(seg.key, key, side="left"))
            if i < len(seg) and bytes(seg.key[i]) == key:
                return seg.entry(i)
        return None

    def all(self) -> list[Posting]:
        return list(self._live(self._entries()))

    def _live_keys(self) -> list[bytes]:
        """Keys of every live posting, without building the postings: repair lists these
        for every store on every round."""
        live: dict[bytes, bool] = {}
        for seg in self._segments:  # oldest first: newer entries overwrite
            live.update(zip(seg.key.tolist(), seg.live.tolist(), strict=True))
        live.update((k, e is not None) for k, e in self._flat_table().items())
        dead = self.dead
        return [k for k, alive in live.items() if alive and _split(k)[1] not in dead]

    def keys(self) -> list[tuple[str, str]]:
        return [_split(k) for k in self._live_keys()]

    def count(self) -> int:
        if self._count is None:
            self._count = len(self._live_keys())
        return self._count

    def close(self) -> None:
        if self._wal is not None:
            _close_log(self._wal)
            self._wal = None
