"""Integration fixtures: a real moto server over HTTP, with template.yaml's resources, and the handlers
driven the way the local stack drives them (gateway events, SQS batches from the real queues)."""

from __future__ import annotations

import functools
import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import httpx
import pytest
from werkzeug.test import Client

from infra import bench_calls
from infra.local import resources
from infra.local.gateway import Gateway, Route
from infra.local.lambda_runtime import LocalFunction
from infra.local.moto_server import MotoServer
from infra.local.pollers import SqsPoller
from infra.local.stack import local_environment, reset_process_caches
from infra.local.template import Resolver, functions, gateway_routes, load

# The public origin the integration world's links name: werkzeug's test client's default host.
PUBLIC_BASE_URL = "http://localhost"


@contextmanager
def serve_files(files: dict[str, tuple[bytes, str]]) -> Iterator[str]:
    """A web server on 127.0.0.1 (the local stack allows loopback references) serving `files` ({path: (body,
    content type)}), 404 for any other path; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body, kind = files.get(self.path, (None, ""))
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def fetch_media(api: Client, url: str) -> bytes:
    """A media link's file as a client gets it, with no key: from the api, or from S3 (moto) where it redirects."""
    split = urlsplit(url)
    answer = api.get(f"{split.path}?{split.query}")
    assert answer.status_code in (200, 302), answer.get_data(as_text=True)
    return answer.get_data() if answer.status_code == 200 else httpx.get(answer.headers["location"]).content


@dataclass
class AwsWorld:
    endpoint: str
    physical: dict[str, Any]
    env: dict[str, str]
    resolver: Resolver

    def queue_url(self, logical_id: str) -> str:
        return self.physical[logical_id].ref

    def sqs(self):
        return self._sqs

    @functools.cached_property
    def _sqs(self):  # one client for the session: making one per call cost ~10 ms a call
        return boto3.client("sqs", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="local", aws_secret_access_key="local")

    def messages(self, logical_id: str) -> list[dict[str, Any]]:
        """Drain a queue (bodies only): for asserting what a handler enqueued."""
        out = []
        while True:
            resp = self.sqs().receive_message(QueueUrl=self.queue_url(logical_id), MaxNumberOfMessages=10,
                                              WaitTimeSeconds=0)
            batch = resp.get("Messages", [])
            if not batch:
                return out
            for m in batch:
                out.append(json.loads(m["Body"]))
                self.sqs().delete_message(QueueUrl=self.queue_url(logical_id), ReceiptHandle=m["ReceiptHandle"])


@pytest.fixture(scope="session")
def aws_world(tmp_path_factory) -> AwsWorld:
    server = MotoServer()
    endpoint = server.start()
    template = load()
    physical = resources.create_all(template, endpoint, public_base_url=PUBLIC_BASE_URL)
    resolver = Resolver(template, physical)
    env = local_environment(resolver, functions(template), endpoint, tmp_path_factory.mktemp("data"))
    yield AwsWorld(endpoint, physical, env, resolver)
    server.close()


@pytest.fixture
def world(aws_world: AwsWorld, monkeypatch) -> AwsWorld:
    """Each test: the process pointed at the moto server, caches fresh, queues empty. Every AWS call a handler (or
    the worker) makes in the test must be one its role in template.yaml grants, on the very resource it names:
    deployed, any other is an AccessDenied (bench_calls.ungranted). A test that made one errors at teardown."""
    for key, value in aws_world.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DARKROOM_KEY_CACHE_TTL_SECONDS", "0")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # A local stack started in this process (infra/local/stack.py) leaves its signing certificate in the
    # environment: each test starts unsigned, and signs only if it asks (tests/integration/test_provenance_jobs.py).
    for name in ("DARKROOM_PROVENANCE_CERT_FILE", "DARKROOM_PROVENANCE_KEY_FILE", "DARKROOM_PROVENANCE_WATERMARK"):
        monkeypatch.delenv(name, raising=False)
    reset_process_caches()
    for logical_id in ("JobsQueue", "ResultsQueue", "WebhooksQueue"):
        aws_world.messages(logical_id)  # PurgeQueue is limited to once a minute; draining is not
    invoke = LocalFunction.invoke

    def invoke_as_its_role(self, event):
        with bench_calls.acting_as(self.spec.logical_id):
            return invoke(self, event)

    monkeypatch.setattr(LocalFunction, "invoke", invoke_as_its_role)
    with bench_calls.count_aws_calls() as calls:  # the clients the test's handlers make (caches were just reset)
        yield aws_world
    reset_process_caches()
    # The stack's own resources (a fault test's missing queue is no grant's business)
    names = {str(value).rsplit("/", 1)[-1] for p in aws_world.physical.values() for value in (p.ref, *p.attrs.values())
             if value} - {""}
    ours = Counter({request: n for request, n in calls.requests.items() if any(name in request[2] for name in names)})
    denied = bench_calls.ungranted(ours, load(), aws_world.resolver)
    assert not denied, f"calls template.yaml does not grant to their caller: {denied}"


@dataclass
class Tenant:
    workspace_id: str
    key: str
    headers: dict[str, str] = field(default_factory=dict)


def make_tenant(scopes: list[str] | None = None) -> Tenant:
    from functions.core.keys import ALL_SCOPES, KeyStore
    from functions.core.workspaces import WorkspaceStore

    workspace_id = f"ws-{uuid.uuid4().hex[:10]}"
    WorkspaceStore().ensure(workspace_id)
    secret, _ = KeyStore().create(workspace_id, "test", scopes=list(scopes if scopes is not None else ALL_SCOPES))
    return Tenant(workspace_id, secret, {"Authorization": secret})


@pytest.fixture
def tenant(world) -> Tenant:
    return make_tenant()


@pytest.fixture
def new_tenant(world):
    """A factory for more tenants (other workspaces, other scopes)."""
    return make_tenant


@pytest.fixture
def api(world) -> Client:
    """The api function behind the local gateway's event translation, without a socket."""
    template = load()
    specs = functions(template)
    fns = {lid: LocalFunction(spec) for lid, spec in specs.items()}
    # The HTTP API's own routes, as deployed: one catch-all to the api function, which routes (404, 405).
    gateway = Gateway([Route(m, p, fns[f]) for m, p, f in gateway_routes(template)])
    return Client(gateway.wsgi)


class RecordingDispatcher:
    """Spawns nothing: keeps each work request, for asserting what the dispatch handed the GPU."""

    name = "recording"

    def __init__(self, states: dict[str, str] | None = None) -> None:
        self.requests: list = []
        # What call_state answers per call id ("pending" unless told), and the calls canceled.
        self.states: dict[str, str] = dict(states or {})
        self.canceled: list[str] = []

    def spawn(self, request) -> str:
        self.requests.append(request)
        return f"call-{len(self.requests)}"

    def call_state(self, call_id: str) -> str:
        return self.states.get(call_id, "pending")

    def cancel(self, call_id: str) -> None:
        self.canceled.append(call_id)

    def startup_seconds(self, model) -> float:
        return 0.0


class InlineDispatcher:
    """Runs the real gpu worker synchronously, so a test controls every step of the pipeline."""

    name = "inline"

    def __init__(self, fail: bool = False) -> None:
        self.spawned: list[str] = []
        self.fail = fail
        self.lock = threading.Lock()

    def spawn(self, request) -> str:
        if self.fail:
            raise ConnectionError("GPU provider unavailable")
        from gpu import worker

        with self.lock:
            self.spawned.append(request.job_id)
        with bench_calls.acting_as(bench_calls.WORKER_ROLE):  # on Modal, under the worker's role
            worker.run(request)
        return f"inline-{len(self.spawned)}"

    def call_state(self, call_id: str) -> str:
        return "finished" if call_id.startswith("inline-") else "lost"  # it ran to the end inside spawn

    def cancel(self, call_id: str) -> None:
        pass

    def startup_seconds(self, model) -> float:
        return 0.0


@pytest.fixture
def failing_dispatcher(monkeypatch) -> InlineDispatcher:
    from functions.dispatch import handler

    failing = InlineDispatcher(fail=True)
    monkeypatch.setattr(handler, "get_dispatcher", lambda: failing)
    return failing


@pytest.fixture
def dispatcher(monkeypatch) -> InlineDispatcher:
    from functions.dispatch import handler

    inline = InlineDispatcher()
    monkeypatch.setattr(handler, "get_dispatcher", lambda: inline)
    return inline


def poller(world: AwsWorld, function_logical_id: str, queue_logical_id: str) -> SqsPoller:
    spec = functions(load())[function_logical_id]
    return SqsPoller(LocalFunction(spec), world.queue_url(queue_logical_id),
                     world.physical[queue_logical_id].attrs["Arn"], batch_size=10, endpoint=world.endpoint,
                     wait_seconds=0)


@pytest.fixture
def drain(world):
    """drain('DispatchFunction', 'JobsQueue') feeds one batch from the real queue to the real handler."""

    def run(function_logical_id: str, queue_logical_id: str) -> int:
        return poller(world, function_logical_id, queue_logical_id).poll_once()

    return run


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def pipeline(world, dispatcher):
    """The dispatch and complete functions polling their real queues in the background (the GPU worker
    inline), so synchronous dialects' waits finish as they do in the local stack."""
    pollers = [poller(world, "DispatchFunction", "JobsQueue"), poller(world, "CompleteFunction", "ResultsQueue")]
    for p in pollers:
        p.wait_seconds = 1
        p.start()
    yield dispatcher
    for p in pollers:
        p._stop.set()
    for p in pollers:
        p.stop()
