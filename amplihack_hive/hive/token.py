"""The per-hive secret token every request to an agent must carry.

Created by ``create`` as ``<hive>/token``: 32 random bytes, URL-safe base64, in a file
created with mode 0600 (never readable by others, not even between create and chmod).
``create --force`` writes a new one, so an old token stops working.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import stat
from pathlib import Path

from amplihack_hive.errors import ConfigError, InvalidInputError, NotFoundError
from amplihack_hive.hive.home import write_file_atomic
from amplihack_hive.names import is_valid_name, validate_name

logger = logging.getLogger(__name__)

TOKEN_FILE = "token"
TOKEN_MODE = 0o600


def token_path(hive_dir: Path) -> Path:
    """Where the token of the hive in ``hive_dir`` lives."""
    return hive_dir / TOKEN_FILE


def create_token(hive_dir: Path) -> str:
    """Write a new random token for the hive in ``hive_dir`` (mode 0600) and return it."""
    token = secrets.token_urlsafe(32)
    write_file_atomic(token_path(hive_dir), (token + "\n").encode("ascii"), mode=TOKEN_MODE)
    return token


def read_token(hive_dir: Path) -> str:
    """The token of the hive in ``hive_dir``.

    A missing file is NotFoundError, an empty one ConfigError. A token file others can
    read still works but logs a warning.
    """
    path = token_path(hive_dir)
    try:
        with open(path, encoding="ascii") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            text = handle.read()
    except FileNotFoundError:
        raise NotFoundError(f"no hive token at {path}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the token is not ASCII text") from None
    if stat.S_IMODE(mode) & 0o077:
        logger.warning(
            "%s is readable by others (mode %o); run: chmod 600 %s", path, stat.S_IMODE(mode), path
        )
    token = text.strip()
    if not token:
        raise ConfigError(f"{path}: the token file is empty")
    return token


def token_matches(expected: str, given: str | None) -> bool:
    """Compare a presented token with the hive's in constant time."""
    if given is None:
        return False
    return secrets.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


#: What starts an agent's credential; the rest is ``<agent>.<mac>``.
CREDENTIAL_PREFIX = "agent."
_CREDENTIAL_LABEL = b"amplihack-hive agent credential v1\x00"


def agent_credential(token: str, agent: str) -> str:
    """The credential of ``agent`` in the hive whose token is ``token``: ``agent.<name>.<mac>``,
    the mac an HMAC-SHA256 of the name keyed by the token. It lets its holder read and write
    the agent's own scope, its groups' and the hive's (memory/scopes.py), and nothing else:
    not the agents' own protocol, not other agents' scopes. Any agent of the hive checks it
    without a list of issued credentials; ``create --force`` (a new token) revokes them all."""
    validate_name(agent, "agent name")
    mac = hmac.new(token.encode("utf-8"), _CREDENTIAL_LABEL + agent.encode(), hashlib.sha256)
    digest = base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")
    return f"{CREDENTIAL_PREFIX}{agent}.{digest}"


#: A client that holds one agent's credential and not the hive token (the CLI's memory
#: commands use it instead of the token file: the agents check it).
CREDENTIAL_ENV = "AMPLIHACK_HIVE_CREDENTIAL"


def _claimed_agent(given: str) -> str | None:
    """The agent ``given`` has the form of a credential of (unchecked), or None."""
    if not given.startswith(CREDENTIAL_PREFIX):
        return None
    agent, sep, mac = given[len(CREDENTIAL_PREFIX) :].partition(".")
    return agent if sep and mac and is_valid_name(agent) else None


def credential_holder(given: str) -> str:
    """The agent ``given`` claims to be the credential of (unchecked: only the agents,
    holding the token, can check it); InvalidInputError if it is not one's form."""
    agent = _claimed_agent(given)
    if agent is None:
        raise InvalidInputError(
            f"${CREDENTIAL_ENV} is not an agent credential "
            "('amplihack-hive credential HIVE AGENT' prints one)"
        )
    return agent


def credential_agent(token: str, given: str) -> str | None:
    """The agent ``given`` is the credential of (checked in constant time), or None."""
    agent = _claimed_agent(given)
    if agent is None:
        return None
    expected = agent_credential(token, agent)
    return agent if secrets.compare_digest(expected.encode(), given.encode()) else None
