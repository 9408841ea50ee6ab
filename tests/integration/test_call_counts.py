"""The cost page's call counts are what the handlers really make: 2 jobs through the real stack, counted.

If a handler gains or loses an AWS call, this fails until docs/cost.md is regenerated
(`python -m infra.bench_calls --jobs 20 --write docs/cost.md`), so the page cannot silently drift.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra import bench_calls

COST_PAGE = Path(__file__).resolve().parents[2] / "docs" / "cost.md"


def page_counts() -> dict[tuple[str, str, str], float]:
    text = COST_PAGE.read_text()
    table = text.split("## Measured AWS calls per image", 1)[1]
    rows = re.findall(r"^\| ([^|]+) \| ([a-z0-9]+) \| ([A-Za-z]+(?: \([a-z]+\))?) \| ([0-9.]+) \|$", table, re.MULTILINE)
    return {(caller, service, op): float(n) for caller, service, op, n in rows}


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> bench_calls.Measurement:
    return bench_calls.measure(jobs=2, data_dir=tmp_path_factory.mktemp("bench-data"))


def test_every_job_ran_the_whole_flow(measured):
    assert measured.deliveries == 2  # one signed webhook per job, answered 200
    # Per job: the submit, the status read, and the image's download through its media link.
    assert dict(+measured.invocations) == {"ApiFunction": 6, "DispatchFunction": 2, "CompleteFunction": 2,
                                          "WebhooksFunction": 2}
    assert measured.api_requests == 6
    calls = measured.calls.by_service()
    assert calls[("s3", "PutObject")] == 4  # an image and its thumbnail per job
    assert calls[("s3", "GetObject")] == 2  # the download: the api reads the file it serves
    # The public origin and the link key are read once per container, not per job.
    assert {key[1:] for key in measured.cached_calls} == bench_calls.PER_CONTAINER
    assert all(n == 1 for n in measured.cached_calls.values())
    assert calls[("dynamodb", "TransactWriteItems")] == 2  # the job written with its credit reservation


def test_the_cost_page_shows_the_measured_calls(measured):
    per_image = {key: n / measured.jobs for key, n in measured.calls.ops.items()}
    page = page_counts()
    # Progress writes are paced by their own round trips (one in flight, at each step), so only their floor is
    # exact.
    progress = (bench_calls.GPU_WORKER, "dynamodb", bench_calls.PROGRESS_OP)
    assert per_image.pop(progress) >= 2 and page.pop(progress) >= 2
    assert per_image == page


def test_the_sweep_at_rest_is_counted_apart(measured):
    assert measured.sweep_calls  # it queries for stuck jobs every run
    assert all(service == "dynamodb" and op == "Query" for service, op in measured.sweep_calls)
    assert not any(op == "Query" for (_caller, _service, op) in measured.calls.ops)
    assert not measured.invocations["SweeperFunction"]


def test_request_units_follow_the_on_demand_rules(measured):
    jobs = measured.tables["JobsTable"]
    indexes = bench_calls._indexes(measured.template, measured.tables)
    # A status write sets the by-workspace-status key (delete + put there), changes what by-workspace
    # projects (ALL), and leaves the KEYS_ONLY deadline index alone.
    update = {"TableName": jobs, "UpdateExpression": "SET #s = :s, workspace_status = :ws",
              "ExpressionAttributeNames": {"#s": "status"}}
    assert bench_calls._gsi_writes(jobs, "Update", update, indexes) == 3
    units = bench_calls.request_units(measured, [
        ("GetItem", {"TableName": jobs, "ConsistentRead": True}, {}),
        ("GetItem", {"TableName": jobs}, {}),
        ("UpdateItem", update, {}),
    ])
    write_units = -(-measured.max_item_bytes[jobs] // 1024)
    assert units == {"rru": 1.5, "wru": write_units + 3}


def test_every_call_is_granted_to_its_caller_by_the_template(measured):
    # Deployed, a call the caller's role does not allow is an AccessDenied at run time: catch it here, from the
    # calls the real handlers and worker made, each action on the very table, index, object key, queue, parameter
    # or secret it named (a grant on the table but not its index, or on another key prefix, fails here).
    assert {principal for principal, _ in measured.calls.actions} == {
        "ApiFunction", "DispatchFunction", "CompleteFunction", "WebhooksFunction", "SweeperFunction",
        bench_calls.WORKER_ROLE}
    assert {principal for principal, *_ in measured.calls.requests} == {p for p, _ in measured.calls.actions}
    assert bench_calls.ungranted(measured.calls.requests, measured.template, measured.resolver) == []
    # the worker's keys, for one: its outputs under <workspace>/generations/, which its role names
    worker_puts = {r for p, a, r in measured.calls.requests if p == bench_calls.WORKER_ROLE and a == "s3:PutObject"}
    assert worker_puts and all("/generations/" in r for r in worker_puts)


def test_a_grant_covers_only_what_it_names():
    table = "arn:aws:dynamodb:us-east-1:123456789012:table/jobs"
    statements = [{"Effect": "Allow", "Action": ["dynamodb:Query", "dynamodb:GetItem"], "Resource": table},
                  {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::out/*/generations/*"}]
    assert bench_calls.granted(statements, "dynamodb:getitem", table)  # actions match case-insensitively
    assert not bench_calls.granted(statements, "dynamodb:Query", f"{table}/index/by-workspace")  # the index: no
    assert not bench_calls.granted(statements, "dynamodb:PutItem", table)
    assert bench_calls.granted(statements, "s3:PutObject", "arn:aws:s3:::out/ws1/generations/a.png")
    assert not bench_calls.granted(statements, "s3:PutObject", "arn:aws:s3:::out/ws1/uploads/a.png")
    assert not bench_calls.granted(statements, "s3:PutObject", "arn:aws:s3:::outputs/ws1/generations/a.png")
    assert not bench_calls.granted([{**statements[0], "Effect": "Deny"}], "dynamodb:GetItem", table)


def test_each_call_names_the_arn_iam_checks():
    assert bench_calls.iam_requests("dynamodb", "Query", {"TableName": "jobs", "IndexName": "by-workspace"}) == [
        ("dynamodb:Query", "arn:aws:dynamodb:us-east-1:123456789012:table/jobs/index/by-workspace")]
    assert bench_calls.iam_requests("s3", "DeleteObjects", {"Bucket": "out", "Delete": {"Objects": [
        {"Key": "w/generations/a.png"}, {"Key": "w/generations/b.png"}]}}) == [
        ("s3:DeleteObject", "arn:aws:s3:::out/w/generations/a.png"),
        ("s3:DeleteObject", "arn:aws:s3:::out/w/generations/b.png")]
    assert bench_calls.iam_requests("sqs", "SendMessageBatch", {"QueueUrl": "http://127.0.0.1:5000/123456789012/jobs"}) \
        == [("sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:jobs")]
    # a read is authorized by GetObject, and its missing key is a 404 only with ListBucket on the bucket
    assert bench_calls.iam_requests("s3", "HeadObject", {"Bucket": "out", "Key": "w/uploads/u"}) == [
        ("s3:GetObject", "arn:aws:s3:::out/w/uploads/u"), ("s3:ListBucket", "arn:aws:s3:::out")]
    assert bench_calls.iam_requests("s3", "ListObjectsV2", {"Bucket": "out", "Prefix": "w/files/"}) == [
        ("s3:ListBucket", "arn:aws:s3:::out")]
    assert bench_calls.iam_requests("s3", "CopyObject", {"Bucket": "ad", "Key": "w/loras/l", "CopySource": {
        "Bucket": "out", "Key": "w/uploads/u"}}) == [
        ("s3:GetObject", "arn:aws:s3:::out/w/uploads/u"), ("s3:ListBucket", "arn:aws:s3:::out"),
        ("s3:PutObject", "arn:aws:s3:::ad/w/loras/l")]
    assert bench_calls.iam_requests("ssm", "GetParameter", {"Name": "/stack/public-base-url"}) == [
        ("ssm:GetParameter", "arn:aws:ssm:us-east-1:123456789012:parameter/stack/public-base-url")]
    with pytest.raises(ValueError, match="no IAM resource rule for kms:Decrypt"):
        bench_calls.iam_requests("kms", "Decrypt", {"CiphertextBlob": b""})


def test_transactions_need_the_actions_of_their_items():
    transaction = {"TransactItems": [{"Put": {"TableName": "jobs"}}, {"Update": {"TableName": "workspaces"}},
                                     {"ConditionCheck": {"TableName": "jobs"}}]}
    arn = "arn:aws:dynamodb:us-east-1:123456789012:table/"
    assert bench_calls.iam_requests("dynamodb", "TransactWriteItems", transaction) == [
        ("dynamodb:ConditionCheckItem", f"{arn}jobs"), ("dynamodb:PutItem", f"{arn}jobs"),
        ("dynamodb:UpdateItem", f"{arn}workspaces")]
