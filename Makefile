# amplihack-hive: make install | demo | test | test-fast | check | bench | clean
VENV ?= .venv
PY := $(VENV)/bin/python
HIVE := $(VENV)/bin/amplihack-hive

.PHONY: install install-semantic demo test test-fast check bench bench-semantic clean

install: $(VENV)/.installed

# What the tool needs to run: the package (editable) and its runtime dependencies only.
$(VENV)/.runtime: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

# Tests, checks and benchmarks: the dev tools on top (pytest, ruff, mypy, checkov, mcp, ...).
$(VENV)/.installed: $(VENV)/.runtime
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# Semantic recall's extra (memory/embed.py, tests/test_embed.py, bench_semantic): torch's CPU
# build first (this pin is the CPU wheel the CI machines hold; elsewhere use
# `pip install torch --index-url https://download.pytorch.org/whl/cpu`), then the extra.
TORCH ?= torch==2.13.0
install-semantic: $(VENV)/.semantic

$(VENV)/.semantic: $(VENV)/.installed
	$(PY) -m pip install -q '$(TORCH)'
	$(PY) -m pip install -q -e '.[semantic]'
	touch $@

# The main job on embedded defaults: a local hive of 5 agents on Kuzu, no cloud, no key.
# It installs only what the tool needs to run (not the dev tools).
demo: $(VENV)/.runtime
	$(HIVE) create demo --agents 5 --force
	$(HIVE) start demo
	$(HIVE) learn demo amplihack_hive/samples/team.txt
	$(HIVE) ask demo "What is the budget of PRJ-4471?"
	$(HIVE) recall demo "Who is on call this week?" --limit 3
	$(HIVE) status demo
	$(HIVE) stop demo

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

check: install
	$(VENV)/bin/ruff check amplihack_hive tests benchmarks
	$(VENV)/bin/ruff format --check amplihack_hive tests benchmarks
	$(VENV)/bin/mypy

bench: install
	$(PY) -m benchmarks.bench_memory
	$(PY) -m benchmarks.bench_kuzu_open
	$(PY) -m benchmarks.bench_local
	$(PY) -m benchmarks.bench_startup
	$(PY) -m benchmarks.bench_ingest
	$(PY) -m benchmarks.bench_recall
	$(PY) -m benchmarks.bench_learn
	$(PY) -m benchmarks.bench_rss
	$(PY) -m benchmarks.bench_placement
	$(PY) -m benchmarks.bench_faults
	$(PY) -m benchmarks.bench_restart
	$(PY) -m benchmarks.bench_conversation
	$(PY) -m benchmarks.bench_scopes

bench-semantic: install-semantic
	$(PY) -m benchmarks.bench_semantic

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
