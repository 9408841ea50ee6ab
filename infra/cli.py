"""The `darkroom` command: run the local stack, manage API keys (locally or in a deployed stack)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Darkroom: self-hosted media generation API.", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
console = Console()

DataDir = Annotated[Path, typer.Option(help="Where the local stack keeps its env file and tiny models.")]


@app.command()
def dev(
    port: Annotated[int, typer.Option(help="Port for the local API.", envvar="DARKROOM_PORT")] = 8000,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
    data_dir: DataDir = Path(".darkroom"),
) -> None:
    """Run the whole system locally: moto server, gateway, queue pollers, sweeper and the GPU worker."""
    from infra.local.stack import LocalStack

    started = time.monotonic()
    stack = LocalStack(host=host, port=port, data_dir=data_dir)
    with console.status("Starting the local stack…"):
        info = stack.start()
    console.print(f"[bold green]Darkroom is ready[/] in {time.monotonic() - started:.1f}s")
    console.print(f"  URL      {info.url}")
    console.print(f"  API key  {info.api_key}")
    console.print(f"  env file {info.env_file}  (source it: set -a; . {info.env_file}; set +a)")
    console.print(f"\n  curl -s -X POST {info.url}/api/run -H 'Authorization: {info.api_key}' "
                  "-H 'Content-Type: application/json' -d '{\"tool\":\"create-image\",\"input\":{\"prompt\":\"a red fox\"}}'")
    console.print("\nData is kept in memory and is gone after Ctrl-C; the API key is kept. Press Ctrl-C to stop.")
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        console.print("Stopping…")
        stack.stop()
        console.print("Stopped.")


def _target(local: bool, stack_name: Optional[str], data_dir: Path) -> None:
    """Point this process's settings at the local stack's tables or a deployed stack's."""
    if local:
        from infra.local.stack import read_env_file

        env = read_env_file(data_dir / "dev.env")
        endpoint = env.get("DARKROOM_LOCAL_AWS_ENDPOINT")
        if not endpoint:
            raise typer.BadParameter(f"No running local stack found in {data_dir}/dev.env; run `darkroom dev` first")
        os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "local",
                           "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1",
                           "DARKROOM_KEYS_TABLE": "darkroom-ApiKeysTable",
                           "DARKROOM_WORKSPACES_TABLE": "darkroom-WorkspacesTable"})
    elif stack_name:
        import boto3

        outputs = {o["OutputKey"]: o["OutputValue"] for o in
                   boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]["Outputs"]}
        os.environ["DARKROOM_KEYS_TABLE"] = outputs["ApiKeysTableName"]
        os.environ["DARKROOM_WORKSPACES_TABLE"] = outputs["WorkspacesTableName"]
    from functions.core import aws, settings

    settings.get_settings.cache_clear()
    aws.reset_clients()


Local = Annotated[bool, typer.Option("--local", help="Use the running local stack (darkroom dev).")]
StackName = Annotated[Optional[str], typer.Option(help="Deployed CloudFormation stack to read table names from.")]


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A name to recognise the key by.")],
    workspace: Annotated[str, typer.Option(help="Workspace id; created if it does not exist.")] = "default",
    scope: Annotated[Optional[list[str]], typer.Option(help="Scope to grant (repeat). Default: all but admin.")] = None,
    admin: Annotated[bool, typer.Option(help="Grant every scope, admin included (bootstrap key).")] = False,
    rate_limit: Annotated[int, typer.Option(help="Requests per minute.")] = 60,
    local: Local = False,
    stack_name: StackName = None,
    data_dir: DataDir = Path(".darkroom"),
) -> None:
    """Create an API key. The secret is printed once and never stored."""
    _target(local, stack_name, data_dir)
    from functions.core.keys import ALL_SCOPES, DEFAULT_SCOPES, KeyStore
    from functions.core.workspaces import WorkspaceStore

    scopes = list(ALL_SCOPES) if admin else list(scope or DEFAULT_SCOPES)
    unknown = set(scopes) - set(ALL_SCOPES)
    if unknown:
        raise typer.BadParameter(f"unknown scopes {sorted(unknown)}; choose from {list(ALL_SCOPES)}")
    WorkspaceStore().ensure(workspace)
    secret, record = KeyStore().create(workspace, name, scopes=scopes, rate_limit=rate_limit)
    console.print(f"Created {record.key_id} ({name}) in workspace {workspace} with scopes {', '.join(scopes)}")
    console.print("Secret (shown once, store it now):")
    typer.echo(secret)


@keys_app.command("list")
def keys_list(
    workspace: Annotated[str, typer.Option(help="Workspace id.")] = "default",
    local: Local = False,
    stack_name: StackName = None,
    data_dir: DataDir = Path(".darkroom"),
) -> None:
    """List a workspace's keys (never their secrets)."""
    _target(local, stack_name, data_dir)
    from functions.core.keys import KeyStore

    table = Table("id", "name", "prefix", "scopes", "rate/min", "revoked")
    for key in KeyStore().list(workspace):
        table.add_row(key.key_id, key.name, key.prefix + "…", " ".join(key.scopes), str(key.rate_limit),
                      "yes" if key.revoked_at else "")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_…), from `darkroom keys list`.")],
    workspace: Annotated[str, typer.Option(help="Workspace id.")] = "default",
    local: Local = False,
    stack_name: StackName = None,
    data_dir: DataDir = Path(".darkroom"),
) -> None:
    """Revoke a key. Warm API functions stop accepting it within the key cache TTL (30 s)."""
    _target(local, stack_name, data_dir)
    from functions.core.keys import KeyStore

    KeyStore().revoke(workspace, key_id)
    console.print(f"Revoked {key_id}")


if __name__ == "__main__":
    app()
