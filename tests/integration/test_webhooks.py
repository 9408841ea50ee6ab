"""Webhook delivery end to end on the real queue and handler, against a scripted receiver on loopback.

Receivers verify with the `standardwebhooks` package, not the project's own code.
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack

import pytest
from raw_endpoint import raw_endpoint as endpoint
from raw_endpoint import trickled
from standardwebhooks.webhooks import Webhook

from functions.core import settings
from functions.core.jobs import JobStatus, JobStore
from functions.core.workspaces import WorkspaceStore
from infra.local.receiver import WebhookReceiver

SEED_KEYS = {"_id", "status", "output", "model", "type", "payload", "error"}


@pytest.fixture
def receiver():
    made = []

    def make(script=None) -> WebhookReceiver:
        made.append(WebhookReceiver(script))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setenv("DARKROOM_WEBHOOK_RETRY_SCHEDULE", "1,1,1,1")
    settings.get_settings.cache_clear()


def finished_job(api, tenant, url: str, status: str = "succeeded") -> str:
    """A job with a webhook, taken to a terminal state by the complete function."""
    from functions.complete.logic import complete
    from functions.core.messages import ResultMessage

    body = {"tool": "create-image", "input": {"prompt": "a lighthouse", "size": "256x256"}, "webhook": url}
    job_id = api.post("/api/run", json=body, headers=tenant.headers).json["id"]
    store = JobStore()
    store.transition(store.get(job_id), JobStatus.RUNNING)
    error = None if status == "succeeded" else {"code": "oom", "message": "out of memory"}
    complete(ResultMessage(job_id=job_id, outcome=status, error=error))
    return job_id


def deliver_until(drain, done, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        drain("WebhooksFunction", "WebhooksQueue")
        if done():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached")


def secret_of(tenant) -> str:
    return WorkspaceStore().get(tenant.workspace_id).webhook_secrets[0].secret


def test_delivery_is_signed_and_has_the_seed_payload(world, api, tenant, drain, receiver):
    rx = receiver()
    job_id = finished_job(api, tenant, rx.url)
    deliver_until(drain, lambda: rx.requests)
    request = rx.requests[0]
    payload = Webhook(secret_of(tenant)).verify(request["body"], request["headers"])
    assert SEED_KEYS <= payload.keys() and payload["_id"] == job_id and payload["status"] == "success"
    assert payload["type"] == "image" and payload["payload"]["prompt"] == "a lighthouse"
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["x-webhook-source"] == "darkroom" and headers["x-media-id"] == job_id
    assert headers["webhook-id"] == f"evt_{job_id}_succeeded"
    deliveries = api.get(f"/api/generations/{job_id}/deliveries", headers=tenant.headers).json["data"]
    assert [d["outcome"] for d in deliveries] == ["delivered"] and deliveries[0]["status_code"] == 200
    # The secret never shows in job reads.
    assert secret_of(tenant) not in json.dumps(api.get(f"/api/generations/{job_id}", headers=tenant.headers).json)


def test_receiver_failing_three_times_then_succeeding(world, api, tenant, drain, receiver, fast_retries):
    rx = receiver([(500, 0, {}), (503, 0, {}), (500, 0, {})])
    job_id = finished_job(api, tenant, rx.url)
    deliver_until(drain, lambda: len(rx.requests) == 4)
    time.sleep(1.5)
    drain("WebhooksFunction", "WebhooksQueue")
    assert len(rx.requests) == 4
    assert len({r["headers"]["webhook-id"] for r in rx.requests}) == 1
    deliveries = JobStore().get(job_id).deliveries
    assert [d["outcome"] for d in deliveries] == ["retrying", "retrying", "retrying", "delivered"]
    assert [d["attempt"] for d in deliveries] == [1, 2, 3, 4]


def test_always_failing_receiver_dead_letters_then_redelivers(world, api, tenant, drain, receiver, monkeypatch):
    monkeypatch.setenv("DARKROOM_WEBHOOK_RETRY_SCHEDULE", "1,1")
    settings.get_settings.cache_clear()
    rx = receiver([(500, 0, {})] * 3)
    job_id = finished_job(api, tenant, rx.url, status="failed")
    deliver_until(drain, lambda: len(rx.requests) == 3)
    dead = world.messages("WebhooksDeadLetterQueue")
    assert [m["event_id"] for m in dead] == [f"evt_{job_id}_failed"] and dead[0]["attempt"] == 3
    assert JobStore().get(job_id).deliveries[-1]["outcome"] == "failed"
    # The receiver is fixed (its script is used up: it answers 200 now); redeliver from the API.
    resp = api.post(f"/api/generations/{job_id}/deliveries/redeliver", headers=tenant.headers)
    assert resp.status_code == 202
    deliver_until(drain, lambda: len(rx.requests) == 4)
    last = rx.requests[-1]
    assert last["headers"]["webhook-id"] == rx.requests[0]["headers"]["webhook-id"]
    Webhook(secret_of(tenant)).verify(last["body"], last["headers"])
    assert JobStore().get(job_id).deliveries[-1]["outcome"] == "delivered"


def test_hanging_receiver_times_out(world, api, tenant, drain, receiver, monkeypatch):
    monkeypatch.setenv("DARKROOM_WEBHOOK_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("DARKROOM_WEBHOOK_RETRY_SCHEDULE", "60")
    settings.get_settings.cache_clear()
    rx = receiver([(200, 4, {})])
    job_id = finished_job(api, tenant, rx.url)
    started = time.time()
    deliver_until(drain, lambda: JobStore().get(job_id).deliveries)
    attempt = JobStore().get(job_id).deliveries[0]
    assert attempt["outcome"] == "retrying" and "timed out after 1s" in attempt["error"]
    assert attempt["duration_ms"] < 2500 and time.time() - started < 4


@pytest.fixture
def raw_endpoint():
    """raw_endpoint(head, chunks, pause) -> its URL, closed after the test (tests/raw_endpoint.py)."""
    with ExitStack() as stack:
        yield lambda head, chunks, pause: stack.enter_context(endpoint(head, chunks, pause))


@pytest.fixture
def trickling_receiver(raw_endpoint):
    """Answers a byte every 0.2 s and never finishes its headers: each read arrives well within httpx's read timeout,
    so only a deadline on the whole attempt ends it."""
    return raw_endpoint(b"", trickled(b"HTTP/1.1 200 OK\r\nx-slow: " + b"y" * 10_000), 0.2)


def test_a_receiver_that_trickles_its_answer_times_out_at_the_deadline(world, api, tenant, drain,
                                                                      trickling_receiver, monkeypatch):
    monkeypatch.setenv("DARKROOM_WEBHOOK_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("DARKROOM_WEBHOOK_RETRY_SCHEDULE", "60")
    settings.get_settings.cache_clear()
    job_id = finished_job(api, tenant, trickling_receiver)
    started = time.time()
    deliver_until(drain, lambda: JobStore().get(job_id).deliveries)
    attempt = JobStore().get(job_id).deliveries[0]
    assert attempt["outcome"] == "retrying" and "timed out after 1s" in attempt["error"]
    assert attempt["duration_ms"] < 2500 and time.time() - started < 5


def test_a_2xx_whose_body_trickles_in_is_delivered_at_its_headers(world, api, tenant, drain, raw_endpoint,
                                                                    monkeypatch):
    monkeypatch.setenv("DARKROOM_WEBHOOK_TIMEOUT_SECONDS", "1")
    settings.get_settings.cache_clear()
    url = raw_endpoint(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n", (b"x" for _ in range(1000)), 0.2)
    job_id = finished_job(api, tenant, url)
    deliver_until(drain, lambda: JobStore().get(job_id).deliveries)
    attempt = JobStore().get(job_id).deliveries[0]
    assert attempt["outcome"] == "delivered" and attempt["status_code"] == 200, attempt
    assert attempt["duration_ms"] < 2500


def test_a_receiver_answering_gigabytes_is_read_no_further_than_64_kib(world, api, tenant, drain, raw_endpoint):
    sent = []

    def megabytes():
        for _ in range(1024):  # a gigabyte, if it were all read
            sent.append(1)
            yield b"x" * (1 << 20)

    url = raw_endpoint(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % (1 << 30), megabytes(), 0)
    job_id = finished_job(api, tenant, url)
    deliver_until(drain, lambda: JobStore().get(job_id).deliveries)
    assert JobStore().get(job_id).deliveries[0]["outcome"] == "delivered"
    assert len(sent) < 64  # the socket buffers' worth at most: the sender hung up


def test_410_disables_the_endpoint(world, api, tenant, drain, receiver, fast_retries):
    rx = receiver([(410, 0, {})])
    job_id = finished_job(api, tenant, rx.url)
    deliver_until(drain, lambda: rx.requests)
    time.sleep(1.5)
    drain("WebhooksFunction", "WebhooksQueue")
    job = JobStore().get(job_id)
    assert len(rx.requests) == 1 and job.webhook_disabled
    assert [d["outcome"] for d in job.deliveries] == ["disabled"]


def test_retry_after_is_honoured(world, api, tenant, drain, receiver, fast_retries):
    rx = receiver([(429, 0, {"Retry-After": "3"})])
    deliver_job = finished_job(api, tenant, rx.url)
    deliver_until(drain, lambda: len(rx.requests) == 2, timeout=30)
    assert rx.requests[1]["at"] - rx.requests[0]["at"] >= 2.9
    assert [d["outcome"] for d in JobStore().get(deliver_job).deliveries] == ["retrying", "delivered"]


def test_private_webhook_is_refused_at_submit_when_deployed(world, api, tenant, monkeypatch):
    monkeypatch.setenv("DARKROOM_LOCAL", "false")
    settings.get_settings.cache_clear()
    for url in ("https://127.0.0.1/hook", "https://10.1.2.3/hook", "https://169.254.169.254/latest",
                "http://93.184.216.34/hook", "https://[fd00:ec2::254]/x"):
        body = {"tool": "create-image", "input": {"prompt": "x"}, "webhook": url}
        resp = api.post("/api/run", json=body, headers=tenant.headers)
        assert resp.status_code == 400, url
        assert resp.json["errors"][0]["field"] == "webhook"


def test_rotation_signs_with_both_secrets_during_grace(world, api, tenant, drain, receiver):
    old = secret_of(tenant)
    rotated = api.post("/api/webhooks/secret/rotate", json={"grace_seconds": 3600}, headers=tenant.headers).json
    assert rotated["secret"] != old and rotated["previous"][0]["secret"] == old
    rx = receiver()
    finished_job(api, tenant, rx.url)
    deliver_until(drain, lambda: rx.requests)
    request = rx.requests[0]
    assert len(request["headers"]["webhook-signature"].split(" ")) == 2
    for secret in (old, rotated["secret"]):
        Webhook(secret).verify(request["body"], request["headers"])
    # After the grace period only the new secret signs.
    api.post("/api/webhooks/secret/rotate", json={"grace_seconds": 0}, headers=tenant.headers)
    current = api.get("/api/webhooks/secret", headers=tenant.headers).json
    assert current["previous"] == [] or all(p["expires_at"] <= time.time() for p in current["previous"])


def test_start_event_only_when_asked_for(world, api, tenant, dispatcher, drain):
    """webhook_events_filter ["start", "completed"] adds generation.started; the default is completed only."""
    for events, expected in ((["start", "completed"], ["generation.started", "generation.succeeded"]),
                             (None, ["generation.succeeded"])):
        body = {"tool": "create-image", "input": {"prompt": "x", "size": "256x256"},
                "webhook": "http://127.0.0.1:9/hook"}
        if events:
            body["webhook_events_filter"] = events
        job_id = api.post("/api/run", json=body, headers=tenant.headers).json["id"]
        drain("DispatchFunction", "JobsQueue")
        drain("CompleteFunction", "ResultsQueue")
        queued = [m for m in world.messages("WebhooksQueue") if m["job_id"] == job_id]
        assert [m["event"] for m in queued] == expected
        assert len({m["event_id"] for m in queued}) == len(expected)


def test_the_delivery_log_keeps_the_newest_attempts_and_never_repeats_the_url(world, api, tenant, drain, receiver,
                                                                              monkeypatch):
    from functions.core.jobs import MAX_DELIVERY_RECORDS

    monkeypatch.setenv("DARKROOM_WEBHOOK_RETRY_SCHEDULE", ",".join(["0"] * (MAX_DELIVERY_RECORDS + 10)))
    settings.get_settings.cache_clear()
    rx = receiver([(500, 0, {})] * (MAX_DELIVERY_RECORDS + 5))
    job_id = finished_job(api, tenant, rx.url + "?" + "p" * 1500)
    deliver_until(drain, lambda: len(rx.requests) == MAX_DELIVERY_RECORDS + 6, timeout=60)
    log = JobStore().get(job_id).deliveries
    assert len(log) == MAX_DELIVERY_RECORDS
    assert [d["attempt"] for d in log] == list(range(7, MAX_DELIVERY_RECORDS + 7))  # the newest, in order
    assert log[-1]["outcome"] == "delivered" and all("url" not in d for d in log)
    listed = api.get(f"/api/generations/{job_id}/deliveries", headers=tenant.headers).json
    assert listed["webhook"].endswith("p" * 1500) and len(listed["data"]) == MAX_DELIVERY_RECORDS


def test_a_delivered_webhook_is_never_sent_again_because_recording_it_failed(world, api, tenant, drain, receiver,
                                                                              monkeypatch, caplog):
    """A record write that failed after the POST went out used to fail the message: SQS redelivered it and
    the receiver got the same event again and again, none of it logged."""
    rx = receiver()
    job_id = finished_job(api, tenant, rx.url)

    def broken(self, *args, **kwargs):
        raise RuntimeError("ValidationException: Item size has exceeded the maximum allowed size")

    monkeypatch.setattr(JobStore, "record_delivery", broken)
    with caplog.at_level("ERROR"):
        deliver_until(drain, lambda: rx.requests)
        for _ in range(3):  # nothing is left on the queue to send it again
            drain("WebhooksFunction", "WebhooksQueue")
    assert len(rx.requests) == 1
    assert world.messages("WebhooksQueue") == [] and world.messages("WebhooksDeadLetterQueue") == []
    assert any(r.levelname == "ERROR" and "not recorded" in r.getMessage() for r in caplog.records), job_id


def test_a_redelivered_attempt_is_not_posted_again(world, api, tenant, drain, receiver, monkeypatch):
    """A batch cut off after some of its POSTs comes back whole: an attempt already made (it is in the log) is not
    made again, its retry is queued as it was (it may not have been sent before the cut)."""
    from functions.core.messages import WebhookMessage, send

    monkeypatch.setenv("DARKROOM_WEBHOOK_RETRY_SCHEDULE", "1")
    settings.get_settings.cache_clear()
    rx = receiver([(500, 0, {})])
    job_id = finished_job(api, tenant, rx.url)
    (first,) = world.messages("WebhooksQueue")
    for _ in range(2):  # the message, and SQS's redelivery of it
        send(world.queue_url("WebhooksQueue"), WebhookMessage(**first))
    drain("WebhooksFunction", "WebhooksQueue")
    drain("WebhooksFunction", "WebhooksQueue")
    assert len(rx.requests) == 1
    assert [(d["attempt"], d["outcome"]) for d in JobStore().get(job_id).deliveries] == [(1, "retrying")]
    time.sleep(1.5)  # the retries' delay
    retries = world.messages("WebhooksQueue")
    assert [m["attempt"] for m in retries] == [1, 1]
    assert retries[0]["not_before"] == pytest.approx(retries[1]["not_before"], abs=0.01)


def test_a_redelivered_last_attempt_is_dead_lettered_again_without_posting(world, api, tenant, receiver, monkeypatch):
    from functions.core.messages import WebhookMessage
    from functions.webhooks.delivery import process

    monkeypatch.setenv("DARKROOM_WEBHOOK_RETRY_SCHEDULE", "1")
    settings.get_settings.cache_clear()
    rx = receiver([(500, 0, {})] * 3)
    finished_job(api, tenant, rx.url)
    (first,) = world.messages("WebhooksQueue")
    last = WebhookMessage(**first).model_copy(update={"attempt": 1})
    made = process(last)
    assert made.action == "dead_letter" and len(rx.requests) == 1
    again = process(last)
    assert (again.action, again.reason, again.next) == ("dead_letter", made.reason, made.next)
    assert len(rx.requests) == 1
    # A stale copy of an earlier attempt (the event went on past it) is dropped.
    assert process(WebhookMessage(**first)).action == "done" and len(rx.requests) == 1
    # A replay the user asked for is sent whatever the log says.
    process(last.model_copy(update={"forced": True}))
    assert len(rx.requests) == 2


def test_a_record_with_too_little_time_left_is_put_off_not_posted(world, api, tenant, drain, receiver, monkeypatch):
    """Lambda would cut the POST off mid-batch, and SQS redeliver the batch: the record is queued again, as a new
    message (its receive count starts over), and made by a later invocation."""
    from functions.core.messages import WebhookMessage, send
    from infra.local.lambda_runtime import LambdaContext

    left_ms = {"now": 3000}
    monkeypatch.setattr(LambdaContext, "get_remaining_time_in_millis", lambda self: left_ms["now"])
    rx = receiver()
    job_id = finished_job(api, tenant, rx.url)
    queued = world.messages("WebhooksQueue")
    send(world.queue_url("WebhooksQueue"), WebhookMessage(**queued[0]))
    drain("WebhooksFunction", "WebhooksQueue")
    assert rx.requests == [] and JobStore().get(job_id).deliveries == []
    put_off = world.messages("WebhooksQueue")
    assert put_off == queued
    left_ms["now"] = 60_000
    send(world.queue_url("WebhooksQueue"), WebhookMessage(**put_off[0]))
    deliver_until(drain, lambda: rx.requests)
    assert [d["outcome"] for d in JobStore().get(job_id).deliveries] == ["delivered"]
