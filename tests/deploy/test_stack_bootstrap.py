"""template.yaml as a moto CloudFormation stack: the outputs the deploy reads exist, and the first workspace and
admin key, made through the `--stack-name` path, authenticate against the tables that stack created."""

from __future__ import annotations

import json

from conftest import WORKSPACE_ID, aws_env, base_env, darkroom
from moto_stack import KNOWN_UNSUPPORTED
from sam_template import transformed

from infra.deploy import bootstrap, stack
from infra.deploy.status import DLQ_SUFFIX

# Every output `darkroom deploy`, `status`, `keys --stack-name` and `webhooks replay-dlq` read.
READ_BY_THE_CLI = {"ApiUrl", "GatewayUrl", "ModalTokenSecretArn", "ApiKeysTableName", "WorkspacesTableName",
                   "JobsTableName", "WebhooksQueueUrl", "WebhooksDeadLetterQueueUrl", "JobsDeadLetterQueueUrl",
                   "ResultsDeadLetterQueueUrl"}


def test_template_creates_a_stack_with_every_output_the_cli_reads(world):
    assert READ_BY_THE_CLI <= set(world.stack.outputs)
    assert sum(name.endswith(DLQ_SUFFIX) for name in world.stack.outputs) == 3
    # Only what moto cannot model was left out, and nothing of a type it can.
    assert set(world.stack.not_created.values()) <= KNOWN_UNSUPPORTED
    created = {r["LogicalResourceId"] for r in world.client("cloudformation").list_stack_resources(
        StackName=world.stack.name)["StackResourceSummaries"]}
    template = transformed()
    conditional = {lid for lid, r in template["Resources"].items() if "Condition" in r}
    assert set(template["Resources"]) - set(world.stack.not_created) - conditional <= created
    # The real tables, named by the outputs.
    ddb = world.client("dynamodb")
    for output in ("ApiKeysTableName", "WorkspacesTableName", "JobsTableName"):
        assert ddb.describe_table(TableName=world.stack.outputs[output])["Table"]["TableStatus"] == "ACTIVE"


def test_worker_role_trusts_the_workspace_through_the_given_provider(world):
    role_name = world.stack.outputs["ModalWorkerRoleArn"].rsplit("/", 1)[1]
    role = world.client("iam").get_role(RoleName=role_name)["Role"]
    document = role["AssumeRolePolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    (statement,) = document["Statement"]
    assert statement["Principal"]["Federated"] == world.oidc_provider_arn
    assert f"workspace_id:{WORKSPACE_ID}:" in json.dumps(statement["Condition"])


def test_bootstrap_makes_one_workspace_and_an_admin_key_that_authenticates(world, point_at, tmp_path):
    from functions.core.keys import KeyStore
    from functions.core.workspaces import WorkspaceStore

    point_at(world.endpoint)
    deployed = stack.require(world.stack.name)
    env_file = tmp_path / "deploy.env"
    first = bootstrap.bootstrap(deployed, "us-east-1", env_file, workspace="ws-bootstrap")
    again = bootstrap.bootstrap(deployed, "us-east-1", env_file, workspace="ws-bootstrap")

    assert first.new_key and not again.new_key
    assert again.api_key == first.api_key and again.key_id == first.key_id
    keys = KeyStore(world.stack.outputs["ApiKeysTableName"])
    record = keys.lookup(first.api_key)
    assert record is not None and record.workspace_id == "ws-bootstrap" and "admin" in record.scopes
    assert [k.key_id for k in keys.list("ws-bootstrap")] == [first.key_id]
    assert WorkspaceStore(world.stack.outputs["WorkspacesTableName"]).get("ws-bootstrap") is not None

    env = bootstrap.read_env_file(env_file)
    assert env["DARKROOM_URL"] == world.stack.outputs["ApiUrl"].rstrip("/")
    assert env["DARKROOM_API_KEY"] == first.api_key
    assert env["DARKROOM_STACK_NAME"] == world.stack.name
    assert env_file.stat().st_mode & 0o777 == 0o600


def test_a_dead_key_in_the_env_file_is_replaced(world, point_at, tmp_path):
    from functions.core.keys import KeyStore

    point_at(world.endpoint)
    deployed = stack.require(world.stack.name)
    env_file = tmp_path / "deploy.env"
    first = bootstrap.bootstrap(deployed, "us-east-1", env_file, workspace="ws-revoked")
    KeyStore().revoke("ws-revoked", first.key_id)
    again = bootstrap.bootstrap(deployed, "us-east-1", env_file, workspace="ws-revoked")
    assert again.new_key and again.api_key != first.api_key
    assert KeyStore().lookup(again.api_key) is not None


def test_keys_commands_read_the_stack_tables(world, point_at, tmp_path):
    point_at(world.endpoint)
    deployed = stack.require(world.stack.name)
    made = bootstrap.bootstrap(deployed, "us-east-1", tmp_path / "deploy.env", workspace="ws-cli")
    env = base_env(tmp_path, None) | aws_env(world.endpoint)
    listed = darkroom(["keys", "list", "--stack-name", world.stack.name, "--workspace", "ws-cli"], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert made.key_id in listed.stdout


def test_a_region_without_function_urls_gets_the_gateway_as_api_url(moto_endpoint, world):
    """ap-south-2 has no Lambda function URLs: the stack must still create (no AWS::Lambda::Url, no URL
    permissions), with ApiUrl the API Gateway URL and the 25 s synchronous wait said in its outputs."""
    from moto_stack import create

    from infra.deploy.regions import has_function_urls

    assert not has_function_urls("ap-south-2") and has_function_urls("us-east-1")
    there = create(moto_endpoint, "darkroom-no-urls", {"ModalWorkspaceId": WORKSPACE_ID,
                                                       "ModalOidcProviderArn": world.oidc_provider_arn},
                   region="ap-south-2")
    assert there.outputs["ApiUrl"] == there.outputs["GatewayUrl"] + "/"
    assert ".execute-api.ap-south-2." in there.outputs["ApiUrl"]
    assert there.outputs["SyncWaitLimitSeconds"] == "25"
    resources = {r["LogicalResourceId"] for r in clients_in(moto_endpoint, "ap-south-2").list_stack_resources(
        StackName=there.name)["StackResourceSummaries"]}
    assert not {"ApiFunctionUrlPublicPermissions", "ApiFunctionUrlInvokePermissions"} & resources
    assert "ApiFunction" in resources
    # Where function URLs exist, ApiUrl is the function URL and the wait is SyncWaitSeconds.
    assert "lambda-url" in world.stack.outputs["ApiUrl"]
    assert world.stack.outputs["SyncWaitLimitSeconds"] == "300"
    here = {r["LogicalResourceId"] for r in world.client("cloudformation").list_stack_resources(
        StackName=world.stack.name)["StackResourceSummaries"]}
    assert {"ApiFunctionUrlPublicPermissions", "ApiFunctionUrlInvokePermissions"} <= here


def clients_in(endpoint: str, region: str):
    from moto_stack import clients

    return clients(endpoint, "cloudformation", region)
