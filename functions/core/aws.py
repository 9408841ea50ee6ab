"""boto3 clients, created once per process.

boto3 honours AWS_ENDPOINT_URL, so the local stack points every client at its moto server with one
environment variable and the code here stays identical to what runs in AWS.

Credentials come from boto3's default chain (the Lambda execution role), except in the Modal GPU worker:
there `use_web_identity` trades the container's OIDC identity token for a role, with no long-lived keys.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import (
    AssumeRoleWithWebIdentityCredentialFetcher,
    CredentialProvider,
    DeferredRefreshableCredentials,
)

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=20)
# SigV4 presigned URLs (X-Amz-Expires), the only kind S3 accepts in every region.
_S3_CONFIG = _CONFIG.merge(Config(signature_version="s3v4", s3={"addressing_style": "path"}))

# Modal injects its OIDC identity token (issuer https://oidc.modal.com) into every container under this name.
MODAL_IDENTITY_TOKEN_ENV = "MODAL_IDENTITY_TOKEN"
# STS's answers to AssumeRoleWithWebIdentity when the token itself is refused (expired, or not valid): the
# container's token is read once, so its every later job would be refused too. A fresh container has a fresh
# token (STS API reference, AssumeRoleWithWebIdentity, Errors).
TOKEN_REFUSED = frozenset({"ExpiredTokenException", "InvalidIdentityToken"})


class IdentityTokenRefused(RuntimeError):
    """STS refused this container's identity token: the container must stop taking jobs."""


def token_refused(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in TOKEN_REFUSED


def token_expiry(token_env: str = MODAL_IDENTITY_TOKEN_ENV) -> float | None:
    """The `exp` claim (epoch seconds) of the identity token in `token_env`, read without verifying it (for
    the log only: STS verifies it)."""
    import base64
    import json

    token = os.environ.get(token_env) or ""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


# botocore's data loader (service models and endpoint rules: read-only JSON, cached as it is read) is shared by
# every session this process makes: a new session (a new identity, or the local stack's and the tests' new
# endpoints) then makes its clients in about 30 ms instead of 230 (measured, three clients).
_data_loader: Any = None


def _botocore_session() -> botocore.session.Session:
    global _data_loader
    core = botocore.session.get_session()
    if _data_loader is None:
        _data_loader = core.get_component("data_loader")
    else:
        core.register_component("data_loader", _data_loader)
    return core


def _boto3_session(core: botocore.session.Session, region: str | None = None) -> boto3.session.Session:
    session = boto3.session.Session(botocore_session=core, region_name=region)
    # boto3 appends its own data folder to the loader's search paths at every session: once is enough.
    paths = core.get_component("data_loader").search_paths
    paths[:] = list(dict.fromkeys(paths))
    return session


class _SharedCredentials(CredentialProvider):
    """Hands one refreshable credentials object to every client's session: one STS call per expiry, not per
    client."""

    METHOD = "assume-role-with-web-identity"
    CANONICAL_NAME = "darkroom-web-identity"

    def __init__(self, credentials: DeferredRefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> DeferredRefreshableCredentials:
        return self._credentials


@dataclass(frozen=True)
class WebIdentity:
    role_arn: str
    region: str | None  # None: the usual region settings (AWS_REGION, the config file)
    token_env: str = MODAL_IDENTITY_TOKEN_ENV
    credentials: DeferredRefreshableCredentials = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        sts_session = _botocore_session()
        fetcher = AssumeRoleWithWebIdentityCredentialFetcher(
            # botocore's fetcher calls STS unsigned: the token is the only credential.
            client_creator=partial(sts_session.create_client, region_name=self.region),
            # Read at every refresh, so a token the platform renews in the environment is picked up.
            web_identity_token_loader=self._token,
            role_arn=self.role_arn,
            extra_args={"RoleSessionName": "darkroom-gpu-worker"},
        )
        credentials = DeferredRefreshableCredentials(refresh_using=fetcher.fetch_credentials, method="web-identity")
        object.__setattr__(self, "credentials", credentials)

    def _token(self) -> str:
        token = os.environ.get(self.token_env)
        if not token:
            raise RuntimeError(f"{self.token_env} is not set: this container has no identity token to assume "
                               f"{self.role_arn} with")
        return token

    def session(self) -> boto3.session.Session:
        core = _botocore_session()
        # Before the environment provider: this identity wins over any stray AWS_* keys.
        core.get_component("credential_provider").insert_before("env", _SharedCredentials(self.credentials))
        return _boto3_session(core, self.region)


_identity: WebIdentity | None = None
_identity_lock = threading.Lock()


def use_web_identity(role_arn: str, region: str | None, token_env: str = MODAL_IDENTITY_TOKEN_ENV) -> None:
    """From now on every client of this process acts as `role_arn`, by AssumeRoleWithWebIdentity with the
    token in `token_env`. Calling it again with the same role is free."""
    global _identity
    with _identity_lock:
        if _identity and (_identity.role_arn, _identity.region, _identity.token_env) == (role_arn, region, token_env):
            return
        _identity = WebIdentity(role_arn, region, token_env)
        reset_clients()


def clear_web_identity() -> None:
    global _identity
    with _identity_lock:
        _identity = None
        reset_clients()


_session: boto3.session.Session | None = None
_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def client(service: str) -> Any:
    """The process's client for `service`, made on first use.

    Every client comes from one session: its loader keeps botocore's endpoint, partition and default-config
    data, so each client after the first of a cold start costs about a third as much (~110 ms less each
    here, and a first request needs two or three). Sessions are not thread-safe, so clients are made under a
    lock, exactly one per service; the clients themselves are thread-safe."""
    global _session
    made = _clients.get(service)
    if made is not None:
        return made
    with _clients_lock:
        if service not in _clients:
            if _session is None:
                _session = _identity.session() if _identity else _boto3_session(_botocore_session())
            _clients[service] = _session.client(service, config=_S3_CONFIG if service == "s3" else _CONFIG)
        return _clients[service]


def reset_clients() -> None:
    """Forget the clients and their session (tests and the local stack change endpoints and credentials
    between runs; a new web identity needs a new session)."""
    global _session
    with _clients_lock:
        _session = None
        _clients.clear()
