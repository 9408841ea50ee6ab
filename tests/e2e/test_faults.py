"""Faults injected into a running `darkroom dev`, each followed by the exact end state (fault_helpers).

Each test starts its own stack on one shared data dir (the tiny models are built once; the state carries
over, as it would for a developer), with compressed deadlines: the sweeper runs every 2 s, a queued job is
overdue after 10 s (a dispatched one after its simulated start plus 10 s) and a running one after 30 s (the
settings' minimums).
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from infra.local.receiver import WebhookReceiver
from tests.e2e.fault_helpers import (
    assert_end_state,
    aws,
    balance,
    child_pid,
    job_item,
    pid_alive,
    queue_url,
    submit,
    wait_terminal,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-faults")]

FAST = {
    "DARKROOM_LOCAL_SWEEP_SECONDS": "2",
    "DARKROOM_DISPATCH_DEADLINE_SECONDS": "10",
    "DARKROOM_START_MARGIN_SECONDS": "10",
    "DARKROOM_RUN_DEADLINE_SECONDS": "30",
    "DARKROOM_WEBHOOK_RETRY_SCHEDULE": "1,1,1",
}
# A job that stays in inference for a while on the tiny pipelines (the longest the catalog allows).
SLOW = {"model": "playground-v2"}
SLOW_INPUT = {"steps": 60, "size": "512x512"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("faults")


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    rx = WebhookReceiver()
    yield rx
    rx.close()


@contextmanager
def running(launch, data_dir, **env: str):
    stack = launch(data_dir, extra_env={**FAST, **env})
    try:
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            yield stack, client, {"Authorization": stack.api_key}
    finally:
        if stack.process.poll() is None:
            code = stack.stop()
            assert code == 0, f"darkroom dev did not stop cleanly (exit {code}):\n{stack.log_tail()}"
        else:
            stack.stop()


def _number(value):
    # DynamoDB numbers come back as Decimal.
    return int(value) if value == int(value) else float(value)


def submit_slow(client, auth, webhook) -> str:
    response = client.post("/api/run", headers=auth, json={
        "tool": "create-image", **SLOW, "input": {"prompt": "a long one", **SLOW_INPUT}, "webhook": webhook})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_stack_killed_mid_job_then_restarted(launch, data_dir, receiver):
    """SIGKILL of `darkroom dev` (the in-process worker with it) while one job runs and one waits: after a
    restart on the same data dir the sweeper fails and refunds the running one (its deadline passes) and
    dispatches the waiting one again, which succeeds."""
    with running(launch, data_dir, DARKROOM_WORKER_DELAY_SECONDS="1") as (stack, client, auth):
        initial = balance(client, auth)
        slow = submit_slow(client, auth, receiver.url)
        wait_until(lambda: job_item(stack, slow)["status"] == "running", 60, "the slow job running")
        # Dispatched, and waiting for the one worker the slow job holds.
        waiting = submit(client, auth, "the one behind it", receiver.url)
        wait_until(lambda: job_item(stack, waiting).get("dispatch", {}).get("call_id"), 30, "the second dispatched")
        waiting_status = job_item(stack, waiting)["status"]
        assert job_item(stack, slow)["status"] == "running", "the slow job finished too soon for this test"
        moto_pid = child_pid(stack.process.pid, "infra.local.moto_server")
        stack.process.send_signal(signal.SIGKILL)
        stack.process.wait(timeout=10)
        # The moto server notices its parent is gone and exits (its state is already on disk).
        wait_until(lambda: not pid_alive(moto_pid), 10, "the orphaned moto server exiting")
    assert waiting_status == "queued"

    with running(launch, data_dir, DARKROOM_WORKER_DELAY_SECONDS="1") as (stack, client, auth):
        items = assert_end_state(stack, client, auth, [slow, waiting], initial, receiver)
    assert items[slow]["status"] == "failed" and items[slow]["error"]["code"] == "timeout", items[slow]
    assert items[waiting]["status"] == "succeeded", (items[waiting].get("error"), items[waiting].get("attempts"), items[waiting].get("dispatch"))
    assert items[waiting]["attempts"] >= 2  # dispatched before the kill, and again by the sweeper after it


def test_dispatch_fails_twice_then_recovers(launch, data_dir, receiver):
    """The GPU port raises on the first two spawns (DARKROOM_LOCAL_FAULTS=dispatch:2); the sweeper puts the
    job back on the queue each time and the third spawn runs it: one success, charged once, one webhook."""
    with running(launch, data_dir, DARKROOM_LOCAL_FAULTS="dispatch:2") as (stack, client, auth):
        initial = balance(client, auth)
        job = submit(client, auth, "after an outage", receiver.url)
        items = assert_end_state(stack, client, auth, [job], initial, receiver)
    assert items[job]["status"] == "succeeded", items[job]
    assert items[job]["attempts"] == 3  # two spawns raised, the third ran it


def test_results_twice_and_out_of_order(launch, data_dir, receiver):
    """Results arrive early (succeeded before the job has even started), twice, and stale after the end: one
    terminal transition, the worker's own outputs, one charge, one webhook."""
    with running(launch, data_dir, DARKROOM_WORKER_DELAY_SECONDS="3") as (stack, client, auth):
        initial = balance(client, auth)
        sqs = aws(stack, "sqs")
        results = queue_url(stack, "results")
        job = submit(client, auth, "raced", receiver.url)

        def send(outcome: str, **fields) -> None:
            body = json.dumps({"job_id": job, "outcome": outcome, **fields}, default=_number)
            sqs.send_message(QueueUrl=results, MessageBody=body)

        forged = [{"key": f"dev/generations/{job}/forged.png", "content_type": "image/png", "width": 1, "height": 1}]
        # While the worker still holds the job back: a success before any start, twice, then a start.
        send("succeeded", outputs=forged)
        send("succeeded", outputs=forged)
        send("started")
        items = wait_terminal(stack, [job])
        assert items[job]["status"] == "succeeded"
        real = items[job]["outputs"]
        assert real and all("forged" not in o["key"] for o in real)
        # Once its webhook is delivered and recorded. (Duplicates racing the first delivery can still deliver
        # the event twice, same webhook-id: reported to the webhooks' owner, not covered here.)
        wait_until(lambda: any(d.get("outcome") == "delivered" for d in job_item(stack, job).get("deliveries", [])),
                   60, "the webhook delivered")
        # After the end: the worker's result again (twice), a failure and a start.
        send("succeeded", outputs=real)
        send("succeeded", outputs=real)
        send("failed", error={"code": "generation_failed", "message": "late"})
        send("started")

        def drained() -> bool:
            attributes = sqs.get_queue_attributes(QueueUrl=results, AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
            return all(v == "0" for v in attributes.values())

        wait_until(drained, 60, "the results queue drained")
        items = assert_end_state(stack, client, auth, [job], initial, receiver)
        assert items[job]["outputs"] == real and not items[job].get("error")


def test_output_upload_fails_for_one_job(launch, data_dir, receiver):
    """S3 refuses the first output upload (DARKROOM_LOCAL_FAULTS=upload:1): that job fails with the error
    in its body, refunded, its `failed` webhook delivered; the next job is unaffected."""
    with running(launch, data_dir, DARKROOM_LOCAL_FAULTS="upload:1") as (stack, client, auth):
        initial = balance(client, auth)
        broken = submit(client, auth, "lost upload", receiver.url)
        wait_terminal(stack, [broken])
        fine = submit(client, auth, "next one", receiver.url)
        items = assert_end_state(stack, client, auth, [broken, fine], initial, receiver)
        shown = client.get(f"/api/generations/{broken}", headers=auth).json()
    assert items[broken]["status"] == "failed" and items[fine]["status"] == "succeeded"
    assert items[broken]["error"]["code"] == "generation_failed"
    assert "injected fault: upload" in items[broken]["error"]["message"]
    assert "injected fault: upload" in json.dumps(shown["error"])


def test_moto_server_killed_mid_run(launch, data_dir, receiver):
    """The moto server (all of "AWS") is SIGKILLed while jobs run: the stack starts it again on the same port
    from its saved state, and every job acknowledged before the kill still ends exactly."""
    with running(launch, data_dir) as (stack, client, auth):
        initial = balance(client, auth)
        jobs = [submit(client, auth, "first", receiver.url, steps=12, size="512x512")] + [
            submit(client, auth, f"job {i}", receiver.url) for i in range(2)]
        wait_until(lambda: job_item(stack, jobs[0])["status"] == "running", 60, "the first job running")
        moto_pid = child_pid(stack.process.pid, "infra.local.moto_server")
        os.kill(moto_pid, signal.SIGKILL)

        def restarted() -> bool:
            try:
                return (child_pid(stack.process.pid, "infra.local.moto_server") != moto_pid
                        and httpx.get(f"{stack.moto_endpoint}/moto-api/", timeout=2).status_code == 200)
            except (LookupError, httpx.HTTPError):
                return False

        wait_until(restarted, 30, "the moto server restarted on its port")
        assert_end_state(stack, client, auth, jobs, initial, receiver)
        before = balance(client, auth)
        later = submit(client, auth, "after the restart", receiver.url)
        items = assert_end_state(stack, client, auth, [later], before, receiver)
        assert items[later]["status"] == "succeeded"
