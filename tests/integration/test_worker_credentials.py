"""The GPU worker's AWS identity: no keys, a role assumed with the container's Modal OIDC identity token.

Against the moto server over HTTP: moto's STS answers AssumeRoleWithWebIdentity with temporary credentials
and its GetCallerIdentity tells which principal signed a request, so these tests see the assumed role.
"""

from __future__ import annotations

import base64
import json

import pytest

from functions.core import aws, messages, storage
from functions.core.catalog import get_catalog
from functions.core.jobs import JobStore
from functions.core.messages import WorkRequest
from functions.dispatch.logic import dispatch
from tests.integration.conftest import RecordingDispatcher

ROLE_NAME = "darkroom-ModalWorkerRole"


def _fake_modal_token(sub: str, **claims) -> str:
    """A JWT shaped like Modal's (moto does not check the signature; AWS checks it against oidc.modal.com)."""
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    return ".".join([part({"alg": "RS256", "typ": "JWT"}),
                     part({"iss": "https://oidc.modal.com", "aud": "oidc.modal.com", "sub": sub, **claims}), "c2ln"])


@pytest.fixture
def modal_container(world, monkeypatch):
    """The process as a Modal container sees it: an identity token, and no AWS keys at all."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    # No shared credentials file either: only the identity token can produce credentials.
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv(aws.MODAL_IDENTITY_TOKEN_ENV, _fake_modal_token(
        "modal:workspace_id:ac-test:environment_name:main:app_name:darkroom:function_name:SDXLGenerator.*"))
    iam = world_client(world, "iam")
    try:
        arn = iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17",
                              "Statement": []}))["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        arn = iam.get_role(RoleName=ROLE_NAME)["Role"]["Arn"]
    yield arn
    aws.clear_web_identity()


def world_client(world, service: str):
    import boto3

    return boto3.client(service, endpoint_url=world.endpoint, region_name="us-east-1",
                        aws_access_key_id="local", aws_secret_access_key="local")


def test_without_web_identity_there_are_no_credentials(modal_container):
    import botocore.exceptions

    # Proves the fixture: with no keys anywhere, a plain client cannot sign.
    with pytest.raises(botocore.exceptions.NoCredentialsError):
        aws.client("sts").get_caller_identity()


def test_web_identity_assumes_the_worker_role(modal_container, world):
    aws.use_web_identity(modal_container, "us-east-1")

    identity = aws.client("sts").get_caller_identity()
    assert identity["Arn"] == f"arn:aws:sts::123456789012:assumed-role/{ROLE_NAME}/darkroom-gpu-worker"
    # The worker's own calls sign with those credentials: an output put, a result sent.
    storage.put_bytes("ws/generations/j/0.png", b"png", "image/png", bucket=world.physical["OutputsBucket"].ref)
    messages.send(world.queue_url("ResultsQueue"), messages.ResultMessage(job_id="j", outcome="started"))
    assert [m["job_id"] for m in world.messages("ResultsQueue")] == ["j"]


def test_clients_share_one_assumed_session(modal_container):
    aws.use_web_identity(modal_container, "us-east-1")
    keys = {aws.client(s)._request_signer._credentials.get_frozen_credentials().access_key
            for s in ("sts", "s3", "sqs", "dynamodb")}
    assert len(keys) == 1 and not keys & {"local"}
    aws.use_web_identity(modal_container, "us-east-1")  # the same role again: the same clients
    assert aws.client("s3") is aws.client("s3")


def test_a_missing_identity_token_is_a_clear_error(modal_container, monkeypatch):
    monkeypatch.delenv(aws.MODAL_IDENTITY_TOKEN_ENV)
    aws.use_web_identity(modal_container, "us-east-1")
    with pytest.raises(RuntimeError, match="MODAL_IDENTITY_TOKEN is not set"):
        aws.client("sts").get_caller_identity()


def test_dispatch_hands_the_role_and_region_to_the_worker(world, api, tenant, monkeypatch):
    from functions.core.settings import get_settings

    monkeypatch.setenv("DARKROOM_WORKER_ROLE_ARN", "arn:aws:iam::123456789012:role/worker")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    get_settings.cache_clear()
    body = {"model": "sdxl-turbo", "input": {"prompt": "a lighthouse", "size": "256x256"}}
    job_id = api.post("/api/generate", json=body, headers=tenant.headers).json["_id"]
    world.messages("JobsQueue")

    recorder = RecordingDispatcher()
    assert dispatch(messages.JobMessage(job_id=job_id), recorder, claim="m1") == "call-1"
    (request,) = recorder.requests
    assert (request.aws_role_arn, request.aws_region) == ("arn:aws:iam::123456789012:role/worker", "eu-west-1")
    # It travels to Modal as JSON: the worker sees the same values.
    assert WorkRequest.model_validate(json.loads(request.model_dump_json())).aws_role_arn == request.aws_role_arn


def test_modal_class_runs_a_job_as_the_worker_role(world, api, tenant, request):
    from gpu import modal_app

    body = {"model": "sdxl-turbo", "input": {"prompt": "a lighthouse", "size": "256x256", "seed": 3}}
    job_id = api.post("/api/generate", json=body, headers=tenant.headers).json["_id"]
    world.messages("JobsQueue")
    job = JobStore().get(job_id)
    modal_container = request.getfixturevalue("modal_container")  # from here on: no keys, only the token
    work = WorkRequest(job_id=job.id, workspace_id=job.workspace_id, model=job.model, params=job.params,
                       jobs_table=world.physical["JobsTable"].ref, results_queue_url=world.queue_url("ResultsQueue"),
                       bucket=world.physical["OutputsBucket"].ref, aws_role_arn=modal_container,
                       aws_region="us-east-1")
    aws.reset_clients()  # nothing signed with the local keys survives into the worker

    weights = get_catalog().model("sdxl-turbo").weights
    result = modal_app.SDXLGenerator(weights=weights).generate.local(work.model_dump())

    assert result["outcome"] == "succeeded", result
    assert aws.client("sts").get_caller_identity()["Arn"].endswith(f"assumed-role/{ROLE_NAME}/darkroom-gpu-worker")
    assert [m["outcome"] for m in world.messages("ResultsQueue")] == ["started", "succeeded"]
    output = result["outputs"][0]["key"]
    assert storage.get_bytes(output, bucket=world.physical["OutputsBucket"].ref)[:8] == b"\x89PNG\r\n\x1a\n"


class _RefusingSts:
    """STS on loopback answering AssumeRoleWithWebIdentity as AWS does for an expired token (400, its XML)."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.calls: list[str] = []
        sts = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                sts.calls.append(body)
                xml = (b"<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>"
                       b"<Code>ExpiredTokenException</Code><Message>Token expired: current date/time 1790000000 must "
                       b"be before the expiration date/time 1780000000</Message></Error>"
                       b"<RequestId>5b0e4d7a-0000-4000-8000-000000000000</RequestId></ErrorResponse>")
                self.send_response(400)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(xml)))
                self.end_headers()
                self.wfile.write(xml)

            def log_message(self, *_args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_refused_identity_token_stops_the_container_and_leaves_the_job_queued(world, api, tenant, request,
                                                                                monkeypatch, caplog):
    """STS refuses the container's token (it is read once per container): the worker fails no job for it. It
    logs the token's exp, the container stops taking inputs (Modal runs this input again on a fresh container),
    and the job stays queued for that container."""
    import modal
    import modal.experimental

    from functions.core.catalog import get_catalog
    from functions.core.jobs import JobStatus
    from gpu import modal_app

    generator = modal_app.SDXLGenerator(weights=get_catalog().model("sdxl-turbo").weights)
    body = {"model": "sdxl-turbo", "input": {"prompt": "a lighthouse", "size": "256x256", "seed": 3}}
    job_id = api.post("/api/generate", json=body, headers=tenant.headers).json["_id"]
    world.messages("JobsQueue")
    job = JobStore().get(job_id)
    work = {"job_id": job.id, "workspace_id": job.workspace_id, "model": job.model, "params": job.params,
                "jobs_table": world.physical["JobsTable"].ref, "results_queue_url": world.queue_url("ResultsQueue"),
                "bucket": world.physical["OutputsBucket"].ref}
    # Warm the container (its enter hooks) with a job that is not runnable, as a local run.
    assert generator.generate.local(WorkRequest(**work | {"job_id": "missing-job"}).model_dump()) is None

    role = request.getfixturevalue("modal_container")
    expired = 1_780_000_000
    monkeypatch.setenv(aws.MODAL_IDENTITY_TOKEN_ENV, _fake_modal_token("modal:workspace_id:ac-test:x", exp=expired))
    sts = _RefusingSts()
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts.endpoint)
    aws.reset_clients()
    stops: list[bool] = []
    monkeypatch.setattr(modal, "is_local", lambda: False)  # as inside a Modal container
    monkeypatch.setattr(modal.experimental, "stop_fetching_inputs", lambda: stops.append(True))
    try:
        with pytest.raises(aws.IdentityTokenRefused, match="ExpiredTokenException"):
            generator.generate.local(WorkRequest(**work, aws_role_arn=role, aws_region="us-east-1").model_dump())
    finally:
        sts.close()

    assert sts.calls and "AssumeRoleWithWebIdentity" in sts.calls[0]
    assert stops == [True]
    refused = [r for r in caplog.records if "identity token" in r.getMessage()]
    assert refused and getattr(refused[0], "token_exp", None) == expired and refused[0].token_expired
    monkeypatch.delenv("AWS_ENDPOINT_URL_STS")
    for name, value in (("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local")):
        monkeypatch.setenv(name, value)  # read the table back as the test, not as the container
    aws.clear_web_identity()
    assert JobStore().get(job_id).status == JobStatus.QUEUED  # not failed: a fresh container takes it
    assert world.messages("ResultsQueue") == []  # and no failure was reported for it
