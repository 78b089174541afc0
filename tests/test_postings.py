"""The posting index against a plain dictionary: puts, drops, dead facts, flushes into
segments, size-tiered merges, reopening, and crashes at each step of a flush or merge."""

from __future__ import annotations

import shutil
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from amplihack_hive.memory.postings import PostingIndex, Segment
from amplihack_hive.memory.records import Posting

TERMS = ["alpha", "beta", "gamma", "\x00odd", "\x01\x02", "é"]
FACTS = [f"{i:032x}" for i in range(12)]


def posting(term: str, fid: str, tf: int = 1) -> Posting:
    # tf 0: a term of the fact's context only; tf 4 and 5: of both (BM25F's second field);
    # tf 2 and 5 carry a vector (a vector list's postings, memory/semantic.py), of a length
    # that depends on the fact, so rows of a segment hold vectors of several lengths
    ctx = (tf - 3, 7) if tf >= 4 else (2, 5) if tf == 0 else (0, 0)
    vector = bytes([tf, int(fid, 16) % 251]) * (1 + int(fid, 16) % 3) if tf in (2, 5) else None
    return Posting(term, fid, tf, 3 + tf, 1.5 * tf, "subj" if tf % 2 else None, *ctx, vector)


class IndexMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self.root = Path(tempfile.mkdtemp(prefix="postings-"))
        self.index = PostingIndex(self.root, flush_postings=4)
        self.model: dict[tuple[str, str], Posting] = {}
        self.dead: set[str] = set()

    @rule(
        rows=st.lists(
            st.tuples(st.sampled_from(TERMS), st.sampled_from(FACTS), st.integers(0, 5)),
            min_size=1,
            max_size=6,
        )
    )
    def put(self, rows: list[tuple[str, str, int]]) -> None:
        batch = [posting(t, f, tf) for t, f, tf in rows]
        self.index.put(batch)
        for p in batch:
            if p.fact_id not in self.dead:
                self.model[(p.term, p.fact_id)] = p

    @rule(keys=st.lists(st.tuples(st.sampled_from(TERMS), st.sampled_from(FACTS)), max_size=4))
    def drop(self, keys: list[tuple[str, str]]) -> None:
        self.index.drop(keys)
        for k in keys:
            self.model.pop(k, None)

    @rule(fid=st.sampled_from(FACTS))
    def kill(self, fid: str) -> None:
        self.index.kill([fid])
        self.dead.add(fid)
        self.model = {k: p for k, p in self.model.items() if k[1] != fid}

    @rule()
    def reopen(self) -> None:
        # the owner passes its tombstones again, as KuzuStore does
        self.index.close()
        self.index = PostingIndex(self.root, dead=self.dead, flush_postings=4)

    @invariant()
    def same_as_the_model(self) -> None:
        for term in TERMS:
            got = sorted(self.index.term(term), key=lambda p: p.fact_id)
            want = sorted(
                (p for k, p in self.model.items() if k[0] == term), key=lambda p: p.fact_id
            )
            assert got == want, term
        assert sorted(self.index.keys()) == sorted(self.model)
        assert self.index.count() == len(self.model)
        for term in TERMS:  # point lookups see the newest entry, in the table or a segment
            for fid in FACTS:
                p = self.model.get((term, fid))
                want = (
                    None
                    if p is None
                    else (p.tf, p.length, p.created, p.subject, p.ctx_tf, p.ctx_length, p.vector)
                )
                assert self.index.lookup(term, fid) == want, (term, fid)

    def teardown(self) -> None:
        self.index.close()
        shutil.rmtree(self.root, ignore_errors=True)


TestIndexMachine = IndexMachine.TestCase
TestIndexMachine.settings = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_writes_become_segments_and_segments_merge(tmp_path: Path) -> None:
    index = PostingIndex(tmp_path, flush_postings=10)
    for i in range(200):
        index.put([posting("alpha", f"{i:032x}")])
    # 20 flushes, merged four at a time: far fewer segments than flushes
    segments = sorted(p.name for p in tmp_path.glob("seg-*"))
    assert 1 <= len(segments) < 8, segments
    assert index.count() == 200
    index.close()
    again = PostingIndex(tmp_path, flush_postings=10)
    assert len(again.term("alpha")) == 200
    again.close()


def test_a_torn_last_log_record_is_dropped_and_the_rest_kept(tmp_path: Path) -> None:
    index = PostingIndex(tmp_path)
    index.put([posting("alpha", FACTS[0])])
    index.put([posting("beta", FACTS[1])])
    index.close()
    (wal,) = tmp_path.glob("wal-*.log")
    data = wal.read_bytes()
    wal.write_bytes(data[:-7])  # the second record was being written when the agent died
    again = PostingIndex(tmp_path)
    assert again.term("alpha") == [posting("alpha", FACTS[0])]
    assert again.term("beta") == []
    again.close()


def test_a_merge_interrupted_after_its_result_was_written_is_finished(tmp_path: Path) -> None:
    index = PostingIndex(tmp_path, flush_postings=2)
    for i in range(6):
        index.put([posting("alpha", FACTS[i])])
    index.drop([("alpha", FACTS[0])])
    index.close()
    # simulate a crash mid-merge: the merged result exists as ".new" beside its parts
    segs = sorted((int(p.name[4:]), p) for p in tmp_path.glob("seg-*") if p.name[4:].isdigit())
    parts = [Segment.load(p, g) for g, p in segs]
    merged: dict[bytes, object] = {}
    for seg in parts:
        merged.update(seg.rows())
    newest = parts[-1].gen
    Segment.build(newest, merged, keep_deletes=True, merged=tuple(s.gen for s in parts)).write(  # type: ignore[arg-type]
        tmp_path / f"seg-{newest}.new"
    )
    again = PostingIndex(tmp_path, flush_postings=2)
    assert sorted(p.fact_id for p in again.term("alpha")) == FACTS[1:6]
    assert not list(tmp_path.glob("seg-*.new"))
    again.close()


def _mount_tmpfs(where: Path, size: str) -> bool:
    import subprocess

    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
    )
    return done.returncode == 0


def test_a_full_disk_fails_the_write_and_every_later_one(tmp_path: Path) -> None:
    """ENOSPC on a real (tiny) filesystem: the write raises, and the index acknowledges
    nothing more until it is reopened, when what is on disk is replayed."""
    import subprocess

    import pytest

    from amplihack_hive.errors import StorageError

    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "256k"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        index = PostingIndex(disk / "idx")
        index.put([posting("alpha", FACTS[0])])
        big = [posting("alpha" + "x" * 200, f"{i:032x}") for i in range(2000)]
        with pytest.raises(StorageError, match="posting log"):
            for start in range(0, len(big), 100):
                index.put(big[start : start + 100])
        assert index.broken is not None
        with pytest.raises(StorageError, match="broken"):
            index.put([posting("beta", FACTS[1])])  # a small write would fit: still refused
        index.close()
        again = PostingIndex(disk / "idx")  # what was acknowledged is there
        assert again.term("alpha") == [posting("alpha", FACTS[0])]
        again.close()
    finally:
        # lazily: a log left open by a failed assertion must not keep the mount busy
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_segments_written_before_contexts_read_as_no_context(tmp_path: Path) -> None:
    index = PostingIndex(tmp_path / "ix", flush_postings=2)
    index.put([posting("alpha", FACTS[0], 1), posting("beta", FACTS[1], 4)])  # flushed
    index.close()
    (seg,) = (tmp_path / "ix").glob("seg-*")
    assert (seg / "ctx_tf.npy").exists()
    for name in Segment.OPTIONAL:  # as an older version wrote it
        (seg / f"{name}.npy").unlink()
    (tmp_path / "ix" / "FORMAT").write_text("1\n")
    index = PostingIndex(tmp_path / "ix", flush_postings=2)
    # marked with this format: a version from before contexts (or vectors) refuses it
    assert (tmp_path / "ix" / "FORMAT").read_text() == "3\n"
    assert index.term("alpha") == [posting("alpha", FACTS[0], 1)]
    (beta,) = index.term("beta")
    assert (beta.tf, beta.ctx_tf, beta.ctx_length) == (4, 0, 0)
    index.close()


def test_vectors_survive_the_log_a_flush_a_merge_and_a_reopen(tmp_path: Path) -> None:
    with_vectors = [posting("alpha", f, 2) for f in FACTS[:6]]
    plain = [posting("beta", f, 1) for f in FACTS[:6]]
    index = PostingIndex(tmp_path / "ix", flush_postings=3)
    for a, b in zip(with_vectors, plain, strict=True):
        index.put([a, b])  # a flush every other write, merges as segments pile up
    index.put([posting("alpha", FACTS[7], 2)])  # this one stays in the log
    index.close()
    segs = list((tmp_path / "ix").glob("seg-*"))
    assert segs and any((s / "vec.npy").exists() for s in segs)
    again = PostingIndex(tmp_path / "ix", flush_postings=3)
    got = sorted(again.term("alpha"), key=lambda p: p.fact_id)
    assert got == sorted([*with_vectors, posting("alpha", FACTS[7], 2)], key=lambda p: p.fact_id)
    assert all(p.vector for p in got)
    assert all(p.vector is None for p in again.term("beta"))
    again.close()


def test_segments_written_before_vectors_read_as_no_vector(tmp_path: Path) -> None:
    index = PostingIndex(tmp_path / "ix", flush_postings=2)
    index.put([posting("alpha", FACTS[0], 1), posting("beta", FACTS[1], 4)])  # flushed
    index.close()
    (seg,) = (tmp_path / "ix").glob("seg-*")
    # a segment without vectors is written without their columns, as format 2 wrote it
    assert not (seg / "vec.npy").exists() and not (seg / "vec_off.npy").exists()
    (tmp_path / "ix" / "FORMAT").write_text("2\n")
    index = PostingIndex(tmp_path / "ix", flush_postings=2)
    assert (tmp_path / "ix" / "FORMAT").read_text() == "3\n"
    assert index.term("alpha") == [posting("alpha", FACTS[0], 1)]
    index.close()
