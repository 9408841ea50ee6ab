"""The deploy (and destroy) as an ordered list of steps: printed by --dry-run, run in order otherwise.

Deploy order: `sam build` and `sam deploy` first, then the Modal token into the stack's secret, then the first
workspace and admin key (so a long weights download that fails or is interrupted cannot cost the key), then the
optional weights download, then the Modal app, then its warm pools. The app comes after the weights: a container
that starts takes its memory snapshot from what the Volume holds then, and a warm pool of weights that are not
there would fail its start again and again, billed (docs/deploy.md). The app does not depend on the stack (the
worker's role ARN travels in each work request), and the stack only looks the app up per job. Every step is
safe to repeat, so a failed deploy is fixed by running it again.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gpu import pools

from . import stack as stacks
from . import tools, warm_pool
from .bootstrap import Bootstrapped, bootstrap
from .config import DeployConfig
from .modal_account import ModalToken

BUILT_TEMPLATE = ".aws-sam/build/template.yaml"


@dataclass
class Context:
    """What later steps need from earlier ones."""

    config: DeployConfig
    region: str
    token: ModalToken | None
    stack: stacks.Stack | None = None
    result: Bootstrapped | None = None


@dataclass
class Step:
    title: str
    shown: str  # what --dry-run prints: a command line, or the API call, with secrets masked
    argv: list[str] = field(default_factory=list)
    action: Callable[[Context], None] | None = None
    drop_env: tuple[str, ...] = ()
    set_env: dict[str, str] = field(default_factory=dict)
    # A failure is reported and the rest still runs (destroy: stopping the Modal app after the stack is gone).
    optional: bool = False

    def run(self, context: Context, cwd: Path) -> None:
        if self.action:
            self.action(context)
        else:
            tools.check(self.argv, cwd=cwd, drop_env=self.drop_env, set_env=self.set_env)


def command(title: str, argv: list[str], **kwargs) -> Step:
    env = "".join(f"{k}={shlex.quote(v)} " for k, v in kwargs.get("set_env", {}).items())
    return Step(title, env + shlex.join(argv), argv=argv, **kwargs)


def parameter_overrides(config: DeployConfig, workspace_id: str, oidc_provider_arn: str,
                        existing: stacks.Stack | None = None, finishing_concurrency: int | None = None) -> dict[str, str]:
    """The stack parameters: flags first, then the stack's current values (a re-deploy keeps them), then the
    template's defaults; plus any --parameter Key=Value."""
    previous = existing.parameters if existing else {}

    def pick(name: str, given: str | None) -> str:
        return given if given is not None else previous.get(name, config.default(name))

    return {
        "ModalWorkspaceId": workspace_id,
        "ModalEnvironment": pick("ModalEnvironment", config.modal_environment),
        "ModalAppName": pick("ModalAppName", config.modal_app_name),
        "ModalOidcProviderArn": oidc_provider_arn,
        # Also what each GPU pool's max_containers is set to: the app reads it at `modal deploy` (below).
        "MaxGpuConcurrency": pick("MaxGpuConcurrency", None),
        "AlarmEmail": pick("AlarmEmail", config.alarm_email),
        "AcceptedLicenses": pick("AcceptedLicenses", None if config.accepted_licenses is None
                                 else ",".join(config.accepted_licenses)),
        # What preflight found the account can reserve, unless --parameter says otherwise.
        **({"FinishingConcurrency": str(finishing_concurrency)} if finishing_concurrency is not None else {}),
        **config.parameters,
    }


def sam_overrides_argument(overrides: dict[str, str]) -> str:
    """One --parameter-overrides value in SAM's ParameterKey=…,ParameterValue=… form. Values are quoted, so an
    empty one (ModalOidcProviderArn="") or one with spaces survives SAM's parser."""
    def quote(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return " ".join(f"ParameterKey={k},ParameterValue={quote(v)}" for k, v in overrides.items())


def deploy_steps(config: DeployConfig, region: str, overrides: dict[str, str],
                 token: ModalToken | None, *, oidc_client_id_for: str = "") -> list[Step]:
    """`oidc_client_id_for`: a reused OIDC provider that lacks Modal's client id (preflight found it)."""
    app, environment = overrides["ModalAppName"], overrides["ModalEnvironment"]
    token_shown = token.masked() if token else '{"token_id": "<your Modal token>", "token_secret": "****"}'
    steps = []
    if oidc_client_id_for:
        steps.append(Step(f"Add the client id {stacks.MODAL_OIDC_HOST} to the OIDC provider",
                          f"iam add-client-id-to-open-id-connect-provider --open-id-connect-provider-arn "
                          f"{oidc_client_id_for} --client-id {stacks.MODAL_OIDC_HOST}",
                          action=lambda _context: stacks.add_oidc_client_id(oidc_client_id_for)))
    steps += [
        # --build-in-source: the makefile builds run in the checkout, instead of sam first copying the whole
        # tree (a local .venv with torch included) once per function (tests/artifacts builds the same way).
        command("Build the Lambda artifacts", ["sam", "build", "--template-file", "template.yaml",
                                               "--build-in-source"],
                drop_env=tools.MODAL_CREDENTIALS),
        command("Deploy the stack", [
            "sam", "deploy", "--template-file", BUILT_TEMPLATE, "--stack-name", config.stack_name,
            "--region", region, "--resolve-s3", "--capabilities", "CAPABILITY_IAM", "--no-confirm-changeset",
            "--no-fail-on-empty-changeset", "--parameter-overrides", sam_overrides_argument(overrides),
        ], drop_env=tools.MODAL_CREDENTIALS),
        Step("Store the Modal token in the stack's secret",
             f"secretsmanager put-secret-value --secret-id <output ModalTokenSecretArn> --secret-string {token_shown}",
             action=_store_token),
        Step(f"Create workspace {config.workspace} and an admin key",
             f"dynamodb: ensure workspace {config.workspace!r} in <output WorkspacesTableName>, an admin key in "
             f"<output ApiKeysTableName> (kept if {config.env_file} holds a working one); write {config.env_file}",
             action=_bootstrap),
    ]
    models = config.models_to_download()
    if models:
        steps.append(command(
            f"Download weights into the Modal Volume ({', '.join(models)})",
            # --env belongs to `modal run`, before the function; after it come the function's own options. --detach:
            # hours of downloads go on if this terminal's connection drops (run the deploy again to wait for them).
            ["modal", "run", "--detach", "--env", environment, "gpu/modal_app.py::download", "--models",
             ",".join(models)]))
    steps.append(command("Deploy the GPU app on Modal",
                         ["modal", "deploy", "gpu/modal_app.py", "--name", app, "--env", environment],
                         set_env={pools.MAX_CONTAINERS_ENV: overrides["MaxGpuConcurrency"]}))
    return steps + _warm_steps(config, app, environment)


def _warm_steps(config: DeployConfig, app: str, environment: str) -> list[Step]:
    """Right after `modal deploy`, which resets every warm pool to the class's static zero."""
    pools = warm_pool.parse(config.warm)
    if not pools:
        return []

    def apply(_context: Context) -> None:
        skipped = warm_pool.apply(pools, app_name=app, environment=environment)
        if skipped:
            raise RuntimeError("not warmed, their weights are not on the Volume: "
                               + ", ".join(f"{p.model} (--download-weights {p.model})" for p in skipped))

    return [Step("Keep warm containers", f"modal: update_autoscaler(min_containers=…) on {app} ({environment}): "
                 f"{warm_pool.describe(pools)}", action=apply, optional=True)]


def _store_token(context: Context) -> None:
    if context.token is None:
        raise RuntimeError("no Modal token to store")
    context.stack = stacks.require(context.config.stack_name)
    stacks.write_modal_token(context.stack.output("ModalTokenSecretArn"), context.token)


def _bootstrap(context: Context) -> None:
    context.stack = context.stack or stacks.require(context.config.stack_name)
    context.result = bootstrap(context.stack, context.region, context.config.env_file, context.config.workspace)


def destroy_steps(stack_name: str, region: str, app: str, environment: str) -> list[Step]:
    return [
        command("Delete the stack", ["sam", "delete", "--stack-name", stack_name, "--region", region,
                                     "--no-prompts"], drop_env=tools.MODAL_CREDENTIALS),
        command("Stop the Modal app", ["modal", "app", "stop", app, "--env", environment, "--yes"], optional=True),
    ]


class StepFailed(RuntimeError):
    def __init__(self, step: Step, error: Exception) -> None:
        super().__init__(f"{step.title} failed: {error}")
        self.step, self.error = step, error


def execute(steps: list[Step], context: Context, *, on_start: Callable[[int, Step], None],
            on_skip: Callable[[Step, Exception], None]) -> None:
    """Run the steps in order; the first required one that fails stops the rest (StepFailed)."""
    for number, step in enumerate(steps, 1):
        on_start(number, step)
        try:
            step.run(context, context.config.root)
        except Exception as exc:  # tool, AWS and store errors all end the deploy the same way
            if step.optional:
                on_skip(step, exc)
                continue
            raise StepFailed(step, exc) from exc
