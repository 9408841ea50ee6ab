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
from rich.markup import escape
from rich.table import Column, Table

from infra import provenance_commands, user_commands

app = typer.Typer(help="Darkroom: self-hosted media generation API.", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
webhooks_app = typer.Typer(help="Verify, receive and replay webhooks.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")
workspaces_app = typer.Typer(help="Create workspaces, add credits, show usage.", no_args_is_help=True)
app.add_typer(workspaces_app, name="workspaces")
app.add_typer(user_commands.app)  # generate, get, list, cancel, models, tools, styles, upload, account, mcp
app.add_typer(provenance_commands.app, name="provenance")  # check FILE: C2PA manifest and watermark
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
    console.print(f"  signing  {escape(info.provenance)}")
    console.print(f"\n  curl -s -X POST {info.url}/api/run -H 'Authorization: {info.api_key}' "
                  "-H 'Content-Type: application/json' -d '{\"tool\":\"create-image\",\"input\":{\"prompt\":\"a red fox\"}}'")
    console.print(f"\nState (jobs, credits, outputs, queues) is kept in {info.env_file.parent / 'moto'} across restarts, "
                  "the API key too. Press Ctrl-C to stop.")
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
        from infra.deploy import stack

        stack.use_tables(stack.require(stack_name))
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


# How long `webhooks replay-dlq` keeps the copies it read hidden while it reads the rest and replays.
REPLAY_HIDE_SECONDS = 600


@webhooks_app.command("replay-dlq")
def webhooks_replay_dlq(
    local: Local = False,
    stack_name: StackName = None,
    data_dir: DataDir = Path(".darkroom"),
    limit: Annotated[int, typer.Option(help="At most this many events.")] = 1000,
) -> None:
    """Send dead-lettered webhook events again (same webhook-id, fresh schedule), then remove them from the DLQ.

    One event may be in the DLQ more than once (a batch redelivered after its copy was sent): each event is sent
    once, as its copy with the most attempts, and every copy of it is removed."""
    queues = _webhook_queues(local, stack_name, data_dir)
    from functions.core import aws
    from functions.core.messages import WebhookMessage, send

    sqs = aws.client("sqs")
    # The whole DLQ is read before anything is sent, so copies of an event are found wherever they are; the
    # copies stay hidden meanwhile (what is read first must not come back while the rest is read).
    read: dict[str, dict] = {}
    while True:
        batch = sqs.receive_message(QueueUrl=queues["dlq"], MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                    VisibilityTimeout=REPLAY_HIDE_SECONDS,
                                    MessageAttributeNames=["All"]).get("Messages", [])
        fresh = [m for m in batch if m["MessageId"] not in read]
        # A copy read again (a very long DLQ outlasted its hiding) is deleted by its newest receipt handle only.
        read |= {m["MessageId"]: m for m in batch}
        if not fresh:
            break
    copies: dict[str, list[tuple[WebhookMessage, dict]]] = {}
    for message in read.values():
        event = WebhookMessage.model_validate_json(message["Body"])
        copies.setdefault(event.event_id, []).append((event, message))
    replayed = 0
    for event_id, found in copies.items():
        if replayed >= limit:  # the rest are left for another run, visible again now
            for _, message in found:
                sqs.change_message_visibility(QueueUrl=queues["dlq"], ReceiptHandle=message["ReceiptHandle"],
                                              VisibilityTimeout=0)
            continue
        event, kept = max(found, key=lambda pair: pair[0].attempt)
        send(queues["queue"], event.model_copy(update={"attempt": 0, "not_before": 0, "forced": True}))
        for _, message in found:
            sqs.delete_message(QueueUrl=queues["dlq"], ReceiptHandle=message["ReceiptHandle"])
        replayed += 1
        reason = kept.get("MessageAttributes", {}).get("reason", {}).get("StringValue", "")
        extra = f", {len(found) - 1} duplicate(s) removed" if len(found) > 1 else ""
        console.print(f"replayed {event_id} ({reason}{extra})")
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
    from infra.deploy import stack

    deployed = stack.require(stack_name)
    return {"queue": deployed.output("WebhooksQueueUrl"), "dlq": deployed.output("WebhooksDeadLetterQueueUrl")}


# ---------------------------------------------------------------- deploy, destroy, status


def _region_or_exit(region: str | None) -> str:
    from infra.deploy import preflight, stack
    from infra.deploy.config import DeployConfig

    found = preflight.configured_region(DeployConfig(region=region))
    if not found:
        console.print("[red]No AWS region:[/] pass --region us-east-1, set AWS_REGION, or run "
                      "`aws configure set region us-east-1`")
        raise typer.Exit(1)
    stack.use_region(found)
    return found


def _aws_failure(exc: Exception) -> typer.Exit:
    console.print(f"[red]AWS:[/] {escape(str(exc))}")
    console.print("Check your credentials (`aws sts get-caller-identity`), region and --stack-name.")
    return typer.Exit(1)


StackNameOption = Annotated[str, typer.Option(help="CloudFormation stack name.")]
RegionOption = Annotated[str | None, typer.Option(help="AWS region (default: AWS_REGION or your profile's).")]


@app.command()
def deploy(
    stack_name: StackNameOption = "darkroom",
    region: RegionOption = None,
    modal_workspace_id: Annotated[str | None, typer.Option(
        envvar="DARKROOM_MODAL_WORKSPACE_ID",
        help="Modal workspace id (ac-…) the worker role trusts. Default: the one `modal token info` names.")] = None,
    modal_environment: Annotated[str | None, typer.Option(
        help="Modal environment (default: the stack's current one, else the template's).")] = None,
    modal_app_name: Annotated[str | None, typer.Option(help="Modal app name (default: as for the environment).")] = None,
    alarm_email: Annotated[str | None, typer.Option(help="E-mail that receives the stack's alarms.")] = None,
    modal_oidc_provider_arn: Annotated[str | None, typer.Option(
        help="An existing IAM OIDC provider for oidc.modal.com. Default: the account's, if it has one; "
             "otherwise the stack creates it.")] = None,
    parameter: Annotated[list[str] | None, typer.Option(
        help="Any other template parameter, Key=Value (repeat), e.g. MaxGpuConcurrency=20.")] = None,
    download_weights: Annotated[list[str] | None, typer.Option(
        help="After the deploy, download these catalog models' weights into the Modal Volume (comma-separated "
             "or repeated; 'all' for every model). Needed once per model before it can run.")] = None,
    warm: Annotated[list[str] | None, typer.Option(
        help="Keep N containers of a model warm after the deploy, MODEL=N (repeat or comma-separate; 0 releases "
             "them). Off by default: a warm GPU container is billed around the clock (`darkroom warm` prints "
             "the cost per hour).")] = None,
    workspace: Annotated[str, typer.Option(help="Id of the first workspace (its admin key is printed).")] = "default",
    env_file: Annotated[Path, typer.Option(help="Where the URL and admin key are written.")] = Path(
        ".darkroom/deploy.env"),
    accept_license: Annotated[list[str] | None, typer.Option(
        help="A model license you have read and accept (its id from docs/models.md; repeat or comma-separate; * "
             "for all). Models not free for every commercial use are refused until theirs is accepted. Default: "
             "the stack's current list (none on a first deploy).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Print every step, secrets masked, and run nothing (offline).")] = False,
) -> None:
    """Deploy Darkroom into your AWS and Modal accounts: preflight checks, the Modal app, the SAM stack, the Modal
    token, the first workspace and an admin key. Safe to run again (it updates in place)."""
    from infra.deploy import plan, preflight
    from infra.deploy.config import (
        DeployConfig,
        license_errors,
        model_errors,
        parameter_errors,
        parse_assignments,
    )

    try:
        extra = parse_assignments(parameter or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    config = DeployConfig(stack_name=stack_name, region=region, modal_workspace_id=modal_workspace_id,
                          modal_environment=modal_environment, modal_app_name=modal_app_name,
                          alarm_email=alarm_email, oidc_provider_arn=modal_oidc_provider_arn, parameters=extra,
                          download_weights=[m for v in download_weights or [] for m in v.split(",") if m],
                          warm=warm or [],
                          accepted_licenses=None if accept_license is None
                          else [name.strip() for v in accept_license for name in v.split(",") if name.strip()],
                          workspace=workspace, env_file=env_file)
    from infra.deploy import warm_pool

    try:
        warm_pool.parse(config.warm)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if dry_run:
        _print_dry_run(config)
        return

    with console.status("Preflight checks…"):
        report = preflight.run(config)
    for warning in report.warnings:
        console.print(f"[yellow]![/] {escape(warning.what)}" + (f"\n    {escape(warning.fix)}" if warning.fix else ""))
    if not report.ok:
        console.print(f"[red bold]Preflight found {len(report.problems)} problem(s); nothing was deployed.[/]")
        for problem in report.problems:
            console.print(f"[red]✗[/] {escape(problem.what)}" + (f"\n    fix: {escape(problem.fix)}" if problem.fix else ""))
        raise typer.Exit(1)
    facts = report.facts
    assert facts.region and facts.workspace_id
    overrides = plan.parameter_overrides(config, facts.workspace_id, facts.oidc_provider_arn, facts.existing,
                                         finishing_concurrency=facts.finishing_concurrency)
    errors = (parameter_errors(config.template, overrides) + model_errors(config.models_to_download())
              + license_errors(config.accepted_licenses or []))
    if errors:
        for error in errors:
            console.print(f"[red]✗[/] {escape(error)}")
        raise typer.Exit(1)
    console.print(f"[green]✓[/] Preflight: AWS account {facts.account} in {facts.region}, Modal workspace "
                  f"{facts.workspace_id}")

    steps = plan.deploy_steps(config, facts.region, overrides, facts.token,
                              oidc_client_id_for=facts.oidc_provider_arn if facts.oidc_needs_client_id else "")
    context = plan.Context(config=config, region=facts.region, token=facts.token)
    try:
        plan.execute(steps, context,
                     on_start=lambda n, step: console.print(f"\n[bold]{n}/{len(steps)} {escape(step.title)}[/]\n  "
                                                            f"[dim]{escape(step.shown)}[/]"),
                     on_skip=lambda step, exc: console.print(f"[yellow]! {escape(step.title)}: {escape(str(exc))}[/]"))
    except plan.StepFailed as failed:
        console.print(f"\n[red bold]✗ {escape(str(failed))}[/]")
        console.print("Nothing after this step ran. Fix the cause and run `darkroom deploy` again: every step is "
                      "safe to repeat.")
        raise typer.Exit(1)
    done = context.result
    assert done is not None
    console.print(f"\n[bold green]Darkroom is deployed[/] (stack {stack_name}, {facts.region})")
    console.print(f"  URL      {done.url}")
    console.print(f"  API key  {done.api_key}  ({'new' if done.new_key else 'kept'} admin key {done.key_id}, "
                  f"workspace {done.workspace})")
    console.print(f"  env file {done.env_file}  (source it: set -a; . {done.env_file}; set +a)")
    console.print(f"\n  OpenAI SDK: OpenAI(api_key=…, base_url=\"{done.url}/v1\")")
    from infra.deploy.regions import has_function_urls

    if not has_function_urls(facts.region):
        console.print(f"  [yellow]![/] {facts.region} has no Lambda function URLs: this URL is API Gateway's, and "
                      "synchronous calls there are cut at 30 s (504 with the job id past 25 s; poll the job).")
    if not config.models_to_download():
        console.print("  Models need their weights once: `darkroom deploy --download-weights flux-schnell` "
                      "(or `all`).")


@app.command("warm")
def warm_command(
    pools: Annotated[list[str], typer.Argument(help="MODEL=N: keep N containers of MODEL warm (0 releases them).")],
    modal_app_name: Annotated[str, typer.Option(help="The deployed Modal app.")] = "darkroom",
    modal_environment: Annotated[str, typer.Option(help="Its Modal environment.")] = "main",
    dry_run: Annotated[bool, typer.Option(help="Print the pools and their cost; change nothing.")] = False,
) -> None:
    """Keep GPU containers of a model warm on Modal, so its first call skips the cold start. Lasts until the
    next `modal deploy`; `darkroom deploy --warm MODEL=N` applies it again after each deploy."""
    from infra.deploy import warm_pool

    try:
        chosen = warm_pool.parse(pools)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    for pool in chosen:
        cost = f"about ${pool.cost_per_hour:.2f}/h at list prices" if pool.containers else "nothing at rest"
        also = ", ".join(m for m in pool.served if m != pool.model)
        console.print(f"{pool.model}{f' (and {also}, same weights)' if also else ''}: {pool.containers} warm "
                      f"{pool.gpu} container(s) ({pool.modal_class}, {pool.memory_gib} GiB each), {cost}")
    if dry_run:
        return
    try:
        skipped = warm_pool.apply(chosen, app_name=modal_app_name, environment=modal_environment)
    except Exception as exc:  # noqa: BLE001 - Modal's errors (no token, no such app) become one clear line
        console.print(f"[red]✗[/] Could not update the warm pool on Modal app {modal_app_name!r} "
                      f"({modal_environment}): {escape(str(exc))}")
        raise typer.Exit(1) from None
    for pool in skipped:
        console.print(f"[yellow]![/] {pool.model}: not warmed, its weights are not on the Volume yet "
                      f"(`darkroom deploy --download-weights {pool.model}`)")
    console.print("[green]Done.[/] A later `modal deploy` resets it; `darkroom deploy --warm …` applies it again.")


def _print_dry_run(config) -> None:
    from infra.deploy import plan, preflight
    from infra.deploy.config import license_errors, model_errors, parameter_errors

    region = preflight.configured_region(config) or "<your AWS region>"
    workspace_id = config.modal_workspace_id or "<workspace id from `modal token info`>"
    oidc = config.oidc_provider_arn if config.oidc_provider_arn is not None else "<existing oidc.modal.com provider ARN, or empty: the stack creates one>"
    overrides = plan.parameter_overrides(config, workspace_id, oidc)
    concrete = {k: v for k, v in overrides.items() if not v.startswith("<")}
    errors = (parameter_errors(config.template, concrete) + model_errors(config.models_to_download())
              + license_errors(config.accepted_licenses or []))
    for error in errors:
        console.print(f"[red]✗[/] {escape(error)}")
    console.print("[bold]Dry run: nothing is checked or run.[/] A real deploy first checks: sam and modal on PATH, "
                  "AWS credentials (sts get-caller-identity), the region, the Modal token and workspace, the "
                  f"Modal secret {preflight.HF_SECRET}, an existing oidc.modal.com IAM provider "
                  "(used instead of creating one).")
    steps = plan.deploy_steps(config, region, overrides, token=None)
    for number, step in enumerate(steps, 1):
        console.print(f"{number}. {escape(step.title)}", highlight=False)
        console.print(f"   {escape(step.shown)}", highlight=False, soft_wrap=True)
    if errors:
        raise typer.Exit(1)


@app.command()
def destroy(
    stack_name: StackNameOption = "darkroom",
    region: RegionOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete the stack (`sam delete`) and stop the Modal app. Tables and the outputs bucket are kept."""
    from botocore.exceptions import BotoCoreError, ClientError

    from infra.deploy import plan, stack
    from infra.deploy.config import DeployConfig

    found_region = _region_or_exit(region)
    config = DeployConfig(stack_name=stack_name, region=found_region)
    template = config.template
    try:
        deployed = stack.describe(stack_name)
        physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in stack.resources(stack_name)} \
            if deployed else {}
    except (BotoCoreError, ClientError) as exc:
        raise _aws_failure(exc) from exc
    parameters = deployed.parameters if deployed else {}
    app_name = parameters.get("ModalAppName") or config.default("ModalAppName")
    environment = parameters.get("ModalEnvironment") or config.default("ModalEnvironment")
    kept = [(name, r["Type"], physical.get(name, "")) for name, r in template["Resources"].items()
            if r.get("DeletionPolicy") == "Retain"]
    if deployed is None:
        console.print(f"Stack {stack_name} does not exist in {found_region}; only the Modal app is stopped.")
    steps = plan.destroy_steps(stack_name, found_region, app_name, environment)
    if deployed is None:
        steps = [s for s in steps if s.argv[0] == "modal"]
    for step in steps:
        console.print(f"  {escape(step.shown)}", highlight=False)
    if not yes and not typer.confirm("Delete these?"):
        raise typer.Exit(1)
    try:
        plan.execute(steps, plan.Context(config=config, region=found_region, token=None),
                     on_start=lambda n, step: console.print(f"[bold]{escape(step.title)}[/]"),
                     on_skip=lambda step, exc: console.print(f"[yellow]! {escape(step.title)}: {escape(str(exc))}[/]"))
    except plan.StepFailed as failed:
        console.print(f"[red bold]✗ {escape(str(failed))}[/]")
        raise typer.Exit(1)
    console.print("[green]Destroyed.[/] Kept, by design (DeletionPolicy: Retain; delete them yourself when you no "
                  "longer need the data):")
    for name, type_, physical_id in kept:
        console.print(f"  {type_} {name} {physical_id}", highlight=False)
    console.print("  Modal: the darkroom-weights Volume and the darkroom-hf secret (`modal volume delete`, "
                  "`modal secret delete`).")


@app.command()
def status(
    stack_name: StackNameOption = "darkroom",
    region: RegionOption = None,
) -> None:
    """The stack's status and outputs, the Modal app's state and each dead-letter queue's depth."""
    from botocore.exceptions import BotoCoreError, ClientError

    from infra.deploy import status as statuses
    from infra.deploy.config import DeployConfig

    found_region = _region_or_exit(region)
    config = DeployConfig(stack_name=stack_name, region=found_region)
    defaults = {name: config.default(name) for name in ("ModalAppName", "ModalEnvironment")}
    try:
        found = statuses.gather(stack_name, defaults)
    except (BotoCoreError, ClientError) as exc:
        raise _aws_failure(exc) from exc
    if found.stack is None:
        console.print(f"[red]Stack {stack_name} does not exist in {found_region}.[/] Deploy it: `darkroom deploy`")
        raise typer.Exit(1)
    console.print(f"Stack {stack_name} ({found_region}): [bold]{found.stack.status}[/]")
    outputs = Table("output", Column("value", overflow="fold"))
    for key, value in sorted(found.stack.outputs.items()):
        outputs.add_row(key, value)
    console.print(outputs)
    console.print(f"Modal app {found.modal_app}: [bold]{escape(found.modal_state)}[/]")
    queues = Table("dead-letter queue", "messages")
    for name, depth in found.dead_letters.items():
        queues.add_row(name, str(depth) if depth == 0 else f"[red]{escape(str(depth))}[/]")
    console.print(queues)
    if found.dead_letters.get("WebhooksDeadLetterQueue"):
        console.print(f"Replay dead-lettered webhooks: darkroom webhooks replay-dlq --stack-name {stack_name}")


if __name__ == "__main__":
    app()
