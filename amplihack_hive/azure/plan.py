"""Which container apps a hive needs on Azure, and how big each is. Pure: no I/O.

One container app runs one agent process, hosting ``azure.agents_per_app`` agents of the
hive (5 by default, so 100 agents make 20 apps), in config order. An app is named
``<hive>-<its first agent>`` (as a local process group is named after its first agent), and
that name must be a valid Container App name: at most 32 lowercase letters, digits and
``-``. A hive whose app names would not be is refused, never shortened into a name that
could collide.

Size: memory = 0.5 GiB for the process + (buffer pool + 0.25 GiB) per hosted agent, rounded
up to the next 0.5 GiB; vCPU = memory / 2, the ratio the Consumption profile requires
(0.25 vCPU / 0.5 GiB up to 4 vCPU / 8 GiB).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from amplihack_hive.errors import InvalidInputError
from amplihack_hive.hive.config import HiveConfig
from amplihack_hive.names import MAX_NAME_LENGTH, is_valid_name

#: GiB every agent process needs besides its agents (Python, aiohttp, the ring).
BASE_MEMORY_GIB = 0.5
#: GiB each hosted agent needs besides its Kuzu buffer pool (index, caches, requests).
AGENT_OVERHEAD_GIB = 0.25
#: Memory is allotted in steps of this many GiB (with vCPU in steps of half of it).
MEMORY_STEP_GIB = 0.5
#: The largest app of the Consumption workload profile.
MAX_MEMORY_GIB = 8.0
MEMORY_RULE = (
    f"memory = {BASE_MEMORY_GIB:g} GiB + (buffer pool + {AGENT_OVERHEAD_GIB:g} GiB) per agent, "
    f"rounded up to {MEMORY_STEP_GIB:g} GiB; vCPU = memory / 2"
)

# Azure region names: lowercase letters and digits (eastus, westeurope, swedencentral).
_LOCATION = re.compile(r"[a-z][a-z0-9]*\Z")


@dataclass(frozen=True)
class AppPlan:
    """One container app: its name, the agents its process hosts, and its size."""

    name: str
    agents: tuple[str, ...]
    cpu: str
    """vCPU as the Bicep ``json()`` call takes it, e.g. ``"1.5"``."""
    memory: str
    """Memory as Container Apps takes it, e.g. ``"3Gi"``."""


@dataclass(frozen=True)
class HivePlan:
    """Everything about a hive that the rendered deployment depends on."""

    hive: str
    agents: tuple[str, ...]
    apps: tuple[AppPlan, ...]
    agents_per_app: int
    replication: int
    backend: str
    buffer_pool_mb: int
    location: str
    #: tokenizer version of the agents' postings (memory/text.py)
    tokenizer: int
    image: str | None
    #: client address ranges (CIDR) let into the entry app; empty for any
    allowed_ips: tuple[str, ...] = ()
    #: the hive's groups (memory/scopes.py): (name, agents), sorted
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: semantic recall (memory/semantic.py): the embedder (``<backend>:<model>``, "" for
    #: none) and the vector lists a question asks
    embedder: str = ""
    nprobe: int = 8

    @property
    def peers(self) -> list[tuple[str, str]]:
        """(agent, app name) for every agent, in ring order."""
        return [(agent, app.name) for app in self.apps for agent in app.agents]

    def app_of(self, agent: str) -> AppPlan:
        for app in self.apps:
            if agent in app.agents:
                return app
        raise KeyError(agent)


def app_size(agents: int, buffer_pool_mb: int) -> tuple[str, str]:
    """(vCPU, memory) of an app hosting ``agents`` agents; InvalidInputError if too big."""
    need = BASE_MEMORY_GIB + agents * (buffer_pool_mb / 1024 + AGENT_OVERHEAD_GIB)
    memory = math.ceil(need / MEMORY_STEP_GIB) * MEMORY_STEP_GIB
    if memory > MAX_MEMORY_GIB:
        raise InvalidInputError(
            f"{agents} agents with a {buffer_pool_mb} MB buffer pool each need {need:g} GiB in "
            f"one container app; Azure allows {MAX_MEMORY_GIB:g} GiB: lower azure.agents_per_app "
            "or buffer_pool_mb in the hive config"
        )
    return f"{memory / 2:g}", f"{memory:g}Gi"


def app_name(hive: str, group: list[str]) -> str:
    """``<hive>-<first agent>``; InvalidInputError naming the agents if not a valid app name."""
    name = f"{hive}-{group[0]}"
    if not is_valid_name(name):
        members = group[0] if len(group) == 1 else f"{group[0]}..{group[-1]}"
        raise InvalidInputError(
            f"hive {hive!r}: the container app of agents {members} would be named {name!r} "
            f"({len(name)} characters); Azure Container App names have at most "
            f"{MAX_NAME_LENGTH}: use a shorter hive name or shorter agent names"
        )
    return name


def check_location(location: str) -> str:
    """``location`` if it looks like an Azure region name (``eastus``), else InvalidInputError."""
    if not _LOCATION.match(location):
        raise InvalidInputError(
            f"invalid Azure location {location!r}: use a region name such as 'eastus' "
            "(lowercase letters and digits; see `az account list-locations -o table`)"
        )
    return location


def check_image(image: str) -> str:
    """``image`` if it is a plausible image reference, else InvalidInputError."""
    if not image or any(ch.isspace() for ch in image) or image != image.strip("/:@"):
        raise InvalidInputError(
            f"invalid image reference {image!r}: expected e.g. "
            "'myregistry.azurecr.io/amplihack-hive:0.1.0'"
        )
    return image


def plan_hive(
    cfg: HiveConfig, *, location: str | None = None, image: str | None = None
) -> HivePlan:
    """The container apps of hive ``cfg`` (``location``/``image`` override the config)."""
    per = cfg.azure.agents_per_app
    if per < 1:
        raise InvalidInputError(f"azure.agents_per_app must be >= 1, got {per}")
    names = cfg.agent_names
    apps = []
    for start in range(0, len(names), per):
        group = names[start : start + per]
        cpu, memory = app_size(len(group), cfg.buffer_pool_mb)
        apps.append(AppPlan(app_name(cfg.name, group), tuple(group), cpu, memory))
    chosen_image = image if image is not None else cfg.azure.image
    return HivePlan(
        hive=cfg.name,
        agents=tuple(names),
        apps=tuple(apps),
        agents_per_app=per,
        replication=cfg.replication,
        backend=cfg.backend,
        buffer_pool_mb=cfg.buffer_pool_mb,
        tokenizer=cfg.tokenizer,
        location=check_location(location if location is not None else cfg.azure.location),
        image=check_image(chosen_image) if chosen_image is not None else None,
        allowed_ips=tuple(cfg.azure.allowed_ips),
        groups=tuple((g, tuple(m)) for g, m in sorted(cfg.groups.items())),
        embedder=cfg.semantic.embedder if cfg.semantic is not None else "",
        nprobe=cfg.semantic.nprobe if cfg.semantic is not None else 8,
    )
