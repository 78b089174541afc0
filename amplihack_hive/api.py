"""The Python API: :class:`Hive` (many agents) and :class:`Memory` (one agent's view).

This module is the composition root: it wires stores, nodes, a ring, a transport and a
coordinator together, so it is the one place allowed to import from every layer.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from amplihack_hive._loop import LoopThread
from amplihack_hive.agent.answer import Answer, extractive_answer
from amplihack_hive.errors import HiveError, HiveStateError, InvalidInputError
from amplihack_hive.memory.assembly import (
    AgentSettings,
    build_coordinator,
    build_node,
    build_ring,
    open_agent_store,
    settle_tokenizer,
)
from amplihack_hive.memory.config import MemoryConfig
from amplihack_hive.memory.coordinator import Coordinator, Hits, Transport
from amplihack_hive.memory.embed import Embedder
from amplihack_hive.memory.protocol import Stats, encode
from amplihack_hive.memory.records import Fact
from amplihack_hive.memory.repair import Repairer, RepairReport
from amplihack_hive.memory.ring import HashRing
from amplihack_hive.memory.scopes import Access, check_groups
from amplihack_hive.memory.semantic import CENTROIDS_TTL, Semantic
from amplihack_hive.memory.store import Store
from amplihack_hive.memory.text import TOKENIZER
from amplihack_hive.memory.vectors import DEFAULT_NPROBE
from amplihack_hive.transport.inprocess import InProcessTransport

logger = logging.getLogger(__name__)

Item = str | dict[str, Any]
#: Facts per coordinated batch in remember_many: bounds message sizes and memory.
BATCH = 500


def agent_names(n: int) -> list[str]:
    return [f"agent-{i}" for i in range(n)]


class _Client:
    """The synchronous face shared by Hive and Memory: a coordinator on a private loop."""

    def __init__(self, coordinator: Coordinator, transport: Transport, agents: list[str]) -> None:
        self._coordinator = coordinator
        self._transport = transport
        self._agents = agents
        self._loop = LoopThread()
        self._closed = False

    def _check(self) -> None:
        if self._closed:
            raise HiveStateError("this hive handle is closed")

    def remember(
        self,
        content: str | bytes,
        kind: str = "semantic",
        metadata: dict[str, Any] | None = None,
        **fields: Any,
    ) -> str:
        """Store one fact; return its id (the same content always has the same id). Bytes
        are decoded as UTF-8 or refused. ``fields``: subject, supersedes, created,
        confidence, context, scope ("hive", the default; "agent:NAME"; "group:NAME")."""
        item: dict[str, Any] = {"content": content, "kind": kind, "metadata": metadata, **fields}
        return self.remember_many([item])[0]

    def remember_many(
        self,
        items: Iterable[Item],
        *,
        batch: int = BATCH,
        progress: Callable[[int], None] | None = None,
        scope: str | None = None,
    ) -> list[str]:
        """Store many facts in batches; return their ids in order. ``progress`` is called
        with the number stored after each batch. ``scope``: of the items that name none
        (default: the hive)."""
        self._check()
        defaults: dict[str, Any] = {} if scope is None else {"scope": scope}
        ids: list[str] = []
        chunk: list[Item] = []
        for item in items:
            chunk.append(item)
            if len(chunk) >= batch:
                ids += self._loop.run(self._coordinator.remember_many(chunk, None, **defaults))
                chunk = []
                if progress:
                    progress(len(ids))
        if chunk:
            ids += self._loop.run(self._coordinator.remember_many(chunk, None, **defaults))
            if progress:
                progress(len(ids))
        return ids

    #: Facts recall returns when no limit is given.
    default_limit = 10

    def recall(
        self, question: str, limit: int | None = None, scopes: Sequence[str] | None = None
    ) -> Hits:
        """The facts that best answer ``question``, best first (at most ``limit``), among
        the facts of ``scopes`` (default: what this client sees: as an agent, its own
        scope, its groups' and the hive's; as the admin, the hive's)."""
        self._check()
        k = self.default_limit if limit is None else limit
        return self._loop.run(self._coordinator.recall(question, k, scopes))

    def train_vectors(
        self, lists: int | None = None, *, seed: int = 0, settle: float | None = None
    ) -> str:
        """Train the centroids semantic recall files vectors by, on the vectors the hive
        holds, and re-file them (memory/semantic.py); returns the new version. ``settle``:
        seconds other coordinators get to see the new centroids (None: 0 for a hive in this
        process, which has no other; else the time they keep centroids)."""
        self._check()
        wait = self._settle() if settle is None else settle
        new = self._loop.run(self._coordinator.train_vectors(lists, seed=seed, settle=wait))
        return new.version

    @property
    def semantic(self) -> Semantic | None:
        """How this client recalls by meaning (memory/semantic.py), or None: lexical only."""
        return self._coordinator.semantic

    def _settle(self) -> float:
        """How long a training waits for other coordinators to see new centroids: none in
        this process's own hive (there is no other), else as long as they keep them."""
        return 0.0 if isinstance(self._transport, InProcessTransport) else CENTROIDS_TTL

    def train_vectors_if_due(self) -> str | None:
        """:meth:`train_vectors` when the hive has outgrown its centroids (memory/semantic.py:
        one list still, at 2,000 facts; or four times the facts they were trained on);
        returns the new version, or None when none was due (or no embedder is configured)."""
        self._check()
        new = self._loop.run(self._coordinator.train_vectors_if_due(settle=self._settle()))
        return new.version if new is not None else None

    def forget(self, fact_id: str) -> bool:
        """Forget a fact everywhere; it is never recalled again. True if it existed."""
        self._check()
        return self._loop.run(self._coordinator.forget(fact_id))

    def fact(self, fact_id: str) -> Fact | None:
        """The fact ``fact_id``, or None (forgotten, never stored, or not this client's to
        see)."""
        self._check()
        return self._loop.run(self._coordinator.fact(fact_id))

    def escalate(self, fact_id: str, scope: str) -> str:
        """Move a fact to a wider scope (an agent's into one of its groups or the hive, a
        group's into the hive); returns its id there (a scope is part of a fact's id)."""
        self._check()
        return self._loop.run(self._coordinator.escalate(fact_id, scope))

    def _agent_stats(self) -> dict[str, dict[str, Any] | None]:
        async def gather() -> dict[str, dict[str, Any] | None]:
            replies = await asyncio.gather(
                *(self._transport.request(a, Stats()) for a in self._agents),
                return_exceptions=True,
            )
            out: dict[str, dict[str, Any] | None] = {}
            for agent, reply in zip(self._agents, replies, strict=True):
                if isinstance(reply, HiveError):
                    logger.info("no stats from %s: %s", agent, reply)
                    out[agent] = None
                elif isinstance(reply, BaseException):
                    raise reply
                else:
                    out[agent] = encode(reply)
            return out

        return self._loop.run(gather())

    def stats(self) -> dict[str, Any]:
        """Records and hints pending per agent (None for an agent that did not answer),
        the agents that did not answer, and fan-out so far."""
        self._check()
        per = self._agent_stats()
        return {
            "agents": len(self._agents),
            "replication": self._coordinator.replication,
            "facts_per_agent": {a: s and int(s["facts"]) for a, s in per.items()},
            "postings_per_agent": {a: s and int(s["postings"]) for a, s in per.items()},
            "hints_pending": {a: s and int(s.get("hints_pending", 0)) for a, s in per.items()},
            "unreachable": sorted(a for a, s in per.items() if s is None),
            "fanout": self._coordinator.fanout.as_dict(),
        }

    def ask(
        self, question: str, limit: int | None = None, scopes: Sequence[str] | None = None
    ) -> Answer:
        """An answer built from recalled facts (extractive: works with no model)."""
        hits = self.recall(question, limit, scopes)
        return extractive_answer(
            question, list(hits), complete=hits.complete, unreachable=hits.unreachable
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        closer = getattr(self._transport, "close", None)
        if closer is not None:
            self._loop.run(closer())
        self._loop.close()

    def __enter__(self) -> _Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _access(groups: Mapping[str, Sequence[str]] | None, agent: str | None) -> Access:
    checked = check_groups(groups or {})
    return Access.admin(checked) if agent is None else Access.of_agent(agent, checked)


class Hive(_Client):
    """A hive of agents sharing one memory."""

    def __init__(
        self,
        coordinator: Coordinator,
        transport: Transport,
        agents: list[str],
        stores: Sequence[Store] = (),
        cleanup: Path | None = None,
    ) -> None:
        super().__init__(coordinator, transport, agents)
        self._stores = list(stores)
        self._cleanup = cleanup

    @property
    def agents(self) -> list[str]:
        return list(self._agents)

    @classmethod
    def in_process(
        cls,
        agents: int = 1,
        replication: int = 3,
        backend: str = "memory",
        path: str | Path | None = None,
        *,
        write_quorum: int = 2,
        vnodes: int = 256,
        buffer_pool_mb: int = 256,
        max_db_size_mb: int = 4096,
        engine: str = "kuzu",
        agents_per_domain: int = 1,
        tokenizer: int | None = None,
        groups: Mapping[str, Sequence[str]] | None = None,
        as_agent: str | None = None,
        embedder: Embedder | None = None,
        nprobe: int = DEFAULT_NPROBE,
    ) -> Hive:
        """N agents in this process, over a transport that carries the same messages as
        HTTP. ``backend="kuzu"`` keeps one database per agent under ``path`` (a temporary
        directory, removed on close, when no path is given). ``agents_per_domain`` groups
        consecutive agents into failure domains, as processes of a local hive are.
        ``tokenizer``: the version the postings are built with (memory/text.py); None:
        the one the stores under ``path`` were built with (new stores: the newest). Stores
        built with another are refused (IndexVersionError). ``groups``: group name -> its
        agents (scopes ``group:NAME``); ``as_agent``: this handle reads and writes as that
        agent (its scopes only), else as the admin (memory/scopes.py). ``embedder``
        (memory/embed.py): facts and questions are embedded too, and recall fuses the
        nearest vectors (``nprobe`` lists a question) with the lexical ranking
        (memory/semantic.py); None, lexical only."""
        if isinstance(agents, bool) or not isinstance(agents, int) or agents < 1:
            raise InvalidInputError(f"agents must be an integer >= 1, got {agents!r}")
        settings = AgentSettings(
            backend=backend,
            engine=engine,
            buffer_pool_mb=buffer_pool_mb,
            max_db_size_mb=max_db_size_mb,
            replication=replication,
            write_quorum=write_quorum,
            vnodes=vnodes,
            tokenizer=tokenizer or TOKENIZER,
        )
        if (
            isinstance(agents_per_domain, bool)
            or not isinstance(agents_per_domain, int)
            or (agents_per_domain < 1)
        ):
            raise InvalidInputError(
                f"agents_per_domain must be an integer >= 1, got {agents_per_domain!r}"
            )
        names = agent_names(agents)
        domains = {n: names[i - i % agents_per_domain] for i, n in enumerate(names)}
        cleanup: Path | None = None
        root: Path | None = None
        if backend == "kuzu":
            if path is None:
                root = cleanup = Path(tempfile.mkdtemp(prefix="amplihack-hive-"))
            else:
                root = Path(path)
                root.mkdir(parents=True, exist_ok=True)
        stores: list[Store] = []
        try:
            for name in names:
                where = None if root is None else root / name
                stores.append(open_agent_store(settings, where, check_index=False))
            places = [root / n if root is not None else n for n in names]
            settings = settle_tokenizer(settings, zip(places, stores, strict=True), tokenizer)
        except BaseException:
            for s in stores:
                s.close()
            if cleanup:
                shutil.rmtree(cleanup, ignore_errors=True)
            raise
        coordinator = build_coordinator(names, InProcessTransport({}), settings, domains=domains)
        coordinator.access = _access(groups, as_agent)
        if embedder is not None:
            coordinator.semantic = Semantic(embedder, nprobe=nprobe)
        nodes = {
            n: build_node(n, s, settings, lambda: coordinator.ring)
            for n, s in zip(names, stores, strict=True)
        }
        transport = InProcessTransport(nodes)
        coordinator.transport = transport
        return cls(coordinator, transport, names, stores, cleanup)

    def repair(self) -> list[RepairReport]:
        """One anti-entropy round on every agent of an in-process hive (agents running as
        processes repair themselves on a timer). Returns each agent's report."""
        self._check()
        transport = self._transport
        if not isinstance(transport, InProcessTransport):
            raise HiveStateError(
                "repair() drives in-process hives; agent processes repair themselves"
            )

        async def run() -> list[RepairReport]:
            reports = []
            for name in self._agents:
                node = transport.nodes.get(name)
                if node is None or node.repair is None or name in transport.down:
                    continue
                reports.append(await Repairer(node.repair, transport.request).round())
            return reports

        return self._loop.run(run())

    @classmethod
    def connect(
        cls,
        name: str,
        home: str | Path | None = None,
        *,
        timeout_s: float = 5.0,
        as_agent: str | None = None,
    ) -> Hive:
        """The client of a running local hive: it reaches the agents over their HTTP API
        and, when an agent dies, asks the next replica of whatever it needed. It holds
        the hive token (the admin key); ``as_agent`` limits it to that agent's scopes (a
        program holding only an agent's credential uses :class:`~amplihack_hive.remote.
        RemoteHive`, where the agents enforce them)."""
        from amplihack_hive.agent.runstate import (
            MembersFile,
            PeerDirectory,
            process_of,
            read_records,
        )
        from amplihack_hive.hive.config import load_hive
        from amplihack_hive.hive.home import hive_dir
        from amplihack_hive.hive.token import read_token
        from amplihack_hive.transport.http import HttpTransport

        cfg = load_hive(home, name)
        directory = hive_dir(home, name)
        if not any(process_of(rec, directory) for rec in read_records(directory)):
            raise HiveStateError(
                f"hive {name!r} is not running; start it with: amplihack-hive start {name}"
            )
        peers = PeerDirectory(directory)
        transport = HttpTransport(
            peers.url,
            token=read_token(directory),
            timeout_s=timeout_s,
            on_unreachable=peers.forget,
        )
        # the running agents' ring (it may lag the config until `start` publishes it)
        published = MembersFile(directory)
        members = published() or cfg.ring_names
        settings = AgentSettings(
            backend=cfg.backend, replication=cfg.replication, tokenizer=cfg.tokenizer
        )
        coordinator = build_coordinator(
            members,
            transport,
            settings,
            domains=published.domains() or cfg.domains(),
            agent="client",
        )
        coordinator.access = _access(cfg.groups, as_agent)
        if cfg.semantic is not None:
            from amplihack_hive.memory.embed import embedder_from_spec

            coordinator.semantic = Semantic(
                embedder_from_spec(cfg.semantic.embedder), nprobe=cfg.semantic.nprobe
            )

        def newer_ring() -> HashRing | None:
            # the membership the supervisor published last (agents adopt it within ~1 s)
            names = published()
            if not names:
                return None
            client._agents = list(names)
            return build_ring(names, settings, published.domains())

        # a long-lived client follows membership changes, and writes around (and asks
        # last) agents that stopped answering, so a paused agent costs one timeout
        coordinator.refresh = newer_ring
        coordinator.suspects = transport.suspects
        client = cls(coordinator, transport, list(members))
        return client

    def close(self) -> None:
        if self._closed:
            return
        super().close()
        for s in self._stores:
            s.close()
        if self._cleanup:
            shutil.rmtree(self._cleanup, ignore_errors=True)

    def __enter__(self) -> Hive:
        return self


class Memory(_Client):
    """One agent's view of its hive: its own store, and the hive's other agents as peers
    (``config.peers``, reached over HTTP). With no peers, the agent is the whole hive."""

    def __init__(self, agent: str = "agent-0", config: MemoryConfig | None = None) -> None:
        from amplihack_hive.names import validate_name

        self.agent = validate_name(agent, "agent name")
        self.config = config or MemoryConfig.resolve()
        cfg = self.config
        settings = AgentSettings.of(cfg)
        path = Path(cfg.data_dir) / self.agent
        self._store = open_agent_store(settings, path, check_index=False)
        try:
            # the version this agent's postings have; a new store: the newest when it is
            # the whole hive, else 1 (its peers may be of a hive made before versions: set
            # tokenizer in every peer's config to move them together)
            new = 1 if cfg.peers else TOKENIZER
            settings = settle_tokenizer(settings, [(path, self._store)], cfg.tokenizer, new)
        except BaseException:
            self._store.close()
            raise
        node = build_node(self.agent, self._store, settings)
        names = sorted({self.agent, *cfg.peers})
        transport: Transport
        if cfg.peers:
            from amplihack_hive.transport.http import HttpTransport

            transport = HttpTransport(
                {n: u for n, u in cfg.peers.items() if n != self.agent},
                token=cfg.token,
                timeout_s=cfg.request_timeout_s,
                local={self.agent: node},
            )
        else:
            transport = InProcessTransport({self.agent: node})
        # agents behind one address share a process (a Container App): one failure
        # domain, as the agents themselves count it
        domains = {n: u for n, u in cfg.peers.items()}
        coordinator = build_coordinator(
            names, transport, settings, domains=domains, agent=self.agent
        )
        super().__init__(coordinator, transport, names)
        self.default_limit = cfg.recall_limit

    def close(self) -> None:
        if self._closed:
            return
        super().close()
        self._store.close()

    def __enter__(self) -> Memory:
        return self
