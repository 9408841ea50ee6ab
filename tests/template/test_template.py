"""template.yaml: it lints, it transforms offline, and it agrees with the code it deploys.

Nothing here calls AWS: the SAM transform runs with an empty managed-policy map and a dummy region, and the
API routes are exercised through the Powertools resolver in-process.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cfnlint.decode import decode
from hypothesis import given, settings
from hypothesis import strategies as st
from offline_aws import set_offline_aws_env
from sam_template import transformed_from

from functions.core import aws
from functions.core.keys import ApiKey, lookup_cache
from functions.core.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
FUNCTIONS = {"ApiFunction", "DispatchFunction", "CompleteFunction", "WebhooksFunction", "SweeperFunction"}
QUEUE_CONSUMERS = {"JobsQueue": "DispatchFunction", "ResultsQueue": "CompleteFunction",
                   "WebhooksQueue": "WebhooksFunction"}


def _plain(node):
    return json.loads(json.dumps(node))


@pytest.fixture(scope="module")
def source() -> dict:
    template, problems = decode(str(TEMPLATE))
    assert not problems, problems
    return _plain(template)


@pytest.fixture(scope="module")
def transformed(source) -> dict:
    # The one offline transform (tests/sam_template.py), shared with the deploy tests' moto stack.
    return transformed_from(source)


@pytest.fixture
def offline_aws(monkeypatch):
    set_offline_aws_env(monkeypatch)
    aws.reset_clients()
    get_settings.cache_clear()
    lookup_cache.clear()
    yield
    aws.reset_clients()
    get_settings.cache_clear()
    lookup_cache.clear()


def resources(template: dict, type_: str) -> dict[str, dict]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == type_}


def ref_name(value) -> str | None:
    """The logical id a Ref or GetAtt points at."""
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return target[0] if isinstance(target, list) else target.split(".")[0]
    return None


def http_routes(source: dict) -> list[tuple[str, str]]:
    """Every route the template declares a function serves (infra/local/template.py reads the same list)."""
    from infra.local.template import http_routes as declared

    return [(method, path) for method, path, _ in declared(source)]


# ---------------------------------------------------------------- (a) cfn-lint


def _cfn_lint() -> str:
    sibling = Path(sys.executable).with_name("cfn-lint")
    found = str(sibling) if sibling.exists() else shutil.which("cfn-lint")
    assert found, "cfn-lint is not installed (it is a dev dependency: make install)"
    return found


def test_cfn_lint_passes():
    result = subprocess.run([_cfn_lint(), str(TEMPLATE)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- (b) the SAM transform, offline


def test_transform_creates_every_function(transformed):
    functions = resources(transformed, "AWS::Lambda::Function")
    assert set(functions) == FUNCTIONS
    for name, function in functions.items():
        assert function["Properties"]["Code"] == {"S3Bucket": "darkroom-artifacts", "S3Key": "darkroom.zip"}, name
        assert function["Properties"]["Runtime"].startswith("python3"), name


def test_transform_leaves_no_serverless_resources(transformed):
    assert not [n for n, r in transformed["Resources"].items() if r["Type"].startswith("AWS::Serverless::")]
    assert "Transform" not in transformed


def test_queue_consumers_report_batch_item_failures(transformed):
    mappings = resources(transformed, "AWS::Lambda::EventSourceMapping")
    by_queue = {ref_name(m["Properties"]["EventSourceArn"]): m["Properties"] for m in mappings.values()}
    assert set(by_queue) == set(QUEUE_CONSUMERS)
    for queue, function in QUEUE_CONSUMERS.items():
        props = by_queue[queue]
        assert ref_name(props["FunctionName"]) == function, queue
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"], queue


def test_gpu_dispatch_concurrency_is_capped(transformed):
    (props,) = [m["Properties"] for m in resources(transformed, "AWS::Lambda::EventSourceMapping").values()
                if ref_name(m["Properties"]["EventSourceArn"]) == "JobsQueue"]
    assert props["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "MaxGpuConcurrency"}


def test_sweeper_runs_on_a_schedule(transformed):
    rules = [r["Properties"] for r in resources(transformed, "AWS::Events::Rule").values()]
    schedules = [r for r in rules if any(ref_name(t["Arn"]) == "SweeperFunction" for t in r["Targets"])]
    assert len(schedules) == 1
    assert re.fullmatch(r"rate\(\d+ minutes?\)|cron\(.+\)", schedules[0]["ScheduleExpression"])
    permissions = [p["Properties"] for p in resources(transformed, "AWS::Lambda::Permission").values()
                   if ref_name(p["Properties"]["FunctionName"]) == "SweeperFunction"]
    assert any(p["Principal"] == "events.amazonaws.com" for p in permissions)


def test_http_api_sends_every_path_to_the_api_through_one_route(transformed):
    """One catch-all route ($default) instead of one per route: the function's resource policy gets one statement
    for the HTTP API, not one per route (it is capped at 20 KB, and 42 statements came near it)."""
    (api,) = resources(transformed, "AWS::ApiGatewayV2::Api").values()
    paths = api["Properties"]["Body"]["paths"]
    assert list(paths) == ["$default"]
    (integration,) = paths["$default"].values()
    assert integration["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"].endswith("${ApiFunction.Arn}/invocations")
    permissions = [p["Properties"] for p in resources(transformed, "AWS::Lambda::Permission").values()
                   if ref_name(p["Properties"]["FunctionName"]) == "ApiFunction"]
    from_gateway = [p for p in permissions if p["Principal"] == "apigateway.amazonaws.com"]
    assert len(from_gateway) == 1, from_gateway
    # Each statement costs a few hundred bytes; with 3 (gateway, URL, invoke-through-URL) the policy stays small.
    assert len(permissions) == 3 and len(json.dumps(permissions)) < 2_000, permissions


def test_every_declared_route_is_a_method_and_a_path(source):
    routes = http_routes(source)
    assert len(routes) == len(set(routes)), "a route is declared twice"
    for method, path in routes:
        assert method in {"GET", "POST", "PUT", "DELETE", "PATCH"} and path.startswith("/"), (method, path)


# ---------------------------------------------------------------- (c) handlers


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_handler_imports_and_is_callable(name, transformed, offline_aws):
    handler = transformed["Resources"][name]["Properties"]["Handler"]
    module_name, _, attr = handler.rpartition(".")
    assert module_name.startswith("functions."), handler
    module = importlib.import_module(module_name)
    function = getattr(module, attr)
    assert callable(function)
    assert list(inspect.signature(function).parameters) == ["event", "context"], handler


def test_makefile_builds_every_function(source):
    makefile = (ROOT / "Makefile").read_text()
    for name, resource in resources(source, "AWS::Serverless::Function").items():
        assert resource.get("Metadata", {}).get("BuildMethod") == "makefile", name
        # An explicit build-<name> target, or the build-% pattern rule (infra/build/artifacts.py) that serves all.
        assert re.search(rf"^[^\n#]*\bbuild-({name}\b|%)[^\n]*:", makefile, re.MULTILINE), name


def test_build_requirements_exist_and_cover_the_runtime_dependencies():
    # The build (Makefile build-%: infra/build/artifacts.py) pins every function's requirements with it.
    assert '"requirements.txt"' in (ROOT / "infra" / "build" / "artifacts.py").read_text()
    requirements = ROOT / "functions" / "requirements.txt"
    assert requirements.is_file(), "Makefile build-* targets install functions/requirements.txt, which is missing"
    import tomllib
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    listed = {re.split(r"[\[<>=~! ;]", line.strip(), maxsplit=1)[0].lower()
              for line in requirements.read_text().splitlines() if line.strip() and not line.startswith("#")}
    cli_only = {"typer", "rich"}  # the `darkroom` command's, not the functions'
    for dependency in declared:
        name = re.split(r"[\[<>=~! ;]", dependency, maxsplit=1)[0].lower()
        if name in cli_only:
            continue
        assert name in listed, f"{name} is a runtime dependency but not in functions/requirements.txt"


# ---------------------------------------------------------------- (d) routes vs the resolver


def _event(method: str, path: str, headers: dict[str, str] | None = None) -> dict:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", **(headers or {})},
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example", "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.1",
                     "userAgent": "pytest"},
            "requestId": "req", "routeKey": "$default", "stage": "$default", "time": "", "timeEpoch": 0,
        },
        "isBase64Encoded": False,
    }


class _Context:
    function_name = "ApiFunction"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ApiFunction"
    aws_request_id = "req"


# A value no job id or tool slug can be, so the handlers answer without reading any table.
PARAM = "no.such.thing"


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", PARAM, path)


@pytest.fixture
def resolve(offline_aws, monkeypatch):
    from functions.api import auth
    from functions.api.app import app

    class OneKeyStore:
        """A key store that knows one key, with no scopes: routes answer 400/403/404 before any table read."""

        def __init__(self, *args, **kwargs) -> None:
            pass

        def cached(self, secret: str) -> tuple[bool, ApiKey | None]:
            return False, None

        def lookup(self, secret: str, *, fresh: bool = False) -> ApiKey | None:
            if secret != "dr_test":
                return None
            return ApiKey(key_id="key_1", key_hash="h", workspace_id="ws_1", name="t", scopes=[], prefix="dr_tes",
                          created_at=0)

    monkeypatch.setattr(auth, "KeyStore", OneKeyStore)
    # No rate-limit table offline: every request is within its quota.
    monkeypatch.setattr(auth.ratelimit, "hit", lambda key_id, limit, now=None: auth.ratelimit.Quota(limit, limit - 1, 60))

    def call(method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
        response = app.resolve(_event(method, path, headers), _Context())
        if "json" not in response.get("headers", {}).get("Content-Type", "application/json"):
            return response["statusCode"], {}  # a page (Swagger UI at /docs)
        return response["statusCode"], json.loads(response["body"] or "null")

    return call


def test_template_has_http_routes(source):
    assert len(http_routes(source)) >= 8


def error_message(body: dict) -> str:
    """The message in any dialect's error shape: native {message}, OpenAI {error: {message}}, AI Media
    Studio {error: "..."}."""
    error = body.get("error")
    if isinstance(error, dict):
        return error.get("message", "")
    if isinstance(error, str):
        return error
    if isinstance(body.get("detail"), str):  # fal's {detail}, Replicate's problem details
        return body["detail"]
    return body.get("message", "")


def test_every_template_route_requires_a_key(source, resolve):
    from functions.api import scopes

    for method, path in http_routes(source):
        if scopes.ROUTE_SCOPES[f"{method} {path}"] == scopes.PUBLIC:
            # Share pages of public media (tests/integration/test_sharing.py), the OpenAPI document and Swagger UI
            # (tests/integration/test_openapi.py) are served without a key.
            continue
        status, body = resolve(method, _concrete(path))
        assert status == 401, (method, path, body)
        assert error_message(body).startswith("Missing API key"), (method, path, body)


def test_every_template_route_is_served(source, resolve):
    for method, path in http_routes(source):
        status, body = resolve(method, _concrete(path), {"Authorization": "Bearer dr_test"})
        assert status < 500, (method, path, body)
        assert not error_message(body).startswith("No route for"), (method, path, body)


@pytest.mark.parametrize("method,path", [("GET", "/api/made-up"), ("GET", "/api/run/extra"), ("GET", "/nowhere")])
def test_unknown_route_is_404(resolve, method, path):
    status, body = resolve(method, path, {"Authorization": "Bearer dr_test"})
    assert status == 404
    assert body["message"] == f"No route for {method} {path}"


@pytest.mark.parametrize("method,path,allow", [("DELETE", "/api/generations/x", "GET"), ("POST", "/api/models", "GET"),
                                               ("GET", "/v1/images/edits", "POST")])
def test_a_route_under_another_method_is_405(resolve, method, path, allow):
    status, body = resolve(method, path, {"Authorization": "Bearer dr_test"})
    assert status == 405 and allow in error_message(body)


def test_every_resolver_route_is_deployed(source):
    """A route the code serves but the template does not declare would be unreachable in AWS."""
    from functions.api.app import app

    declared = {(m, re.sub(r"\{[^}]+\}", "{}", p)) for m, p in http_routes(source)}
    app.include_all_routers()  # requests include them one by one (functions/api/app.py)
    routes = app._static_routes + app._dynamic_routes
    assert routes
    served = {(r.method.upper(), re.sub(r"<[^>]+>", "{}", r.path)) for r in routes}
    # A greedy parameter ({path+}, API Gateway's) covers one segment or more: fal's endpoint paths.
    greedy = [(m, re.compile("^" + re.escape(re.sub(r"\{[^}]+\}", "{}", re.sub(r"\{[^}]+\+\}", "GREEDY", p)))
                             .replace("GREEDY", r"\{\}(?:/\{\})*") + "$")) for m, p in http_routes(source) if "+}" in p]
    served = {(m, p) for m, p in served if not any(m == gm and rx.match(p) for gm, rx in greedy)}
    assert served <= declared, served - declared


# ---------------------------------------------------------------- (e) resources


def test_every_queue_has_a_dead_letter_queue(source):
    queues = resources(source, "AWS::SQS::Queue")
    dead_letter = {ref_name(q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])
                   for q in queues.values() if "RedrivePolicy" in q["Properties"]}
    assert dead_letter <= set(queues)
    for name, queue in queues.items():
        if name in dead_letter:
            assert "RedrivePolicy" not in queue["Properties"], name
            continue
        policy = queue["Properties"].get("RedrivePolicy")
        assert policy, f"{name} has no RedrivePolicy"
        target = ref_name(policy["deadLetterTargetArn"])
        assert target in queues and target != name, name
        assert policy["deadLetterTargetArn"] == {"Fn::GetAtt": [target, "Arn"]} or \
            policy["deadLetterTargetArn"] == {"Fn::GetAtt": f"{target}.Arn"}, name
        assert int(policy["maxReceiveCount"]) >= 1, name
        # A message must outlive its source queue's retention once it lands in the DLQ.
        assert int(queues[target]["Properties"]["MessageRetentionPeriod"]) >= \
            int(queue["Properties"].get("MessageRetentionPeriod", 345600)), name
    assert {n for n in queues if n not in dead_letter} == set(QUEUE_CONSUMERS)


def test_every_table_is_on_demand(source):
    tables = resources(source, "AWS::DynamoDB::Table")
    assert tables
    for name, table in tables.items():
        assert table["Properties"]["BillingMode"] == "PAY_PER_REQUEST", name


def test_ttl_specifications_are_enabled(source):
    tables = resources(source, "AWS::DynamoDB::Table")
    with_ttl = {n: t["Properties"]["TimeToLiveSpecification"] for n, t in tables.items()
                if "TimeToLiveSpecification" in t["Properties"]}
    for name, spec in with_ttl.items():
        assert spec["Enabled"] is True, name
        assert spec["AttributeName"], name
    # The attributes the code writes: Job.to_item's expires_at, Powertools idempotency's expiration.
    assert with_ttl["JobsTable"]["AttributeName"] == "expires_at"
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
    default_expiry = inspect.signature(DynamoDBPersistenceLayer).parameters["expiry_attr"].default
    assert with_ttl["IdempotencyTable"]["AttributeName"] == default_expiry


def test_jobs_table_indexes_match_the_job_item(source):
    from functions.core.jobs import Job

    props = source["Resources"]["JobsTable"]["Properties"]
    indexes = {i["IndexName"]: [k["AttributeName"] for k in i["KeySchema"]] for i in props["GlobalSecondaryIndexes"]}
    assert indexes == {"by-workspace": ["workspace_id", "created_key"],
                       "by-workspace-status": ["workspace_status", "created_key"],
                       "active-by-deadline": ["active_shard", "deadline"]}
    types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    item = Job(id="j", workspace_id="w", model="m", task="text-to-image", created_at=1.5, deadline=2.5).to_item()
    for name, type_ in types.items():
        assert name in item, name
        assert isinstance(item[name], str if type_ == "S" else (int, float)), name


def test_modal_token_lives_in_secrets_manager(source, transformed):
    secret = resources(source, "AWS::SecretsManager::Secret")["ModalToken"]
    # Created empty; `darkroom deploy` writes the token with PutSecretValue: no parameter, no command line.
    assert "SecretString" not in secret["Properties"] and "GenerateSecretString" not in secret["Properties"]
    assert not [p for p in source["Parameters"] if "token" in p.lower()]
    for name, function in resources(transformed, "AWS::Lambda::Function").items():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        for key in variables:
            assert key not in {"MODAL_TOKEN", "MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"}, (name, key)
    dispatch = transformed["Resources"]["DispatchFunction"]["Properties"]["Environment"]["Variables"]
    assert dispatch["DARKROOM_MODAL_TOKEN_SECRET_ARN"] == {"Ref": "ModalToken"}
    assert source["Outputs"]["ModalTokenSecretArn"]["Value"] == {"Ref": "ModalToken"}


def test_media_links_are_signed_by_a_generated_secret_on_a_configured_origin(source, transformed):
    """Every function that renders a job (the api, the webhooks) reads the public origin from the stack's SSM
    parameter by name and signs links with the stack's generated key, and may read exactly those two."""
    secret = source["Resources"]["MediaSigningSecret"]["Properties"]
    assert secret["GenerateSecretString"]["PasswordLength"] >= 32  # made by CloudFormation, never a parameter
    parameter = source["Resources"]["PublicBaseUrlParameter"]["Properties"]
    name = parameter["Name"]
    assert parameter["Value"] == {"Fn::If": ["HasPublicBaseUrl", {"Ref": "PublicBaseUrl"}, {"Fn::If": [
        "HasFunctionUrls", {"Fn::GetAtt": ["ApiFunctionUrl", "FunctionUrl"]},
        source["Outputs"]["ApiUrl"]["Value"]["Fn::If"][2]]}]}
    for function in ("ApiFunction", "WebhooksFunction"):
        props = transformed["Resources"][function]["Properties"]
        variables = props["Environment"]["Variables"]
        assert variables["DARKROOM_PUBLIC_BASE_URL_PARAMETER"] == name  # by name: the value depends on the function
        assert variables["DARKROOM_MEDIA_SIGNING_SECRET_ARN"] == {"Ref": "MediaSigningSecret"}
        role = transformed["Resources"][f"{function}Role"]["Properties"]
        statements = [st for policy in role.get("Policies", []) for st in policy["PolicyDocument"]["Statement"]]
        grants = {st["Action"]: st["Resource"] for st in statements if isinstance(st["Action"], str)}
        assert grants["secretsmanager:GetSecretValue"] == {"Ref": "MediaSigningSecret"}
        assert grants["ssm:GetParameter"]["Fn::Sub"].endswith(":parameter" + name["Fn::Sub"])


# ---------------------------------------------------------------- the GPU worker's identity


def test_no_long_lived_credentials(source):
    text = json.dumps(source)
    for type_ in ("AWS::IAM::User", "AWS::IAM::AccessKey", "AWS::IAM::Group"):
        assert not resources(source, type_), type_
    assert "AccessKey" not in text and "aws_secret_access_key" not in text.lower()


def _worker_role(source) -> dict:
    return source["Resources"]["ModalWorkerRole"]["Properties"]


def test_worker_role_trusts_only_this_modal_workspace_environment_and_app(source):
    (statement,) = _worker_role(source)["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow" and statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"] == {"Federated": {"Fn::If": ["CreateModalOidcProvider", {"Ref": "ModalOidcProvider"},
                                                                {"Ref": "ModalOidcProviderArn"}]}}
    condition = statement["Condition"]
    assert condition["StringEquals"] == {"oidc.modal.com:aud": "oidc.modal.com"}
    assert set(condition) == {"StringEquals", "StringLike"}
    (sub,) = condition["StringLike"].values()
    pattern = sub["Fn::Sub"]
    # Every field that names the tenant is pinned; only the function and container may vary.
    assert pattern == ("modal:workspace_id:${ModalWorkspaceId}:environment_name:${ModalEnvironment}"
                       ":app_name:${ModalAppName}:function_name:*")
    assert pattern.count("*") == 1 and pattern.endswith("function_name:*")
    assert re.fullmatch(source["Parameters"]["ModalWorkspaceId"]["AllowedPattern"], "ac-12345abcd")
    assert not re.fullmatch(source["Parameters"]["ModalWorkspaceId"]["AllowedPattern"], "*")
    assert "Default" not in source["Parameters"]["ModalWorkspaceId"]  # no stack trusts a workspace by accident


def _sub_claim_matches(pattern: str, sub: str) -> bool:
    """IAM StringLike: * is any run of characters, ? one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, sub) is not None


@pytest.mark.parametrize("sub,trusted", [
    (("modal:workspace_id:ac-ours:environment_name:main:app_name:darkroom:function_name:FluxGenerator.*:"
      "container_id:ta-1"), True),
    ("modal:workspace_id:ac-other:environment_name:main:app_name:darkroom:function_name:x:container_id:ta-1", False),
    ("modal:workspace_id:ac-ours:environment_name:dev:app_name:darkroom:function_name:x:container_id:ta-1", False),
    ("modal:workspace_id:ac-ours:environment_name:main:app_name:darkroom-evil:function_name:x:container_id:t", False),
    ("modal:workspace_id:ac-ours:environment_name:main:app_name:other:function_name:x:app_name:darkroom", False),
])
def test_worker_trust_on_example_identity_tokens(source, sub, trusted):
    (statement,) = _worker_role(source)["AssumeRolePolicyDocument"]["Statement"]
    pattern = statement["Condition"]["StringLike"]["oidc.modal.com:sub"]["Fn::Sub"]
    pattern = pattern.replace("${ModalWorkspaceId}", "ac-ours").replace("${ModalEnvironment}", "main")
    pattern = pattern.replace("${ModalAppName}", "darkroom")
    assert _sub_claim_matches(pattern, sub) is trusted


def test_worker_role_allows_only_what_the_worker_does(source):
    (policy,) = _worker_role(source)["Policies"]
    statements = [s for s in policy["PolicyDocument"]["Statement"] if "Fn::If" not in s]
    # The C2PA signing certificate's secret (gpu/provenance.py): that one secret, only when the stack names one.
    (provenance,) = [s["Fn::If"] for s in policy["PolicyDocument"]["Statement"] if "Fn::If" in s]
    assert provenance == ["HasProvenanceSecret", {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                                                  "Resource": {"Ref": "ProvenanceSecretArn"}}, {"Ref": "AWS::NoValue"}]
    granted = {}
    for s in statements:
        assert s["Effect"] == "Allow"
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        resources_ = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        for action in actions:
            assert "*" not in action, action
            granted.setdefault(action, []).extend(json.dumps(r) for r in resources_)
    assert set(granted) == {"s3:PutObject", "s3:GetObject", "s3:ListBucket", "dynamodb:GetItem", "dynamodb:UpdateItem",
                            "sqs:SendMessage"}
    # the buckets themselves, not their objects (ListBucket makes a missing key a 404 NoSuchKey, not a 403)
    assert granted["s3:ListBucket"] == [json.dumps({"Fn::GetAtt": ["OutputsBucket", "Arn"]}),
                                        json.dumps({"Fn::GetAtt": ["AdaptersBucket", "Arn"]})]
    assert granted["s3:PutObject"] == [json.dumps({"Fn::Sub": "${OutputsBucket.Arn}/*/generations/*"})]
    assert granted["s3:GetObject"] == [json.dumps({"Fn::Sub": "${OutputsBucket.Arn}/*/uploads/*"}),
                                       json.dumps({"Fn::Sub": "${AdaptersBucket.Arn}/*/loras/*"})]
    assert granted["sqs:SendMessage"] == [json.dumps({"Fn::GetAtt": ["ResultsQueue", "Arn"]})]
    assert granted["dynamodb:UpdateItem"] == [json.dumps({"Fn::GetAtt": ["JobsTable", "Arn"]})]


def test_worker_policy_covers_the_keys_the_worker_uses(source):
    from functions.core import loras, storage, uploads

    def allowed(subs: list[str], bucket: str, key: str) -> bool:
        prefix = f"${{{bucket}.Arn}}/"
        return any(_sub_claim_matches(sub.removeprefix(prefix), key) for sub in subs if sub.startswith(prefix))

    (policy,) = _worker_role(source)["Policies"]
    by_action: dict[str, list[str]] = {}
    for statement in policy["PolicyDocument"]["Statement"]:
        if str(statement.get("Action")).startswith("s3:") and statement["Action"] != "s3:ListBucket":
            by_action.setdefault(statement["Action"], []).append(statement["Resource"]["Fn::Sub"])
    outputs, adapters = "OutputsBucket", "AdaptersBucket"
    assert allowed(by_action["s3:PutObject"], outputs, storage.output_key("ws1", "job1", 0, "png"))
    assert allowed(by_action["s3:PutObject"], outputs, storage.thumbnail_key("ws1", "job1", 0))
    assert not allowed(by_action["s3:PutObject"], outputs, uploads.key_for("ws1", "up1"))
    assert allowed(by_action["s3:GetObject"], outputs, uploads.key_for("ws1", "up1"))
    assert not allowed(by_action["s3:GetObject"], outputs, storage.output_key("ws1", "job1", 0, "png"))
    # A workspace's LoRA files, in their own bucket (gpu/adapters.py reads them), and nothing else there.
    assert allowed(by_action["s3:GetObject"], adapters, loras.key_for("ws1", "lora_0123456789abcdef01234567"))
    assert not allowed(by_action["s3:GetObject"], adapters, uploads.key_for("ws1", "up1"))


def test_dispatch_hands_the_worker_role_to_each_job(transformed):
    dispatch = transformed["Resources"]["DispatchFunction"]["Properties"]["Environment"]["Variables"]
    assert dispatch["DARKROOM_WORKER_ROLE_ARN"] == {"Fn::GetAtt": ["ModalWorkerRole", "Arn"]}


def test_the_provenance_settings_reach_each_job(source, transformed):
    dispatch = transformed["Resources"]["DispatchFunction"]["Properties"]["Environment"]["Variables"]
    assert dispatch["DARKROOM_PROVENANCE_SECRET_ARN"] == {"Ref": "ProvenanceSecretArn"}
    assert dispatch["DARKROOM_PROVENANCE_WATERMARK"] == {"Ref": "ProvenanceWatermark"}
    secret = source["Parameters"]["ProvenanceSecretArn"]
    assert secret["Default"] == ""  # no certificate: nothing signed, and each job's record says so
    assert re.fullmatch(secret["AllowedPattern"], "arn:aws:secretsmanager:eu-west-1:123456789012:secret:darkroom/c2pa-AbC123")
    assert not re.fullmatch(secret["AllowedPattern"], "*")
    assert not re.fullmatch(secret["AllowedPattern"], "arn:aws:secretsmanager:eu-west-1:123456789012:secret:*")
    assert source["Parameters"]["ProvenanceWatermark"]["AllowedValues"] == ["true", "false"]


def test_oidc_provider_is_modals_and_optional(source):
    provider = source["Resources"]["ModalOidcProvider"]
    assert provider["Condition"] == "CreateModalOidcProvider"
    assert provider["Properties"]["Url"] == "https://oidc.modal.com"
    assert provider["Properties"]["ClientIdList"] == ["oidc.modal.com"]
    assert source["Conditions"]["CreateModalOidcProvider"] == {"Fn::Equals": [{"Ref": "ModalOidcProviderArn"}, ""]}


# ---------------------------------------------------------------- operations


def test_every_function_has_a_log_group_with_retention(source, transformed):
    groups = resources(source, "AWS::Logs::LogGroup")
    named = {g["Properties"]["LogGroupName"]["Fn::Sub"]: g["Properties"] for g in groups.values()}
    for function in FUNCTIONS:
        props = named[f"/aws/lambda/${{{function}}}"]
        assert props["RetentionInDays"] == {"Ref": "LogRetentionDays"}, function
    assert 30 in source["Parameters"]["LogRetentionDays"]["AllowedValues"]


def test_alarms_on_every_dlq_and_every_function(source):
    alarms = resources(source, "AWS::CloudWatch::Alarm").values()
    watched_queues = {a["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for a in alarms
                      if a["Properties"]["Namespace"] == "AWS/SQS"}
    dlqs = {name for name, r in resources(source, "AWS::SQS::Queue").items() if "RedrivePolicy" not in r["Properties"]}
    assert watched_queues == dlqs
    watched_functions = {a["Properties"]["Dimensions"][0]["Value"]["Ref"] for a in alarms
                         if a["Properties"]["Namespace"] == "AWS/Lambda"}
    assert watched_functions == FUNCTIONS
    for alarm in alarms:
        props = alarm["Properties"]
        assert props["Threshold"] == 0 and props["ComparisonOperator"] == "GreaterThanThreshold"
        assert props["TreatMissingData"] == "notBreaching"
        assert props["AlarmActions"] == {"Fn::If": ["HasAlarmEmail", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]}
    topic = source["Resources"]["AlarmTopic"]
    assert topic["Condition"] == "HasAlarmEmail"
    assert topic["Properties"]["Subscription"] == [{"Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}}]


def test_output_retention_is_a_parameter(source):
    rules = source["Resources"]["OutputsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    (expire,) = [r for r in rules if "ExpirationInDays" in r]
    assert expire["ExpirationInDays"] == {"Ref": "OutputRetentionDays"}


# ---------------------------------------------------------------- the function URL (no 30 s wall)


def test_api_function_url_serves_every_route_without_the_gateway_limit(source, transformed):
    url = transformed["Resources"]["ApiFunctionUrl"]
    assert url["Type"] == "AWS::Lambda::Url"
    assert url["Properties"]["AuthType"] == "NONE"  # Darkroom's API keys authenticate every route
    assert url["Properties"]["InvokeMode"] == "BUFFERED"
    assert url["Properties"]["TargetFunctionArn"] == {"Ref": "ApiFunction"}
    permissions = [r["Properties"] for r in resources(transformed, "AWS::Lambda::Permission").values()
                   if r["Properties"]["FunctionName"] == {"Ref": "ApiFunction"}
                   and r["Properties"]["Principal"] == "*"]
    # Public function URLs need both permissions (AWS, October 2025).
    assert {p["Action"] for p in permissions} == {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}
    # Where function URLs exist; elsewhere ApiUrl is the gateway's (tests/deploy: a stack in such a region).
    condition, with_url, without = source["Outputs"]["ApiUrl"]["Value"]["Fn::If"]
    assert condition == "HasFunctionUrls" and with_url == {"Fn::GetAtt": ["ApiFunctionUrl", "FunctionUrl"]}
    assert "execute-api" in json.dumps(without)
    assert "execute-api" in json.dumps(source["Outputs"]["GatewayUrl"]["Value"])
    for name in ("ApiFunctionUrl", *(n for n, r in resources(source, "AWS::Lambda::Permission").items()
                                     if r["Properties"]["Principal"] == "*")):
        assert source["Resources"][name]["Condition"] == "HasFunctionUrls", name


def test_function_url_regions_are_the_ones_preflight_knows(source):
    """The template's condition and preflight's warning name the same regions (AWS's list, in one place each)."""
    from infra.deploy.regions import NO_FUNCTION_URLS

    equals = re.findall(r"\{'Fn::Equals': \[\{'Ref': 'AWS::Region'\}, '([a-z0-9-]+)'\]\}",
                        str(source["Conditions"]["HasFunctionUrls"]))
    assert sorted(equals) == sorted(NO_FUNCTION_URLS)


def test_api_function_outlasts_the_longest_sync_wait(source, transformed):
    wait = source["Parameters"]["SyncWaitSeconds"]
    assert int(wait["MaxValue"]) + 30 <= _function_timeout(source, "ApiFunction") <= 600
    api_env = transformed["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert api_env["DARKROOM_SYNC_WAIT_SECONDS"] == {"Ref": "SyncWaitSeconds"}


def _function_timeout(source: dict, name: str) -> int:
    props = source["Resources"][name]["Properties"]
    return int(props.get("Timeout", source["Globals"]["Function"]["Timeout"]))


def test_jobs_queue_visibility_is_six_times_the_dispatch_timeout(source):
    visibility = int(source["Resources"]["JobsQueue"]["Properties"]["VisibilityTimeout"])
    assert visibility >= 6 * _function_timeout(source, "DispatchFunction")


@pytest.mark.parametrize("queue,function", sorted(QUEUE_CONSUMERS.items()))
def test_every_consumed_queue_outlasts_its_consumer(source, queue, function):
    # AWS: an SQS event source's visibility timeout should be at least six times the function timeout.
    visibility = int(source["Resources"][queue]["Properties"].get("VisibilityTimeout", 30))
    assert visibility >= 6 * _function_timeout(source, function)


def test_webhooks_function_outlasts_a_batch_of_hanging_receivers(source):
    """Each record of a batch may POST for the whole webhook timeout, one after another: a batch cut off by the
    function's timeout is redelivered whole, and the records that had POSTed POST again."""
    from functions.core.settings import Settings
    from functions.webhooks.handler import RECORD_MARGIN_SECONDS

    props = source["Resources"]["WebhooksFunction"]["Properties"]
    env = {**source["Globals"]["Function"]["Environment"]["Variables"], **props["Environment"]["Variables"]}
    default = Settings.model_fields["webhook_timeout_seconds"].default
    per_post = float(env.get("DARKROOM_WEBHOOK_TIMEOUT_SECONDS", default))
    batch = max(int(e["Properties"].get("BatchSize", 10)) for e in props["Events"].values() if e["Type"] == "SQS")
    timeout = _function_timeout(source, "WebhooksFunction")
    assert timeout >= batch * (per_post + RECORD_MARGIN_SECONDS)
    assert int(source["Resources"]["WebhooksQueue"]["Properties"]["VisibilityTimeout"]) >= timeout


def _conditional(value) -> tuple[str | None, object]:
    """(condition, value) of `!If [condition, value, !Ref AWS::NoValue]`; (None, value) of a plain value."""
    if isinstance(value, dict) and "Fn::If" in value:
        condition, then, otherwise = value["Fn::If"]
        assert otherwise == {"Ref": "AWS::NoValue"}, value
        return condition, then
    return None, value


def test_sqs_event_sources_of_reserved_functions_stay_within_the_reservation(source, transformed):
    """An SQS event source ignores reserved concurrency: past it, invocations are throttled and the messages come
    back with their receive count raised, towards the dead-letter queue. Its MaximumConcurrency is the cap."""
    from infra.deploy.preflight import FINISHING_CONCURRENCY

    capped = set()
    for mapping in resources(transformed, "AWS::Lambda::EventSourceMapping").values():
        function = ref_name(mapping["Properties"]["FunctionName"])
        reserved = transformed["Resources"][function]["Properties"].get("ReservedConcurrentExecutions")
        if reserved is None:
            continue
        condition, cap = _conditional(reserved)
        assert _conditional(mapping["Properties"].get("ScalingConfig")) == (condition, {"MaximumConcurrency": cap})
        capped.add(function)
        if condition:  # the reservation, when made, is one Lambda allows as an event source's maximum (2 to 1000)
            parameter = source["Parameters"][cap["Ref"]]
            assert 2 <= FINISHING_CONCURRENCY <= int(parameter["MaxValue"]) <= 1000
    assert capped == {"CompleteFunction", "WebhooksFunction"}


def test_function_timeouts_in_the_transformed_template(source, transformed):
    for name in FUNCTIONS:
        assert transformed["Resources"][name]["Properties"]["Timeout"] == _function_timeout(source, name), name


# ---------------------------------------------------------------- Modal names (the worker's identity token names them)

_NAME_CHARACTERS = st.characters(codec="ascii", exclude_characters="\n") | st.sampled_from("-_.aZ09")


@settings(max_examples=300, deadline=None)
@given(name=st.text(_NAME_CHARACTERS, max_size=70) | st.from_regex(r"ap-[a-zA-Z0-9]{22}", fullmatch=True)
       | st.text("ab-_.9", min_size=60, max_size=70))
def test_modal_app_name_pattern_is_modals_own_rule(source, name):
    """CloudFormation refuses exactly the names Modal refuses: Modal issues no identity token for the others."""
    from modal._utils.name_utils import is_valid_object_name

    pattern = source["Parameters"]["ModalAppName"]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, name)) == is_valid_object_name(name), name


@settings(max_examples=300, deadline=None)
@given(name=st.text(_NAME_CHARACTERS, max_size=70) | st.from_regex(r"[eE][nN]-[a-z]{1,5}", fullmatch=True))
def test_modal_environment_pattern_is_modals_own_rule(source, name):
    from modal._utils.name_utils import is_valid_environment_name

    pattern = source["Parameters"]["ModalEnvironment"]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, name)) == is_valid_environment_name(name, allow_periods=False), name


def test_the_default_modal_names_pass(source):
    for name in ("ModalAppName", "ModalEnvironment"):
        spec = source["Parameters"][name]
        assert re.fullmatch(spec["AllowedPattern"], spec["Default"]), name
