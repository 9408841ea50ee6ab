"""The `darkroom` command: run the local stack, manage API keys (locally or in a deployed stack)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Column, Table

from infra import user_commands

app = typer.Typer(help="Darkroom: self-hosted media generation API.", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
webhooks_app = typer.Typer(help="Verify, receive and replay webhooks.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")
workspaces_app = typer.Typer(help="Create workspaces, add credits, show usage.", no_args_is_help=True)
app.add_typer(workspaces_app, name="workspaces")
app.add_typer(user_commands.app)  # generate, get, list, cancel, models, tools, styles, upload, account, mcp
console = Console()

DataDir = Annotated[Path, typer.Option(help="Where the local stack keeps its env file and tiny models.")]


@app.command()
def dev(
    port: Annotated[int, typer.Option(help="Port for the local API (the function URL host, as deployed ApiUrl).",
                                      envvar="DARKROOM_PORT")] = 8000,
    gateway_port: Annotated[int, typer.Option(
        help="Port for the API Gateway host (deployed GatewayUrl: calls cut at 30 s); 0 picks a free one.",
        envvar="DARKROOM_GATEWAY_PORT")] = 8001,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
    data_dir: DataDir = Path(".darkroom"),
) -> None:
    """Run the whole system locally: moto server, gateway, queue pollers, sweeper and the GPU worker."""
    from infra.local.stack import LocalStack

    started = time.monotonic()
    stack = LocalStack(host=host, port=port, gateway_port=gateway_port, data_dir=data_dir)
    with console.status("Starting the local stack…"):
        info = stack.start()
    console.print(f"[bold green]Darkroom is ready[/] in {time.monotonic() - started:.1f}s")
    console.print(f"  URL      {info.url}")
    console.print(f"  gateway  {info.gateway_url}  (as API Gateway: synchronous calls answer 504 after 25 s)")
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


def _target(local: bool, stack_name: str | None, data_dir: Path) -> None:
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
                           "DARKROOM_WORKSPACES_TABLE": "darkroom-WorkspacesTable",
                           "DARKROOM_JOBS_TABLE": "darkroom-JobsTable"})
    elif stack_name:
        import boto3

        outputs = {o["OutputKey"]: o["OutputValue"] for o in
                   boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]["Outputs"]}
        os.environ["DARKROOM_KEYS_TABLE"] = outputs["ApiKeysTableName"]
        os.environ["DARKROOM_WORKSPACES_TABLE"] = outputs["WorkspacesTableName"]
        os.environ["DARKROOM_JOBS_TABLE"] = outputs["JobsTableName"]
    from functions.core import aws, settings

    settings.get_settings.cache_clear()
    aws.reset_clients()


Local = Annotated[bool, typer.Option("--local", help="Use the running local stack (darkroom dev).")]
StackName = Annotated[str | None, typer.Option(help="Deployed CloudFormation stack to read table names from.")]


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A name to recognise the key by.")],
    workspace: Annotated[str, typer.Option(help="Workspace id; created if it does not exist.")] = "default",
    scope: Annotated[list[str] | None, typer.Option(help="Scope to grant (repeat). Default: all but admin.")] = None,
    admin: Annotated[bool, typer.Option(help="Grant every scope, admin included (bootstrap key).")] = False,
    rate_limit: Annotated[int, typer.Option(help="Requests per minute (default 60).")] = 60,
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

    table = Table("name", "prefix", "scopes", "rate/min", "revoked")
    # The id is what `keys revoke` takes: never wrapped or cut, however narrow the terminal.
    table.columns.insert(0, Column("id", no_wrap=True, min_width=20))
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


@workspaces_app.command("create")
def workspaces_create(
    workspace: Annotated[str, typer.Argument(help="Workspace id (letters, digits, - and _).")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    credits: Annotated[float, typer.Option(help="Starting balance.")] = 0,
    local: Local = False,
    stack_name: StackName = None,
    data_dir: DataDir = Path(".darkroom"),
) -> None:
    """Create a workspace (its keys share one credit pool)."""
    _target(local, stack_name, data_dir)
    from functions.core.workspaces import WorkspaceStore

    created = WorkspaceStore().ensure(workspace, name, credits=credits, credits_added=credits)
    console.print(f"Workspace {created.id} ({created.name}): {created.credits:g} credits")


@workspaces_app.command("add-credits")
def workspaces_add_credits(
    workspace: Annotated[str, typer.Argument(help="Workspace id.")],
    amount: Annotated[float, typer.Argument(help="Credits to add (negative to take back).")],
    local: Local = False,
    stack_name: StackName = None,
    data_dir: DataDir = Path(".darkroom"),
) -> None:
    """Top up a workspace's credit pool."""
    _target(local, stack_name, data_dir)
    from functions.core import credits

    console.print(f"{workspace}: {credits.add(workspace, amount):g} credits")


@workspaces_app.command("usage")
def workspaces_usage(
    workspace: Annotated[str, typer.Argument(help="Workspace id.")],
    local: Local = False,
    stack_name: StackName = None,
    data_dir: DataDir = Path(".darkroom"),
) -> None:
    """Balance, credits used, refunded and added."""
    _target(local, stack_name, data_dir)
    from functions.core import credits

    table = Table("balance", "used", "refunded", "added")
    usage = credits.usage(workspace)
    table.add_row(*(f"{usage[k]:g}" for k in ("credits", "credits_used", "credits_refunded", "credits_added")))
    console.print(table)


def _secret(secret: str | None, data_dir: Path) -> str:
    if secret:
        return secret
    from infra.local.stack import read_env_file

    found = os.environ.get("DARKROOM_WEBHOOK_SECRET") or read_env_file(data_dir / "dev.env").get(
        "DARKROOM_WEBHOOK_SECRET")
    if not found:
        raise typer.BadParameter("pass --secret, set DARKROOM_WEBHOOK_SECRET, or run `darkroom dev` first")
    return found


Secret = Annotated[str | None, typer.Option(help="whsec_… (default: DARKROOM_WEBHOOK_SECRET or .darkroom/dev.env)")]


@webhooks_app.command("verify")
def webhooks_verify(
    header: Annotated[list[str], typer.Option("--header", "-H", help="'name: value', repeat for webhook-id, "
                                                                      "webhook-timestamp, webhook-signature")],
    body_file: Annotated[Path, typer.Option("--body", help="File with the raw body ('-' for stdin).")] = Path("-"),
    secret: Secret = None,
    data_dir: DataDir = Path(".darkroom"),
) -> None:
    """Check a delivery's Standard Webhooks signature. Exits 1 if it does not verify."""
    import sys

    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    headers = dict(h.split(":", 1) for h in header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    body = sys.stdin.read() if str(body_file) == "-" else body_file.read_text()
    try:
        Webhook(_secret(secret, data_dir)).verify(body, headers)
    except WebhookVerificationError as exc:
        console.print(f"[red]not verified:[/] {exc}")
        raise typer.Exit(1)
    console.print("[green]verified[/]")


@webhooks_app.command("listen")
def webhooks_listen(
    port: Annotated[int, typer.Option(help="Port to listen on (loopback).")] = 9000,
    secret: Secret = None,
    data_dir: DataDir = Path(".darkroom"),
) -> None:
    """A receiver for local development: prints each verified event, answers 401 to unverified ones."""
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    verifier = Webhook(_secret(secret, data_dir))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
            try:
                payload = verifier.verify(body, dict(self.headers))
            except WebhookVerificationError as exc:
                console.print(f"[red]rejected[/] {self.headers.get('webhook-id')}: {exc}")
                self.send_response(401)
                self.end_headers()
                return
            console.print(f"[green]{self.headers.get('webhook-id')}[/] {json.dumps(payload)}")
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    console.print(f"Listening on http://127.0.0.1:{port}/ (use it as the webhook URL). Ctrl-C to stop.")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@webhooks_app.command("replay-dlq")
def webhooks_replay_dlq(
    local: Local = False,
    stack_name: StackName = None,
    data_dir: DataDir = Path(".darkroom"),
    limit: Annotated[int, typer.Option(help="At most this many events.")] = 1000,
) -> None:
    """Send dead-lettered webhook events again (same webhook-id, fresh schedule), then remove them from the DLQ."""
    queues = _webhook_queues(local, stack_name, data_dir)
    from functions.core import aws
    from functions.core.messages import WebhookMessage, send

    sqs = aws.client("sqs")
    replayed = 0
    while replayed < limit:
        batch = sqs.receive_message(QueueUrl=queues["dlq"], MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                    MessageAttributeNames=["All"]).get("Messages", [])
        if not batch:
            break
        for message in batch:
            event = WebhookMessage.model_validate_json(message["Body"])
            send(queues["queue"], event.model_copy(update={"attempt": 0, "not_before": 0, "forced": True}))
            sqs.delete_message(QueueUrl=queues["dlq"], ReceiptHandle=message["ReceiptHandle"])
            replayed += 1
            reason = message.get("MessageAttributes", {}).get("reason", {}).get("StringValue", "")
            console.print(f"replayed {event.event_id} ({reason})")
    console.print(f"{replayed} event(s) replayed")


def _webhook_queues(local: bool, stack_name: str | None, data_dir: Path) -> dict[str, str]:
    _target(local, stack_name, data_dir)
    if local:
        from functions.core import aws

        sqs = aws.client("sqs")
        return {"queue": sqs.get_queue_url(QueueName="darkroom-WebhooksQueue")["QueueUrl"],
                "dlq": sqs.get_queue_url(QueueName="darkroom-WebhooksDeadLetterQueue")["QueueUrl"]}
    if not stack_name:
        raise typer.BadParameter("pass --local or --stack-name")
    import boto3

    outputs = {o["OutputKey"]: o["OutputValue"] for o in
               boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]["Outputs"]}
    return {"queue": outputs["WebhooksQueueUrl"], "dlq": outputs["WebhooksDeadLetterQueueUrl"]}


if __name__ == "__main__":
    app()
