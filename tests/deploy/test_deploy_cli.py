"""`darkroom deploy`, `status` and `destroy`, run as the operator runs them: recording fakes of sam and modal first
on PATH, AWS a moto server holding template.yaml as a stack."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from conftest import ROOT, TOKEN_ID, TOKEN_SECRET, WORKSPACE_ID, aws_env, base_env, darkroom, modal_env

from gpu.pools import MAX_CONTAINERS_ENV
from infra.build import artifacts
from infra.deploy import bootstrap
from infra.deploy.config import DeployConfig
from infra.deploy.plan import deploy_steps, parameter_overrides

MODAL_PREFLIGHT = [["modal", "--version"], ["modal", "token", "info"],
                   ["modal", "secret", "list", "--env", "main", "--json"]]


def _overrides_argument(argv: list[str]) -> dict[str, str]:
    """What `sam deploy --parameter-overrides` was given, read the way SAM reads its documented form."""
    value = argv[argv.index("--parameter-overrides") + 1]
    pairs = re.findall(r'ParameterKey=([A-Za-z0-9]+),ParameterValue="((?:\\.|[^"\\])*)"', value)
    assert " ".join(f'ParameterKey={k},ParameterValue="{v}"' for k, v in pairs) == value
    return dict(pairs)


def _no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr


# ---------------------------------------------------------------- the whole deploy


def test_deploy_end_to_end(world, fake_tools, point_at, tmp_path):
    from functions.core.keys import KeyStore

    env_file = tmp_path / "deploy.env"
    env = base_env(tmp_path, fake_tools) | aws_env(world.endpoint) | modal_env()
    args = ["deploy", "--stack-name", world.stack.name, "--region", "us-east-1", "--workspace", "ws-e2e",
            "--env-file", str(env_file), "--alarm-email", "ops@example.com", "--download-weights", "flux-schnell,sdxl-turbo",
            "--accept-license", "stabilityai-community"]
    result = darkroom(args, env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr

    calls = fake_tools.calls()
    argvs = [c["argv"] for c in calls]
    assert argvs[:3] == MODAL_PREFLIGHT
    assert argvs[3] == ["sam", "build", "--template-file", "template.yaml", "--build-in-source"]
    deploy = argvs[4]
    assert deploy[:deploy.index("--parameter-overrides")] == [
        "sam", "deploy", "--template-file", ".aws-sam/build/template.yaml", "--stack-name", world.stack.name,
        "--region", "us-east-1", "--resolve-s3", "--capabilities", "CAPABILITY_IAM", "--no-confirm-changeset",
        "--no-fail-on-empty-changeset"]
    assert _overrides_argument(deploy) == {
        "ModalWorkspaceId": WORKSPACE_ID, "ModalEnvironment": "main", "ModalAppName": "darkroom",
        # The account already has Modal's provider (the world fixture made it): passed, not created again.
        "ModalOidcProviderArn": world.oidc_provider_arn, "AlarmEmail": "ops@example.com",
        "MaxGpuConcurrency": world.stack_parameter("MaxGpuConcurrency"),
        # SDXL-Turbo's license gates commercial use on revenue: the operator accepted it.
        "AcceptedLicenses": "stabilityai-community",
        # The account's concurrency (1,000, unreserved) leaves room: 5 each for the functions that finish jobs.
        "FinishingConcurrency": "5"}
    # The weights first, then the app: its containers snapshot what the Volume holds when they start.
    assert argvs[5:] == [["modal", "run", "--detach", "--env", "main", "gpu/modal_app.py::download", "--models",
                          "flux-schnell,sdxl-turbo"],
                         ["modal", "deploy", "gpu/modal_app.py", "--name", "darkroom", "--env", "main"]]
    # The stack's MaxGpuConcurrency caps each GPU pool: gpu/modal_app.py reads it at `modal deploy`.
    assert calls[6]["env"][MAX_CONTAINERS_ENV] == world.stack_parameter("MaxGpuConcurrency")
    assert {c["cwd"] for c in calls[3:]} == {str(ROOT)}  # where template.yaml and gpu/ are

    # The Modal token: in the stack's secret, and nowhere else.
    for call in calls:
        assert TOKEN_SECRET not in " ".join(call["argv"])
        if call["argv"][0] == "sam":
            assert TOKEN_SECRET not in json.dumps(call["env"]) and TOKEN_ID not in json.dumps(call["env"])
    assert TOKEN_SECRET not in result.stdout + result.stderr
    stored = world.client("secretsmanager").get_secret_value(SecretId=world.stack.outputs["ModalTokenSecretArn"])
    assert json.loads(stored["SecretString"]) == {"token_id": TOKEN_ID, "token_secret": TOKEN_SECRET}

    # The URL and the admin key: printed, written, and the key works against the stack's table.
    written = bootstrap.read_env_file(env_file)
    url = world.stack.outputs["ApiUrl"].rstrip("/")
    assert written["DARKROOM_URL"] == url
    key = written["DARKROOM_API_KEY"]
    assert f"URL      {url}" in result.stdout and f"API key  {key}" in result.stdout
    point_at(world.endpoint)
    record = KeyStore(world.stack.outputs["ApiKeysTableName"]).lookup(key)
    assert record is not None and record.workspace_id == "ws-e2e" and "admin" in record.scopes

    # Deploying again keeps the key and makes no second one.
    again = darkroom(args[:-2], env, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert bootstrap.read_env_file(env_file)["DARKROOM_API_KEY"] == key
    assert "kept admin key" in again.stdout
    assert [k.key_id for k in KeyStore(world.stack.outputs["ApiKeysTableName"]).list("ws-e2e")] == [record.key_id]


def test_failed_stack_stops_the_deploy(world, fake_tools, tmp_path):
    fake_tools.answer("sam deploy", exit=1, stderr="Error: Failed to create/update the stack: darkroom-broken, "
                                                   "Waiter StackCreateComplete failed\n")
    env_file = tmp_path / "deploy.env"
    env = base_env(tmp_path, fake_tools) | aws_env(world.endpoint) | modal_env()
    result = darkroom(["deploy", "--stack-name", "darkroom-broken", "--env-file", str(env_file)], env, tmp_path)
    assert result.returncode == 1
    _no_traceback(result)
    assert "Deploy the stack failed" in result.stdout
    assert "Failed to create/update the stack" in result.stderr  # sam's own words, streamed to the terminal
    assert "Nothing after this step ran" in result.stdout
    assert [a[:2] for a in fake_tools.argvs()] == [["modal", "--version"], ["modal", "token"], ["modal", "secret"],
                                                   ["sam", "build"], ["sam", "deploy"]]
    assert not env_file.exists()


def test_a_failed_download_stops_before_the_app_is_deployed(world, fake_tools, tmp_path):
    """No app (and no warm pool) is deployed over weights that did not arrive."""
    fake_tools.answer("modal run", exit=1, stderr="huggingface_hub.errors.GatedRepoError: 401\n")
    env = base_env(tmp_path, fake_tools) | aws_env(world.endpoint) | modal_env()
    result = darkroom(["deploy", "--stack-name", world.stack.name, "--env-file", str(tmp_path / "x.env"),
                       "--download-weights", "flux-dev", "--warm", "flux-dev=1"], env, tmp_path)
    assert result.returncode == 1
    _no_traceback(result)
    assert "Download weights into the Modal Volume (flux-dev) failed" in result.stdout
    assert "GatedRepoError" in result.stderr
    assert not [a for a in fake_tools.argvs() if a[:2] == ["modal", "deploy"]]


# ---------------------------------------------------------------- preflight


def test_preflight_lists_every_missing_piece_and_runs_nothing(fake_tools, tmp_path):
    fake_tools.remove("sam")
    fake_tools.remove("modal")
    env = base_env(tmp_path, fake_tools) | {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    env.pop(artifacts.PYTHON_ENV, None)  # PATH and HOME are already bare of any python3.12
    result = darkroom(["deploy", "--env-file", str(tmp_path / "deploy.env")], env, tmp_path)
    assert result.returncode == 1
    _no_traceback(result)
    out = result.stdout
    assert "nothing was deployed" in out
    assert "`sam` is not on PATH" in out and "pip install aws-sam-cli" in out
    assert "`modal` is not on PATH" in out and "pip install modal" in out
    assert "no usable AWS credentials" in out and "aws configure" in out
    assert "no Modal token" in out and "modal setup" in out
    assert "no Modal workspace id" in out and "DARKROOM_MODAL_WORKSPACE_ID" in out
    assert "no python3.12 interpreter to build the Lambda artifacts with" in out and artifacts.PYTHON_ENV in out


def test_preflight_without_region(fake_tools, tmp_path, world):
    env = base_env(tmp_path, fake_tools) | modal_env() | {
        k: v for k, v in aws_env(world.endpoint).items() if k != "AWS_DEFAULT_REGION"}
    result = darkroom(["deploy"], env, tmp_path)
    assert result.returncode == 1
    _no_traceback(result)
    assert "no AWS region" in result.stdout and "--region" in result.stdout


def test_preflight_needs_the_hugging_face_secret(fake_tools, tmp_path, world):
    fake_tools.answer("modal secret list", stdout="[]")
    env = base_env(tmp_path, fake_tools) | aws_env(world.endpoint) | modal_env()
    result = darkroom(["deploy", "--stack-name", world.stack.name], env, tmp_path)
    assert result.returncode == 1
    _no_traceback(result)
    assert "darkroom-hf does not exist" in result.stdout
    assert "modal secret create darkroom-hf HF_TOKEN=hf_" in result.stdout
    assert fake_tools.argvs() == MODAL_PREFLIGHT


def test_preflight_lists_wrong_values_together(fake_tools, tmp_path, world):
    """A workspace id the token does not belong to, an unknown model, an unknown parameter and a value a template
    Rule refuses: all at once."""
    env = base_env(tmp_path, fake_tools) | aws_env(world.endpoint) | modal_env() | {
        "DARKROOM_MODAL_WORKSPACE_ID": "ac-someoneelse"}
    result = darkroom(["deploy", "--stack-name", world.stack.name, "--download-weights", "no-such-model",
                       "--parameter", "NoSuchParameter=1", "--parameter", "FinishingConcurrency=1"], env, tmp_path)
    assert result.returncode == 1
    _no_traceback(result)
    assert "Preflight found 4 problem(s)" in result.stdout
    assert "FinishingConcurrency is 0 (none) or at least 2" in result.stdout
    assert f"belongs to workspace {WORKSPACE_ID}, not ac-someoneelse" in result.stdout
    assert "no-such-model: not a catalog model" in result.stdout
    assert "template.yaml has no parameter NoSuchParameter" in result.stdout
    assert fake_tools.argvs() == MODAL_PREFLIGHT


def test_preflight_refuses_a_modal_whose_python_cannot_import_the_gpu_app(fake_tools, tmp_path, world):
    """A modal installed on its own (pipx, a global pip) runs a Python without the project's packages: `modal deploy
    gpu/modal_app.py` would fail after the stack is deployed. Preflight says so first, and deploys nothing."""
    import venv

    bare = tmp_path / "bare-python"
    venv.EnvBuilder(with_pip=False).create(bare)  # a Python with the standard library only
    fake = fake_tools.bin / "modal"
    fake.write_text(fake.read_text().replace(f"#!{sys.executable}", f"#!{bare / 'bin' / 'python'}", 1))
    env = base_env(tmp_path, fake_tools) | aws_env(world.endpoint) | modal_env()
    result = darkroom(["deploy", "--stack-name", world.stack.name], env, tmp_path)
    assert result.returncode == 1
    _no_traceback(result)
    assert f"the `modal` CLI on PATH runs {bare / 'bin' / 'python'}, which cannot import the GPU app" in result.stdout
    assert "ModuleNotFoundError" in result.stdout and "source .venv/bin/activate" in result.stdout
    assert [c for c in fake_tools.argvs() if c[0] == "sam"] == []


def test_preflight_looks_for_the_hf_secret_in_the_environment_the_stack_already_uses(fake_tools, tmp_path, world):
    """A re-deploy without --modal-environment keeps the stack's environment: the secret is looked for there."""
    from moto_stack import create

    staging = create(world.endpoint, "darkroom-staging", {"ModalWorkspaceId": WORKSPACE_ID, "ModalEnvironment": "staging",
                                                          "ModalOidcProviderArn": world.oidc_provider_arn})
    fake_tools.answer("modal secret list", stdout="[]")
    env = base_env(tmp_path, fake_tools) | aws_env(world.endpoint) | modal_env()
    result = darkroom(["deploy", "--stack-name", staging.name], env, tmp_path)
    assert result.returncode == 1
    assert ["modal", "secret", "list", "--env", "staging", "--json"] in fake_tools.argvs()
    assert "the Modal secret darkroom-hf does not exist in environment staging" in result.stdout


# ---------------------------------------------------------------- dry run


def test_dry_run_prints_the_plan_offline(fake_tools, tmp_path):
    # No AWS configuration at all, no Modal token: nothing is needed to print the plan.
    env = base_env(tmp_path, fake_tools) | {"MODAL_TOKEN_SECRET": TOKEN_SECRET}
    result = darkroom(["deploy", "--dry-run", "--stack-name", "demo", "--region", "eu-west-1",
                       "--modal-workspace-id", WORKSPACE_ID, "--download-weights", "all"], env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert fake_tools.calls() == []
    out = result.stdout
    lines = [line.strip() for line in out.splitlines()]
    expected = [s.shown for s in deploy_steps(
        DeployConfig(stack_name="demo", download_weights=["all"]), "eu-west-1",
        parameter_overrides(DeployConfig(stack_name="demo"), WORKSPACE_ID,
                            "<existing oidc.modal.com provider ARN, or empty: the stack creates one>"), None)]
    positions = [lines.index(command) for command in expected]
    assert positions == sorted(positions)
    assert lines[positions[0]] == "sam build --template-file template.yaml --build-in-source"
    assert lines[positions[-1]] == "DARKROOM_MAX_GPU_CONTAINERS=10 modal deploy gpu/modal_app.py --name darkroom --env main"
    assert "--stack-name demo --region eu-west-1" in out
    assert '"token_secret": "****"' in out and TOKEN_SECRET not in out


def test_dry_run_reports_bad_values_without_running(fake_tools, tmp_path):
    result = darkroom(["deploy", "--dry-run", "--modal-workspace-id", "not-a-workspace",
                       "--accept-license", "flux-1-dev-non-comercial"], base_env(tmp_path, fake_tools), tmp_path)
    assert result.returncode == 1
    assert "ModalWorkspaceId='not-a-workspace'" in result.stdout
    # A misspelt license would accept nothing: refused, naming the ones there are.
    assert "--accept-license flux-1-dev-non-comercial" in result.stdout and "flux-1-dev-non-commercial" in result.stdout
    assert fake_tools.calls() == []


def test_the_download_command_is_one_the_installed_modal_accepts():
    """The weights step's exact argv, with --help: modal builds the function's options from its signature."""
    (step,) = [s for s in deploy_steps(DeployConfig(download_weights=["flux-schnell"]), "us-east-1",
                                       parameter_overrides(DeployConfig(), WORKSPACE_ID, ""), None)
               if s.argv[:2] == ["modal", "run"]]
    modal = [str(ROOT / ".venv/bin/modal")] if (ROOT / ".venv/bin/modal").exists() else [
        sys.executable, "-m", "modal"]
    result = subprocess.run([*modal, *step.argv[1:], "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "--models" in result.stdout


# ---------------------------------------------------------------- status and destroy


def test_status_shows_the_stack_the_app_and_dead_letters(world, fake_tools, tmp_path):
    world.client("sqs").send_message(QueueUrl=world.stack.outputs["JobsDeadLetterQueueUrl"], MessageBody="{}")
    env = base_env(tmp_path, fake_tools) | aws_env(world.endpoint) | modal_env()
    result = darkroom(["status", "--stack-name", world.stack.name], env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"Stack {world.stack.name} (us-east-1): CREATE_COMPLETE" in out
    assert world.stack.outputs["ApiUrl"] in out
    assert "Modal app darkroom: deployed" in out
    depths = dict(re.findall(r"(\w+DeadLetterQueue)\s*│\s*(\d+)", out))
    assert depths["JobsDeadLetterQueue"] == "1"
    assert depths["ResultsDeadLetterQueue"] == "0"
    assert fake_tools.argvs() == [["modal", "app", "list", "--env", "main", "--json"]]
    world.client("sqs").purge_queue(QueueUrl=world.stack.outputs["JobsDeadLetterQueueUrl"])


def test_status_of_a_missing_stack(world, fake_tools, tmp_path):
    env = base_env(tmp_path, fake_tools) | aws_env(world.endpoint)
    result = darkroom(["status", "--stack-name", "nothing-here"], env, tmp_path)
    assert result.returncode == 1
    _no_traceback(result)
    assert "does not exist" in result.stdout


def test_destroy_deletes_the_stack_stops_the_app_and_says_what_is_kept(world, fake_tools, tmp_path):
    env = base_env(tmp_path, fake_tools) | aws_env(world.endpoint) | modal_env()
    result = darkroom(["destroy", "--stack-name", world.stack.name, "--yes"], env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert fake_tools.argvs() == [
        ["sam", "delete", "--stack-name", world.stack.name, "--region", "us-east-1", "--no-prompts"],
        ["modal", "app", "stop", "darkroom", "--env", "main", "--yes"]]
    for output in ("JobsTableName", "ApiKeysTableName", "WorkspacesTableName", "OutputsBucketName"):
        assert world.stack.outputs[output] in result.stdout, output


def test_destroy_asks_first(world, fake_tools, tmp_path):
    env = base_env(tmp_path, fake_tools) | aws_env(world.endpoint)
    result = subprocess.run([sys.executable, "-m", "infra.cli", "destroy", "--stack-name", world.stack.name],
                            cwd=tmp_path, env=env, input="n\n", capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 1
    assert fake_tools.calls() == []


# ---------------------------------------------------------------- what the review found (issue 18)


def test_preflight_refuses_a_modal_cli_older_than_the_deploy_reads(fake_tools, tmp_path, world):
    """1.4 printed `--json` column titles, not the keys modal_account reads: a KeyError mid-preflight before."""
    fake_tools.answer("modal --version", stdout="modal client version: 1.4.2\n")
    env = base_env(tmp_path, fake_tools) | aws_env(world.endpoint) | modal_env() | {
        "DARKROOM_MODAL_WORKSPACE_ID": WORKSPACE_ID}
    result = darkroom(["deploy", "--stack-name", world.stack.name], env, tmp_path)
    assert result.returncode == 1
    _no_traceback(result)
    assert "the `modal` CLI on PATH is 1.4.2; the deploy needs 1.5.1 or newer" in result.stdout
    assert fake_tools.argvs() == [["modal", "--version"]]  # nothing else is asked of that CLI


def test_a_reused_oidc_provider_gets_modals_client_id(moto_endpoint, fake_tools, tmp_path):
    """The worker role's trust needs aud oidc.modal.com among the provider's client ids; a provider another tool
    made without it is fixed by the deploy, not left to refuse every AssumeRoleWithWebIdentity."""
    from moto_stack import clients

    iam = clients(moto_endpoint, "iam")
    for arn in [p["Arn"] for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]]:
        iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    arn = iam.create_open_id_connect_provider(Url="https://oidc.modal.com", ClientIDList=["sts.amazonaws.com"],
                                              ThumbprintList=["0" * 40])["OpenIDConnectProviderArn"]
    try:
        fake_tools.answer("sam deploy", exit=1, stderr="stop here\n")  # only the steps before the stack matter
        env = base_env(tmp_path, fake_tools) | aws_env(moto_endpoint) | modal_env()
        result = darkroom(["deploy", "--stack-name", "darkroom-oidc", "--env-file", str(tmp_path / "x.env")], env,
                          tmp_path)
        assert "lacks the client id oidc.modal.com" in result.stdout
        assert "Add the client id oidc.modal.com to the OIDC provider" in result.stdout
        ids = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)["ClientIDList"]
        assert sorted(ids) == ["oidc.modal.com", "sts.amazonaws.com"]
        again = darkroom(["deploy", "--stack-name", "darkroom-oidc", "--env-file", str(tmp_path / "x.env")], env,
                         tmp_path)
        assert "lacks the client id" not in again.stdout  # fixed once, then found as it should be
    finally:
        iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=arn)
        iam.create_open_id_connect_provider(Url="https://oidc.modal.com", ClientIDList=["oidc.modal.com"],
                                            ThumbprintList=["0" * 40])


def test_an_account_at_the_new_account_limit_reserves_nothing_and_says_so(moto_endpoint, monkeypatch):
    """Lambda keeps 100 of an account's concurrency unreserved: at a limit of 10 any reservation fails the
    stack, so none is made, and the operator is told what it means."""
    from infra.deploy import preflight

    monkeypatch.setattr(preflight, "LAMBDA_MIN_UNRESERVED", 1000 - 5)  # as if the limit were 10 more than kept
    facts = preflight.Report()
    for key, value in aws_env(moto_endpoint).items():
        monkeypatch.setenv(key, value)
    assert preflight._finishing_concurrency(facts) == 0
    assert "nothing can be reserved" in facts.warnings[0].what and "Service Quotas" in facts.warnings[0].fix
    monkeypatch.setattr(preflight, "LAMBDA_MIN_UNRESERVED", 100)
    assert preflight._finishing_concurrency(preflight.Report()) == preflight.FINISHING_CONCURRENCY


def test_preflight_warns_of_a_region_a_personal_expiring_token_and_unpinned_weights(fake_tools, tmp_path, world):
    fake_tools.answer("modal token info", stdout=f"Token: {TOKEN_ID}\nWorkspace: acme ({WORKSPACE_ID})\n"
                                                 "User: alice (us-123)\nExpires at: 2027-01-05 10:00:00 UTC\n")
    fake_tools.answer("sam build", exit=1, stderr="stop here\n")
    env = base_env(tmp_path, fake_tools) | aws_env(world.endpoint) | modal_env()
    result = darkroom(["deploy", "--stack-name", "darkroom-warn", "--region", "ap-south-2",
                       "--download-weights", "playground-v2,flux-schnell", "--env-file", str(tmp_path / "x.env")],
                      env, tmp_path)
    out = " ".join(result.stdout.split())
    assert "ap-south-2 has no Lambda function URLs" in out and "cut at 30 s" in out
    assert "the Modal token is a person's" in out and "service user" in out
    assert "the Modal token expires at 2027-01-05 10:00:00 UTC" in out and "no job is dispatched" in out
    assert "playground-v2 follow a branch, not a commit" in out and "flux-schnell follow" not in out
