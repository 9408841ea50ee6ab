"""Each step after the submit reads nothing it can be told: the dispatch claim, the worker's queued→running and a
success are single conditional writes that return the job, and a webhook delivery reads the job and its
workspace's secrets in one BatchGetItem. Exact AWS call counts, from botocore's hooks, against the moto server;
and the failure paths keep their meaning (nothing spawned, run or applied that should not be)."""

from __future__ import annotations

from collections import Counter

import pytest
from botocore.exceptions import ClientError

from functions.core import aws, messages
from functions.core.jobs import JobStatus, JobStore, Output
from functions.core.messages import JobMessage, ResultMessage, WebhookMessage, WorkRequest
from functions.core.settings import get_settings
from infra.bench.harness import image_body
from infra.bench_calls import count_aws_calls
from tests.integration.conftest import RecordingDispatcher


@pytest.fixture
def counted(world):
    """Counts the calls of clients made from here on; `counted.take()` returns those since the last take."""
    with count_aws_calls() as calls:
        aws.reset_clients()
        seen = Counter()

        def take() -> Counter:
            now = calls.by_service()
            fresh = now - seen
            seen.update(fresh)
            return fresh

        calls.take = take
        yield calls
    aws.reset_clients()


def work_request(job_id: str, tenant) -> WorkRequest:
    job, settings = JobStore().get(job_id), get_settings()
    return WorkRequest(job_id=job_id, workspace_id=tenant.workspace_id, model=job.model, params=job.params,
                       jobs_table=settings.jobs_table, results_queue_url=settings.results_queue_url,
                       bucket=settings.outputs_bucket)


def submitted(api, tenant, **extra) -> str:
    resp = api.post("/api/run", json={**image_body(), **extra}, headers=tenant.headers)
    assert resp.status_code == 202, resp.get_data(as_text=True)
    return resp.json["id"]


def test_dispatch_claims_with_one_write_and_spawns_what_it_returned(api, tenant, counted):
    from functions.dispatch.logic import dispatch

    job_id = submitted(api, tenant)
    counted.take()
    recording = RecordingDispatcher()
    assert dispatch(JobMessage(job_id=job_id), recording, claim="claim-1") == "call-1"
    # The claim (returning the job) and the call id: no read before either.
    assert counted.take() == Counter({("dynamodb", "UpdateItem"): 2})
    request, = recording.requests
    job = JobStore().get(job_id)
    assert (request.job_id, request.workspace_id, request.model, request.params) == (
        job.id, tenant.workspace_id, job.model, job.params)
    assert job.dispatch["claim"] == "claim-1" and job.attempts == 1
    # Redelivered, or after a cancel: the claim's condition fails, and nothing is spawned.
    assert dispatch(JobMessage(job_id=job_id), recording, claim="claim-2") is None
    assert dispatch(JobMessage(job_id="no-such-job"), recording, claim="claim-3") is None
    assert len(recording.requests) == 1 and JobStore().get("no-such-job") is None


def test_the_worker_takes_its_job_with_one_write(api, tenant, counted, monkeypatch):
    from gpu import worker

    job_id = submitted(api, tenant)
    request = work_request(job_id, tenant)
    ran = []

    def execute(request, store, reports=None):
        ran.append(request.job_id)
        return ResultMessage(job_id=request.job_id, workspace_id=request.workspace_id, outcome="succeeded")

    monkeypatch.setattr(worker, "execute", execute)
    counted.take()
    result = worker.run(request)
    assert result.outcome == "succeeded" and ran == [job_id]
    # queued→running (conditional, no read first), then the started report and the result.
    assert counted.take() == Counter({("dynamodb", "UpdateItem"): 1, ("sqs", "SendMessage"): 2})
    assert JobStore().get(job_id).status == JobStatus.RUNNING
    # Another delivery of the same work finds the job running: not run again (the read tells why).
    assert worker.run(request) is None and len(ran) == 1


def test_the_started_report_never_comes_after_the_result(api, tenant, world, monkeypatch):
    from gpu import worker

    job_id = submitted(api, tenant)
    request = work_request(job_id, tenant)
    real_send, failures = messages.send, []

    def flaky_send(queue_url, message, **kwargs):
        if getattr(message, "outcome", None) == "started" and not failures:
            failures.append(message)
            raise ConnectionError("SQS unreachable, once")
        return real_send(queue_url, message, **kwargs)

    monkeypatch.setattr(messages, "send", flaky_send)
    monkeypatch.setattr(worker, "execute", lambda request, store, reports=None: ResultMessage(
        job_id=request.job_id, workspace_id=request.workspace_id, outcome="succeeded"))
    worker.run(request)
    assert failures  # the first started report was lost, and sent again before the result
    assert [m["outcome"] for m in world.messages("ResultsQueue")] == ["started", "succeeded"]


def test_a_success_is_one_write_and_its_webhook_one_batch_read(api, tenant, counted, world):
    from functions.complete.logic import complete
    from functions.webhooks.delivery import read_job_and_workspace

    job_id = submitted(api, tenant, webhook="http://127.0.0.1:9/hook")
    store = JobStore()
    store.transition(store.get(job_id), JobStatus.RUNNING)
    counted.take()
    output = Output(key=f"{tenant.workspace_id}/generations/{job_id}/0.png", content_type="image/png", width=256,
                    height=256)
    result = ResultMessage(job_id=job_id, workspace_id=tenant.workspace_id, outcome="succeeded", outputs=[output],
                           seed=3)
    assert complete(result) == JobStatus.SUCCEEDED
    assert counted.take() == Counter({("dynamodb", "UpdateItem"): 1, ("sqs", "SendMessage"): 1})
    job = store.get(job_id)
    assert job.status == JobStatus.SUCCEEDED and job.outputs == [output]
    event, = world.messages("WebhooksQueue")
    assert event["workspace_id"] == tenant.workspace_id
    counted.take()
    read_job, workspace = read_job_and_workspace(WebhookMessage.model_validate(event), store)
    assert counted.take() == Counter({("dynamodb", "BatchGetItem"): 1})
    assert read_job.id == job_id and workspace.id == tenant.workspace_id and workspace.active_webhook_secrets()
    # Applied again (a redelivered result): a no-op that re-emits the same event id.
    assert complete(result) == JobStatus.SUCCEEDED
    assert {e["event_id"] for e in world.messages("WebhooksQueue")} == {f"evt_{job_id}_succeeded"}


def test_a_key_from_a_message_cannot_reach_a_job_of_another_workspace(api, tenant, new_tenant):
    from functions.complete.logic import complete

    job_id = submitted(api, tenant)
    store = JobStore()
    store.transition(store.get(job_id), JobStatus.RUNNING)
    other = new_tenant()
    with pytest.raises(ClientError, match="ConditionalCheckFailed"):  # retried, then dead-lettered
        complete(ResultMessage(job_id=job_id, workspace_id=other.workspace_id, outcome="succeeded"))
    assert store.get(job_id).status == JobStatus.RUNNING
    assert complete(ResultMessage(job_id="65f0c0ffee0000000000abcd", workspace_id=tenant.workspace_id,
                                  outcome="succeeded")) is None  # an unknown job: dropped, as before


def test_a_webhook_read_falls_back_for_old_messages_and_wrong_workspaces(api, tenant, new_tenant, counted):
    from functions.webhooks.delivery import read_job_and_workspace

    job_id = submitted(api, tenant, webhook="http://127.0.0.1:9/hook")
    store = JobStore()
    counted.take()
    old = WebhookMessage(event_id=f"evt_{job_id}_succeeded", job_id=job_id, event="generation.succeeded")
    job, workspace = read_job_and_workspace(old, store)
    assert counted.take() == Counter({("dynamodb", "GetItem"): 2})  # queued before workspace_id existed
    assert (job.id, workspace.id) == (job_id, tenant.workspace_id)
    other = new_tenant()
    wrong = old.model_copy(update={"workspace_id": other.workspace_id})
    job, workspace = read_job_and_workspace(wrong, store)
    assert workspace.id == tenant.workspace_id  # signed with the job's own workspace's secrets, never another's
    missing = old.model_copy(update={"job_id": "65f0c0ffee0000000000abcd", "workspace_id": tenant.workspace_id})
    assert read_job_and_workspace(missing, store) == (None, None)
