"""The job pipeline through the real handlers and a moto server: submit → dispatch → worker → complete."""

from __future__ import annotations

import io
import threading

import boto3
import pytest
from PIL import Image

from functions.core import clock
from functions.core.errors import TransitionRejected
from functions.core.jobs import Job, JobStatus, JobStore
from functions.core.messages import ResultMessage
from functions.sweeper.logic import MAX_DISPATCH_ATTEMPTS, SweepIncomplete, sweep
from infra.local.lambda_runtime import LambdaContext
from tests.integration.conftest import PUBLIC_BASE_URL, fetch_media

CTX = LambdaContext("DispatchFunction", 512, 60)

RUN = {"tool": "create-image", "input": {"prompt": "a lighthouse", "size": "256x256", "seed": 7}}


def submit(api, tenant, body=RUN, **headers):
    resp = api.post("/api/run", json=body, headers={**tenant.headers, **headers})
    assert resp.status_code == 202, resp.get_data(as_text=True)
    return resp.json["id"]


def test_submit_writes_queued_job_and_enqueues_it(world, api, tenant):
    job_id = submit(api, tenant)
    job = JobStore().get(job_id)
    assert job.status == JobStatus.QUEUED and job.workspace_id == tenant.workspace_id
    assert job.params["width"] == 256 and job.params["seed"] == 7
    assert world.messages("JobsQueue") == [{"job_id": job_id}]


def test_pipeline_runs_to_success_and_writes_outputs(world, api, tenant, dispatcher, drain):
    job_id = submit(api, tenant)
    assert drain("DispatchFunction", "JobsQueue") == 1
    assert dispatcher.spawned == [job_id]
    job = JobStore().get(job_id)
    assert job.status == JobStatus.RUNNING and job.dispatch["call_id"] == "inline-1"
    assert job.progress["step"] == job.progress["total"] == 4
    assert drain("CompleteFunction", "ResultsQueue") == 2  # "started" and the result
    job = JobStore().get(job_id)
    assert job.status == JobStatus.SUCCEEDED
    s3 = boto3.client("s3", endpoint_url=world.endpoint, region_name="us-east-1")
    bucket = world.physical["OutputsBucket"].ref
    image = Image.open(io.BytesIO(s3.get_object(Bucket=bucket, Key=job.outputs[0].key)["Body"].read()))
    assert image.format == "PNG" and image.size == (256, 256)
    assert job.outputs[0].key.startswith(f"{tenant.workspace_id}/")
    thumb = Image.open(io.BytesIO(s3.get_object(Bucket=bucket, Key=job.outputs[0].thumbnail_key)["Body"].read()))
    assert thumb.format == "JPEG"
    body = api.get(f"/api/generations/{job_id}", headers=tenant.headers).json
    assert body["status"] == "success" and body["output"].startswith(f"{PUBLIC_BASE_URL}/media/")
    assert fetch_media(api, body["output"]) == s3.get_object(Bucket=bucket, Key=job.outputs[0].key)["Body"].read()


def test_a_result_the_queue_refuses_for_a_while_is_sent_again_not_lost(world, api, tenant, dispatcher, drain,
                                                                          monkeypatch):
    """The result is the work's only record: a send that fails past botocore's retries is tried again (a failed
    call would be retried by Modal to no effect, and the job failed at its run deadline with its outputs)."""
    from botocore.exceptions import ClientError

    from functions.core import messages
    from gpu import worker

    send, refused, waits = messages.send, [], []

    def refusing_twice(queue_url, message, **kwargs):
        if getattr(message, "outcome", None) == "succeeded" and len(refused) < 2:
            refused.append(message.job_id)
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "SendMessage")
        return send(queue_url, message, **kwargs)

    monkeypatch.setattr(messages, "send", refusing_twice)
    monkeypatch.setattr(worker, "_wait", waits.append)
    job_id = submit(api, tenant)
    assert drain("DispatchFunction", "JobsQueue") == 1
    assert refused == [job_id, job_id] and waits == list(worker.REPORT_RETRY_DELAYS[:2])
    assert drain("CompleteFunction", "ResultsQueue") == 2
    assert JobStore().get(job_id).status == JobStatus.SUCCEEDED


def test_dispatch_skips_canceled_job(world, api, tenant, dispatcher, drain):
    job_id = submit(api, tenant)
    resp = api.post(f"/api/generations/{job_id}/cancel", headers=tenant.headers)
    assert resp.status_code == 200 and resp.json["status"] == "error"
    drain("DispatchFunction", "JobsQueue")
    assert dispatcher.spawned == []
    assert JobStore().get(job_id).status == JobStatus.CANCELED


def test_redelivered_job_message_spawns_once(world, api, tenant, dispatcher):
    from functions.dispatch.handler import handler

    job_id = submit(api, tenant)
    record = {"messageId": "m-1", "receiptHandle": "r", "body": f'{{"job_id": "{job_id}"}}',
              "attributes": {}, "messageAttributes": {}, "eventSource": "aws:sqs",
              "eventSourceARN": world.physical["JobsQueue"].attrs["Arn"], "awsRegion": "us-east-1"}
    for _ in range(2):
        assert handler({"Records": [record]}, CTX) == {"batchItemFailures": []}
    assert dispatcher.spawned == [job_id]


def test_spawn_failure_is_a_batch_item_failure_and_job_stays_dispatchable(world, api, tenant, failing_dispatcher):
    from functions.dispatch import handler as dispatch_handler

    job_id = submit(api, tenant)
    record = {"messageId": "m-2", "receiptHandle": "r", "body": f'{{"job_id": "{job_id}"}}', "attributes": {},
              "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": "us-east-1",
              "eventSourceARN": world.physical["JobsQueue"].attrs["Arn"]}
    assert dispatch_handler.handler({"Records": [record]}, CTX) == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}
    job = JobStore().get(job_id)
    assert job.status == JobStatus.QUEUED and job.dispatch is None  # the claim was released for the retry


def test_result_applied_twice_is_a_noop(world, api, tenant):
    job_id = submit(api, tenant, body={**RUN, "webhook": "http://127.0.0.1:9/hook"})
    store = JobStore()
    store.transition(store.get(job_id), JobStatus.RUNNING)
    from functions.complete.logic import complete

    result = ResultMessage(job_id=job_id, outcome="failed", error={"code": "oom", "message": "out of memory"})
    assert complete(result) == JobStatus.FAILED
    first = store.get(job_id)
    assert complete(result) == JobStatus.FAILED
    again = store.get(job_id)
    assert again.status == JobStatus.FAILED and again.finished_at == first.finished_at
    events = world.messages("WebhooksQueue")
    # Re-emitted with the same event id (a crash between write and send must not lose it); receivers dedupe.
    assert {e["event_id"] for e in events} == {f"evt_{job_id}_failed"}
    assert all(e["event"] == "generation.failed" for e in events)


def test_result_after_cancel_keeps_canceled(world, api, tenant):
    from functions.complete.logic import complete

    job_id = submit(api, tenant)
    store = JobStore()
    store.transition(store.get(job_id), JobStatus.RUNNING)
    assert api.post(f"/api/generations/{job_id}/cancel", headers=tenant.headers).status_code == 200
    assert complete(ResultMessage(job_id=job_id, outcome="succeeded")) is None
    assert store.get(job_id).status == JobStatus.CANCELED
    # Canceling again is idempotent; canceling a job that succeeded is a conflict.
    assert api.post(f"/api/generations/{job_id}/cancel", headers=tenant.headers).status_code == 200
    done = submit(api, tenant)
    store.transition(store.get(done), JobStatus.RUNNING)
    complete(ResultMessage(job_id=done, outcome="succeeded"))
    resp = api.post(f"/api/generations/{done}/cancel", headers=tenant.headers)
    assert resp.status_code == 409 and resp.json["message"].startswith(f"Generation {done} already finished")


def test_racing_terminal_transitions_exactly_one_wins(world, api, tenant):
    job_id = submit(api, tenant)
    store = JobStore()
    store.transition(store.get(job_id), JobStatus.RUNNING)
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def attempt(target: JobStatus) -> None:
        barrier.wait()
        try:
            _, applied = JobStore().transition(store.get(job_id), target)
            outcomes.append(f"{target}:{'applied' if applied else 'noop'}")
        except TransitionRejected:
            outcomes.append("rejected")

    threads = [threading.Thread(target=attempt, args=(JobStatus.FAILED if i % 2 else JobStatus.CANCELED,))
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(o.endswith(":applied") for o in outcomes) == 1
    final = store.get(job_id).status
    assert all(o == "rejected" or o.startswith(final.value) for o in outcomes)


def test_sweeper_requeues_a_lost_job_then_fails_it(world, tenant):
    store = JobStore()
    now = clock.now()
    job = Job(id=clock.new_object_id(now), workspace_id=tenant.workspace_id, model="sdxl-turbo",
              task="text-to-image", params={"prompt": "x"}, created_at=now, deadline=now + 1)
    store.create(job)  # written, but its queue message was never sent
    # Other tests' jobs share the table, so assert on this job only.
    for attempt in range(MAX_DISPATCH_ATTEMPTS):
        later = clock.now() + 400 * (attempt + 1)  # past each dispatch deadline (300 s), within the queue's
        sweep(now=later)
        assert {"job_id": job.id} in world.messages("JobsQueue")
        assert store.get(job.id).status == JobStatus.QUEUED
        assert store.claim_dispatch(job.id, f"claim-{attempt}", later)  # a dispatcher took it and then lost it
    sweep(now=clock.now() + 86400)
    failed = store.get(job.id)
    assert failed.status == JobStatus.FAILED and failed.error.code == "timeout"
    assert job.id not in store.overdue(clock.now() + 90000)  # finished jobs leave the sweeper's index


def test_sweeper_fails_a_job_stuck_running(world, api, tenant):
    job_id = submit(api, tenant)
    store = JobStore()
    store.transition(store.get(job_id), JobStatus.RUNNING)
    assert sweep(now=clock.now() + 7200)["failed"] >= 1
    assert store.get(job_id).status == JobStatus.FAILED


def _webhooks_queue_down(monkeypatch) -> None:
    """Sends to the webhooks queue fail (SQS throttling past botocore's retries, say); the others go through."""
    from botocore.exceptions import ClientError

    from functions.core import messages
    from functions.core.settings import get_settings

    send = messages.send

    def failing(queue_url, message, **kwargs):
        if queue_url == get_settings().webhooks_queue_url:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "SendMessage")
        return send(queue_url, message, **kwargs)

    monkeypatch.setattr(messages, "send", failing)


def test_a_webhook_event_the_sweeper_could_not_queue_is_queued_by_the_next_sweep(world, api, tenant, monkeypatch):
    """The sweeper fails a job stuck running, but the webhook event cannot be queued: the job is failed (and
    refunded), and out of the sweeper's index it would never get its webhook. Marked, the next sweep queues it."""

    job_id = submit(api, tenant, body={**RUN, "webhook": "http://127.0.0.1:9/hook"})
    store = JobStore()
    store.transition(store.get(job_id), JobStatus.RUNNING)
    world.messages("WebhooksQueue")  # the started event
    later = clock.now() + 7200
    with monkeypatch.context() as patch:
        _webhooks_queue_down(patch)
        with pytest.raises(SweepIncomplete, match=job_id):
            sweep(now=later)
    failed = store.get(job_id)
    assert failed.status == JobStatus.FAILED and failed.refunded == failed.cost and failed.event_unsent
    assert world.messages("WebhooksQueue") == []
    assert sweep(now=later + 60)["event resent"] >= 1
    (event,) = [m for m in world.messages("WebhooksQueue") if m["job_id"] == job_id]
    assert event["event_id"] == f"evt_{job_id}_failed" and event["event"] == "generation.failed"
    assert not store.get(job_id).event_unsent and job_id not in store.overdue(later + 90000)
    sweep(now=later + 120)
    assert [m for m in world.messages("WebhooksQueue") if m["job_id"] == job_id] == []  # once


def test_one_job_the_sweeper_cannot_sweep_does_not_stop_the_others(world, api, tenant, monkeypatch):
    first, second = submit(api, tenant), submit(api, tenant)
    store = JobStore()
    for job_id in (first, second):
        store.transition(store.get(job_id), JobStatus.RUNNING)
    get = JobStore.get

    def get_failing_for_first(self, job_id, **kwargs):
        if job_id == first:
            raise RuntimeError("DynamoDB throttled this read")
        return get(self, job_id, **kwargs)

    monkeypatch.setattr(JobStore, "get", get_failing_for_first)
    with pytest.raises(SweepIncomplete, match=first):
        sweep(now=clock.now() + 7200)
    monkeypatch.setattr(JobStore, "get", get)
    assert store.get(second).status == JobStatus.FAILED  # swept all the same
    assert store.get(first).status == JobStatus.RUNNING  # and the next sweep takes it
    sweep(now=clock.now() + 7200)
    assert store.get(first).status == JobStatus.FAILED


def test_a_long_job_that_reports_progress_is_not_failed_by_its_run_deadline(world, api, tenant):
    """A job may run longer than run_deadline_seconds (a 14B video model's clip): its worker's progress writes push
    the deadline out (the heartbeat), so the sweeper fails only a job that stopped reporting."""
    from functions.core.settings import get_settings

    job_id = submit(api, tenant)
    store = JobStore()
    job, _ = store.transition(store.get(job_id), JobStatus.RUNNING)
    run = get_settings().run_deadline_seconds
    later = job.started_at + run * 0.9
    assert store.record_progress(job_id, 20, 40, deadline=later + run)  # the heartbeat, at 90 % of the deadline
    sweep(now=job.started_at + run + 60)  # past the first deadline: still running
    assert store.get(job_id).status == JobStatus.RUNNING
    # the dispatch record that lands late keeps the pushed deadline (record_dispatch: run_deadline)
    assert store.get(job_id).deadline == pytest.approx(later + run, abs=1)
    sweep(now=later + run + 60)  # no report since: failed
    assert store.get(job_id).status == JobStatus.FAILED


def test_the_worker_pushes_the_run_deadline_out_once_past_half_way(monkeypatch):
    from gpu import worker

    class Store:
        def __init__(self):
            self.deadlines = []

        def record_progress(self, job_id, step, total, *, deadline=None):
            self.deadlines.append(deadline)
            return True

    now = [1000.0]
    monkeypatch.setattr(worker.clock, "now", lambda: now[0])
    store = Store()
    watch = worker.CancelWatch(store, "job", None, run_deadline_seconds=1000)  # deadline 2000
    for at in (1000, 1100, 1600, 1700, 2200, 2300):
        now[0] = at
        watch.on_step(1, 10)
    assert store.deadlines == [None, None, 2600, None, 3200, None]
    unset = Store()
    watch = worker.CancelWatch(unset, "job", None)  # a request from before the field: no heartbeat
    for at in (1000, 5000):
        now[0] = at
        watch.on_step(1, 10)
    assert unset.deadlines == [None, None]


def test_enqueue_failure_fails_the_job_and_answers_503(world, api, tenant, monkeypatch):
    from functions.core import settings

    monkeypatch.setenv("DARKROOM_JOBS_QUEUE_URL", world.endpoint + "/123456789012/no-such-queue")
    settings.get_settings.cache_clear()
    resp = api.post("/api/run", json=RUN, headers=tenant.headers)
    assert resp.status_code == 503
    assert "retry" in resp.json["message"]
    jobs, total = JobStore().list_for_workspace(tenant.workspace_id)
    assert total == 1 and jobs[0].status == JobStatus.FAILED
