"""Everything `darkroom deploy` needs, checked before anything runs. Every missing piece is reported with
how to fix it, all together; checks that depend on a missing piece are skipped rather than piled on."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from infra.build import artifacts

from . import modal_account, regions, stack, tools
from .config import DeployConfig, model_errors, parameter_errors
from .modal_account import ModalConfigError, ModalToken

HF_SECRET = "darkroom-hf"


@dataclass
class Problem:
    what: str
    fix: str = ""


@dataclass
class Facts:
    """What preflight found out, for the plan."""

    region: str | None = None
    account: str | None = None
    token: ModalToken | None = None
    workspace_id: str | None = None
    oidc_provider_arn: str = ""
    # The reused provider lacks Modal's audience among its client ids: the deploy adds it.
    oidc_needs_client_id: bool = False
    existing: stack.Stack | None = None
    # Lambda concurrency to reserve for each function that finishes jobs (template.yaml: FinishingConcurrency).
    finishing_concurrency: int = 0


@dataclass
class Report:
    facts: Facts = field(default_factory=Facts)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def configured_region(config: DeployConfig) -> str | None:
    """--region, else what boto3 would use (AWS_REGION, AWS_DEFAULT_REGION, the profile's region). Offline."""
    return config.region or boto3.session.Session().region_name


def run(config: DeployConfig) -> Report:
    report = Report()
    facts = report.facts
    for name in ("sam", "modal"):
        if tools.find(name) is None:
            report.problems.append(Problem(f"`{name}` is not on PATH", tools.INSTALL[name]))
    has_modal = tools.find("modal") is not None and _check_modal_version(report) and _check_modal_python(report)
    version = artifacts.runtime_version(config.template)
    runtime = f"python{version}"
    if artifacts.interpreter(version) is None:
        # `sam build` runs infra/build/artifacts.py, which compiles each artifact's bytecode with it.
        report.problems.append(Problem(
            f"no {runtime} interpreter to build the Lambda artifacts with",
            f"install Python {version} (on PATH as {runtime}, or with pyenv), or name one "
            f"in {artifacts.PYTHON_ENV}"))

    facts.region = configured_region(config)
    if not facts.region:
        report.problems.append(Problem("no AWS region", "pass --region us-east-1, set AWS_REGION, or run "
                                                        "`aws configure set region us-east-1`"))
    else:
        stack.use_region(facts.region)
        _check_aws(config, report)
        if not regions.has_function_urls(facts.region):
            report.warnings.append(Problem(
                f"{facts.region} has no Lambda function URLs: ApiUrl will be the API Gateway URL, where synchronous "
                "calls (the OpenAI and AI Media Studio dialects) are cut at 30 s and answer 504 with the job id "
                "past 25 s (the job goes on; poll it)",
                "deploy to a region with function URLs (us-east-1, eu-west-1, …) for waits up to SyncWaitSeconds"))

    _check_modal(config, report, has_modal)
    _check_env_file(config, report)
    given = {name: value for name, value in (("ModalEnvironment", config.modal_environment),
                                             ("ModalAppName", config.modal_app_name),
                                             ("AlarmEmail", config.alarm_email)) if value is not None}
    report.problems.extend(Problem(e) for e in parameter_errors(config.template, given | config.parameters))
    models = config.models_to_download()
    report.problems.extend(Problem(e) for e in model_errors(models))
    if models:
        from functions.core.catalog import get_catalog

        unpinned = [spec.id for spec in get_catalog().models if spec.id in models and not spec.pinned]
        if unpinned:
            report.warnings.append(Problem(
                f"{', '.join(unpinned)} follow a branch, not a commit: the download records the commit it resolves "
                "to, and warm snapshots keep the one they were taken with until the app's definition changes",
                "pin each to the commit the download prints (`revision:` in the catalog, or DARKROOM_CATALOG_EXTRA)"))
        for spec in get_catalog().models:
            if spec.id in models and spec.gated:
                report.warnings.append(Problem(
                    f"{spec.id} is gated on Hugging Face",
                    f"accept its license at https://huggingface.co/{spec.repo} with the account whose token is "
                    f"in the {HF_SECRET} Modal secret"))
    return report


def _check_modal_version(report: Report) -> bool:
    """The deploy reads `modal token info` and the CLI's --json keys, which older clients print otherwise."""
    from packaging.version import InvalidVersion, Version

    try:
        version = modal_account.cli_version()
        too_old = Version(version) < Version(tools.MODAL_MIN_VERSION)
    except (tools.ToolError, InvalidVersion) as exc:
        report.problems.append(Problem(f"cannot tell the version of the `modal` CLI on PATH ({exc})",
                                       f"`pip install 'modal>={tools.MODAL_MIN_VERSION}'`"))
        return False
    if too_old:
        report.problems.append(Problem(
            f"the `modal` CLI on PATH is {version}; the deploy needs {tools.MODAL_MIN_VERSION} or newer",
            f"`pip install --upgrade 'modal>={tools.MODAL_MIN_VERSION}'` (or use .venv/bin/modal: "
            "`source .venv/bin/activate`)"))
        return False
    return True


def _check_modal_python(report: Report) -> bool:
    """`modal run` and `modal deploy` import gpu/modal_app.py with the Python the `modal` on PATH runs, which the
    project's own packages (pydantic, yaml) must be in: a modal installed alone (pipx, a global pip) would fail at
    "Deploy the GPU app", after the stack is deployed."""
    python = tools.script_interpreter(tools.find("modal") or "")
    if python is None:
        return True  # not a Python script (a compiled launcher): nothing to check before the run
    done = subprocess.run([python, "-c", "import gpu.modal_app"], cwd=artifacts.REPO, capture_output=True, text=True,
                          check=False, timeout=120)
    if done.returncode == 0:
        return True
    error = (done.stderr.strip().splitlines() or ["exit status " + str(done.returncode)])[-1]
    report.problems.append(Problem(
        f"the `modal` CLI on PATH runs {python}, which cannot import the GPU app ({error})",
        "run the deploy with the project's environment first on PATH (`source .venv/bin/activate`), whose modal "
        "has the app's packages"))
    return False


def _check_aws(config: DeployConfig, report: Report) -> None:
    facts = report.facts
    try:
        identity = stack.client("sts").get_caller_identity()
    except (BotoCoreError, ClientError) as exc:
        report.problems.append(Problem(
            f"no usable AWS credentials ({exc})",
            "run `aws configure` (access keys) or `aws sso login --profile NAME` and export AWS_PROFILE=NAME"))
        return
    facts.account = identity["Account"]
    try:
        facts.existing = stack.describe(config.stack_name)
        if facts.existing and (facts.existing.status in stack.BLOCKED or facts.existing.status.endswith("_IN_PROGRESS")):
            report.problems.append(Problem(
                f"stack {config.stack_name} is {facts.existing.status}",
                "wait for it to finish" if facts.existing.status.endswith("_IN_PROGRESS") else
                f"delete it first: `darkroom destroy --stack-name {config.stack_name}`"))
        facts.oidc_provider_arn = _oidc_provider(config, facts)
        if facts.oidc_provider_arn:
            missing = stack.MODAL_OIDC_HOST not in stack.oidc_client_ids(facts.oidc_provider_arn)
            facts.oidc_needs_client_id = missing
            if missing:
                report.warnings.append(Problem(
                    f"the OIDC provider {facts.oidc_provider_arn} lacks the client id {stack.MODAL_OIDC_HOST}, "
                    "which the worker role's trust policy requires", "the deploy adds it"))
        facts.finishing_concurrency = _finishing_concurrency(report)
    except (BotoCoreError, ClientError) as exc:
        report.problems.append(Problem(f"cannot read CloudFormation/IAM in {facts.region}: {exc}",
                                       "the deploying identity needs CloudFormation, IAM, S3, Lambda, DynamoDB, "
                                       "SQS, SNS, CloudWatch and Secrets Manager permissions"))


# Reserved for each of CompleteFunction and WebhooksFunction where the account allows it.
FINISHING_CONCURRENCY = 5
# Lambda refuses a reservation that leaves fewer unreserved than this ("Lambda function scaling", AWS docs).
LAMBDA_MIN_UNRESERVED = 100


def _finishing_concurrency(report: Report) -> int:
    """What to reserve for the functions that finish jobs: synchronous calls can fill an account's concurrency,
    and a throttled complete or webhooks function delays every job's end. Lambda keeps 100 unreserved, so an
    account at the new-account limit (10) can reserve nothing: then none, with a warning."""
    settings = stack.client("lambda").get_account_settings()
    unreserved = settings["AccountLimit"]["UnreservedConcurrentExecutions"]
    if unreserved - 2 * FINISHING_CONCURRENCY >= LAMBDA_MIN_UNRESERVED:
        return FINISHING_CONCURRENCY
    report.warnings.append(Problem(
        f"the account's unreserved Lambda concurrency is {unreserved}: nothing can be reserved for the functions "
        "that finish jobs (Lambda keeps 100 unreserved), so many synchronous calls at once could throttle them",
        "ask AWS for a higher Lambda concurrency limit (Service Quotas), then deploy again"))
    return 0


def _oidc_provider(config: DeployConfig, facts: Facts) -> str:
    """An existing provider for oidc.modal.com to pass in, or "" for the stack to create one.

    A provider that this stack created itself is not passed back: flipping the template's condition would
    make CloudFormation delete it.
    """
    if config.oidc_provider_arn is not None:
        return config.oidc_provider_arn
    found = stack.modal_oidc_providers()
    if not found:
        return ""
    owned = set()
    if facts.existing:
        owned = {r["PhysicalResourceId"] for r in stack.resources(config.stack_name)
                 if r["ResourceType"] == "AWS::IAM::OIDCProvider"}
    return "" if found[0] in owned else found[0]


def _check_modal(config: DeployConfig, report: Report, has_modal: bool) -> None:
    facts = report.facts
    try:
        facts.token = modal_account.configured_token()
    except ModalConfigError as exc:
        report.problems.append(Problem(str(exc), "run `modal setup`, or fix ~/.modal.toml"))
        return
    if facts.token is None:
        report.problems.append(Problem(
            "no Modal token", "run `modal setup` (or `modal token set --token-id ak-… --token-secret as-…`), or "
                              "export MODAL_TOKEN_ID and MODAL_TOKEN_SECRET"))

    discovered = None
    if has_modal and facts.token:
        try:
            info = modal_account.token_info()
        except tools.ToolError as exc:
            report.warnings.append(Problem(f"could not read the Modal workspace id: {exc}"))
        else:
            discovered = info.workspace_id
            if info.service_user is False:
                report.warnings.append(Problem(
                    "the Modal token is a person's: the dispatch function will spawn GPU jobs with it",
                    "prefer a service user's token (Modal: workspace settings, service users), set with `modal token "
                    "set`; to rotate it, `darkroom deploy` again, which rewrites the stack's secret (README: Deploy)"))
            if info.expires_at:
                report.warnings.append(Problem(
                    f"the Modal token expires at {info.expires_at}: the dispatch function spawns every GPU job with "
                    "it, and from then on no job is dispatched (each is failed and refunded)",
                    "use a token without an expiry (a service user's, `modal token new` without --expires-in), or "
                    "`darkroom deploy` again with a new one before then: it rewrites the stack's secret"))
    given = config.modal_workspace_id
    if given and discovered and given != discovered:
        report.problems.append(Problem(
            f"the Modal token belongs to workspace {discovered}, not {given}",
            "the worker role would trust the wrong workspace: drop --modal-workspace-id (and "
            "DARKROOM_MODAL_WORKSPACE_ID), or use that workspace's token"))
    facts.workspace_id = given or discovered
    if not facts.workspace_id:
        report.problems.append(Problem(
            "no Modal workspace id",
            "pass --modal-workspace-id ac-… or set DARKROOM_MODAL_WORKSPACE_ID: `modal token info` prints it "
            "in brackets after the workspace name (also in the Modal dashboard, workspace settings)"))
    else:
        report.problems.extend(Problem(e) for e in parameter_errors(config.template,
                                                                      {"ModalWorkspaceId": facts.workspace_id}))

    if has_modal and facts.token:
        # The environment the deploy will use: the flag, else the stack's current one (a re-deploy keeps it).
        current = facts.existing.parameters.get("ModalEnvironment") if facts.existing else None
        environment = config.modal_environment or current or config.default("ModalEnvironment")
        try:
            names = modal_account.secret_names(environment)
        except (tools.ToolError, ValueError) as exc:
            report.warnings.append(Problem(f"could not list Modal secrets: {exc}"))
        else:
            if HF_SECRET not in names:
                # `modal deploy` resolves every secret the app names, and the weights download names this one.
                report.problems.append(Problem(
                    f"the Modal secret {HF_SECRET} does not exist in environment {environment}",
                    f"`modal secret create {HF_SECRET} HF_TOKEN=hf_… --env {environment}` with a Hugging Face read "
                    "token (https://huggingface.co/settings/tokens); `modal deploy` needs it to exist, and the "
                    "weights download uses it for gated models such as FLUX.1-dev"))


def _check_env_file(config: DeployConfig, report: Report) -> None:
    from .bootstrap import env_file_owner

    owner = env_file_owner(config.env_file)
    if owner and owner != (config.stack_name, report.facts.region or owner[1]):
        report.problems.append(Problem(
            f"{config.env_file} holds the admin key of stack {owner[0]} in {owner[1]}",
            f"pass --env-file .darkroom/deploy-{config.stack_name}.env to keep both"))
