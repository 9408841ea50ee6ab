"""What 1,000 images cost: AWS calls measured through the real handlers, priced at list prices.

    python -m infra.bench_calls --jobs 20 --write docs/cost.md

Runs N jobs of the default model one at a time through the same building blocks as `darkroom dev` and the
integration tests (a moto server with template.yaml's resources, the gateway's event translation, the
SQS event-source pollers, the in-process GPU worker), and counts every AWS API call by service and
operation with botocore's `before-parameter-build`/`after-call` events. One job is: a native `POST /api/run` with a
webhook, the dispatch, the worker's reports, the complete step, one signed delivery to a loopback
receiver and one `GET /api/generations/{id}`.

Measured: call counts, invocations, item sizes. Assumed (and said so in the output): durations, GPU time
per image, output size, and every price below (us-east-1 list prices as of mid-2025: check them).
"""

from __future__ import annotations

import argparse
import contextvars
import math
import os
import re
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3.session

from infra.local import resources
from infra.local.gateway import Gateway, Route
from infra.local.lambda_runtime import LocalFunction
from infra.local.moto_server import MotoServer
from infra.local.pollers import SqsPoller, parse_rate
from infra.local.receiver import WebhookReceiver
from infra.local.stack import local_environment, reset_process_caches
from infra.local.template import ACCOUNT, REGION, Resolver, functions, http_routes, load
from infra.prices import PRICES, gpu_price_key

# ---- assumptions (not measured here: this box is a noisy 2-core CPU against moto on loopback)
# Warm p50 handler durations in AWS, ms: a few DynamoDB/SQS round trips (~5-10 ms each) plus Python.
ASSUMED_DURATION_MS = {"ApiFunction": 60, "DispatchFunction": 150, "CompleteFunction": 40,
                       "WebhooksFunction": 150, "SweeperFunction": 40}
# GPU time per 1024x1024 image of FLUX.1 [schnell] on an H100: Modal's own example, about 1.2 s uncompiled
# (0.7 s compiled), shared/REFERENCE.md; plus ~0.1 s to encode and upload (docs/benchmarks.md's overhead).
ASSUMED_GPU_SECONDS_PER_IMAGE = 1.3
# The model priced here: the one whose GPU time per image is published (not the create-image default, FLUX.2
# [klein] on an L40S, which no one has timed here yet).
MODEL = "flux-schnell"
ASSUMED_CONTAINER = {"cpu_cores": 1.0, "memory_gib": 16.0}  # billed beside the GPU while it runs
ASSUMED_IMAGE_MB = 1.5                 # a 1024x1024 PNG, plus a ~50 KB JPEG thumbnail
ASSUMED_THUMBNAIL_MB = 0.05
ASSUMED_LOG_KB_PER_INVOCATION = 1.5    # Powertools' JSON lines plus Lambda's START/END/REPORT
DYNAMODB_TABLES_GB = 0.001             # a few thousand small items; grows with use, expired by TTL

EVENT_SOURCE = "Lambda's SQS event source"  # its ReceiveMessage/DeleteMessage calls are billed to you
GPU_WORKER = "GPU worker (on Modal)"
# The worker records progress at each denoising step with at most one write in flight (it is the cancel
# check, gpu/worker.CancelWatch): on a GPU about one write per step; here, as many as the speed makes.
PROGRESS_OP = "UpdateItem (progress)"
_caller: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="Lambda functions")
# Whose role makes the calls now (a template function's logical id, or the worker's role), for telling each
# call's IAM principal: set by acting_as.
_principal: contextvars.ContextVar[str | None] = contextvars.ContextVar("principal", default=None)
# Whose permissions the GPU worker's calls need: its role in template.yaml.
WORKER_ROLE = "ModalWorkerRole"


# ---- counting
@dataclass
class Calls:
    """AWS calls by (caller, service, operation), and each DynamoDB request's parameters."""

    ops: Counter = field(default_factory=Counter)
    # The same calls by (thread name, service, operation): infra/bench/calls.py attributes a request's
    # calls to the thread that served it (the gateway's invoke-<function> thread).
    by_thread: Counter = field(default_factory=Counter)
    # What IAM checks of each call, by (the template resource whose role makes it, action, resource ARN): a
    # function's logical id, or the worker's role. The event source's own receives and deletes are not here.
    requests: Counter = field(default_factory=Counter)
    empty_receives: Counter = field(default_factory=Counter)
    dynamodb_requests: list[tuple[str, dict, dict]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_client(self, client: Any) -> None:
        caller = _caller.get()
        service = client.meta.service_model.service_name

        def after_call(model, parsed, context, **_kwargs) -> None:
            # The worker shares the process's clients; its pool threads tell its calls apart.
            thread = threading.current_thread().name
            who = GPU_WORKER if thread.startswith("gpu-worker") else caller
            op = context.get("darkroom_op", model.name)
            with self.lock:
                self.by_thread[(thread, service, model.name)] += 1
                if op == "ReceiveMessage" and not parsed.get("Messages"):
                    # Idle polling: an at-rest cost of the event source, not a per-job one.
                    self.empty_receives[(who, service, op)] += 1
                    return
                self.ops[(who, service, op)] += 1

        def before_build(model, params, context, **_kwargs) -> None:
            # The local dispatcher's pool threads run the worker (a new thread starts with an empty context).
            principal = WORKER_ROLE if threading.current_thread().name.startswith("gpu-worker") else _principal.get()
            if principal is not None:
                try:
                    wanted = iam_requests(service, model.name, params, region=client.meta.region_name)
                except (ValueError, KeyError) as exc:  # recorded as a resource no grant names: the check lists it
                    wanted = [(f"{service}:{model.name}", f"<no IAM resource rule: {exc}>")]
                with self.lock:
                    for action, resource in wanted:
                        self.requests[(principal, action, resource)] += 1
            # The API parameters (before-call sees the serialized request): request units depend on them.
            if service == "dynamodb":
                if params.get("UpdateExpression", "").startswith("SET progress"):
                    context["darkroom_op"] = PROGRESS_OP  # paced by time, not by job: counted apart
                with self.lock:
                    self.dynamodb_requests.append((model.name, dict(params), {}))

        client.meta.events.register("before-parameter-build", before_build)
        client.meta.events.register("after-call", after_call)
        if service == "dynamodb":
            # Queries are priced by what they read: keep their responses' item counts.
            def after_query(model, parsed, **_kwargs) -> None:
                if model.name in ("Query", "Scan"):
                    with self.lock:
                        for name, params, meta in reversed(self.dynamodb_requests):
                            if name == model.name and "items" not in meta:
                                meta["items"] = parsed.get("Count", 0)
                                break
            client.meta.events.register("after-call", after_query)

    @property
    def actions(self) -> set[tuple[str, str]]:
        """The (principal, action) pairs the calls needed, whatever they were on."""
        return {(principal, action) for principal, action, _ in self.requests}

    def by_service(self) -> Counter:
        out: Counter = Counter()
        for (_caller_name, service, op), n in self.ops.items():
            out[(service, op)] += n
        return out


_DYNAMODB_ITEM_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                          "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}
# Calls whose caller's policy grants nothing: STS takes the web identity token itself.
_UNGRANTED = {("sts", "AssumeRoleWithWebIdentity"), ("sts", "GetCallerIdentity")}


# S3 operations and the action that authorizes each (the service authorization reference): not always their name.
_S3_OBJECT_ACTIONS = {"GetObject": "s3:GetObject", "HeadObject": "s3:GetObject", "PutObject": "s3:PutObject",
                      "DeleteObject": "s3:DeleteObject", "CreateMultipartUpload": "s3:PutObject",
                      "UploadPart": "s3:PutObject", "CompleteMultipartUpload": "s3:PutObject",
                      "AbortMultipartUpload": "s3:AbortMultipartUpload"}
_S3_BUCKET_ACTIONS = {"ListObjectsV2": "s3:ListBucket", "ListObjects": "s3:ListBucket", "HeadBucket": "s3:ListBucket"}


def _s3_requests(operation: str, params: dict) -> list[tuple[str, str]]:
    bucket = f"arn:aws:s3:::{params['Bucket']}"
    # A read needs s3:ListBucket on its bucket too: without it S3 answers a missing key with 403 AccessDenied,
    # not the 404 NoSuchKey the code tells apart (S3's GetObject and HeadObject permissions), so a deleted file
    # or an unknown id would be a 500 deployed while moto, which checks no permission, answers 404.
    read = [("s3:ListBucket", bucket)]
    if operation in _S3_BUCKET_ACTIONS:
        return [(_S3_BUCKET_ACTIONS[operation], bucket)]
    if operation == "DeleteObjects":  # authorized object by object
        return [("s3:DeleteObject", f"{bucket}/{o['Key']}") for o in params["Delete"]["Objects"]]
    if operation == "CopyObject":  # reads the source, writes the destination
        source = params["CopySource"]
        source_bucket, source_key = ((source["Bucket"], source["Key"]) if isinstance(source, dict)
                                     else source.lstrip("/").split("/", 1))
        return [("s3:GetObject", f"arn:aws:s3:::{source_bucket}/{source_key}"),
                ("s3:ListBucket", f"arn:aws:s3:::{source_bucket}"), ("s3:PutObject", f"{bucket}/{params['Key']}")]
    action = _S3_OBJECT_ACTIONS[operation]  # a KeyError names an operation with no rule yet
    return [(action, f"{bucket}/{params['Key']}"), *(read if action == "s3:GetObject" else [])]


def iam_requests(service: str, operation: str, params: dict, *, region: str = REGION,
                 account: str = ACCOUNT) -> list[tuple[str, str]]:
    """The (IAM action, resource ARN) pairs a call is authorized by: its own action on what it names, except
    DynamoDB transactions and batches, which need each item's action on each item's table (there is no
    TransactWriteItems action), and S3's batch delete, authorized object by object. A call this has no rule for
    is a ValueError, so a new kind of call cannot pass the grant check unexamined."""
    if (service, operation) in _UNGRANTED:
        return []
    if service == "dynamodb":
        def table(name: str, index: str | None = None) -> str:
            arn = name if name.startswith("arn:") else f"arn:aws:dynamodb:{region}:{account}:table/{name}"
            return f"{arn}/index/{index}" if index else arn

        if operation in ("TransactWriteItems", "TransactGetItems"):
            return sorted({(f"dynamodb:{_DYNAMODB_ITEM_ACTIONS[kind]}", table(item["TableName"]))
                           for entry in params["TransactItems"] for kind, item in entry.items()})
        if operation == "BatchGetItem":
            return [("dynamodb:BatchGetItem", table(name)) for name in params["RequestItems"]]
        if operation == "BatchWriteItem":
            return [("dynamodb:BatchWriteItem", table(name)) for name in params["RequestItems"]]
        return [(f"dynamodb:{operation}", table(params["TableName"], params.get("IndexName")))]
    if service == "s3":
        return _s3_requests(operation, params)
    if service == "sqs":
        name = urlsplit(params["QueueUrl"]).path.rsplit("/", 1)[-1]
        return [(f"sqs:{operation.removesuffix('Batch')}", f"arn:aws:sqs:{region}:{account}:{name}")]
    if service == "ssm" and operation == "GetParameter":
        return [("ssm:GetParameter", f"arn:aws:ssm:{region}:{account}:parameter/{params['Name'].lstrip('/')}")]
    if service == "secretsmanager" and "SecretId" in params:
        # Its Ref, as the template's grant names it: the ARN deployed; the name in the local stack (whose Ref is the
        # name: infra/local/resources.py says why), where the grant resolves to the name too.
        return [(f"secretsmanager:{operation}", params["SecretId"])]
    raise ValueError(f"no IAM resource rule for {service}:{operation} ({sorted(params)})")


def template_statements(template: dict, principal: str, resolver: Resolver) -> list[dict]:
    """A function's (or the worker role's) inline policy statements in template.yaml, their intrinsics resolved to a
    stack's resources. A statement on a condition (the provenance secret) counts as granted."""
    properties = template["Resources"][principal]["Properties"]
    statements = []
    for document in [p.get("PolicyDocument", p) for p in properties.get("Policies", [])]:
        for statement in document["Statement"]:
            if "Fn::If" in statement:
                statement = statement["Fn::If"][1]
            statements.append(resolver.resolve(statement))
    return statements


def ungranted(requests: Counter, template: dict, resolver: Resolver) -> list[str]:
    """The recorded (principal, action, resource) requests that the principal's statements do not grant: each one an
    AccessDenied, deployed."""
    statements: dict[str, list[dict]] = {}
    denied = []
    for principal, action, resource in sorted(requests):
        if principal not in statements:
            statements[principal] = template_statements(template, principal, resolver)
        if not granted(statements[principal], action, resource):
            denied.append(f"{principal}: {action} on {resource}")
    return denied


def _iam_match(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    """IAM's matching of an Action or Resource element: `*` any run of characters, `?` any one, nothing else special."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case_sensitive else re.IGNORECASE) is not None


def granted(statements: list[dict], action: str, resource: str) -> bool:
    """Whether any of these Allow statements (their intrinsics resolved) grants `action` on `resource`. Actions
    match case-insensitively, resources case-sensitively, as IAM matches them."""
    def listed(value: str | list[str]) -> list[str]:
        return value if isinstance(value, list) else [value]

    return any(
        statement.get("Effect") == "Allow"
        and any(_iam_match(a, action, case_sensitive=False) for a in listed(statement["Action"]))
        and any(_iam_match(r, resource) for r in listed(statement["Resource"]))
        for statement in statements)


@contextmanager
def count_aws_calls() -> Iterator[Calls]:
    """Every boto3 client created inside the block reports its calls (functions/core/aws.py's included).

    Each client has its own copy of botocore's event hooks, so the hook goes where every client is made.
    """
    calls = Calls()
    original = boto3.session.Session.client

    def client(self, *args, **kwargs):
        made = original(self, *args, **kwargs)
        calls.on_client(made)
        return made

    boto3.session.Session.client = client
    try:
        yield calls
    finally:
        boto3.session.Session.client = original


@contextmanager
def acting_as(principal: str) -> Iterator[None]:
    """The AWS calls made inside the block need `principal`'s grants: a template function's logical id, or
    WORKER_ROLE."""
    token = _principal.set(principal)
    try:
        yield
    finally:
        _principal.reset(token)


@contextmanager
def calling_as(caller: str) -> Iterator[None]:
    token = _caller.set(caller)
    try:
        yield
    finally:
        _caller.reset(token)


class CountedFunction(LocalFunction):
    """A template function that counts its invocations and their (local, indicative) durations."""

    def __init__(self, spec, invocations: Counter, seconds: Counter) -> None:
        super().__init__(spec)
        self.invocations, self.seconds = invocations, seconds

    def invoke(self, event: dict) -> Any:
        started = time.perf_counter()
        try:
            with acting_as(self.spec.logical_id):
                return super().invoke(event)
        finally:
            self.invocations[self.spec.logical_id] += 1
            self.seconds[self.spec.logical_id] += time.perf_counter() - started


# Reads a function caches per container for minutes (the public origin, the media-link key: links.CACHE_SECONDS).
PER_CONTAINER = {("ssm", "GetParameter"), ("secretsmanager", "GetSecretValue")}


@dataclass
class Measurement:
    jobs: int
    model: str
    gpu: str
    calls: Calls
    invocations: Counter
    local_seconds: Counter
    api_requests: int
    deliveries: int
    max_item_bytes: dict[str, int]         # by physical table name
    tables: dict[str, str]                 # logical id -> physical name
    sweep_calls: Counter
    sweep_dynamodb: list                   # the sweep's own DynamoDB requests
    template: dict
    cached_calls: Counter                  # (caller, service, op): reads each container caches (PER_CONTAINER)
    resolver: Resolver                     # the template's intrinsics, resolved to this run's resources


def measure(jobs: int = 20, data_dir: Path | None = None, size: str = "256x256") -> Measurement:
    """Run `jobs` jobs of the default model, one at a time, and count what AWS would bill.

    One at a time, so every SQS batch holds one job's messages: the most event-source calls per job.
    The key cache is off (DARKROOM_KEY_CACHE_TTL_SECONDS=0): every request reads its key, as a cold or
    lightly used function does. The image size does not change the calls; a small one keeps this fast.
    """
    from functions.core.catalog import get_catalog
    from functions.core.keys import ALL_SCOPES, KeyStore
    from functions.core.workspaces import WorkspaceStore

    template = load()
    specs = functions(template)
    model = get_catalog().model(MODEL)
    own_dir = data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="darkroom-bench-")) if own_dir else data_dir
    saved_env = dict(os.environ)
    server = MotoServer()
    receiver = WebhookReceiver()
    invocations: Counter = Counter()
    seconds: Counter = Counter()
    try:
        endpoint = server.start()
        physical = resources.create_all(template, endpoint, public_base_url="http://localhost")
        resolver = Resolver(template, physical)
        os.environ.update(local_environment(resolver, specs, endpoint, data_dir))
        os.environ["DARKROOM_KEY_CACHE_TTL_SECONDS"] = "0"
        os.environ["DARKROOM_LOCAL_WORKERS"] = "1"
        os.environ.pop("AWS_PROFILE", None)
        reset_process_caches()
        # Setup (a workspace and a key) is not a job's cost: it runs before counting starts.
        WorkspaceStore().ensure("bench", "Cost benchmark", credits=10 * jobs * model.credits_per_image + 10)
        secret, _ = KeyStore().create("bench", "bench", scopes=list(ALL_SCOPES), rate_limit=100_000)
        reset_process_caches()

        with count_aws_calls() as calls:
            fns = {lid: CountedFunction(spec, invocations, seconds) for lid, spec in specs.items()}
            gateway = Gateway([Route(m, p, fns[f]) for m, p, f in http_routes(template)])
            from werkzeug.test import Client

            api = Client(gateway.wsgi)
            with calling_as(EVENT_SOURCE):
                pollers = {lid: SqsPoller(fns[lid], physical[q].ref, physical[q].attrs["Arn"], batch_size=10,
                                          endpoint=endpoint, wait_seconds=0)
                           for lid, q in (("DispatchFunction", "JobsQueue"), ("CompleteFunction", "ResultsQueue"),
                                          ("WebhooksFunction", "WebhooksQueue"))}
            from functions.dispatch.dispatchers import get_dispatcher

            headers = {"Authorization": secret}
            api_requests = 0
            for i in range(jobs):
                body = {"tool": "create-image", "model": MODEL, "webhook": receiver.url,
                        "input": {"prompt": f"a lighthouse at dusk, study {i}", "size": size, "seed": i}}
                submitted = api.post("/api/run", json=body, headers=headers)
                assert submitted.status_code == 202, submitted.get_data(as_text=True)
                job_id = submitted.json["id"]
                _drain(pollers["DispatchFunction"])
                get_dispatcher().pool.submit(lambda: None).result()  # one worker: the job has finished
                _drain(pollers["CompleteFunction"])
                _drain(pollers["WebhooksFunction"])
                status = api.get(f"/api/generations/{job_id}", headers=headers)
                assert status.json["status"] == "success", status.json
                # The client downloads the image once, through its media link (served by the api function).
                link = urlsplit(status.json["output"])
                assert api.get(f"{link.path}?{link.query}").status_code == 200
                api_requests += 3

            # The sweeper at rest (nothing stuck), once: its schedule repeats it all month.
            before, first = calls.by_service(), len(calls.dynamodb_requests)
            fns["SweeperFunction"].invoke({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})
            sweep_calls = calls.by_service() - before
            for key in list(calls.ops):  # reported per month, not per job
                if key[0] != EVENT_SOURCE:
                    calls.ops[key] -= sweep_calls.get(key[1:], 0)
            # Reads a container caches for minutes (functions/core/links.py): made once per warm container, not
            # per job, so they are reported apart (their IAM actions are still checked).
            cached_calls = Counter()
            for key in list(calls.ops):
                if key[1:] in PER_CONTAINER:
                    cached_calls[key] += calls.ops.pop(key)
            calls.ops = +calls.ops
            sweep_dynamodb = calls.dynamodb_requests[first:]
            del calls.dynamodb_requests[first:]
            invocations["SweeperFunction"] -= 1
            invocations = +invocations
        return Measurement(jobs=jobs, model=model.id, gpu=model.gpu, calls=calls, invocations=invocations,
                           local_seconds=seconds, api_requests=api_requests, deliveries=len(receiver.requests),
                           max_item_bytes=_max_item_bytes(physical, template), tables=_tables(physical, template),
                           sweep_calls=sweep_calls, sweep_dynamodb=sweep_dynamodb, template=template,
                           cached_calls=cached_calls, resolver=resolver)
    finally:
        from functions.dispatch import dispatchers

        if dispatchers.get_dispatcher.cache_info().currsize:
            dispatchers.get_dispatcher().shutdown()
        receiver.close()
        server.close()
        os.environ.clear()
        os.environ.update(saved_env)
        reset_process_caches()
        if own_dir:
            shutil.rmtree(data_dir, ignore_errors=True)


def _drain(poller: SqsPoller) -> None:
    while poller.poll_once():
        pass


# ---- DynamoDB request units, by the on-demand rules, from each measured request
def _item_bytes(item: dict) -> int:
    """DynamoDB's item size: attribute names plus values (numbers approximated by their digits)."""

    def value(v: dict) -> int:
        (kind, x), = v.items()
        if kind in ("S", "B"):
            return len(x.encode() if isinstance(x, str) else x)
        if kind == "N":
            return len(x.lstrip("-").replace(".", "")) // 2 + 1
        if kind in ("BOOL", "NULL"):
            return 1
        if kind in ("SS", "NS", "BS"):
            return sum(value({kind[0]: e}) for e in x)
        if kind == "L":
            return 3 + sum(value(e) + 1 for e in x)
        if kind == "M":
            return 3 + sum(len(k) + value(e) + 1 for k, e in x.items())
        return len(str(x))

    return sum(len(name) + value(v) for name, v in item.items())


def _tables(physical: dict, template: dict) -> dict[str, str]:
    return {lid: physical[lid].ref for lid, r in template["Resources"].items() if r["Type"] == "AWS::DynamoDB::Table"}


def _max_item_bytes(physical: dict, template: dict) -> dict[str, int]:
    client = boto3.session.Session().client("dynamodb")
    return {name: max((_item_bytes(i) for i in client.scan(TableName=name).get("Items", [])), default=0)
            for name in _tables(physical, template).values()}


def _indexes(template: dict, physical_names: dict[str, str]) -> dict[str, list[tuple[set[str], str, set[str]]]]:
    """Table name -> its GSIs as (key attributes, projection type, projected non-key attributes)."""
    out = {}
    for lid, res in template["Resources"].items():
        if res["Type"] == "AWS::DynamoDB::Table":
            out[physical_names[lid]] = [
                ({k["AttributeName"] for k in g["KeySchema"]}, g["Projection"]["ProjectionType"],
                 set(g["Projection"].get("NonKeyAttributes", [])))
                for g in res["Properties"].get("GlobalSecondaryIndexes", [])]
    return out


def _touched(params: dict) -> set[str]:
    names = params.get("ExpressionAttributeNames", {})
    expression = params.get("UpdateExpression", "")
    tokens = re.findall(r"#?[A-Za-z_][A-Za-z0-9_]*", expression)
    return {names.get(t, t) for t in tokens if t.upper() not in ("SET", "REMOVE", "ADD", "DELETE", "IF_NOT_EXISTS",
                                                                 "LIST_APPEND")}


def _gsi_writes(table: str, op: str, params: dict, indexes: dict) -> int:
    """Writes to global secondary indexes that one item write causes (each ~1 WRU for small items).

    Put: one per index whose keys the item carries. Update: two (delete + put) when it sets or removes an
    index key (an upper bound: adding a key to a sparse index is one), one when it changes an attribute the
    index projects, none otherwise. Delete: one per index.
    """
    total = 0
    for keys, projection, non_keys in indexes.get(table, []):
        if op == "Put":
            total += keys <= set(params.get("Item", {}))
        elif op == "Delete":
            total += 1
        else:
            touched = _touched(params)
            if touched & keys:
                total += 2
            elif projection == "ALL" or touched & non_keys:
                total += 1
    return total


def request_units(m: Measurement, requests: list | None = None) -> dict[str, float]:
    """Estimated RRU/WRU of DynamoDB requests: the jobs' (by default; setup and the sweep excluded)."""
    indexes = _indexes(m.template, m.tables)
    write_units = {t: max(1, math.ceil(b / 1024)) for t, b in m.max_item_bytes.items()}
    read_units = {t: max(1, math.ceil(b / 4096)) for t, b in m.max_item_bytes.items()}
    rru = wru = 0.0
    for op, params, meta in m.calls.dynamodb_requests if requests is None else requests:
        table = params.get("TableName", "")
        if op == "GetItem":
            rru += read_units.get(table, 1) * (1 if params.get("ConsistentRead") else 0.5)
        elif op in ("Query", "Scan"):
            size = meta.get("items", 0) * m.max_item_bytes.get(table, 0)
            rru += max(1, math.ceil(size / 4096)) * (1 if params.get("ConsistentRead") else 0.5)
        elif op in ("PutItem", "UpdateItem", "DeleteItem"):
            kind = op.removesuffix("Item")
            wru += write_units.get(table, 1) + _gsi_writes(table, kind, params, indexes)
        elif op == "TransactWriteItems":
            for entry in params["TransactItems"]:
                (kind, item), = entry.items()
                if kind == "ConditionCheck":
                    rru += 2 * read_units.get(item["TableName"], 1)  # a transactional read
                else:
                    wru += 2 * write_units.get(item["TableName"], 1) + _gsi_writes(item["TableName"], kind, item,
                                                                                   indexes)
        elif op == "BatchGetItem":
            for batch_table, batch in params["RequestItems"].items():
                per_item = read_units.get(batch_table, 1) * (1 if batch.get("ConsistentRead") else 0.5)
                rru += per_item * len(batch["Keys"])
        elif op == "TransactGetItems":
            rru += sum(2 * read_units.get(e["Get"]["TableName"], 1) for e in params["TransactItems"])
    return {"rru": rru, "wru": wru}


# ---- pricing
@dataclass
class Line:
    item: str
    quantity: float
    unit: str
    cost: float
    basis: str  # measured / assumed, and from what


def per_thousand_images(m: Measurement) -> list[Line]:
    """The variable cost of 1,000 images, one line per billed quantity."""
    scale = 1000 / m.jobs
    specs = functions(m.template)
    calls = m.calls.by_service()
    lines = [Line("API Gateway HTTP API requests", m.api_requests * scale, "requests",
                  m.api_requests * scale * PRICES["api_gateway_http_per_million"] / 1e6,
                  "measured: POST /api/run, GET /api/generations/{id} and the image's download per image")]
    invocations = sum(m.invocations.values()) * scale
    lines.append(Line("Lambda requests", invocations, "invocations",
                      invocations * PRICES["lambda_request_per_million"] / 1e6,
                      "measured: " + ", ".join(f"{k.removesuffix('Function')} {v * scale:g}"
                                               for k, v in sorted(m.invocations.items()))))
    gb_seconds = sum(n * scale * specs[f].memory / 1024 * ASSUMED_DURATION_MS[f] / 1000
                     for f, n in m.invocations.items())
    lines.append(Line("Lambda compute (arm64)", gb_seconds, "GB-s", gb_seconds * PRICES["lambda_gb_second_arm64"],
                      "invocations measured x memory from template.yaml x assumed warm p50 durations "
                      + ", ".join(f"{k.removesuffix('Function')} {v} ms" for k, v in ASSUMED_DURATION_MS.items()
                                  if k in m.invocations)))
    units = request_units(m)
    lines.append(Line("DynamoDB write request units", units["wru"] * scale, "WRU",
                      units["wru"] * scale * PRICES["dynamodb_wru_per_million"] / 1e6,
                      "estimated from each measured request by the on-demand rules, at each table's largest item "
                      "and with GSI writes: an upper bound"))
    lines.append(Line("DynamoDB read request units", units["rru"] * scale, "RRU",
                      units["rru"] * scale * PRICES["dynamodb_rru_per_million"] / 1e6,
                      "estimated from each measured request by the on-demand rules"))
    sqs = sum(n for (service, _op), n in calls.items() if service == "sqs") * scale
    lines.append(Line("SQS requests", sqs, "requests", sqs * PRICES["sqs_standard_per_million"] / 1e6,
                      "measured (sends, and the event source's non-empty receives and deletes); "
                      "every message under 64 KB"))
    s3_put = sum(n for (service, op), n in calls.items()
                 if service == "s3" and op in ("PutObject", "CopyObject", "PostObject", "ListObjectsV2")) * scale
    s3_get = sum(n for (service, op), n in calls.items()
                 if service == "s3" and op in ("GetObject", "HeadObject")) * scale
    lines.append(Line("S3 PUT requests", s3_put, "requests", s3_put * PRICES["s3_put_per_thousand"] / 1e3,
                      "measured: the worker's image and thumbnail uploads"))
    lines.append(Line("S3 GET requests", s3_get, "requests", s3_get * PRICES["s3_get_per_thousand"] / 1e3,
                      "measured: one download per image, through its media link"))
    secret_reads = sum(n for (_c, service, _op), n in m.cached_calls.items() if service == "secretsmanager")
    lines.append(Line("Link origin and key reads", sum(m.cached_calls.values()), "requests per warm container",
                      secret_reads * PRICES["secrets_manager_per_10k_calls"] / 1e4,
                      "measured: " + ", ".join(f"{c.removesuffix('Function')} {op} x{n:g}"
                                               for (c, _s, op), n in sorted(m.cached_calls.items()))
                      + " per container and 5 minutes, not per image (SSM standard parameters are free)"))
    transfer_gb = 1000 * ASSUMED_IMAGE_MB / 1024
    lines.append(Line("Data transfer out", transfer_gb, "GB", transfer_gb * PRICES["data_transfer_out_gb"],
                      f"assumed {ASSUMED_IMAGE_MB} MB per image, each downloaded once (the first 100 GB/month "
                      "are free)"))
    storage_gb = 1000 * (ASSUMED_IMAGE_MB + ASSUMED_THUMBNAIL_MB) / 1024
    retention_days = int(m.template["Parameters"]["OutputRetentionDays"]["Default"])
    lines.append(Line("S3 storage", storage_gb * retention_days / 30, "GB-month",
                      storage_gb * retention_days / 30 * PRICES["s3_storage_gb_month"],
                      f"assumed sizes, kept {retention_days} days (OutputRetentionDays)"))
    log_gb = invocations * ASSUMED_LOG_KB_PER_INVOCATION / 1024 / 1024
    lines.append(Line("CloudWatch Logs ingestion", log_gb, "GB", log_gb * PRICES["cloudwatch_logs_ingest_gb"],
                      f"assumed {ASSUMED_LOG_KB_PER_INVOCATION} KB per invocation"))
    lines.append(Line("X-Ray traces (Tracing: Active)", invocations, "traces",
                      invocations * PRICES["xray_traces_per_million"] / 1e6,
                      "upper bound: every invocation sampled (the first 100 k/month are free)"))
    measured = measured_gpu_times().get(m.model)
    per_image = measured.seconds if measured else ASSUMED_GPU_SECONDS_PER_IMAGE
    gpu_seconds = 1000 * per_image
    # Measured seconds are priced at the rate of the GPU that measured them.
    gpu = (gpu_price_key(measured.accelerator) if measured else None) or m.gpu
    gpu_price = PRICES["modal_gpu_second"][gpu]
    basis = (f"measured: {per_image:.3f} s per image on {measured.accelerator} ({measured.basis}; "
             f"docs/benchmarks.md)" if measured else
             f"assumed {ASSUMED_GPU_SECONDS_PER_IMAGE} s per 1024x1024 image (shared/REFERENCE.md: Modal's "
             "FLUX.1-schnell example; no CUDA run has measured it here)")
    lines.append(Line(f"Modal GPU ({gpu})", gpu_seconds, "GPU-s", gpu_seconds * gpu_price,
                      f"{basis} at ${gpu_price}/s"))
    container = gpu_seconds * (ASSUMED_CONTAINER["cpu_cores"] * PRICES["modal_cpu_core_second"]
                               + ASSUMED_CONTAINER["memory_gib"] * PRICES["modal_memory_gib_second"])
    lines.append(Line("Modal CPU and memory", gpu_seconds, "container-s", container,
                      f"assumed {ASSUMED_CONTAINER['cpu_cores']:g} core, {ASSUMED_CONTAINER['memory_gib']:g} GiB "
                      "while the GPU works"))
    return lines


def measured_gpu_times(rows_file: Path | None = None) -> dict:
    """GPU seconds per output by model, from the last CUDA run of `python -m gpu.bench --full-size` the repo keeps
    (gpu.bench.FULL_SIZE_ROWS): empty until one has been copied there."""
    from gpu import bench

    return bench.gpu_time_per_output(bench.read_rows(rows_file or bench.FULL_SIZE_ROWS))


def gpu_time_rows(times: dict) -> list[str]:
    """Per image model of the catalog: its measured GPU time per image and what 1,000 cost at its GPU's rate."""
    from functions.core.catalog import get_catalog

    rows = []
    for model in get_catalog().models:
        if model.type != "image" or model.task != "text-to-image":
            continue
        time = times.get(model.id)
        gpu = gpu_price_key(time.accelerator) if time is not None else None
        if time is None or gpu is None:
            rows.append(f"| {model.id} | {model.gpu} | not measured yet | | | |")
            continue
        # Priced at the rate of the GPU that measured it: its seconds on another GPU are not known.
        other = "" if gpu == model.gpu else f"; at {gpu}'s rate: its {model.gpu}'s time is not measured"
        rows.append(f"| {model.id} | {model.gpu} | {time.accelerator}, {time.variant} | {time.seconds:.3f} | "
                    f"{1000 * time.seconds * PRICES['modal_gpu_second'][gpu]:.2f} | {time.basis}{other} |")
    return rows


def _idle_price(gpu: str) -> float:
    """What an idle container costs per second: its GPU, and the CPU and memory assumed beside it."""
    return PRICES["modal_gpu_second"][gpu] + ASSUMED_CONTAINER["cpu_cores"] * PRICES["modal_cpu_core_second"] \
        + ASSUMED_CONTAINER["memory_gib"] * PRICES["modal_memory_gib_second"]


def idle_tail(m: Measurement) -> Line:
    """What each burst of work leaves running: the container waits its class's scaledown_window before it stops."""
    from functions.core.catalog import get_catalog

    catalog = get_catalog()
    model = catalog.model(m.model)
    assert model is not None
    window = catalog.class_scaledown_window(model.modal_class)
    return Line("Modal idle container after each burst", window, "s", window * _idle_price(m.gpu),
                f"{model.modal_class}'s scaledown_window={window} (catalog), billed at the GPU's rate")


def idle_tails() -> list[str]:
    """The idle tail per burst of every GPU class, as table rows."""
    from functions.core.catalog import get_catalog

    catalog = get_catalog()
    rows = []
    for modal_class in sorted({model.modal_class for model in catalog.models}):
        gpu = catalog.class_pools(modal_class)[0].gpu
        window = catalog.class_scaledown_window(modal_class)
        rows.append(f"| {modal_class} | {gpu} | {window} s | {window * _idle_price(gpu):.2f} | not measured yet |")
    return rows


def at_rest(m: Measurement) -> list[Line]:
    """Monthly cost with no traffic at all."""
    resources_ = m.template["Resources"]
    kinds = Counter(r["Type"] for r in resources_.values())
    lines = [
        Line("Secrets Manager secrets", kinds["AWS::SecretsManager::Secret"], "secrets",
             kinds["AWS::SecretsManager::Secret"] * PRICES["secrets_manager_secret_month"], "template.yaml"),
        Line("CloudWatch alarms", kinds["AWS::CloudWatch::Alarm"], "alarms",
             kinds["AWS::CloudWatch::Alarm"] * PRICES["cloudwatch_alarm_month"], "template.yaml"),
        Line("KMS customer managed keys", kinds["AWS::KMS::Key"], "keys", kinds["AWS::KMS::Key"] * 1.00,
             "template.yaml (tables, queues and the bucket use AWS-owned or S3-managed keys: $0)"),
    ]
    pitr = sum(1 for r in resources_.values() if r["Type"] == "AWS::DynamoDB::Table" and
               r["Properties"].get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"))
    lines.append(Line("DynamoDB storage and backups (PITR)", DYNAMODB_TABLES_GB, "GB",
                      DYNAMODB_TABLES_GB * (PRICES["dynamodb_storage_gb_month"]
                                            + PRICES["dynamodb_pitr_gb_month"] * pitr / max(1, kinds[
                                                "AWS::DynamoDB::Table"])),
                      f"assumed size; {pitr} tables with point-in-time recovery"))
    sweeper = functions(m.template)["SweeperFunction"]
    (schedule,) = sweeper.events_of("Schedule").values()
    sweeps = 30 * 86400 / parse_rate(schedule["Schedule"])
    sweep_units = request_units(m, m.sweep_dynamodb)
    sweep_sqs = sum(n for (service, _op), n in m.sweep_calls.items() if service == "sqs")
    sweep_cost = sweeps * (PRICES["lambda_request_per_million"] / 1e6
                           + sweeper.memory / 1024 * ASSUMED_DURATION_MS["SweeperFunction"] / 1000
                           * PRICES["lambda_gb_second_arm64"]
                           + sweep_units["rru"] * PRICES["dynamodb_rru_per_million"] / 1e6
                           + sweep_units["wru"] * PRICES["dynamodb_wru_per_million"] / 1e6
                           + sweep_sqs * PRICES["sqs_standard_per_million"] / 1e6)
    calls = ", ".join(f"{op} x{n}" for (_s, op), n in sorted(m.sweep_calls.items()))
    lines.append(Line("Sweeper on its schedule", sweeps, "runs", sweep_cost,
                      f"{schedule['Schedule']}; measured per run: {calls or 'no calls'} "
                      f"({sweep_units['rru']:g} RRU), assumed {ASSUMED_DURATION_MS['SweeperFunction']} ms"))
    queues = sum(len(spec.events_of("SQS")) for spec in functions(m.template).values())
    # Lambda long-polls each SQS event source with several connections (20 s waits) even when idle.
    idle_receives = queues * 5 * 3 * 60 * 24 * 30
    lines.append(Line("SQS event sources' idle polling", idle_receives, "requests",
                      max(0.0, idle_receives - 1e6) * PRICES["sqs_standard_per_million"] / 1e6,
                      f"assumed 5 pollers x 3 long polls/min on each of {queues} queues; the first 1 M "
                      "requests/month are free"))
    lines.append(Line("Lambda, API Gateway, Modal", 0, "", 0.0, "billed per use: nothing at rest"))
    return lines


def _quantity(q: float) -> str:
    return f"{q:,.0f}" if abs(q) >= 100 else f"{q:,.3g}"


# FLUX.1's transformer (black-forest-labs/FLUX.1-dev's config: 19 double and 38 single blocks, width 3072,
# 11.9 B parameters; 512 T5 tokens beside the image's, one per 16x16 pixels): the compute per denoising step.
_FLUX = {"params": 11.9e9, "blocks": 57, "width": 3072, "text_tokens": 512}


def _enhancement_note() -> str:
    """The prompt enhancer's price (catalog prompt_enhancer), in the cost page's credits paragraph."""
    from functions.core.catalog import get_catalog

    spec = get_catalog().prompt_enhancer
    if spec is None:
        return ""
    return (f" Prompt enhancement (`enhance_prompt`, or POST /api/prompts/enhance alone) adds {spec.credits:g} credits "
            f"a job: {spec.name} ({spec.parameters / 1e9:.2f} B parameters) writes at most {spec.max_new_tokens} "
            "tokens greedily on the job's GPU, a second or two on an H100 once it is loaded (it loads on a "
            "container's first such job and stays), shown in the job's timings as enhance.")


def flux_step_flops(width: int, height: int) -> float:
    """Dense layers 2·P·T, attention 4·L·d·T² (QKᵀ and AV) for T tokens: the transformer's compute, which
    dominates a FLUX step; the text encoder and the VAE are left out."""
    tokens = width * height / 256 + _FLUX["text_tokens"]
    return 2 * _FLUX["params"] * tokens + 4 * _FLUX["blocks"] * _FLUX["width"] * tokens ** 2


def pricing_section() -> list[str]:
    """How credits follow the work, and how far the rule is from the compute it stands for."""
    from functions.core.catalog import LORA_LOAD_WORK, MIN_WORK, get_catalog

    model = get_catalog().model("flux-dev")
    d = model.defaults
    rows, ratios = [], []
    for width, height in ((256, 256), (512, 512), (768, 768), (1024, 1024), (1536, 1536), (2048, 1024),
                          (2048, 2048)):
        priced = model.work({"width": width, "height": height, "steps": d.steps})
        compute = flux_step_flops(width, height) / flux_step_flops(d.width, d.height)
        rows.append(f"| {width}x{height} | {priced:.3f} | {compute:.3f} | {priced / compute:.2f} |")
        if width * height >= 512 * 512:
            ratios.append(priced / compute)
    low, high = min(ratios), max(ratios)
    margin = math.ceil((1 / low - 1) * 20) * 5  # the margin that covers the lowest ratio, in 5 % steps
    return [
        "## Credits follow the work",
        "",
        (f"A job costs a model's credits (per image, or per second of video) × n (× seconds, × the frames made "
         "against those the duration makes at the model's default frame rate) × its work: "
         f"`max({MIN_WORK}, width × height / default pixels × steps / default steps × passes / default passes)` "
         "(img2img counts the steps that run, steps × strength; passes: two a step where classifier-free guidance "
         "runs, one where it does not). Steps and passes are exact: each is the same computation whatever its "
         "number. "
         "Pixels are priced linearly, while a transformer's attention grows with their square and its text "
         "tokens do not shrink with the image: the table holds the rule against FLUX.1's compute per step "
         "(dense layers and attention, from its published configuration), relative to its default size. Between "
         f"512x512 and 2048x2048 the credits charged are {low:.2f}–{high:.2f} of the compute, so an operator who "
         f"prices an image at its default size with a {margin} % margin is covered at every size; below that the floor "
         "(a quarter of an image) charges more than the compute, for the fixed work of the text encoder, the "
         f"decode and the upload. Each LoRA adapter adds {LORA_LOAD_WORK} of one output at the default size: the "
         "GPU time of loading it into the model and removing it after (its download is cached by content hash), "
         "shown in the job's timings as lora_fetch and lora_load, not a surcharge." + _enhancement_note()),
        "",
        "| size | work priced | compute (FLUX.1 transformer) | priced ÷ compute |",
        "|---|---:|---:|---:|",
        *rows,
        "",
        ("A failed job is refunded in full, and a canceled one charged only the steps it ran, with one exception: a "
         "job whose output the safety checker blocked (error code `moderation_blocked`; docs/fields.md, "
         "Moderation) is charged in full. Its GPU time was spent, as on a success, and a refund would make "
         "probing the checker free; nothing of it is stored. The checker (a ViT-Base classifier on each image and "
         "on sampled frames of each video) adds milliseconds of the same GPU to every job and is not priced apart. "
         "A prompt the workspace's prompt policy refuses is a 400 before any job exists: nothing is charged. The "
         "submit reads the workspace's moderation policy (one GetItem, cached per warm container for "
         "key_cache_ttl_seconds; the measured calls below count it uncached)."),
    ]


def render(m: Measurement) -> str:
    lines = per_thousand_images(m)
    tail = idle_tail(m)
    rest = at_rest(m)
    aws_total = sum(line.cost for line in lines if not line.item.startswith("Modal"))
    modal_total = sum(line.cost for line in lines if line.item.startswith("Modal"))
    out = [
        "# What 1,000 images cost",
        "",
        (f"Generated by `python -m infra.bench_calls --jobs {m.jobs} --write docs/cost.md`; rerun it after changing "
        "a handler, the template or a price. Prices are **us-east-1 list prices as published in mid-2025**, "
        "written as data at the top of `infra/bench_calls.py`: check them against the AWS and Modal pricing "
        "pages before relying on the totals. Free tiers are left out unless a line says otherwise."),
        "",
        (f"Model: **{m.model}** on an **{m.gpu}** (functions/core/catalog.yaml), the model whose GPU time per image "
         "is published; the `create-image` tool's default is FLUX.2 [klein] on an L40S, not yet timed."),
        "",
        "## Per 1,000 images",
        "",
        "| item | quantity | unit | cost (USD) | basis |",
        "|---|---:|---|---:|---|",
        *[f"| {x.item} | {_quantity(x.quantity)} | {x.unit} | {x.cost:.4f} | {x.basis} |" for x in lines],
        f"| **AWS total** | | | **{aws_total:.4f}** | |",
        f"| **Modal total** | | | **{modal_total:.4f}** | |",
        (f"| **Total** | | | **{aws_total + modal_total:.4f}** | about ${(aws_total + modal_total) / 1000:.5f} "
        "per image |"),
        "",
        (f"Plus, once per burst of work: {tail.item.lower()}, {tail.quantity:g} {tail.unit} = "
        f"**${tail.cost:.2f}** ({tail.basis}). A burst of 1,000 images pays it once; 1,000 images spread one "
        "by one, more than 5 minutes apart, pay it 1,000 times, and then it dominates: lower the window for sparse traffic. "
        "Cold starts (Modal's snapshot restore, Lambda's init, billed since August 2025) add a little per "
        "container and are not counted."),
        "",
        ("Each GPU class waits its own window (catalog `scaledown_window`, the longest of its models'), so each "
         "burst ends with this idle tail. A shorter window trades it for more cold starts, each a snapshot restore "
         "(GPU memory snapshots are on for every class): the restore time to weigh it against is measured on Modal, "
         "which no session has had yet. The rule to apply once it is: an idle second and a restoring second bill the "
         "same GPU rate, so a window as long as the restore R keeps a sparse user's GPU cost within twice the least "
         "possible in hindsight (the ski-rental bound, whatever the gaps between requests); each second of window "
         "beyond R is paid for latency, sparing R of waiting to a request that comes within it."),
        "",
        "| class | GPU | scaledown_window | idle tail per burst (USD) | snapshot restore |",
        "|---|---|---:|---:|---|",
        *idle_tails(),
        "",
        "## GPU time per image, by model",
        "",
        ("From the last CUDA run of `python -m gpu.bench --full-size` the repo keeps (docs/full-size-rows.jsonl, "
         "rendered in docs/benchmarks.md): each text-to-image model at 1024x1024 and its default steps, under the "
         "speed settings those figures choose, priced at the rate of the GPU that measured it (a model whose catalog "
         "GPU is another says so: its time there is not measured). Random weights time the same work as real ones."),
        "",
        "| model | catalog GPU | measured on, variant | GPU-s per image | GPU cost per 1,000 (USD) | basis |",
        "|---|---|---|---:|---:|---|",
        *gpu_time_rows(measured_gpu_times()),
        "",
        *pricing_section(),
        "",
        "## At rest, per month (no traffic)",
        "",
        "| item | quantity | unit | cost (USD) | basis |",
        "|---|---:|---|---:|---|",
        *[f"| {x.item} | {_quantity(x.quantity)} | {x.unit} | {x.cost:.4f} | {x.basis} |" for x in rest],
        f"| **Total** | | | **{sum(x.cost for x in rest):.2f}** | |",
        "",
        "## Measured AWS calls per image",
        "",
        (f"{m.jobs} jobs, one at a time, through the real handlers against a moto server "
        "(each SQS batch holds one job's messages: the most event-source calls per job; under load, batches "
        "of up to 10 make them fewer). The key cache was off, so every request reads its key. Empty receives "
        f"({sum(m.calls.empty_receives.values())} while draining) are idle polling, priced at rest."),
        "",
        "| caller | service | operation | per image |",
        "|---|---|---|---:|",
        *[f"| {caller} | {service} | {op} | {n / m.jobs:g} |"
          for (caller, service, op), n in sorted(m.calls.ops.items())],
        "",
        ("Largest item per table after the run (bytes, DynamoDB's size rules): "
        + ", ".join(f"{lid} {m.max_item_bytes[name]}" for lid, name in m.tables.items())
        + ". Writes cost 1 WRU per KB and reads 1 RRU per 4 KB (0.5 eventually consistent), transactions "
        "double them, and each global secondary index an item write touches costs another write."),
        "",
        ("Not counted: the dispatch function's Secrets Manager read of the Modal token (cached 5 minutes per "
        "container: a few calls an hour at $0.05 per 10,000), the worker's STS AssumeRoleWithWebIdentity "
        "(free), Modal's own API calls (free)."),
        "",
        ("Indicative only, this machine (2 cores, moto on loopback): mean local handler time per invocation, "
        + ", ".join(f"{k.removesuffix('Function')} {1000 * m.local_seconds[k] / max(1, m.invocations[k]):.0f} ms"
                    for k in sorted(m.invocations)) + " (the dispatch includes nothing of the GPU work)."),
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--write", type=Path, help="write the page here (e.g. docs/cost.md)")
    args = parser.parse_args(argv)
    page = render(measure(args.jobs))
    if args.write:
        args.write.write_text(page)
    print(page)


if __name__ == "__main__":
    main()
