"""The first workspace and its admin key, in a deployed stack's tables, and .darkroom/deploy.env.

Safe to run on every deploy: the workspace is ensured (created once), and the admin key in the env file is
kept while it still authenticates against the stack; only a missing or dead key is replaced.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .stack import Stack, use_tables

ADMIN_KEY_NAME = "admin (darkroom deploy)"


@dataclass
class Bootstrapped:
    url: str
    gateway_url: str
    api_key: str
    key_id: str
    workspace: str
    new_key: bool
    env_file: Path


def read_env_file(path: Path) -> dict[str, str]:
    from infra.local.stack import read_env_file as read  # the one reader of .darkroom/*.env files

    return read(path)


def env_file_owner(path: Path) -> tuple[str, str] | None:
    """(stack name, region) whose admin key the env file holds, if any."""
    env = read_env_file(path)
    if env.get("DARKROOM_STACK_NAME") and env.get("DARKROOM_API_KEY"):
        return env["DARKROOM_STACK_NAME"], env.get("DARKROOM_REGION", "")
    return None


def bootstrap(stack: Stack, region: str, env_file: Path, workspace: str = "default") -> Bootstrapped:
    from functions.core.keys import ALL_SCOPES, KeyStore
    from functions.core.workspaces import WorkspaceStore

    use_tables(stack)
    WorkspaceStore().ensure(workspace, "Default workspace")
    keys = KeyStore()
    previous = read_env_file(env_file)
    secret, record = previous.get("DARKROOM_API_KEY"), None
    if secret and env_file_owner(env_file) == (stack.name, region):
        record = keys.lookup(secret)
        if record and (record.workspace_id != workspace or "admin" not in record.scopes):
            record = None
    new_key = record is None
    if new_key:
        secret, record = keys.create(workspace, ADMIN_KEY_NAME, scopes=list(ALL_SCOPES))
    assert secret is not None
    # A function URL ends in "/"; clients append paths ("/v1", "/api/run") to DARKROOM_URL.
    url = stack.output("ApiUrl").rstrip("/")
    gateway_url = stack.outputs.get("GatewayUrl", "").rstrip("/")
    write_env_file(env_file, {
        "DARKROOM_URL": url,
        "DARKROOM_API_KEY": secret,
        "DARKROOM_GATEWAY_URL": gateway_url,
        "DARKROOM_WORKSPACE": workspace,
        "DARKROOM_ADMIN_KEY_ID": record.key_id,
        "DARKROOM_STACK_NAME": stack.name,
        "DARKROOM_REGION": region,
    })
    return Bootstrapped(url, gateway_url, secret, record.key_id, workspace, new_key, env_file)


def write_env_file(path: Path, values: dict[str, str]) -> None:
    """KEY=VALUE lines (like .darkroom/dev.env), readable by the owner only: it holds an admin key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# Written by `darkroom deploy`. Holds an admin API key: keep it private.\n"
    text += "".join(f"{key}={value}\n" for key, value in values.items())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    path.chmod(0o600)
