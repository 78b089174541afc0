"""See, stop and delete a hive's container apps through azure-mgmt-appcontainers.

The apps are found by the ``amplihack-hive`` tag every rendered resource carries, in the
hive's resource group; the hive config says which agents each app hosts. Credentials come
from ``DefaultAzureCredential`` (``az login``, environment variables, a managed identity)
unless one is passed; the subscription from the argument, else ``$AZURE_SUBSCRIPTION_ID``,
else the config's ``azure.subscription``.

Throttling (429 with ``Retry-After``) and transient failures are retried by the SDK's retry
policy; anything left is mapped by :mod:`amplihack_hive.azure.errors` to one of our errors.
Stop and delete are long-running operations: every app's operation is started first, then
all are awaited, so a hive of 20 apps takes about as long as one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from amplihack_hive.azure.errors import azure_errors
from amplihack_hive.azure.plan import HivePlan, plan_hive
from amplihack_hive.azure.settings import (
    HIVE_TAG,
    resolve_resource_group,
    resolve_subscription,
)
from amplihack_hive.hive.config import load_hive
from amplihack_hive.hive.home import HomeArg

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppStatus:
    """One container app of a hive, as Azure reports it."""

    name: str
    agents: tuple[str, ...]
    found: bool
    provisioning_state: str | None = None
    running_status: str | None = None
    replicas: int | None = None
    revision: str | None = None
    fqdn: str | None = None

    @property
    def running(self) -> bool:
        """Provisioned, running, and with its one replica up."""
        return (
            self.found
            and self.provisioning_state == "Succeeded"
            and self.running_status == "Running"
            and (self.replicas or 0) >= 1
        )

    @property
    def state(self) -> str:
        """``healthy``, ``stopped`` (stopped or absent) or ``unhealthy``, as ``status`` says."""
        if self.running:
            return "healthy"
        if not self.found or self.running_status == "Stopped":
            return "stopped"
        return "unhealthy"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "agents": list(self.agents), "state": self.state}


@dataclass(frozen=True)
class StopOutcome:
    """What ``azure_stop`` did to one app: ``stopped`` or ``deleted``."""

    name: str
    action: str
    running_status: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _field(model: Any, name: str) -> Any:
    """``model.properties.<name>`` (SDK 4+), or ``model.<name>`` (flattened, SDK 3)."""
    properties = getattr(model, "properties", None)
    if properties is not None and getattr(properties, name, None) is not None:
        return getattr(properties, name)
    return getattr(model, name, None)


def _text(value: Any) -> str | None:
    """An enum or string field as plain text."""
    if value is None:
        return None
    return str(getattr(value, "value", value))


@contextmanager
def open_client(
    subscription: str, credential: Any = None, client_options: Mapping[str, Any] | None = None
) -> Iterator[Any]:
    """A ``ContainerAppsAPIClient`` for ``subscription``, closed (with a credential we made)
    on exit. ``client_options`` go to the client: ``base_url``, ``polling_interval``,
    ``connection_verify``, retry settings."""
    from azure.mgmt.appcontainers import ContainerAppsAPIClient

    own_credential = credential is None
    if own_credential:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    client = ContainerAppsAPIClient(credential, subscription, **dict(client_options or {}))
    try:
        yield client
    finally:
        client.close()
        if own_credential:
            credential.close()


# --- operations ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    plan: HivePlan
    subscription: str
    resource_group: str


def _target(
    home: HomeArg, name: str, subscription: str | None, resource_group: str | None
) -> _Target:
    cfg = load_hive(home, name)
    return _Target(
        plan_hive(cfg),
        resolve_subscription(subscription, cfg),
        resolve_resource_group(resource_group, cfg),
    )


def _hive_apps(client: Any, target: _Target) -> list[Any]:
    """The container apps of the resource group tagged with the hive, by name."""
    group = target.resource_group
    with azure_errors(f"list the container apps of resource group {group!r}"):
        apps = [
            app
            for app in client.container_apps.list_by_resource_group(group)
            if (app.tags or {}).get(HIVE_TAG) == target.plan.hive
        ]
    return sorted(apps, key=lambda app: str(app.name))


def _replicas(client: Any, group: str, app: Any) -> tuple[str | None, int | None]:
    """The app's latest revision and its number of running replicas."""
    revision = _field(app, "latest_ready_revision_name") or _field(app, "latest_revision_name")
    if not revision:
        return None, None
    with azure_errors(f"read revision {revision!r} of container app {app.name!r}"):
        found = client.container_apps_revisions.get_revision(group, app.name, revision)
    replicas = _field(found, "replicas")
    return revision, int(replicas) if replicas is not None else None


def azure_status(
    home: HomeArg,
    name: str,
    subscription: str | None = None,
    resource_group: str | None = None,
    credential: Any = None,
    *,
    client_options: Mapping[str, Any] | None = None,
) -> list[AppStatus]:
    """One :class:`AppStatus` per container app of hive ``name``, by app name.

    Every app the hive config calls for is listed (``found=False`` when Azure has none of
    that name); apps tagged with the hive that the config no longer has are listed too,
    with no agents.
    """
    target = _target(home, name, subscription, resource_group)
    wanted = {app.name: app.agents for app in target.plan.apps}
    statuses: dict[str, AppStatus] = {}
    with open_client(target.subscription, credential, client_options) as client:
        for app in _hive_apps(client, target):
            revision, replicas = _replicas(client, target.resource_group, app)
            configuration = _field(app, "configuration")
            ingress = getattr(configuration, "ingress", None)
            statuses[app.name] = AppStatus(
                name=app.name,
                agents=wanted.get(app.name, ()),
                found=True,
                provisioning_state=_text(_field(app, "provisioning_state")),
                running_status=_text(_field(app, "running_status")),
                replicas=replicas,
                revision=revision,
                fqdn=getattr(ingress, "fqdn", None) or _field(app, "latest_revision_fqdn"),
            )
    for app_name, agents in wanted.items():
        statuses.setdefault(app_name, AppStatus(name=app_name, agents=agents, found=False))
    return [statuses[key] for key in sorted(statuses)]


def azure_stop(
    home: HomeArg,
    name: str,
    subscription: str | None = None,
    resource_group: str | None = None,
    delete: bool = False,
    credential: Any = None,
    *,
    client_options: Mapping[str, Any] | None = None,
) -> list[StopOutcome]:
    """Stop (or, with ``delete``, delete) every container app tagged with hive ``name``.

    A hive with no apps left is fine (nothing to do). Deleting removes the apps only: the
    environment, the Log Analytics workspace and the pull identity stay (they cost nothing
    or little idle); ``az group delete`` removes everything.
    """
    target = _target(home, name, subscription, resource_group)
    group = target.resource_group
    verb = "delete" if delete else "stop"
    with open_client(target.subscription, credential, client_options) as client:
        apps = _hive_apps(client, target)
        pollers = []
        for app in apps:
            with azure_errors(f"{verb} container app {app.name!r}"):
                operations = client.container_apps
                begin = operations.begin_delete if delete else operations.begin_stop
                pollers.append((app.name, begin(group, app.name)))
        outcomes = []
        for app_name, poller in pollers:
            with azure_errors(f"{verb} container app {app_name!r}"):
                result = poller.result()
            status = None if delete else _text(_field(result, "running_status"))
            outcomes.append(StopOutcome(app_name, "deleted" if delete else "stopped", status))
            logger.info("%s container app %s", "deleted" if delete else "stopped", app_name)
    return outcomes
