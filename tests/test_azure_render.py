"""render and start --target azure: the rendered Bicep, its checks, and the az command.

The rendered Bicep is parsed with pycep (the parser checkov uses) and its security
properties are asserted on the parse tree, since checkov's Bicep framework has no checks of
its own for Container Apps; checkov itself runs on the 100-agent render (slow). Golden
files: ``UPDATE_GOLDEN=1 pytest tests/test_azure_render.py`` rewrites them after an
intended change; review the diff.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser
from typer.testing import Result

from amplihack_hive.azure import deploy, plan_hive, render_hive
from amplihack_hive.azure.deployment import (
    API_KEY_ENV,
    EMBED_KEY_ENV,
    EMBED_URL_ENV,
    MASK,
    TOKEN_ENV,
)
from amplihack_hive.azure.plan import app_size
from amplihack_hive.cli.commands_azure import start_azure
from amplihack_hive.errors import (
    ConfigError,
    HiveStateError,
    InvalidInputError,
    NotFoundError,
    TransportError,
)
from amplihack_hive.hive import config as hive_config
from amplihack_hive.hive.home import config_path, hive_dir
from amplihack_hive.hive.token import read_token
from amplihack_hive.names import is_valid_name

Cli = Callable[..., Result]
REPO_ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden" / "azure-small"
IMAGE = "hiveacr.azurecr.io/amplihack-hive:0.1.0"
SECURE = ("hiveToken", "apiKey", "embedKey")


def make_hive(
    home: Path,
    name: str,
    agents: int,
    *,
    per_app: int = 5,
    image: str | None = IMAGE,
    location: str = "eastus",
    buffer_pool_mb: int = 256,
) -> hive_config.HiveConfig:
    hive_config.create_hive(home, name, agents=agents)
    cfg = hive_config.load_hive(home, name)
    cfg.azure.agents_per_app = per_app
    cfg.azure.image = image
    cfg.azure.location = location
    cfg.buffer_pool_mb = buffer_pool_mb
    hive_config.save(config_path(hive_dir(home, name)), cfg)
    return cfg


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@functools.cache
def _parser() -> BicepParser:
    return BicepParser()  # building the grammar takes 0.3 s; parsing a file, milliseconds


def parse(path: Path) -> dict[str, Any]:
    return _parser().parse(file_path=path)


def strings(tree: object) -> Iterator[str]:
    """Every string (names, literals and references alike: pycep does not tell them apart)."""
    if isinstance(tree, str):
        yield tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from strings(item)


def assert_one_line_error(result: Result, *fragments: str) -> str:
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# --- the plan ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agents", "buffer_pool_mb", "cpu", "memory"),
    [
        (1, 256, "0.5", "1Gi"),
        (2, 256, "0.75", "1.5Gi"),
        (5, 256, "1.5", "3Gi"),
        (5, 64, "1.25", "2.5Gi"),
    ],
)
def test_apps_are_sized_to_their_agents(
    agents: int, buffer_pool_mb: int, cpu: str, memory: str
) -> None:
    assert app_size(agents, buffer_pool_mb) == (cpu, memory)
    assert float(memory.removesuffix("Gi")) == 2 * float(cpu)  # the Consumption ratio


def test_100_agents_make_20_apps_of_5(hive_home: Path) -> None:
    plan = plan_hive(make_hive(hive_home, "big", 100))
    assert len(plan.apps) == 20
    assert all(len(app.agents) == 5 for app in plan.apps)
    assert [agent for app in plan.apps for agent in app.agents] == [
        f"agent-{i}" for i in range(100)
    ]
    assert plan.apps[0].name == "big-agent-0" and plan.apps[-1].name == "big-agent-95"
    assert all(is_valid_name(app.name) and len(app.name) <= 32 for app in plan.apps)


# --- rendered Bicep ---------------------------------------------------------------------------


@pytest.mark.parametrize(("agents", "apps"), [(1, 1), (5, 1), (100, 20)])
def test_rendered_bicep_parses_with_pycep(
    hive_home: Path, tmp_path: Path, agents: int, apps: int
) -> None:
    make_hive(hive_home, "hive", agents)
    out = tmp_path / "out"
    written = render_hive(hive_home, "hive", out)
    assert {p.relative_to(out).as_posix() for p in written} == {
        "main.bicep",
        "main.parameters.json",
        "github-deploy.yml",
        "modules/acr-pull.bicep",
        "modules/agent-app.bicep",
        "modules/environment.bicep",
        "modules/identity.bicep",
    }
    trees = {p.relative_to(out).as_posix(): parse(p) for p in written if p.suffix == ".bicep"}
    main = trees["main.bicep"]
    rendered = main["variables"]["apps"]["value"]
    assert len(rendered) == apps
    assert ",".join(app["agents"] for app in rendered) == ",".join(
        f"agent-{i}" for i in range(agents)
    )
    assert main["variables"]["allAgents"]["value"] == ",".join(f"agent-{i}" for i in range(agents))
    peers = main["variables"]["peers"]["value"]["function"]["parameters"]["original_string"]
    entries = peers.split(",")
    assert [entry.split("=")[0] for entry in entries] == [f"agent-{i}" for i in range(agents)]
    assert [app["entry"] for app in rendered] == [True] + [False] * (apps - 1)
    for app in rendered:
        assert is_valid_name(app["name"]) and len(app["name"]) <= 32
        # the entry app is reached at its external address, the others internally
        host = app["name"] if app["entry"] else f"{app['name']}.internal"
        for agent in app["agents"].split(","):
            assert f"{agent}=https://{host}.{{domain}}" in entries
    # the apps roll one at a time, the entry app is external, and its URL is an output
    module = main["modules"]["agentApps"]
    assert {"type": "batchSize", "argument": 1} in module["decorators"]
    assert module["config"]["config"]["params"]["external"] == "app.entry"
    assert main["outputs"]["entryUrl"]["value"] == f"https://{rendered[0]['name']}.${{domain}}"
    # every module main.bicep uses is rendered next to it
    for module in main["modules"].values():
        assert module["detail"]["path"] in trees


def test_rendered_bicep_keeps_the_security_properties(hive_home: Path, tmp_path: Path) -> None:
    make_hive(hive_home, "sec", 12)
    out = tmp_path / "out"
    render_hive(hive_home, "sec", out)
    main = parse(out / "main.bicep")
    app_module = parse(out / "modules" / "agent-app.bicep")

    # secrets: secure parameters without defaults (apiKey may default to empty)
    for tree in (main, app_module):
        for name in SECURE:
            parameter = tree["parameters"][name]
            assert {"type": "secure"} in parameter["decorators"]
            assert not parameter["default"]
        assert not set(SECURE) & set(strings(tree.get("outputs", {})))
    parameters = json.loads((out / "main.parameters.json").read_text())
    assert set(parameters["parameters"]) == {"location", "image"}

    app = app_module["resources"]["app"]
    assert app["type"] == "Microsoft.App/containerApps"
    config = app["config"]
    configuration = config["properties"]["configuration"]
    template = config["properties"]["template"]
    # internal-only ingress unless the entry app, TLS only, one replica exactly
    assert configuration["ingress"]["external"] == "external"
    assert app_module["parameters"]["external"]["default"] is False
    assert configuration["ingress"]["allowInsecure"] is False
    # the entry app lets in only the allowed ranges (when any are configured)
    restrictions = configuration["ingress"]["ipSecurityRestrictions"]["operator"]["operands"]
    assert restrictions == {"condition": "external", "true_value": "ipRules", "false_value": []}
    rule = app_module["variables"]["ipRules"]["value"]["config"]
    assert rule == {"name": "allow-${i}", "ipAddressRange": "range", "action": "Allow"}
    assert main["parameters"]["allowedIps"]["default"] == []
    assert template["scale"] == {"minReplicas": 1, "maxReplicas": 1}
    # the image is pulled with the user-assigned identity, never a password
    registries = configuration["registries"]["operator"]["operands"]["false_value"]
    assert registries == [{"server": "registryServer", "identity": "pullIdentityId"}]
    assert config["identity"]["type"] == "UserAssigned"
    assert "passwordSecretRef" not in set(strings(app))
    # the token reaches the container through a secret and secretRef only
    (container,) = template["containers"]
    base_env = container["env"]["function"]["parameters"]["arg_1"]
    assert {"name": "AMPLIHACK_HIVE_TOKEN", "secretRef": "hive-token"} in base_env
    assert all("value" not in item or item["value"] not in SECURE for item in base_env)
    token_secret = app_module["variables"]["tokenSecrets"]["value"]
    assert token_secret == [{"name": "hive-token", "value": "hiveToken"}]
    assert app_module["variables"]["apiKeyEnv"]["value"]["operator"]["operands"]["false_value"] == [
        {"name": "AMPLIHACK_HIVE_API_KEY", "secretRef": "api-key"}
    ]
    # probes on the open endpoints, carrying no header (a probe header cannot be a secret):
    # alive (/healthz) to start and live, in step with its replicas (/readyz) to be ready
    assert [probe["type"] for probe in container["probes"]] == ["Startup", "Liveness", "Readiness"]
    assert [probe["httpGet"] for probe in container["probes"]] == [
        "healthCheck",
        "healthCheck",
        "readyCheck",
    ]
    assert app_module["variables"]["healthCheck"]["value"] == {
        "path": "/healthz",
        "port": "port",
        "scheme": "HTTP",
    }
    assert app_module["variables"]["readyCheck"]["value"]["path"] == "/readyz"
    # Kuzu data on the replica's own volume
    assert template["volumes"] == [{"name": "data", "storageType": "EmptyDir"}]
    assert container["volumeMounts"] == [{"volumeName": "data", "mountPath": "dataDir"}]
    # every resource is tagged with the hive (role assignments take no tags)
    for module in sorted((out / "modules").glob("*.bicep")):
        for resource in parse(module).get("resources", {}).values():
            if resource["existing"] or resource["type"].startswith("Microsoft.Authorization/"):
                continue
            assert resource["config"]["tags"] == "tags", (module.name, resource["type"])
    assert main["variables"]["tags"]["value"] == {"'amplihack-hive'": "hiveName"}
    assert main["variables"]["hiveName"]["value"] == "sec"

    # the hive's token is nowhere in what was rendered
    token = read_token(hive_dir(hive_home, "sec"))
    assert all(token.encode() not in data for data in snapshot(out).values())


def test_allowed_ips_from_the_config_reach_the_entry_app_only(
    hive_home: Path, tmp_path: Path
) -> None:
    cfg = make_hive(hive_home, "ips", 7)
    cfg.azure.allowed_ips = ["203.0.113.7", "198.51.100.0/24"]
    hive_config.save(config_path(hive_dir(hive_home, "ips")), cfg)
    out = tmp_path / "out"
    render_hive(hive_home, "ips", out)
    main = parse(out / "main.bicep")
    assert main["parameters"]["allowedIps"]["default"] == ["203.0.113.7/32", "198.51.100.0/24"]
    params = main["modules"]["agentApps"]["config"]["config"]["params"]
    operands = params["allowedIps"]["operator"]["operands"]
    assert operands == {"condition": "app.entry", "true_value": "allowedIps", "false_value": []}
    bad = hive_config.load_hive(hive_home, "ips")
    raw = (config_path(hive_dir(hive_home, "ips"))).read_text()
    (config_path(hive_dir(hive_home, "ips"))).write_text(
        raw.replace("- 198.51.100.0/24", "- 198.51.100.0/33")
    )
    with pytest.raises(ConfigError, match=r"azure.allowed_ips: '198.51.100.0/33' is not"):
        hive_config.load_hive(hive_home, "ips")
    assert bad.azure.allowed_ips == ["203.0.113.7/32", "198.51.100.0/24"]


def test_small_render_matches_the_golden_files(hive_home: Path, tmp_path: Path) -> None:
    make_hive(hive_home, "demo", 3, per_app=2, location="westeurope")
    out = tmp_path / "out"
    render_hive(hive_home, "demo", out)
    rendered = snapshot(out)
    if os.environ.get("UPDATE_GOLDEN"):
        shutil.rmtree(GOLDEN, ignore_errors=True)
        for relative, data in rendered.items():
            (GOLDEN / relative).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / relative).write_bytes(data)
    golden = snapshot(GOLDEN)
    assert sorted(rendered) == sorted(golden)
    for relative, data in rendered.items():
        assert data.decode() == golden[relative].decode(), relative


def test_render_is_deterministic(hive_home: Path, tmp_path: Path) -> None:
    make_hive(hive_home, "same", 23, per_app=4)
    render_hive(hive_home, "same", tmp_path / "one")
    render_hive(hive_home, "same", tmp_path / "two")
    first = snapshot(tmp_path / "one")
    assert first == snapshot(tmp_path / "two")
    # the same config under another home (another path, another token): the same bytes
    other_home = tmp_path / "elsewhere"
    make_hive(other_home, "same", 23, per_app=4)
    render_hive(other_home, "same", tmp_path / "three")
    assert snapshot(tmp_path / "three") == first
    # rendering again over an existing output replaces it with the same bytes
    render_hive(hive_home, "same", tmp_path / "one")
    assert snapshot(tmp_path / "one") == first


def test_render_of_100_agents_timed(
    hive_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Timed for the report only (no timed assertion: these machines are noisy)."""
    make_hive(hive_home, "hundred", 100)
    started = time.perf_counter()
    written = render_hive(hive_home, "hundred", tmp_path / "out")
    elapsed = time.perf_counter() - started
    with capsys.disabled():
        print(f"\nrender of 100 agents (20 apps): {elapsed * 1000:.1f} ms, {len(written)} files")
    assert len(written) == 7


def test_invalid_names_and_values_are_refused_before_writing(
    hive_home: Path, tmp_path: Path, cli: Cli
) -> None:
    out = tmp_path / "out"
    assert_one_line_error(cli("render", "Bad_Name", "--out", str(out)), "invalid hive name")
    # a valid hive name whose app names would be over 32 characters
    long_name = "a-rather-long-hive-namex"  # 24 characters: -agent-5 fits in 32, -agent-10 not
    make_hive(hive_home, long_name, 12)
    line = assert_one_line_error(
        cli("render", long_name, "--out", str(out)), "at most 32", "agent-10..agent-11"
    )
    assert "'a-rather-long-hive-namex-agent-10' (33 characters)" in line
    make_hive(hive_home, "ok", 2)
    assert_one_line_error(
        cli("render", "ok", "--out", str(out), "--location", "East US"), "invalid Azure location"
    )
    assert_one_line_error(
        cli("render", "ok", "--out", str(out), "--image", "bad image"), "invalid image reference"
    )
    make_hive(hive_home, "fat", 10, per_app=10, buffer_pool_mb=1024)
    assert_one_line_error(cli("render", "fat", "--out", str(out)), "Azure allows 8 GiB")
    assert_one_line_error(cli("render", "nope", "--out", str(out)), "not found")
    assert not out.exists()
    with pytest.raises(InvalidInputError):
        render_hive(hive_home, "../escape", out)


def test_render_command_writes_into_the_hive_by_default(hive_home: Path, cli: Cli) -> None:
    make_hive(hive_home, "cmd", 7)
    result = cli("render", "cmd", "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    out = hive_dir(hive_home, "cmd") / "azure"
    assert document["out"] == str(out)
    assert sorted(document["files"]) == sorted(str(p) for p in out.rglob("*") if p.is_file())
    result = cli("render", "cmd", "--image", "ghcr.io/org/agent:2", "--location", "westus3")
    assert result.exit_code == 0, result.stderr
    assert "rendered hive cmd into" in result.stdout
    parameters = json.loads((out / "main.parameters.json").read_text())["parameters"]
    assert parameters == {
        "image": {"value": "ghcr.io/org/agent:2"},
        "location": {"value": "westus3"},
    }


def test_render_without_an_image_leaves_it_to_deploy_time(hive_home: Path, tmp_path: Path) -> None:
    make_hive(hive_home, "noimg", 2, image=None)
    render_hive(hive_home, "noimg", tmp_path)
    parameters = json.loads((tmp_path / "main.parameters.json").read_text())["parameters"]
    assert parameters == {"location": {"value": "eastus"}}


@pytest.mark.slow
def test_checkov_reports_no_failed_check_on_100_agents(
    hive_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_hive(hive_home, "hundred", 100)
    out = tmp_path / "out"
    render_hive(hive_home, "hundred", out)
    summary = run_checkov(out)
    with capsys.disabled():
        print(f"\ncheckov on the 100-agent render: {summary}")
    assert summary["failed"] == 0
    assert summary["skipped"] == 0
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] > 0 and summary["passed"] > 0

    # the same checkov run does fail a template that breaks one of its rules
    with (out / "main.bicep").open("a") as handle:
        handle.write("\n@secure()\nparam leaked string = 'hunter2'\n")
    assert run_checkov(out)["failed"] == 1


CHECKOV_JSON = ("--output", "json", "--quiet", "--soft-fail")


def run_checkov(directory: Path, framework: str = "bicep") -> dict[str, Any]:
    checkov = shutil.which("checkov", path=str(Path(sys.executable).parent)) or shutil.which(
        "checkov"
    )
    assert checkov, "checkov is a dev dependency: pip install -e '.[dev]'"
    completed = subprocess.run(
        [checkov, "-d", str(directory), "--framework", framework, "--skip-download", *CHECKOV_JSON],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    report = json.loads(completed.stdout)
    if isinstance(report, list):
        (report,) = [item for item in report if item["check_type"] == framework]
    summary: dict[str, Any] = report["summary"]
    return summary


@pytest.mark.slow
def test_the_built_wheel_carries_templates_and_bicep(tmp_path: Path) -> None:
    """`pip install .` (not -e) must render: build the wheel, run render from it alone."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            str(REPO_ROOT),
            "-w",
            str(wheels),
        ],
        check=True,
        timeout=600,
    )
    (wheel,) = wheels.glob("amplihack_hive-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for relative in ("templates/main.bicep.j2", "bicep/modules/agent-app.bicep"):
        assert f"amplihack_hive/_data/{relative}" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    home = tmp_path / "home"
    make_hive(home, "wheeled", 6)
    script = (
        "import sys, amplihack_hive.azure.resources as r, amplihack_hive.azure as a;"
        "print(r.data_dir('templates'));"
        "print(len(a.render_hive(sys.argv[1], 'wheeled', sys.argv[2])))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script, str(home), str(tmp_path / "out")],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    data_dir, count = completed.stdout.split()
    assert Path(data_dir) == site / "amplihack_hive" / "_data" / "templates"
    assert count == "7"


# --- deploy: the az command ------------------------------------------------------------------


@pytest.fixture
def deployable(hive_home: Path) -> str:
    cfg = make_hive(hive_home, "prod", 10)
    cfg.azure.resource_group = "rg-prod"
    hive_config.save(config_path(hive_dir(hive_home, "prod")), cfg)
    return "prod"


def test_dry_run_prints_the_command_with_the_secret_masked(
    hive_home: Path, deployable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZURE_SUBSCRIPTION_ID", raising=False)
    token = read_token(hive_dir(hive_home, deployable))
    result = deploy(hive_home, deployable, dry_run=True, environ={})
    assert result.ran is False
    out = hive_dir(hive_home, deployable) / "azure"
    assert result.plan.argv() == [
        "az",
        "deployment",
        "group",
        "create",
        "--resource-group",
        "rg-prod",
        "--name",
        "amplihack-hive-prod",
        "--template-file",
        str(out / "main.bicep"),
        "--parameters",
        f"@{out / 'main.parameters.json'}",
        "--parameters",
        f"hiveToken={MASK}",
        "--output",
        "json",
        "--only-show-errors",
    ]
    assert token not in result.plan.command_line()
    assert token not in json.dumps(result.to_dict())
    assert (out / "main.bicep").is_file()  # rendered
    with_key = deploy(
        hive_home,
        deployable,
        "rg-other",
        "westus2",
        "other.azurecr.io/hive:2",
        True,
        subscription="sub-1",
        environ={API_KEY_ENV: "sk-secret"},
    )
    line = with_key.plan.command_line()
    assert f"'hiveToken={MASK}' 'apiKey={MASK}'" in line and "sk-secret" not in line
    assert "--resource-group rg-other" in line and "--subscription sub-1" in line
    parameters = json.loads((out / "main.parameters.json").read_text())["parameters"]
    assert parameters == {
        "image": {"value": "other.azurecr.io/hive:2"},
        "location": {"value": "westus2"},
    }


def test_start_azure_dry_run_prints_the_masked_command(
    hive_home: Path, deployable: str, capsys: pytest.CaptureFixture[str]
) -> None:
    start_azure(hive_home, deployable, dry_run=True)
    line = capsys.readouterr().out.strip()
    assert line.startswith("az deployment group create --resource-group rg-prod ")
    assert f"'hiveToken={MASK}'" in line
    start_azure(hive_home, deployable, dry_run=True, json_output=True)
    document = json.loads(capsys.readouterr().out)
    assert document["target"] == "azure" and document["ran"] is False
    assert document["command"][:4] == ["az", "deployment", "group", "create"]
    assert read_token(hive_dir(hive_home, deployable)) not in json.dumps(document)


def test_missing_az_is_a_clear_error_with_the_command(hive_home: Path, deployable: str) -> None:
    with pytest.raises(NotFoundError) as caught:
        deploy(hive_home, deployable, environ={}, which=lambda name: None)
    message = str(caught.value)
    assert "the Azure CLI (az) is not on PATH" in message
    assert "az deployment group create --resource-group rg-prod" in message
    assert f"hiveToken={MASK}" in message
    assert read_token(hive_dir(hive_home, deployable)) not in message


def test_missing_resource_group_or_image_is_refused(hive_home: Path) -> None:
    make_hive(hive_home, "bare", 2, image=None)
    with pytest.raises(ConfigError, match="no resource group for hive 'bare'"):
        deploy(hive_home, "bare", dry_run=True, environ={})
    with pytest.raises(ConfigError, match="no agent image for hive 'bare'"):
        deploy(hive_home, "bare", "rg", dry_run=True, environ={})


FAKE_AZ = """#!/usr/bin/env python3
import json, os, stat, sys
log = os.environ["FAKE_AZ_LOG"]
record = {"argv": sys.argv[1:], "secure": None}
for arg in sys.argv[1:]:
    if arg.startswith("@") and "secure" in arg:
        path = arg[1:]
        record["secure"] = json.load(open(path))
        record["secure_mode"] = stat.S_IMODE(os.stat(path).st_mode)
        record["secure_path"] = path
json.dump(record, open(log, "w"))
code = int(os.environ.get("FAKE_AZ_EXIT", "0"))
if code:
    print("ERROR: (ResourceGroupNotFound) Resource group 'rg-prod' could not be found.",
          file=sys.stderr)
    sys.exit(code)
print(json.dumps({"properties": {"outputs": {
    "appNames": {"type": "Array", "value": ["prod-agent-0", "prod-agent-5"]},
    "environmentDomain": {"type": "String", "value": "x.eastus.azurecontainerapps.io"},
    "entryUrl": {"type": "String",
                 "value": "https://prod-agent-0.x.eastus.azurecontainerapps.io"}}}}))
"""


@pytest.fixture
def fake_az(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ``az`` on PATH that records its arguments and the secure parameters it got."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    az = bin_dir / "az"
    az.write_text(FAKE_AZ)
    az.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    log = tmp_path / "az.json"
    monkeypatch.setenv("FAKE_AZ_LOG", str(log))
    return log


def test_deploy_runs_az_with_the_secrets_in_a_private_file(
    hive_home: Path, deployable: str, fake_az: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.setenv(API_KEY_ENV, "sk-live-key")
    token = read_token(hive_dir(hive_home, deployable))
    result = deploy(hive_home, deployable, image="hiveacr.azurecr.io/amplihack-hive:9")
    assert result.ran is True
    assert result.outputs == {
        "appNames": ["prod-agent-0", "prod-agent-5"],
        "environmentDomain": "x.eastus.azurecontainerapps.io",
        "entryUrl": "https://prod-agent-0.x.eastus.azurecontainerapps.io",
    }
    # where clients reach it is recorded for learn / recall / ask --target azure
    entry = hive_dir(hive_home, deployable) / "azure" / "entry.json"
    assert json.loads(entry.read_text())["url"] == result.outputs["entryUrl"]
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    record = json.loads(fake_az.read_text())
    argv = record["argv"]
    assert argv[:5] == ["deployment", "group", "create", "--resource-group", "rg-prod"]
    assert token not in " ".join(argv) and "sk-live-key" not in " ".join(argv)
    assert record["secure"]["parameters"] == {
        "apiKey": {"value": "sk-live-key"},
        "hiveToken": {"value": token},
    }
    assert record["secure_mode"] == 0o600
    assert not Path(record["secure_path"]).exists()  # removed once az is done
    assert not Path(record["secure_path"]).parent.exists()


def test_deploy_prefers_the_token_from_the_environment(
    hive_home: Path, deployable: str, fake_az: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "token-from-ci-secret")
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    deploy(hive_home, deployable)
    record = json.loads(fake_az.read_text())
    assert record["secure"]["parameters"] == {"hiveToken": {"value": "token-from-ci-secret"}}


def test_a_semantic_hive_deploys_with_its_embedder_and_the_key_as_a_secret(
    hive_home: Path, deployable: str, fake_az: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = hive_config.load_hive(hive_home, deployable)
    cfg.semantic = hive_config.SemanticConfig("openai:text-embedding-3-small", nprobe=12)
    hive_config.save(config_path(hive_dir(hive_home, deployable)), cfg)
    monkeypatch.setenv(TOKEN_ENV, "token-from-ci-secret")
    monkeypatch.delenv(EMBED_URL_ENV, raising=False)
    with pytest.raises(ConfigError, match=r"set \$AMPLIHACK_HIVE_EMBED_URL"):
        deploy(hive_home, deployable)
    monkeypatch.setenv(EMBED_URL_ENV, "https://my-openai.openai.azure.com/openai/v1")
    monkeypatch.setenv(EMBED_KEY_ENV, "embed-secret")
    result = deploy(hive_home, deployable)
    record = json.loads(fake_az.read_text())
    assert "embed-secret" not in " ".join(record["argv"])
    assert record["secure"]["parameters"] == {
        "hiveToken": {"value": "token-from-ci-secret"},
        "embedKey": {"value": "embed-secret"},
        "embedUrl": {"value": "https://my-openai.openai.azure.com/openai/v1"},
    }
    # the agents are started with it, and the key reaches them through a secretRef only
    text = result.plan.template_file.read_text()
    assert "embedder: 'openai:text-embedding-3-small'" in text and "nprobe: 12" in text
    module = parse(result.plan.template_file.parent / "modules" / "agent-app.bicep")
    env = module["variables"]["embedEnv"]["value"]["function"]["parameters"]["arg_1"]
    assert env["operator"]["operands"]["false_value"] == [
        {"name": "AMPLIHACK_HIVE_EMBED_KEY", "secretRef": "embed-key"}
    ]


def test_failing_az_is_one_clear_error(
    hive_home: Path, deployable: str, fake_az: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AZ_EXIT", "1")
    with pytest.raises(TransportError, match=r"az deployment group create failed \(exit 1\)"):
        deploy(hive_home, deployable)


# --- the image: what can be checked without a Docker daemon ----------------------------------


def test_the_bicep_container_args_are_what_the_agent_process_accepts(tmp_path: Path) -> None:
    """The args agent-app.bicep gives the image's ENTRYPOINT parse with the agent's own
    parser, and agree with the Dockerfile (port, data volume, entry point)."""
    from amplihack_hive.agent.process import parse_args

    module = parse(REPO_ROOT / "bicep" / "modules" / "agent-app.bicep")
    (container,) = module["resources"]["app"]["config"]["properties"]["template"]["containers"]
    values = {
        "${dataDir}/hive": str(tmp_path / "data" / "hive"),
        "agents": "agent-5,agent-6",
        "allAgents": ",".join(f"agent-{i}" for i in range(10)),
        "replication": "3",
        "backend": "kuzu",
        "bufferPoolMb": "256",
        "tokenizer": "2",
        "port": "8080",
        "publicUrl": "https://h-agent-5.internal.example.io",
    }

    def value(arg: object) -> str:
        if isinstance(arg, dict):  # string(x)
            (parameter,) = arg["function"]["parameters"].values()
            return values[parameter]
        assert isinstance(arg, str)
        return values.get(arg, arg)

    # args: concat(the fixed ones, embedArgs), embedArgs empty without an embedder
    call = container["args"]["function"]
    assert call["type"] == "concat"
    fixed, extra = call["parameters"].values()
    assert extra == "embedArgs"
    chosen = module["variables"]["embedArgs"]["value"]["operator"]["operands"]
    assert chosen["condition"]["function"]["parameters"] == {"item_to_test": "embedder"}
    assert chosen["true_value"] == []
    without = parse_args([value(arg) for arg in fixed])
    assert without.embedder is None
    values.update(embedder="openai:text-embedding-3-small", nprobe="12")
    options = parse_args([value(arg) for arg in [*fixed, *chosen["false_value"]]])
    assert (options.embedder, options.nprobe) == ("openai:text-embedding-3-small", 12)
    assert options.agents == ["agent-5", "agent-6"]
    assert options.tokenizer == 2
    assert len(options.all_agents) == 10
    assert (options.host, options.port) == ("0.0.0.0", 8080)
    assert options.public_url == "https://h-agent-5.internal.example.io"
    assert module["variables"]["dataDir"]["value"] == "/data"

    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    instructions = [line.split(None, 1) for line in dockerfile.splitlines() if line[:1].isupper()]
    bases = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(bases) == 2
    for base in bases:  # an exact Python release on a fixed Debian release
        assert re.fullmatch(r"python:3\.\d+\.\d+-slim-[a-z]+( AS \w+)?", base), base
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and not users[-1].startswith(("root", "0"))
    assert ("EXPOSE", "8080") in [tuple(item) for item in instructions]
    assert 'VOLUME ["/data"]' in dockerfile
    assert 'ENTRYPOINT ["python", "-m", "amplihack_hive.agent"]' in dockerfile
    healthcheck = dockerfile[dockerfile.index("HEALTHCHECK") :].split("\n\n")[0]
    assert "http://127.0.0.1:8080/health" in healthcheck
    assert "'Authorization': 'Bearer ' + os.environ.get('AMPLIHACK_HIVE_TOKEN'" in healthcheck
    ignored = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    for needed in ("pyproject.toml", "README.md", "amplihack_hive/", "templates/", "bicep/"):
        assert f"!{needed}" in ignored


@pytest.mark.slow
def test_checkov_reports_no_failed_check_on_the_dockerfile(tmp_path: Path) -> None:
    shutil.copy(REPO_ROOT / "Dockerfile", tmp_path / "Dockerfile")
    summary = run_checkov(tmp_path, framework="dockerfile")
    assert summary["failed"] == 0 and summary["skipped"] == 0
    assert summary["passed"] > 0


# --- up: build, deploy, wait ---------------------------------------------------------------------

FAKE_AZ_UP = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ["FAKE_AZ_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1:3] == ["deployment", "group"]:
    print(json.dumps({"properties": {"outputs": {
        "appNames": {"type": "Array", "value": ["up-agent-0"]},
        "entryUrl": {"type": "String", "value": os.environ["FAKE_ENTRY_URL"]}}}}))
"""


@pytest.mark.slow
def test_up_builds_deploys_and_waits_until_the_entry_sees_every_agent(
    hive_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """az is a fake that records its calls; the entry URL it reports is a real agent of a
    local hive of the same name (so the wait is a real one, over HTTP with the token)."""
    from helpers import started_hive

    from amplihack_hive.azure.up import azure_up

    sup = started_hive(hive_home, "up", 3, backend="memory")
    try:
        cfg = hive_config.load_hive(hive_home, "up")
        cfg.azure.resource_group = "rg-up"
        hive_config.save(config_path(hive_dir(hive_home, "up")), cfg)
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "az").write_text(FAKE_AZ_UP)
        (bin_dir / "az").chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        log = tmp_path / "az.log"
        monkeypatch.setenv("FAKE_AZ_LOG", str(log))
        entry = next(r for r in sup.status() if r.name == "agent-0").url
        assert entry is not None
        monkeypatch.setenv("FAKE_ENTRY_URL", entry)
        project = tmp_path / "project"
        project.mkdir()
        (project / "Dockerfile").write_text("FROM python:3.12.7-slim-bookworm\n")
        lines: list[str] = []
        result = azure_up(
            hive_home,
            "up",
            registry="hiveacr",
            context=project,
            tag="t1",
            progress=lines.append,
        )
        calls = [json.loads(line) for line in log.read_text().splitlines()]
        assert calls[0][:6] == [
            "acr",
            "build",
            "--registry",
            "hiveacr",
            "--image",
            "amplihack-hive:t1",
        ]
        assert calls[0][-1] == str(project)
        assert calls[1][:5] == ["deployment", "group", "create", "--resource-group", "rg-up"]
        assert result.image == "hiveacr.azurecr.io/amplihack-hive:t1" and result.built
        assert (result.url, result.agents_alive, result.agents) == (entry, 3, 3)
        assert "deploying (the apps roll one at a time)" in lines
        # the rendered template carries the built image
        parameters = json.loads(
            (hive_dir(hive_home, "up") / "azure" / "main.parameters.json").read_text()
        )
        assert parameters["parameters"]["image"]["value"] == result.image
        # re-runnable: up again with the image built, no build this time
        again = azure_up(hive_home, "up", image=result.image)
        assert not again.built and again.agents_alive == 3
        assert len(log.read_text().splitlines()) == 3
        # an agent down: up waits, then says what it saw (once the entry's failure detector
        # has seen it go, in real time: up's own wait runs on a fake clock)
        sup.stop(agents=["agent-2"], timeout=10)
        from amplihack_hive.hive.probe import AgentProbe

        probe = AgentProbe(read_token(hive_dir(hive_home, "up")))
        try:
            deadline = time.monotonic() + 30
            while probe.get(entry + "/stats", 5.0)["peers"].get("agent-2") == "alive":
                assert time.monotonic() < deadline, "the entry never saw agent-2 go"
                time.sleep(0.1)
        finally:
            probe.close()
        clock = iter(range(0, 10_000, 100))
        with pytest.raises(HiveStateError, match="2 of 3 agents alive"):
            azure_up(
                hive_home,
                "up",
                image=result.image,
                timeout_s=250,
                clock=lambda: float(next(clock)),
                sleep=lambda s: None,
            )
        with pytest.raises(InvalidInputError, match="not both"):
            azure_up(hive_home, "up", image=result.image, registry="hiveacr")
        with pytest.raises(NotFoundError, match="no Dockerfile"):
            azure_up(hive_home, "up", registry="hiveacr", context=tmp_path)
    finally:
        sup.stop()


def test_the_hives_groups_reach_every_agent_app(hive_home: Path, tmp_path: Path) -> None:
    make_hive(hive_home, "grp", 4, per_app=2)
    hive_config.add_agent(hive_home, "grp", "agent-4", groups=["ops", "dev"])
    cfg = hive_config.load_hive(hive_home, "grp")
    assert cfg.groups == {"dev": ["agent-4"], "ops": ["agent-4"]}
    render_hive(hive_home, "grp", tmp_path / "out")
    main = (tmp_path / "out" / "main.bicep").read_text()
    assert "    groups: 'dev=agent-4;ops=agent-4'\n" in main
    module = (tmp_path / "out" / "modules" / "agent-app.bicep").read_text()
    assert "name: 'AMPLIHACK_HIVE_GROUPS'" in module and "value: groups" in module
