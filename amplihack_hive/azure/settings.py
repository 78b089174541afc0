"""Where a hive's Azure resources are: subscription, resource group, and the hive tag.

Cheap to import (no Azure SDK): the CLI and ``deploy`` use it without loading the SDK.
"""

from __future__ import annotations

import os
import re

from amplihack_hive.errors import ConfigError, InvalidInputError
from amplihack_hive.hive.config import HiveConfig

SUBSCRIPTION_ENV = "AZURE_SUBSCRIPTION_ID"
#: The tag key (value: the hive name) on every resource the rendered Bicep creates.
HIVE_TAG = "amplihack-hive"

# Resource group names: 1-90 letters, digits, '-', '_', '.', '(' and ')', not ending in '.'.
_RESOURCE_GROUP = re.compile(r"[-\w.()]{0,89}[-\w()]\Z")


def resolve_subscription(subscription: str | None, cfg: HiveConfig) -> str:
    """The subscription: argument, else ``$AZURE_SUBSCRIPTION_ID``, else the config."""
    chosen = subscription or os.environ.get(SUBSCRIPTION_ENV) or cfg.azure.subscription
    if not chosen:
        raise ConfigError(
            f"no Azure subscription for hive {cfg.name!r}: pass --subscription, set "
            f"{SUBSCRIPTION_ENV}, or set azure.subscription in the hive config"
        )
    return chosen


def resolve_resource_group(resource_group: str | None, cfg: HiveConfig) -> str:
    """The resource group: argument, else the config's ``azure.resource_group``."""
    chosen = resource_group or cfg.azure.resource_group
    if not chosen:
        raise ConfigError(
            f"no resource group for hive {cfg.name!r}: pass --resource-group or set "
            "azure.resource_group in the hive config"
        )
    if not _RESOURCE_GROUP.match(chosen):
        raise InvalidInputError(
            f"invalid resource group name {chosen!r}: use 1-90 letters, digits, '-', '_', '.', "
            "'(' and ')', not ending with '.'"
        )
    return chosen
