"""Render a hive's Azure deployment: ``main.bicep``, ``modules/*.bicep``,
``main.parameters.json`` and an example CI workflow.

Same hive config, same bytes: no timestamps, no versions, no absolute paths, JSON with
sorted keys, ``\\n`` line ends. Secrets are never rendered: ``hiveToken`` and ``apiKey``
are secure parameters of ``main.bicep`` that ``deploy`` passes at deployment time.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import jinja2

from amplihack_hive.azure.plan import MEMORY_RULE, HivePlan, plan_hive
from amplihack_hive.azure.resources import data_dir, list_files, read_text
from amplihack_hive.hive.config import load_hive
from amplihack_hive.hive.home import HomeArg, hive_dir, write_file_atomic

logger = logging.getLogger(__name__)

#: Where ``render`` writes when no ``--out`` is given: inside the hive's directory.
DEFAULT_OUT = "azure"
MAIN_TEMPLATE = "main.bicep.j2"
WORKFLOW_TEMPLATE = "github-deploy.yml.j2"
MAIN_FILE = "main.bicep"
PARAMETERS_FILE = "main.parameters.json"
WORKFLOW_FILE = "github-deploy.yml"
MODULES_DIR = "modules"
PARAMETERS_SCHEMA = (
    "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#"
)


def default_out_dir(home: HomeArg, name: str) -> Path:
    """``<home>/<name>/azure``: the default output directory of ``render`` and ``start``."""
    return hive_dir(home, name) / DEFAULT_OUT


def _environment() -> jinja2.Environment:
    templates = data_dir("templates")
    sources = {path: read_text(templates, path) for path in (MAIN_TEMPLATE, WORKFLOW_TEMPLATE)}
    return jinja2.Environment(
        loader=jinja2.DictLoader(sources),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # Bicep and YAML, not HTML; every value is a checked name
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _context(plan: HivePlan) -> dict[str, Any]:
    return {
        "hive": plan.hive,
        "agents": plan.agents,
        "apps": plan.apps,
        "agents_per_app": plan.agents_per_app,
        "peers": plan.peers,
        "replication": plan.replication,
        "backend": plan.backend,
        "buffer_pool_mb": plan.buffer_pool_mb,
        "tokenizer": plan.tokenizer,
        "groups": ";".join(f"{g}={','.join(m)}" for g, m in plan.groups),
        "embedder": plan.embedder,
        "nprobe": plan.nprobe,
        "memory_rule": MEMORY_RULE,
        "location": plan.location,
        "image": plan.image,
        "allowed_ips_json": _bicep_array(plan.allowed_ips),
    }


def _bicep_array(values: tuple[str, ...]) -> str:
    """A Bicep array literal of strings (one per line, as every Bicep version reads)."""
    if not values:
        return "[]"
    return "[\n" + "".join(f"  '{v}'\n" for v in values) + "]"


def parameters_document(plan: HivePlan) -> dict[str, Any]:
    """``main.parameters.json``: the non-secret parameters only."""
    parameters: dict[str, Any] = {"location": {"value": plan.location}}
    if plan.image is not None:
        parameters["image"] = {"value": plan.image}
    return {
        "$schema": PARAMETERS_SCHEMA,
        "contentVersion": "1.0.0.0",
        "parameters": parameters,
    }


def render_files(plan: HivePlan) -> dict[str, bytes]:
    """Relative path -> content of every file of the deployment of ``plan``."""
    env = _environment()
    context = _context(plan)
    files = {
        MAIN_FILE: env.get_template(MAIN_TEMPLATE).render(context),
        PARAMETERS_FILE: json.dumps(parameters_document(plan), indent=2, sort_keys=True) + "\n",
        WORKFLOW_FILE: env.get_template(WORKFLOW_TEMPLATE).render(context),
    }
    modules = data_dir("bicep") / MODULES_DIR
    for relative in list_files(modules):
        files[f"{MODULES_DIR}/{relative}"] = read_text(modules, relative)
    return {path: text.encode("utf-8") for path, text in sorted(files.items())}


def write_files(files: dict[str, bytes], out_dir: Path) -> list[Path]:
    """Write ``files`` under ``out_dir`` (each replaced atomically); the paths written."""
    written = []
    for relative, data in files.items():
        path = out_dir.joinpath(*relative.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        write_file_atomic(path, data, mode=0o644)  # no secret in it; CI jobs read it
        written.append(path)
    return written


def render_hive(
    home: HomeArg,
    name: str,
    out_dir: str | Path | None = None,
    *,
    location: str | None = None,
    image: str | None = None,
) -> list[Path]:
    """Render hive ``name``'s deployment into ``out_dir`` (default ``<hive>/azure``).

    ``location`` and ``image`` override the hive config's ``azure`` section. Everything is
    checked before anything is written: an unknown hive is NotFoundError, a name Azure
    would refuse (an app name over 32 characters, a bad location) InvalidInputError.
    Returns the files written, sorted.
    """
    cfg = load_hive(home, name)
    plan = plan_hive(cfg, location=location, image=image)
    files = render_files(plan)
    target = Path(out_dir) if out_dir is not None else default_out_dir(home, name)
    written = write_files(files, target)
    logger.debug("rendered %d files of hive %s into %s", len(written), name, target)
    return written
