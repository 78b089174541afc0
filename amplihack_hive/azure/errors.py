"""Azure SDK exceptions mapped onto ours at the edge, each to a one-line message.

=============================================  ===================  =========================
Azure                                          ours                 typical cause
=============================================  ===================  =========================
CredentialUnavailableError                     ConfigError          not signed in
ClientAuthenticationError (no response)        ConfigError          the credential failed
ClientAuthenticationError (401)                ConfigError          expired or wrong token
ResourceNotFoundError (404)                    NotFoundError        no such group/app/sub
HttpResponseError 403                          ConfigError          missing role assignment
HttpResponseError 429 (after the SDK retries)  TransportError       throttled too long
HttpResponseError (other)                      TransportError       Azure answered an error
ServiceRequestError / ServiceResponseError     TransportError       network
=============================================  ===================  =========================

Throttling (429 with ``Retry-After``) and transient 5xx are retried by the SDK's own retry
policy before any of this; only what is left after its retries reaches here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.identity import CredentialUnavailableError

from amplihack_hive.errors import ConfigError, HiveError, NotFoundError, TransportError

SIGN_IN_HINT = (
    "sign in with `az login`, or set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET "
    "(or run where a managed identity is available)"
)


def _first_line(text: object) -> str:
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()
    return ""


def _code_and_message(exc: HttpResponseError) -> tuple[str | None, str]:
    """The ARM error code and message of ``exc`` (``{"error": {"code", "message"}}``)."""
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    message = getattr(error, "message", None)
    if not message:
        message = getattr(exc, "reason", None) or _first_line(exc)
    return code, _first_line(message)


def map_azure_error(exc: AzureError, doing: str) -> HiveError:
    """Our error for ``exc``, raised while ``doing`` (e.g. "list the container apps of
    resource group 'rg'"), in one line."""
    if isinstance(exc, CredentialUnavailableError):
        return ConfigError(f"cannot {doing}: no Azure credential found; {SIGN_IN_HINT}")
    if isinstance(exc, ClientAuthenticationError) and getattr(exc, "response", None) is None:
        return ConfigError(
            f"cannot {doing}: getting an Azure token failed ({_first_line(exc)}); {SIGN_IN_HINT}"
        )
    if isinstance(exc, HttpResponseError):
        status = exc.status_code
        code, message = _code_and_message(exc)
        detail = f"{code}: {message}" if code else message
        if status == 401 or isinstance(exc, ClientAuthenticationError):
            return ConfigError(
                f"cannot {doing}: Azure refused the credential (401 {detail}); the token may "
                f"have expired: {SIGN_IN_HINT}"
            )
        if status == 404 or isinstance(exc, ResourceNotFoundError):
            return NotFoundError(f"cannot {doing}: not found ({detail})")
        if status == 403:
            return ConfigError(
                f"cannot {doing}: the signed-in identity is not allowed to ({detail}); it needs "
                "a role such as Contributor on the resource group"
            )
        if status == 429:
            return TransportError(
                f"cannot {doing}: Azure is throttling requests (429) and the retries ran out; "
                "try again in a minute"
            )
        return TransportError(f"cannot {doing}: Azure answered {status} ({detail})")
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return TransportError(
            f"cannot {doing}: the Azure management API is unreachable ({_first_line(exc)})"
        )
    return TransportError(f"cannot {doing}: {type(exc).__name__}: {_first_line(exc)}")


@contextlib.contextmanager
def azure_errors(doing: str) -> Iterator[None]:
    """Turn any Azure SDK error raised inside into ours (the original stays as the cause)."""
    try:
        yield
    except AzureError as exc:
        raise map_azure_error(exc, doing) from exc
