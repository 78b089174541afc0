"""``up`` and ``down --target azure``: one re-runnable command each, as ``azd up`` / ``azd
down`` are.

``up``: build the agent image in the hive's Azure Container Registry (``az acr build``, from
the project's Dockerfile; skipped when ``--image`` names a built one), deploy or update the
hive (``az deployment group create``, which rolls the apps one at a time, each once the one
before is in step with its replicas), then wait until the entry app answers and every agent
it sees is alive. ``down``: delete the hive's container apps and forget its entry URL; the
environment, the Log Analytics workspace and the pull identity stay (nothing or little to
pay idle, and the next ``up`` reuses them); ``az group delete`` removes everything.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amplihack_hive._version import __version__
from amplihack_hive.azure.deployment import (
    AZ,
    ENTRY_FILE,
    ENTRY_OUTPUT,
    DeployResult,
    Runner,
    deploy,
    entry_token,
)
from amplihack_hive.errors import (
    HiveError,
    HiveStateError,
    InvalidInputError,
    NotFoundError,
    TransportError,
)
from amplihack_hive.hive.home import HomeArg, hive_dir

logger = logging.getLogger(__name__)

#: The repository name of the agent image in the registry.
IMAGE_REPOSITORY = "amplihack-hive"
_REGISTRY = re.compile(r"^[a-zA-Z0-9]{5,50}$")


@dataclass
class UpResult:
    hive: str
    image: str
    built: bool
    deployment: DeployResult
    url: str | None
    agents_alive: int = 0
    agents: int = 0
    waited_s: float = 0.0
    steps: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "hive": self.hive,
            "target": "azure",
            "image": self.image,
            "built": self.built,
            "url": self.url,
            "agents": self.agents,
            "agents_alive": self.agents_alive,
            "waited_s": round(self.waited_s, 1),
            "deployment": self.deployment.to_dict(),
        }


def build_image(
    registry: str,
    context: Path,
    tag: str,
    *,
    subscription: str | None = None,
    runner: Runner = subprocess.run,
    which: Callable[[str], str | None] = shutil.which,
) -> str:
    """Build the agent image from ``context`` (which holds the Dockerfile) in the Azure
    Container Registry ``registry`` and push it there; its reference."""
    if not _REGISTRY.fullmatch(registry):
        raise InvalidInputError(
            f"invalid registry name {registry!r}: 5-50 letters and digits (the part before "
            f".azurecr.io)"
        )
    if not (context / "Dockerfile").is_file():
        raise NotFoundError(
            f"no Dockerfile in {context}: run up from the project's folder (or pass "
            f"--context DIR), or pass --image with an image already built"
        )
    az = which(AZ)
    if az is None:
        raise NotFoundError(
            "the Azure CLI (az) is not on PATH: install it and sign in with `az login`"
        )
    image = f"{registry.lower()}.azurecr.io/{IMAGE_REPOSITORY}:{tag}"
    argv = [az, "acr", "build", "--registry", registry, "--image", f"{IMAGE_REPOSITORY}:{tag}"]
    if subscription:
        argv += ["--subscription", subscription]
    argv += ["--only-show-errors", str(context)]
    logger.info("building %s", image)
    completed = runner(argv, stdout=subprocess.DEVNULL, text=True, check=False)
    if completed.returncode != 0:
        raise TransportError(
            f"az acr build failed (exit {completed.returncode}) for {image}; az's message is above"
        )
    return image


def wait_until_up(
    url: str,
    token: str,
    agents: int,
    timeout_s: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[str], None] = lambda line: None,
) -> int:
    """Wait until the entry agent behind ``url`` is ready and sees ``agents`` agents alive
    (its own failure detector); how many it sees alive. HiveStateError after
    ``timeout_s``."""
    from amplihack_hive.hive.probe import AgentProbe

    probe = AgentProbe(token)
    deadline = clock() + timeout_s
    said = ""
    try:
        while True:
            alive, why = 0, "no answer yet"
            try:
                health = probe.get(url + "/health", 10.0)
                stats = probe.get(url + "/stats", 20.0)
                peers = stats.get("peers") or {}
                members = stats.get("members") or []
                alive = sum(1 for a in members if peers.get(a, "alive") == "alive")
                if health.get("ready") and alive >= agents:
                    return alive
                why = f"{alive} of {agents} agents alive" + (
                    "" if health.get("ready") else ", entry agent rebuilding"
                )
            except HiveError as exc:
                why = str(exc)
            if why != said:
                progress(why)
                said = why
            if clock() >= deadline:
                raise HiveStateError(
                    f"the hive at {url} is not up after {timeout_s:g}s: {why} (see "
                    f"amplihack-hive status NAME --target azure)"
                )
            sleep(3.0)
    finally:
        probe.close()


def azure_up(
    home: HomeArg,
    name: str,
    resource_group: str | None = None,
    *,
    image: str | None = None,
    registry: str | None = None,
    context: Path | None = None,
    tag: str | None = None,
    location: str | None = None,
    subscription: str | None = None,
    timeout_s: float = 900.0,
    environ: Mapping[str, str] | None = None,
    runner: Runner = subprocess.run,
    which: Callable[[str], str | None] = shutil.which,
    progress: Callable[[str], None] = lambda line: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> UpResult:
    """Build (with ``registry``), deploy or update, and wait until the hive is up."""
    if image and registry:
        raise InvalidInputError("pass --image (a built image) or --registry (build one), not both")
    env = os.environ if environ is None else environ
    began = clock()
    built = False
    if registry:
        progress(f"building the agent image in {registry}")
        image = build_image(
            registry,
            context or Path.cwd(),
            tag or __version__,
            subscription=subscription,
            runner=runner,
            which=which,
        )
        built = True
    progress("deploying (the apps roll one at a time)")
    result = deploy(
        home,
        name,
        resource_group,
        location,
        image,
        subscription=subscription,
        environ=env,
        runner=runner,
        which=which,
    )
    url = result.outputs.get(ENTRY_OUTPUT)
    agents = len(_hive_agents(home, name))
    up = UpResult(name, result.plan.image, built, result, url, agents=agents)
    if url:
        progress(f"waiting for the hive at {url}")
        up.agents_alive = wait_until_up(
            str(url),
            entry_token(home, name, env),
            agents,
            timeout_s,
            clock=clock,
            sleep=sleep,
            progress=progress,
        )
    up.waited_s = clock() - began
    return up


def _hive_agents(home: HomeArg, name: str) -> list[str]:
    from amplihack_hive.hive.config import load_hive

    return load_hive(home, name).agent_names


def forget_entry(home: HomeArg, name: str) -> bool:
    """Forget where the hive was reached (after ``down``); whether there was a record."""
    path = hive_dir(home, name) / "azure" / ENTRY_FILE
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed
