"""What the deploy needs to know about the operator's Modal account, asked of the modal package and CLI.

The token is resolved exactly as the modal client resolves it (`modal.config`: MODAL_TOKEN_ID and
MODAL_TOKEN_SECRET, else the active profile of ~/.modal.toml, MODAL_CONFIG_PATH and MODAL_PROFILE honoured).
The workspace id is what `modal token info` prints for that token; the Modal CLI has no JSON form of it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pydantic import SecretStr

from . import tools

WORKSPACE_ID = re.compile(r"\((ac-[A-Za-z0-9]+)\)")
# `modal token info` names who the token acts as: a person ("User: …") or a service user ("Service User: …").
SERVICE_USER = re.compile(r"^\s*Service User:", re.MULTILINE)
PERSONAL_USER = re.compile(r"^\s*User:", re.MULTILINE)
# `modal token info`'s line for a token with a lifetime (`modal token new --expires-in`, or a workspace's maximum).
TOKEN_EXPIRES = re.compile(r"^\s*Expires at:\s*(.+)$", re.MULTILINE)
CLI_VERSION = re.compile(r"modal client version:\s*(\S+)")


@dataclass(frozen=True)
class ModalToken:
    token_id: str
    token_secret: SecretStr  # never printed: str() and repr() give asterisks

    def secret_json(self) -> str:
        return json.dumps({"token_id": self.token_id, "token_secret": self.token_secret.get_secret_value()})

    def masked(self) -> str:
        return f'{{"token_id": "{self.token_id[:3]}…", "token_secret": "****"}}'


class ModalConfigError(RuntimeError):
    pass


def configured_token() -> ModalToken | None:
    """The token the modal client would use, or None when there is none."""
    try:
        from modal.config import config
    except ImportError as exc:
        raise ModalConfigError("the modal package is not installed (`pip install modal`)") from exc
    except Exception as exc:  # modal raises InvalidError for an unreadable ~/.modal.toml
        raise ModalConfigError(f"the Modal configuration cannot be read: {exc}") from exc
    token_id, token_secret = config.get("token_id"), config.get("token_secret")
    if not token_id or not token_secret:
        return None
    return ModalToken(token_id, SecretStr(token_secret))


@dataclass(frozen=True)
class TokenInfo:
    workspace_id: str
    # True for a service user's token, False for a person's, None when the CLI does not say.
    service_user: bool | None
    # When the token stops working, as `modal token info` prints it (local time), or None: it does not expire.
    expires_at: str | None = None


def token_info() -> TokenInfo:
    """The workspace (ac-…) the configured token belongs to, and whose token it is, from `modal token info`."""
    result = tools.check(["modal", "token", "info"], capture=True)
    found = WORKSPACE_ID.search(result.stdout)
    if not found:
        raise tools.ToolError("`modal token info` did not name a workspace id (ac-…)")
    service = True if SERVICE_USER.search(result.stdout) else False if PERSONAL_USER.search(result.stdout) else None
    expires = TOKEN_EXPIRES.search(result.stdout)
    return TokenInfo(found.group(1), service, expires.group(1).strip() if expires else None)


def workspace_id() -> str:
    return token_info().workspace_id


def cli_version() -> str:
    """The version of the `modal` CLI on PATH (the one the deploy runs), from `modal --version`."""
    result = tools.check(["modal", "--version"], capture=True)
    found = CLI_VERSION.search(result.stdout + result.stderr)
    if not found:
        raise tools.ToolError(f"`modal --version` printed no version: {result.stdout.strip()!r}")
    return found.group(1)


def secret_names(environment: str) -> set[str]:
    result = tools.check(["modal", "secret", "list", "--env", environment, "--json"], capture=True)
    return {row["name"] for row in json.loads(result.stdout or "[]")}


def app_state(app_name: str, environment: str) -> str:
    """The deployed app's state as `modal app list` shows it ("deployed", "stopped"…), or "not deployed"."""
    result = tools.check(["modal", "app", "list", "--env", environment, "--json"], capture=True)
    rows = [row for row in json.loads(result.stdout or "[]") if row.get("description") == app_name]
    # Stopped deployments stay listed beside the live one.
    deployed = [row for row in rows if row.get("state") == "deployed"]
    return (deployed or rows)[0]["state"] if rows else "not deployed"
