"""The Azure Container Apps target: render the Bicep of a hive, deploy it with ``az``, and
see or stop its apps through the Azure SDK.

- :mod:`~amplihack_hive.azure.plan`: which container apps a hive needs (pure, no I/O);
- :mod:`~amplihack_hive.azure.render`: ``main.bicep``, its modules and the parameters file;
- :mod:`~amplihack_hive.azure.deployment`: the ``az deployment group create`` command and its run;
- :mod:`~amplihack_hive.azure.mgmt`: status, stop and delete via azure-mgmt-appcontainers;
- :mod:`~amplihack_hive.azure.errors`: Azure SDK exceptions mapped to ours, one line each;
- :mod:`~amplihack_hive.azure.settings`: subscription, resource group, the hive tag.

The names below are loaded on first use, so importing this package (as the CLI does for
every command) does not load the Azure SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from amplihack_hive.azure.deployment import DeployPlan, DeployResult, deploy
    from amplihack_hive.azure.mgmt import AppStatus, StopOutcome, azure_status, azure_stop
    from amplihack_hive.azure.plan import AppPlan, HivePlan, plan_hive
    from amplihack_hive.azure.render import render_hive

_WHERE = {
    "AppPlan": "plan",
    "HivePlan": "plan",
    "plan_hive": "plan",
    "render_hive": "render",
    "DeployPlan": "deployment",
    "DeployResult": "deployment",
    "deploy": "deployment",
    "AppStatus": "mgmt",
    "StopOutcome": "mgmt",
    "azure_status": "mgmt",
    "azure_stop": "mgmt",
}

__all__ = [
    "AppPlan",
    "AppStatus",
    "DeployPlan",
    "DeployResult",
    "HivePlan",
    "StopOutcome",
    "azure_status",
    "azure_stop",
    "deploy",
    "plan_hive",
    "render_hive",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
