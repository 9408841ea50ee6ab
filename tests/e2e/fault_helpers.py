"""What the fault, restart and stress tests share: a signed-webhook receiver on loopback, a view of the
stack's own tables through its moto endpoint, and one check of the end state that every fault must leave.

The end state, exactly: every job terminal; the workspace balance is the starting balance less the cost of
the jobs that succeeded and the steps run by those canceled while running, each failed or queued-canceled job
refunded exactly its cost; each job's terminal
event delivered exactly once (one `webhook-id`), signed, and no other events.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import boto3
import httpx
from standardwebhooks.webhooks import Webhook

from infra.local.receiver import WebhookReceiver

TERMINAL = {"succeeded", "failed", "canceled"}
STATUS_WORD = {"succeeded": "success", "failed": "error", "canceled": "error"}


def aws(stack, service: str):
    return boto3.client(service, endpoint_url=stack.moto_endpoint, region_name="us-east-1",
                        aws_access_key_id="local", aws_secret_access_key="local")


def jobs_table(stack) -> str:
    return next(name for name in aws(stack, "dynamodb").list_tables()["TableNames"] if "job" in name.lower())


def job_item(stack, job_id: str) -> dict:
    from boto3.dynamodb.types import TypeDeserializer

    item = aws(stack, "dynamodb").get_item(TableName=jobs_table(stack), Key={"id": {"S": job_id}}).get("Item")
    assert item, f"job {job_id} is not in the jobs table"
    return {k: TypeDeserializer().deserialize(v) for k, v in item.items()}


def queue_url(stack, name_part: str) -> str:
    urls = aws(stack, "sqs").list_queues()["QueueUrls"]
    return next(u for u in urls if name_part.lower() in u.lower() and "dead" not in u.lower())


def balance(client: httpx.Client, auth: dict) -> float:
    response = client.get("/api/account", headers=auth)
    assert response.status_code == 200, response.text
    return response.json()["credits"]


def submit(client: httpx.Client, auth: dict, prompt: str, webhook: str | None = None, **inp) -> str:
    body = {"tool": "create-image", "input": {"prompt": prompt, "size": "256x256", **inp}}
    if webhook:
        body["webhook"] = webhook
    response = client.post("/api/run", json=body, headers=auth)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not within {timeout:.0f}s: {what}")


def wait_terminal(stack, ids: list[str], timeout: float = 120) -> dict[str, dict]:
    def done():
        items = {i: job_item(stack, i) for i in ids}
        return items if all(item["status"] in TERMINAL for item in items.values()) else None

    try:
        return wait_until(done, timeout, f"jobs {ids} terminal")
    except AssertionError:
        states = {i: job_item(stack, i)["status"] for i in ids}
        raise AssertionError(f"jobs not terminal within {timeout:.0f}s: {states}\n{stack.log_tail(3000)}") from None


def webhook_secret(stack) -> str:
    return dict(line.split("=", 1) for line in stack.env_file.read_text().splitlines() if "=" in line)[
        "DARKROOM_WEBHOOK_SECRET"]


def assert_end_state(stack, client: httpx.Client, auth: dict, ids: list[str], initial: float,
                     receiver: WebhookReceiver | None = None, *, webhook_timeout: float = 60) -> dict[str, dict]:
    """The exact end state (module docstring). Returns the jobs as stored."""
    items = wait_terminal(stack, ids)
    for job_id, item in items.items():
        shown = client.get(f"/api/generations/{job_id}", headers=auth).json()
        assert shown["status"] == STATUS_WORD[item["status"]], (job_id, shown, item["status"])
        if item["status"] == "succeeded":
            assert not item.get("refunded"), f"{job_id} succeeded and was refunded"
        elif item["status"] == "canceled" and item.get("billed_progress"):
            done = item["billed_progress"]  # canceled while running: the steps not run are refunded
            expected = round(float(item["cost"]) * (1 - int(done["step"]) / int(done["total"])), 6)
            assert float(item.get("refunded") or 0) == expected, f"{job_id} canceled at {done}: {item.get('refunded')}"
        else:
            assert item.get("refunded") == item["cost"], f"{job_id} {item['status']}: refunded {item.get('refunded')}"
    charged = sum(float(item["cost"]) - float(item.get("refunded") or 0) for item in items.values())
    assert abs(balance(client, auth) - (initial - charged)) < 1e-6, (
        f"balance {balance(client, auth)} != {initial} - {charged} "
        f"({ {i: (it['status'], it['cost']) for i, it in items.items()} })")
    if receiver is not None:
        expected = {f"evt_{job_id}_{item['status']}" for job_id, item in items.items()}
        wait_until(lambda: expected <= set(receiver.ids()), webhook_timeout, f"webhooks {sorted(expected)}")
        time.sleep(1)  # a duplicate would come right behind the first delivery: give it a chance to show
        received = receiver.ids()
        ours = {k: v for k, v in received.items() if any(job_id in k for job_id in ids)}
        assert ours == dict.fromkeys(expected, 1), f"deliveries per webhook-id: {ours}"
        secret = webhook_secret(stack)
        for request in receiver.requests:
            if request["headers"]["webhook-id"] in expected:
                Webhook(secret).verify(request["body"], request["headers"])
    return items


def child_pid(parent: int, marker: str) -> int:
    """The pid of `parent`'s child process whose command line contains `marker` (Linux /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and marker in cmdline:
            return int(entry.name)
    raise LookupError(f"no child of {parent} runs {marker!r}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
