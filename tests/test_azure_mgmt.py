"""status and stop --target azure through the REAL azure-mgmt-appcontainers client.

The client is pointed (``base_url``) at a loopback HTTPS server that plays the Azure
Resource Manager API for container apps: list by resource group with ``nextLink`` paging,
get revision, stop and delete as long-running operations (202 + ``Location`` /
``Azure-AsyncOperation``, then polls), ARM error bodies for 401, 404 and 429. HTTPS because
the SDK's bearer-token policy refuses to send a token over plain HTTP; the test trusts the
server's self-signed certificate through ``connection_verify``. The credential is a static
token class implementing ``get_token``. No test needs an Azure account.
"""

from __future__ import annotations

import datetime
import ipaddress
import itertools
import json
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.core.credentials import AccessToken
from azure.identity import CredentialUnavailableError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from amplihack_hive.azure import AppStatus, azure_status, azure_stop
from amplihack_hive.azure.settings import HIVE_TAG, SUBSCRIPTION_ENV
from amplihack_hive.cli.commands_azure import status_azure, stop_azure
from amplihack_hive.errors import ConfigError, InvalidInputError, NotFoundError, TransportError
from amplihack_hive.hive import config as hive_config
from amplihack_hive.hive.home import config_path, hive_dir

SUB = "00000000-0000-0000-0000-000000000001"
RG = "rg-hive"
TOKEN = "static-test-token"
HIVE = "swarm"
SCOPE = "https://management.azure.com/.default"


# --- the TLS certificate of the loopback server --------------------------------------------


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (as its own CA) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-arm.test")])
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


# --- the fake Azure Resource Manager ---------------------------------------------------------


@dataclass
class Fault:
    """Answer the next ``times`` requests matching ``method`` and ``pattern`` with this."""

    method: str
    pattern: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    times: int = 1


@dataclass
class Operation:
    kind: str  # "stop" or "delete"
    app: str
    polls_left: int = 1


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    at: float


class FakeArm:
    """State and behaviour of the fake ARM endpoint for one subscription."""

    def __init__(self) -> None:
        self.base_url = ""
        self.groups: dict[str, dict[str, dict[str, Any]]] = {}
        self.faults: list[Fault] = []
        self.requests: list[Seen] = []
        self.operations: dict[str, Operation] = {}
        self.page_size = 2
        self.token = TOKEN
        self._ids = itertools.count(1)
        self.lock = threading.Lock()

    # -- fixtures of the scenario
    def add_app(
        self,
        group: str,
        name: str,
        *,
        hive: str | None = HIVE,
        running: str = "Running",
        provisioning: str = "Succeeded",
        replicas: int = 1,
    ) -> None:
        tags = {HIVE_TAG: hive} if hive else {"team": "other"}
        app_id = (
            f"/subscriptions/{SUB}/resourceGroups/{group}/providers/Microsoft.App/containerApps/"
            f"{name}"
        )
        self.groups.setdefault(group, {})[name] = {
            "id": app_id,
            "name": name,
            "type": "Microsoft.App/containerApps",
            "location": "eastus",
            "tags": tags,
            "properties": {
                "provisioningState": provisioning,
                "runningStatus": running,
                "latestRevisionName": f"{name}--rev1",
                "latestReadyRevisionName": f"{name}--rev1",
                "configuration": {
                    "activeRevisionsMode": "Single",
                    "ingress": {
                        "external": False,
                        "targetPort": 8080,
                        "fqdn": f"{name}.internal.example.eastus.azurecontainerapps.io",
                    },
                },
            },
            "_replicas": replicas,
        }

    def fail(self, method: str, pattern: str, status: int, **kwargs: Any) -> None:
        self.faults.append(Fault(method, pattern, status, **kwargs))

    def seen(self, method: str, pattern: str) -> list[Seen]:
        return [r for r in self.requests if r.method == method and re.search(pattern, r.path)]

    # -- request handling: (status, headers, body)
    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str]
    ) -> tuple[int, dict[str, str], dict[str, Any] | None]:
        with self.lock:
            self.requests.append(Seen(method, path, query, headers, time.monotonic()))
            for fault in self.faults:
                if fault.times > 0 and fault.method == method and re.search(fault.pattern, path):
                    fault.times -= 1
                    return fault.status, fault.headers, fault.body
            if headers.get("authorization") != f"Bearer {self.token}":
                return (
                    401,
                    {},
                    _arm_error(
                        "ExpiredAuthenticationToken", "The access token has expired or is invalid."
                    ),
                )
            if "api-version" not in query:
                return 400, {}, _arm_error("MissingApiVersionParameter", "api-version missing")
            return self._route(method, path, query)

    def _route(
        self, method: str, path: str, query: dict[str, list[str]]
    ) -> tuple[int, dict[str, str], dict[str, Any] | None]:
        if match := re.fullmatch(r"/operations/(\w+)", path):
            return self._async_operation(match.group(1))
        if match := re.fullmatch(r"/operationResults/(\w+)", path):
            return self._operation_result(match.group(1))
        prefix = (
            rf"/subscriptions/{SUB}/resourceGroups/([^/]+)/providers/Microsoft\.App/containerApps"
        )
        match = re.fullmatch(prefix + r"(?:/([^/]+))?(?:/(stop|revisions)(?:/([^/]+))?)?", path)
        if match is None:
            return 404, {}, _arm_error("InvalidResourceType", f"no route {method} {path}")
        group, app, action, revision = match.groups()
        if group not in self.groups:
            return (
                404,
                {},
                _arm_error(
                    "ResourceGroupNotFound", f"Resource group '{group}' could not be found."
                ),
            )
        apps = self.groups[group]
        if app is None:
            return self._list(group, apps, query)
        if app not in apps:
            return (
                404,
                {},
                _arm_error(
                    "ResourceNotFound",
                    f"The Resource 'Microsoft.App/containerApps/{app}' under resource group "
                    f"'{group}' was not found.",
                ),
            )
        if action == "revisions" and method == "GET":
            return (
                200,
                {},
                {
                    "id": f"{apps[app]['id']}/revisions/{revision}",
                    "name": revision,
                    "properties": {
                        "active": True,
                        "replicas": apps[app]["_replicas"],
                        "runningState": "Running" if apps[app]["_replicas"] else "Stopped",
                        "healthState": "Healthy",
                        "provisioningState": "Provisioned",
                    },
                },
            )
        if action == "stop" and method == "POST":
            return self._start_operation("stop", group, app, async_header=False)
        if action is None and method == "GET":
            return 200, {}, _public(apps[app])
        if action is None and method == "DELETE":
            return self._start_operation("delete", group, app, async_header=True)
        return 405, {}, _arm_error("MethodNotAllowed", f"{method} {path}")

    def _list(
        self, group: str, apps: dict[str, dict[str, Any]], query: dict[str, list[str]]
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        start = int(query.get("$skiptoken", ["0"])[0])
        names = sorted(apps)
        page = [_public(apps[name]) for name in names[start : start + self.page_size]]
        body: dict[str, Any] = {"value": page}
        if start + self.page_size < len(names):
            api = query["api-version"][0]
            body["nextLink"] = (
                f"{self.base_url}/subscriptions/{SUB}/resourceGroups/{group}/providers/"
                f"Microsoft.App/containerApps?api-version={api}&$skiptoken={start + self.page_size}"
            )
        return 200, {}, body

    def _start_operation(
        self, kind: str, group: str, app: str, *, async_header: bool
    ) -> tuple[int, dict[str, str], None]:
        op_id = f"op{next(self._ids)}"
        self.operations[op_id] = Operation(kind, f"{group}/{app}")
        headers = {
            "Location": f"{self.base_url}/operationResults/{op_id}?api-version=2024-03-01",
            "Retry-After": "0",
        }
        if async_header:
            headers["Azure-AsyncOperation"] = (
                f"{self.base_url}/operations/{op_id}?api-version=2024-03-01"
            )
        return 202, headers, None

    def _finish(self, operation: Operation) -> dict[str, Any] | None:
        group, app = operation.app.split("/")
        apps = self.groups[group]
        if operation.kind == "delete":
            apps.pop(app, None)
            return None
        apps[app]["properties"]["runningStatus"] = "Stopped"
        apps[app]["_replicas"] = 0
        return _public(apps[app])

    def _async_operation(self, op_id: str) -> tuple[int, dict[str, str], dict[str, Any]]:
        operation = self.operations[op_id]
        if operation.polls_left > 0:
            operation.polls_left -= 1
            return 200, {"Retry-After": "0"}, {"status": "InProgress"}
        self._finish(operation)
        return 200, {}, {"status": "Succeeded"}

    def _operation_result(self, op_id: str) -> tuple[int, dict[str, str], dict[str, Any] | None]:
        operation = self.operations[op_id]
        if operation.kind == "delete":
            return 204, {}, None
        if operation.polls_left > 0:
            operation.polls_left -= 1
            return 202, {"Retry-After": "0"}, None
        return 200, {}, self._finish(operation)


def _public(app: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in app.items() if not key.startswith("_")}


def _arm_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _handler(arm: FakeArm) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            url = urlsplit(self.path)
            headers = {key.lower(): value for key, value in self.headers.items()}
            status, extra, body = arm.handle(self.command, url.path, parse_qs(url.query), headers)
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            for key, value in extra.items():
                self.send_header(key, value)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("x-ms-request-id", "fake")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def arm(tls_files: tuple[Path, Path]) -> Iterator[FakeArm]:
    fake = FakeArm()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_files)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    fake.base_url = f"https://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class StaticTokenCredential:
    """A TokenCredential that always hands out the same token, and records the scopes."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


class UnavailableCredential:
    """What DefaultAzureCredential does when nobody is signed in."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        raise CredentialUnavailableError(
            "DefaultAzureCredential failed to retrieve a token from the included credentials.\n"
            "Attempted credentials:\n\tEnvironmentCredential: not configured"
        )


@pytest.fixture
def options(arm: FakeArm, tls_files: tuple[Path, Path]) -> dict[str, Any]:
    """Client options that point the real SDK client at the fake, and poll without delay."""
    return {
        "base_url": arm.base_url,
        "credential_scopes": [SCOPE],
        "connection_verify": str(tls_files[0]),
        "polling_interval": 0,
        "retry_backoff_factor": 0.01,
    }


@pytest.fixture
def hive(hive_home: Path) -> hive_config.HiveConfig:
    """Hive ``swarm``: 10 agents, 2 per app -> apps swarm-agent-0, -2, -4, -6, -8."""
    hive_config.create_hive(hive_home, HIVE, agents=10)
    cfg = hive_config.load_hive(hive_home, HIVE)
    cfg.azure.agents_per_app = 2
    cfg.azure.resource_group = RG
    cfg.azure.subscription = SUB
    hive_config.save(config_path(hive_dir(hive_home, HIVE)), cfg)
    return cfg


def populate(arm: FakeArm) -> None:
    """Four of the hive's five apps (one stopped), an app the config no longer has, an app
    of another hive and an untagged one: 7 apps, 4 pages of 2."""
    arm.groups[RG] = {}
    arm.add_app(RG, "swarm-agent-0")
    arm.add_app(RG, "swarm-agent-2")
    arm.add_app(RG, "swarm-agent-4", running="Stopped", replicas=0)
    arm.add_app(RG, "swarm-agent-6")
    arm.add_app(RG, "swarm-old-group")
    arm.add_app(RG, "other-agent-0", hive="other")
    arm.add_app(RG, "unrelated", hive=None)


# --- status ----------------------------------------------------------------------------------


def test_status_lists_the_hive_apps_across_pages(
    hive_home: Path, hive: object, arm: FakeArm, options: dict[str, Any]
) -> None:
    populate(arm)
    credential = StaticTokenCredential()
    apps = azure_status(hive_home, HIVE, credential=credential, client_options=options)

    by_name = {app.name: app for app in apps}
    assert sorted(by_name) == [
        "swarm-agent-0",
        "swarm-agent-2",
        "swarm-agent-4",
        "swarm-agent-6",
        "swarm-agent-8",
        "swarm-old-group",
    ]
    assert by_name["swarm-agent-0"] == AppStatus(
        name="swarm-agent-0",
        agents=("agent-0", "agent-1"),
        found=True,
        provisioning_state="Succeeded",
        running_status="Running",
        replicas=1,
        revision="swarm-agent-0--rev1",
        fqdn="swarm-agent-0.internal.example.eastus.azurecontainerapps.io",
    )
    assert by_name["swarm-agent-0"].state == "healthy"
    assert by_name["swarm-agent-4"].state == "stopped"
    assert by_name["swarm-agent-4"].replicas == 0
    assert by_name["swarm-agent-8"].found is False  # in the config, not in Azure
    assert by_name["swarm-agent-8"].state == "stopped"
    assert by_name["swarm-old-group"].agents == ()  # tagged, but not in the config

    # 7 apps, pages of 2: the SDK followed nextLink three times
    lists = arm.seen("GET", r"/containerApps$")
    assert [r.query.get("$skiptoken", ["0"])[0] for r in lists] == ["0", "2", "4", "6"]
    # one revision read per hive app found; none for other hives' apps
    revisions = arm.seen("GET", r"/revisions/")
    assert sorted(r.path.split("/")[-3] for r in revisions) == [
        "swarm-agent-0",
        "swarm-agent-2",
        "swarm-agent-4",
        "swarm-agent-6",
        "swarm-old-group",
    ]
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in arm.requests)
    assert credential.scopes and all(scopes == (SCOPE,) for scopes in credential.scopes)


def test_status_command_prints_one_row_per_agent_and_exits_3(
    hive_home: Path,
    hive: object,
    arm: FakeArm,
    options: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    populate(arm)
    code = status_azure(
        hive_home,
        HIVE,
        json_output=True,
        credential=StaticTokenCredential(),
        client_options=options,
    )
    document = json.loads(capsys.readouterr().out)
    assert code == 3  # one app stopped, one missing
    assert document["hive"] == HIVE and document["target"] == "azure"
    rows = {row["name"]: row for row in document["agents"]}
    assert sorted(rows) == sorted(f"agent-{i}" for i in range(10))
    assert rows["agent-1"]["state"] == "healthy"
    assert rows["agent-1"]["app"] == "swarm-agent-0"
    assert rows["agent-1"]["url"].startswith("https://swarm-agent-0.internal.")
    assert rows["agent-5"]["state"] == "stopped"
    assert rows["agent-9"]["state"] == "stopped"
    assert set(rows["agent-0"]) >= {"name", "state", "pid", "url", "facts", "rss_mb"}


def test_status_exit_0_when_every_app_runs(
    hive_home: Path,
    hive: object,
    arm: FakeArm,
    options: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    arm.groups[RG] = {}
    for first in (0, 2, 4, 6, 8):
        arm.add_app(RG, f"swarm-agent-{first}")
    code = status_azure(hive_home, HIVE, credential=StaticTokenCredential(), client_options=options)
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["app", "agents", "provisioning", "running", "replicas", "state"]
    row = ["swarm-agent-0", "agent-0,agent-1", "Succeeded", "Running", "1", "healthy"]
    assert lines[1].split() == row
    assert len(lines) == 6


def test_throttling_429_with_retry_after_is_retried_by_the_sdk(
    hive_home: Path, hive: object, arm: FakeArm, options: dict[str, Any]
) -> None:
    populate(arm)
    arm.fail(
        "GET",
        r"/containerApps$",
        429,
        headers={"Retry-After": "1"},
        body=_arm_error("TooManyRequests", "Rate limit exceeded. Retry after 1 second."),
    )
    started = time.monotonic()
    apps = azure_status(hive_home, HIVE, credential=StaticTokenCredential(), client_options=options)
    elapsed = time.monotonic() - started

    assert len([app for app in apps if app.found]) == 5
    first, second = arm.seen("GET", r"/containerApps$")[:2]
    assert "$skiptoken" not in first.query and "$skiptoken" not in second.query  # same page
    assert second.at - first.at >= 0.9  # waited for Retry-After: 1, not the 0.01 s backoff
    assert elapsed >= 0.9


def test_throttling_that_outlasts_the_retries_is_one_clear_error(
    hive_home: Path, hive: object, arm: FakeArm, options: dict[str, Any]
) -> None:
    populate(arm)
    arm.fail("GET", r"/containerApps$", 429, headers={"Retry-After": "0"}, times=10)
    with pytest.raises(TransportError, match=r"throttling requests \(429\)") as caught:
        azure_status(
            hive_home,
            HIVE,
            credential=StaticTokenCredential(),
            client_options={**options, "retry_total": 2},
        )
    assert len(arm.seen("GET", r"/containerApps$")) == 3  # first try + 2 retries
    assert "\n" not in str(caught.value)


def test_expired_token_401_is_a_config_error(
    hive_home: Path, hive: object, arm: FakeArm, options: dict[str, Any]
) -> None:
    populate(arm)
    with pytest.raises(ConfigError) as caught:
        azure_status(
            hive_home,
            HIVE,
            credential=StaticTokenCredential("an-expired-token"),
            client_options=options,
        )
    message = str(caught.value)
    assert "refused the credential (401 ExpiredAuthenticationToken" in message
    assert "az login" in message
    assert "\n" not in message
    assert "an-expired-token" not in message


def test_missing_resource_group_404_is_not_found(
    hive_home: Path, hive: object, arm: FakeArm, options: dict[str, Any]
) -> None:
    with pytest.raises(NotFoundError) as caught:
        azure_status(
            hive_home,
            HIVE,
            resource_group="rg-missing",
            credential=StaticTokenCredential(),
            client_options=options,
        )
    message = str(caught.value)
    assert "resource group 'rg-missing'" in message
    assert "ResourceGroupNotFound" in message
    assert "\n" not in message


def test_credential_unavailable_says_how_to_sign_in(
    hive_home: Path, hive: object, arm: FakeArm, options: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError, match="no Azure credential found; sign in with `az login`"):
        azure_status(hive_home, HIVE, credential=UnavailableCredential(), client_options=options)
    assert arm.requests == []  # nothing sent without a token


def test_subscription_comes_from_argument_then_env_then_config(
    hive_home: Path, hive: hive_config.HiveConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from amplihack_hive.azure.settings import resolve_subscription

    monkeypatch.setenv(SUBSCRIPTION_ENV, "from-env")
    assert resolve_subscription("from-arg", hive) == "from-arg"
    assert resolve_subscription(None, hive) == "from-env"
    monkeypatch.delenv(SUBSCRIPTION_ENV)
    assert resolve_subscription(None, hive) == SUB
    hive.azure.subscription = None
    with pytest.raises(ConfigError, match=SUBSCRIPTION_ENV):
        resolve_subscription(None, hive)


def test_missing_subscription_is_refused_before_any_request(
    hive_home: Path, arm: FakeArm, options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SUBSCRIPTION_ENV, raising=False)
    hive_config.create_hive(hive_home, HIVE, agents=2)
    with pytest.raises(ConfigError, match="no Azure subscription for hive 'swarm'"):
        azure_status(
            hive_home,
            HIVE,
            resource_group=RG,
            credential=StaticTokenCredential(),
            client_options=options,
        )
    with pytest.raises(ConfigError, match="no resource group for hive 'swarm'"):
        azure_stop(hive_home, HIVE, subscription=SUB, credential=StaticTokenCredential())
    with pytest.raises(InvalidInputError, match="invalid resource group name"):
        azure_stop(
            hive_home, HIVE, subscription=SUB, resource_group="bad/group", credential=object()
        )
    assert arm.requests == []


# --- stop and delete -------------------------------------------------------------------------


def _wait(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_stop_stops_every_hive_app_as_a_long_running_operation(
    hive_home: Path, hive: object, arm: FakeArm, options: dict[str, Any]
) -> None:
    populate(arm)
    started = time.monotonic()
    outcomes = azure_stop(
        hive_home, HIVE, credential=StaticTokenCredential(), client_options=options
    )
    elapsed = time.monotonic() - started

    hive_apps = ["swarm-agent-0", "swarm-agent-2", "swarm-agent-4", "swarm-agent-6"]
    hive_apps.append("swarm-old-group")
    assert [item.name for item in outcomes] == hive_apps
    assert {item.action for item in outcomes} == {"stopped"}
    assert {item.running_status for item in outcomes} == {"Stopped"}  # the poller's result
    assert sorted(r.path.split("/")[-2] for r in arm.seen("POST", r"/stop$")) == hive_apps
    # each operation was polled through its Location until 200: one 202, then the result
    assert len(arm.seen("GET", r"^/operationResults/")) == 2 * len(hive_apps)
    assert arm.groups[RG]["other-agent-0"]["properties"]["runningStatus"] == "Running"
    assert arm.groups[RG]["unrelated"]["properties"]["runningStatus"] == "Running"
    assert elapsed < 10  # polling_interval 0 and Retry-After: 0, not the SDK's 30 s default

    after = azure_status(
        hive_home, HIVE, credential=StaticTokenCredential(), client_options=options
    )
    assert {app.state for app in after} == {"stopped"}


def test_delete_deletes_the_hive_apps_only(
    hive_home: Path,
    hive: object,
    arm: FakeArm,
    options: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    populate(arm)
    stop_azure(
        hive_home,
        HIVE,
        delete=True,
        json_output=True,
        credential=StaticTokenCredential(),
        client_options=options,
    )
    document = json.loads(capsys.readouterr().out)
    assert {item["action"] for item in document["apps"]} == {"deleted"}
    assert len(document["apps"]) == 5
    assert sorted(arm.groups[RG]) == ["other-agent-0", "unrelated"]
    assert len(arm.seen("DELETE", r"/containerApps/")) == 5
    # polled through Azure-AsyncOperation: InProgress, then Succeeded
    assert len(arm.seen("GET", r"^/operations/")) == 10

    # stopping (or deleting) a hive that has no apps left is fine
    assert (
        azure_stop(
            hive_home, HIVE, delete=True, credential=StaticTokenCredential(), client_options=options
        )
        == []
    )
    stop_azure(hive_home, HIVE, credential=StaticTokenCredential(), client_options=options)
    assert "has no container apps to stop" in capsys.readouterr().out


def test_stop_of_an_app_that_vanished_is_not_found(
    hive_home: Path, hive: object, arm: FakeArm, options: dict[str, Any]
) -> None:
    populate(arm)
    arm.fail(
        "POST",
        r"swarm-agent-2/stop$",
        404,
        body=_arm_error("ResourceNotFound", "The Resource was not found."),
    )
    with pytest.raises(NotFoundError, match=r"stop container app 'swarm-agent-2': not found"):
        azure_stop(hive_home, HIVE, credential=StaticTokenCredential(), client_options=options)


def test_server_error_after_retries_is_a_transport_error(
    hive_home: Path, hive: object, arm: FakeArm, options: dict[str, Any]
) -> None:
    populate(arm)
    arm.fail(
        "GET",
        r"/containerApps$",
        500,
        body=_arm_error("InternalServerError", "Something broke."),
        times=5,
    )
    with pytest.raises(TransportError, match=r"Azure answered 500 \(InternalServerError"):
        azure_status(
            hive_home,
            HIVE,
            credential=StaticTokenCredential(),
            client_options={**options, "retry_total": 1},
        )
    assert len(arm.seen("GET", r"/containerApps$")) == 2


def test_down_deletes_the_hive_apps_forgets_its_entry_and_can_run_again(
    hive_home: Path,
    hive: object,
    arm: FakeArm,
    options: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from amplihack_hive.azure.deployment import save_entry
    from amplihack_hive.cli.commands_azure import down_azure

    populate(arm)
    entry = save_entry(hive_home, HIVE, "https://swarm-agent-0.example.io", RG)
    down_azure(hive_home, HIVE, credential=StaticTokenCredential(), client_options=options)
    assert "deleted 5 container apps of hive swarm" in capsys.readouterr().out
    assert sorted(arm.groups[RG]) == ["other-agent-0", "unrelated"]
    assert not entry.exists()
    down_azure(hive_home, HIVE, credential=StaticTokenCredential(), client_options=options)
    assert "nothing to tear down" in capsys.readouterr().out
