"""Deploy a hive to Azure Container Apps with ``az deployment group create``.

The deployment is rendered first (into ``<hive>/azure`` unless told otherwise), then::

    az deployment group create --resource-group RG --name amplihack-hive-NAME \\
        --template-file .../main.bicep --parameters @.../main.parameters.json \\
        --parameters @<secure parameters file> --output json --only-show-errors

The hive token (``$AMPLIHACK_HIVE_TOKEN``, else ``<hive>/token``) and the optional API key
(``$AMPLIHACK_HIVE_API_KEY``) are secure parameters. They never go on the command line, where
any local user could read them in the process list: they go in a parameters file created
with mode 0600 in a private temporary directory, removed when ``az`` exits. What is shown
(``--dry-run``, errors, logs) masks them: ``--parameters hiveToken=****``.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amplihack_hive.azure.render import (
    MAIN_FILE,
    PARAMETERS_FILE,
    PARAMETERS_SCHEMA,
    render_hive,
)
from amplihack_hive.azure.settings import SUBSCRIPTION_ENV, resolve_resource_group
from amplihack_hive.errors import ConfigError, NotFoundError, TransportError
from amplihack_hive.hive.config import load_hive
from amplihack_hive.hive.home import HomeArg, hive_dir, write_file_atomic
from amplihack_hive.hive.token import read_token

logger = logging.getLogger(__name__)

AZ = "az"
TOKEN_ENV = "AMPLIHACK_HIVE_TOKEN"
API_KEY_ENV = "AMPLIHACK_HIVE_API_KEY"
TOKEN_PARAMETER = "hiveToken"
API_KEY_PARAMETER = "apiKey"
#: Semantic recall's embeddings endpoint and its key (memory/embed.py): deploy-time values,
#: passed with the secure parameters (the key is one; the endpoint is not secret)
EMBED_KEY_ENV = "AMPLIHACK_HIVE_EMBED_KEY"
EMBED_URL_ENV = "AMPLIHACK_HIVE_EMBED_URL"
EMBED_KEY_PARAMETER = "embedKey"
EMBED_URL_PARAMETER = "embedUrl"
MASK = "****"
SECURE_PARAMETERS_FILE = "secure.parameters.json"

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True)
class DeployPlan:
    """The deployment of one hive: where it goes and the ``az`` command that does it."""

    hive: str
    resource_group: str
    location: str
    image: str
    subscription: str | None
    template_file: Path
    parameters_file: Path
    files: tuple[Path, ...]
    secure_parameters: tuple[str, ...] = (TOKEN_PARAMETER,)

    @property
    def deployment_name(self) -> str:
        return f"amplihack-hive-{self.hive}"

    def argv(self, secure_parameters_file: Path | None = None) -> list[str]:
        """The ``az`` command; secrets come from ``secure_parameters_file`` (masked if None)."""
        argv = [
            AZ,
            "deployment",
            "group",
            "create",
            "--resource-group",
            self.resource_group,
            "--name",
            self.deployment_name,
            "--template-file",
            str(self.template_file),
            "--parameters",
            f"@{self.parameters_file}",
        ]
        if secure_parameters_file is None:
            argv += ["--parameters", *(f"{name}={MASK}" for name in self.secure_parameters)]
        else:
            argv += ["--parameters", f"@{secure_parameters_file}"]
        if self.subscription:
            argv += ["--subscription", self.subscription]
        return [*argv, "--output", "json", "--only-show-errors"]

    def command_line(self) -> str:
        """The command as a shell line, secrets masked: what ``--dry-run`` prints."""
        return shlex.join(self.argv())

    def to_dict(self) -> dict[str, Any]:
        return {
            "hive": self.hive,
            "resource_group": self.resource_group,
            "location": self.location,
            "image": self.image,
            "subscription": self.subscription,
            "deployment": self.deployment_name,
            "files": [str(path) for path in self.files],
            "command": self.argv(),
        }


@dataclass(frozen=True)
class DeployResult:
    """A deployment planned (``ran`` False on a dry run) or run, with the template's outputs."""

    plan: DeployPlan
    ran: bool
    outputs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.plan.to_dict(), "ran": self.ran, "outputs": self.outputs}


def _secrets(home: HomeArg, name: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The secure parameter values: the token (env, else token file) and the API key."""
    token = environ.get(TOKEN_ENV, "").strip() or read_token(hive_dir(home, name))
    values = {TOKEN_PARAMETER: token}
    api_key = environ.get(API_KEY_ENV, "").strip()
    if api_key:
        values[API_KEY_PARAMETER] = api_key
    for env, parameter in (
        (EMBED_KEY_ENV, EMBED_KEY_PARAMETER),
        (EMBED_URL_ENV, EMBED_URL_PARAMETER),
    ):
        value = environ.get(env, "").strip()
        if value:
            values[parameter] = value
    return values


def _write_secure_parameters(directory: Path, values: Mapping[str, str]) -> Path:
    document = {
        "$schema": PARAMETERS_SCHEMA,
        "contentVersion": "1.0.0.0",
        "parameters": {key: {"value": value} for key, value in sorted(values.items())},
    }
    path = directory / SECURE_PARAMETERS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(document, handle)
    return path


def _outputs(stdout: str) -> dict[str, Any]:
    """The deployment's outputs as ``{name: value}`` from ``az``'s JSON answer."""
    try:
        answer = json.loads(stdout) if stdout.strip() else {}
    except ValueError:
        return {}
    outputs = (answer.get("properties") or {}).get("outputs") or {}
    return {key: value.get("value") for key, value in sorted(outputs.items())}


def plan_deploy(
    home: HomeArg,
    name: str,
    resource_group: str | None = None,
    location: str | None = None,
    image: str | None = None,
    *,
    subscription: str | None = None,
    out_dir: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> DeployPlan:
    """Render hive ``name`` and build its deployment command (nothing is run)."""
    cfg = load_hive(home, name)
    group = resolve_resource_group(resource_group, cfg)
    chosen_image = image or cfg.azure.image
    if not chosen_image:
        raise ConfigError(
            f"no agent image for hive {name!r}: pass --image (e.g. "
            "myregistry.azurecr.io/amplihack-hive:0.1.0) or set azure.image in the hive config"
        )
    env = os.environ if environ is None else environ
    files = render_hive(
        home, name, out_dir, location=location or cfg.azure.location, image=chosen_image
    )
    by_name = {path.name: path for path in files}
    secure = [TOKEN_PARAMETER] + [
        parameter
        for variable, parameter in (
            (API_KEY_ENV, API_KEY_PARAMETER),
            (EMBED_KEY_ENV, EMBED_KEY_PARAMETER),
            (EMBED_URL_ENV, EMBED_URL_PARAMETER),
        )
        if env.get(variable, "").strip()
    ]
    if (
        cfg.semantic is not None
        and cfg.semantic.embedder.lower().startswith("openai:")
        and not env.get(EMBED_URL_ENV, "").strip()
    ):
        raise ConfigError(
            f"hive {name!r} embeds with {cfg.semantic.embedder}: set ${EMBED_URL_ENV} to the "
            f"embeddings endpoint (and ${EMBED_KEY_ENV} to its key) before deploying"
        )
    return DeployPlan(
        hive=name,
        resource_group=group,
        location=location or cfg.azure.location,
        image=chosen_image,
        subscription=subscription or env.get(SUBSCRIPTION_ENV) or cfg.azure.subscription,
        template_file=by_name[MAIN_FILE],
        parameters_file=by_name[PARAMETERS_FILE],
        files=tuple(files),
        secure_parameters=tuple(secure),
    )


def deploy(
    home: HomeArg,
    name: str,
    resource_group: str | None = None,
    location: str | None = None,
    image: str | None = None,
    dry_run: bool = False,
    *,
    subscription: str | None = None,
    out_dir: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    runner: Runner = subprocess.run,
    which: Callable[[str], str | None] = shutil.which,
) -> DeployResult:
    """Render hive ``name`` and deploy it with ``az deployment group create``.

    ``dry_run`` renders and returns the plan without reading a secret or running anything.
    Without ``az`` on PATH: NotFoundError quoting the command. ``az`` failing: TransportError
    (its own message went to stderr). Missing resource group or image: ConfigError.
    """
    env = os.environ if environ is None else environ
    plan = plan_deploy(
        home,
        name,
        resource_group,
        location,
        image,
        subscription=subscription,
        out_dir=out_dir,
        environ=env,
    )
    if dry_run:
        return DeployResult(plan, ran=False)
    az = which(AZ)
    if az is None:
        raise NotFoundError(
            "the Azure CLI (az) is not on PATH: install it and sign in with `az login`, or run "
            f"the deployment yourself (hiveToken is the content of the hive's token file): "
            f"{plan.command_line()}"
        )
    secrets = _secrets(home, name, env)
    with tempfile.TemporaryDirectory(prefix="amplihack-hive-") as private:
        secure_file = _write_secure_parameters(Path(private), secrets)
        argv = plan.argv(secure_file)
        argv[0] = az
        logger.info("running %s", plan.command_line())
        completed = runner(argv, stdout=subprocess.PIPE, text=True, check=False)
    if completed.returncode != 0:
        raise TransportError(
            f"az deployment group create failed (exit {completed.returncode}) for hive {name!r} "
            f"in resource group {plan.resource_group!r}; az's message is above"
        )
    outputs = _outputs(completed.stdout or "")
    if outputs.get(ENTRY_OUTPUT):
        save_entry(home, name, str(outputs[ENTRY_OUTPUT]), plan.resource_group)
    return DeployResult(plan, ran=True, outputs=outputs)


#: The deployment output that says where clients reach the hive (main.bicep's entryUrl).
ENTRY_OUTPUT = "entryUrl"
ENTRY_FILE = "entry.json"
#: Where a client finds a deployed hive when it has no saved entry (CI jobs).
URL_ENV = "AMPLIHACK_HIVE_URL"


def save_entry(home: HomeArg, name: str, url: str, resource_group: str) -> Path:
    """Remember where clients reach the deployed hive (``<hive>/azure/entry.json``)."""
    path = hive_dir(home, name) / "azure" / ENTRY_FILE
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    body = {"url": url, "resource_group": resource_group}
    write_file_atomic(path, json.dumps(body, indent=1).encode())
    return path


def entry_url(
    home: HomeArg, name: str, url: str | None = None, environ: Mapping[str, str] | None = None
) -> str:
    """Where the deployed hive ``name`` takes clients: ``url`` if given, else
    ``$AMPLIHACK_HIVE_URL``, else what its last deployment from here recorded."""
    env = os.environ if environ is None else environ
    chosen = url or env.get(URL_ENV, "").strip()
    if chosen:
        return chosen
    path = hive_dir(home, name) / "azure" / ENTRY_FILE
    try:
        return str(json.loads(path.read_text())["url"])
    except FileNotFoundError:
        raise NotFoundError(
            f"no address for hive {name!r} on Azure: pass --url https://... (the entryUrl "
            f"output of its deployment) or set ${URL_ENV}, or deploy it from here with "
            f"amplihack-hive up {name} --target azure"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc}); pass --url instead") from None


def entry_token(home: HomeArg, name: str, environ: Mapping[str, str] | None = None) -> str:
    """The token clients send: ``$AMPLIHACK_HIVE_TOKEN``, else the hive's token file."""
    env = os.environ if environ is None else environ
    return env.get(TOKEN_ENV, "").strip() or read_token(hive_dir(home, name))
