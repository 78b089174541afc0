"""MemoryConfig.resolve: precedence, parsing, and errors that name their source."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from amplihack_hive.errors import ConfigError, HiveError
from amplihack_hive.memory.config import MemoryConfig


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME and no AMPLIHACK_MEMORY_* variables: never read the real home."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("USERPROFILE", raising=False)
    for var in list(os.environ):
        if var.startswith("AMPLIHACK_MEMORY_"):
            monkeypatch.delenv(var)
    return home


def write_default(home: Path, text: str) -> Path:
    path = home / ".amplihack" / "memory.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_with_no_file_and_no_env(home: Path) -> None:
    cfg = MemoryConfig.resolve()
    assert cfg == MemoryConfig()
    assert cfg.backend == "kuzu" and cfg.engine == "kuzu"
    assert (cfg.replication, cfg.vnodes) == (3, 256)
    assert (cfg.buffer_pool_mb, cfg.max_db_size_mb) == (256, 4096)
    assert cfg.data_dir == home / ".amplihack" / "memory"
    assert cfg.peers == {} and cfg.token is None
    assert (cfg.recall_limit, cfg.request_timeout_s, cfg.max_content_bytes) == (10, 5.0, 65536)


def test_file_beats_defaults(home: Path) -> None:
    write_default(home, "replication: 5\ndata_dir: ~/data\nrequest_timeout_s: 2\n")
    cfg = MemoryConfig.resolve()
    assert cfg.replication == 5
    assert cfg.data_dir == home / "data"
    assert cfg.request_timeout_s == 2.0 and isinstance(cfg.request_timeout_s, float)
    assert cfg.vnodes == 256  # untouched keys keep their defaults


def test_env_beats_file(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_default(home, "replication: 5\nbuffer_pool_mb: 64\n")
    monkeypatch.setenv("AMPLIHACK_MEMORY_REPLICATION", "7")
    cfg = MemoryConfig.resolve()
    assert cfg.replication == 7
    assert cfg.buffer_pool_mb == 64


def test_argument_beats_env(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_default(home, "replication: 5\n")
    monkeypatch.setenv("AMPLIHACK_MEMORY_REPLICATION", "7")
    monkeypatch.setenv("AMPLIHACK_MEMORY_BACKEND", "memory")
    cfg = MemoryConfig.resolve(replication=2, backend=None)  # None: not given
    assert cfg.replication == 2
    assert cfg.backend == "memory"


def test_every_field_reads_its_env_var(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "BACKEND": "memory",
        "ENGINE": "ladybug",
        "REPLICATION": "2",
        "VNODES": "8",
        "BUFFER_POOL_MB": "32",
        "MAX_DB_SIZE_MB": "128",
        "DATA_DIR": "~/elsewhere",
        "PEERS": "agent-1=http://h1:8001, agent-2=https://h2:8002/",
        "TOKEN": "s3cret",
        "RECALL_LIMIT": "4",
        "REQUEST_TIMEOUT_S": "0.5",
        "MAX_CONTENT_BYTES": "100",
    }
    for key, value in env.items():
        monkeypatch.setenv("AMPLIHACK_MEMORY_" + key, value)
    cfg = MemoryConfig.resolve()
    assert cfg.backend == "memory" and cfg.engine == "ladybug"
    assert (cfg.replication, cfg.vnodes, cfg.buffer_pool_mb, cfg.max_db_size_mb) == (
        2,
        8,
        32,
        128,
    )
    assert cfg.data_dir == home / "elsewhere"
    assert cfg.peers == {"agent-1": "http://h1:8001", "agent-2": "https://h2:8002"}
    assert cfg.token == "s3cret"
    assert (cfg.recall_limit, cfg.request_timeout_s, cfg.max_content_bytes) == (4, 0.5, 100)


def test_config_file_precedence(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_default(home, "vnodes: 1\n")
    by_env = tmp_path / "env.yaml"
    by_env.write_text("vnodes: 2\n")
    by_arg = tmp_path / "arg.yaml"
    by_arg.write_text("vnodes: 3\n")
    assert MemoryConfig.resolve().vnodes == 1
    monkeypatch.setenv("AMPLIHACK_MEMORY_CONFIG", str(by_env))
    assert MemoryConfig.resolve().vnodes == 2
    assert MemoryConfig.resolve(config_file=by_arg).vnodes == 3
    assert MemoryConfig.resolve(config_file=str(by_arg)).vnodes == 3


def test_missing_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml.*not found.*config_file"):
        MemoryConfig.resolve(config_file=missing)
    monkeypatch.setenv("AMPLIHACK_MEMORY_CONFIG", str(missing))
    with pytest.raises(ConfigError, match=r"nope\.yaml.*not found.*AMPLIHACK_MEMORY_CONFIG"):
        MemoryConfig.resolve()
    monkeypatch.setenv("AMPLIHACK_MEMORY_CONFIG", "")
    with pytest.raises(ConfigError, match="empty"):
        MemoryConfig.resolve()


def test_env_error_names_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMPLIHACK_MEMORY_REPLICATION", "three")
    with pytest.raises(ConfigError) as err:
        MemoryConfig.resolve()
    assert str(err.value) == (
        "AMPLIHACK_MEMORY_REPLICATION='three' (environment variable): expected an integer >= 1"
    )


def test_file_error_names_file_and_key(home: Path) -> None:
    path = write_default(home, "buffer_pool_mb: -5\n")
    with pytest.raises(ConfigError) as err:
        MemoryConfig.resolve()
    assert str(err.value) == (f"{path}: key 'buffer_pool_mb': expected an integer >= 16, got -5")


def test_argument_error_names_argument() -> None:
    with pytest.raises(ConfigError) as err:
        MemoryConfig.resolve(replication="three")
    assert str(err.value) == "argument replication: expected an integer >= 1, got 'three'"


def test_bad_argument_is_not_hidden_by_good_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMPLIHACK_MEMORY_VNODES", "16")
    with pytest.raises(ConfigError, match="argument vnodes"):
        MemoryConfig.resolve(vnodes=0)


def test_malformed_file_errors_even_when_env_overrides(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A broken file is reported even if the env var would win: unknown keys and bad YAML
    # are checked for the whole file; a bad value is only parsed when it is used.
    write_default(home, "replication: [1\n")
    monkeypatch.setenv("AMPLIHACK_MEMORY_REPLICATION", "2")
    with pytest.raises(ConfigError, match="malformed YAML"):
        MemoryConfig.resolve()


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("replication", True, "expected an integer >= 1"),
        ("replication", 0, "expected an integer >= 1"),
        ("replication", 2.5, "expected an integer >= 1"),
        ("vnodes", "1.0", "expected an integer >= 1"),
        ("buffer_pool_mb", 15, "expected an integer >= 16"),
        ("max_db_size_mb", 63, "expected an integer >= 64"),
        ("recall_limit", 0, "expected an integer >= 1"),
        ("max_content_bytes", False, "expected an integer >= 1"),
        ("request_timeout_s", 0, "expected a number > 0"),
        ("request_timeout_s", float("nan"), "expected a number > 0"),
        ("request_timeout_s", True, "expected a number > 0"),
        ("backend", "sqlite", "expected one of 'kuzu', 'memory'"),
        ("engine", "neo4j", "expected one of 'kuzu', 'ladybug'"),
        ("data_dir", "", "expected a non-empty path"),
        ("data_dir", 5, "expected a non-empty path"),
        ("token", "", "expected a non-empty string"),
        ("token", 1234, "expected a non-empty string"),
        ("peers", ["x"], "expected a mapping"),
        ("peers", {"Bad_Name": "http://h"}, "peer name 'Bad_Name'"),
        ("peers", {"a": "ftp://h"}, "peer 'a': expected an http"),
        ("peers", {"a": "localhost:8000"}, "peer 'a': expected an http"),
        ("peers", "a=http://h,a=http://i", "each peer name once"),
        ("peers", "a=http://h,b", "expected name=url"),
    ],
)
def test_bad_values_are_refused(field: str, value: object, expected: str) -> None:
    with pytest.raises(ConfigError, match=f"^argument {field}: ") as err:
        MemoryConfig.resolve(**{field: value})
    assert expected in str(err.value)


@pytest.mark.parametrize(
    ("field", "raw"),
    [("replication", "true"), ("replication", ""), ("request_timeout_s", "inf"), ("backend", "")],
)
def test_bad_env_values_are_refused(field: str, raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    var = "AMPLIHACK_MEMORY_" + field.upper()
    monkeypatch.setenv(var, raw)
    with pytest.raises(ConfigError, match=f"^{var}=.*\\(environment variable\\): expected"):
        MemoryConfig.resolve()


def test_yaml_types_are_checked(home: Path) -> None:
    path = write_default(home, "replication: yes\n")  # YAML 1.1: a boolean, not an integer
    with pytest.raises(
        ConfigError, match=f"^{re.escape(str(path))}: key 'replication': .*got True$"
    ):
        MemoryConfig.resolve()


def test_unknown_yaml_key(home: Path) -> None:
    path = write_default(home, "replication: 3\nreplicaton: 4\n")
    with pytest.raises(ConfigError) as err:
        MemoryConfig.resolve()
    assert str(path) in str(err.value) and "'replicaton'" in str(err.value)


def test_unknown_argument() -> None:
    with pytest.raises(ConfigError, match="replicaton"):
        MemoryConfig.resolve(replicaton=3)


def test_malformed_yaml_names_file_and_line(home: Path) -> None:
    path = write_default(home, "replication: 3\nvnodes: [1, 2\nbackend: kuzu\n")
    with pytest.raises(ConfigError) as err:
        MemoryConfig.resolve()
    message = str(err.value)
    assert message.startswith(f"{path}: line ")
    assert "malformed YAML" in message
    line = int(message.split("line ")[1].split(",")[0])
    assert line in (2, 3, 4)


@pytest.mark.parametrize("text", ["- replication\n- 3\n", "just a string\n", "42\n"])
def test_yaml_document_must_be_a_mapping(home: Path, text: str) -> None:
    path = write_default(home, text)
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: expected a mapping"):
        MemoryConfig.resolve()


def test_empty_yaml_file_is_defaults(home: Path) -> None:
    write_default(home, "# nothing set yet\n")
    assert MemoryConfig.resolve() == MemoryConfig()


def test_unreadable_config_path_is_an_error(home: Path) -> None:
    (home / ".amplihack" / "memory.yaml").mkdir(parents=True)  # a directory, not a file
    with pytest.raises(ConfigError, match="cannot read"):
        MemoryConfig.resolve()


def test_peers_parsing(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_default(home, "peers:\n  agent-0: http://10.0.0.1:8000\n  agent-1: http://h:1/\n")
    assert MemoryConfig.resolve().peers == {
        "agent-0": "http://10.0.0.1:8000",
        "agent-1": "http://h:1",
    }
    monkeypatch.setenv("AMPLIHACK_MEMORY_PEERS", " a=http://x:1 ,b=https://y ")
    assert MemoryConfig.resolve().peers == {"a": "http://x:1", "b": "https://y"}
    monkeypatch.setenv("AMPLIHACK_MEMORY_PEERS", "")  # explicitly no peers
    assert MemoryConfig.resolve().peers == {}
    assert MemoryConfig.resolve(peers={"c": "http://z"}).peers == {"c": "http://z"}
    assert MemoryConfig.resolve(peers="c=http://z").peers == {"c": "http://z"}


def test_bare_peers_key_in_yaml_means_none(home: Path) -> None:
    write_default(home, "peers:\n")
    assert MemoryConfig.resolve().peers == {}


def test_peers_are_copied() -> None:
    peers = {"a": "http://x"}
    cfg = MemoryConfig.resolve(peers=peers)
    peers["b"] = "http://y"
    assert cfg.peers == {"a": "http://x"}


def test_token_never_shown(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = MemoryConfig.resolve(token="hunter2")
    assert cfg.token == "hunter2"
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg)
    assert cfg.to_dict()["token"] == "***"
    assert MemoryConfig().to_dict()["token"] is None
    path = write_default(home, "token: 123456\n")  # a number: refused, and not echoed
    with pytest.raises(ConfigError) as err:
        MemoryConfig.resolve()
    assert str(path) in str(err.value) and "123456" not in str(err.value)


def test_to_dict_is_plain(home: Path) -> None:
    import json

    d = MemoryConfig.resolve(peers={"a": "http://x"}).to_dict()
    assert d["data_dir"] == str(home / ".amplihack" / "memory")
    assert d["peers"] == {"a": "http://x"}
    json.dumps(d)


def test_frozen_and_validated_on_construction() -> None:
    cfg = MemoryConfig()
    with pytest.raises(AttributeError):
        cfg.replication = 5  # type: ignore[misc]
    with pytest.raises(ConfigError, match="argument replication"):
        MemoryConfig(replication=0)
    assert MemoryConfig(data_dir="~/x").data_dir == Path("~/x").expanduser()  # type: ignore[arg-type]


def test_config_error_is_a_hive_error() -> None:
    with pytest.raises(HiveError):
        MemoryConfig.resolve(backend="nope")


def test_max_db_size_must_be_a_power_of_two() -> None:
    with pytest.raises(ConfigError, match="power of two"):
        MemoryConfig.resolve(max_db_size_mb=1000)
    assert MemoryConfig.resolve(max_db_size_mb=1024).max_db_size_mb == 1024


def test_the_tokenizer_comes_from_the_environment_or_is_left_to_the_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert MemoryConfig.resolve().tokenizer is None  # the store's own, or the newest
    monkeypatch.setenv("AMPLIHACK_MEMORY_TOKENIZER", "1")
    assert MemoryConfig.resolve().tokenizer == 1
    monkeypatch.setenv("AMPLIHACK_MEMORY_TOKENIZER", "7")
    with pytest.raises(ConfigError, match=r"AMPLIHACK_MEMORY_TOKENIZER.*unknown tokenizer 7"):
        MemoryConfig.resolve()
    with pytest.raises(ConfigError, match="argument tokenizer: unknown tokenizer True"):
        MemoryConfig(tokenizer=True)  # type: ignore[arg-type]
