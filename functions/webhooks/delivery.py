"""One webhook delivery attempt, and what happens next: done, retry later, or dead-letter.

Retries follow Standard Webhooks' schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h, with
jitter), as new SQS messages with a delay, never by sleeping in the Lambda. 2xx is success; 410 turns
the endpoint off for the job; 429, 5xx, timeouts and connection errors are retried (honouring
Retry-After); any other answer gets one short retry, then counts as final.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Literal

import httpx

from functions.core import clock, dynamo
from functions.core.errors import describe
from functions.core.jobs import Job, JobStore
from functions.core.messages import WebhookMessage
from functions.core.observability import logger
from functions.core.settings import get_settings, retry_delays
from functions.core.signing import signed_headers
from functions.core.urls import UnsafeUrl, pin
from functions.core.workspaces import Workspace, WorkspaceStore
from functions.dialects import webhook_payload

USER_AGENT = "Darkroom-Webhooks/1.0"
# An attempt's error text as recorded (an exception's text can be long).
MAX_ERROR_CHARS = 300
# The most of a receiver's answer read; the rest is never read.
MAX_RESPONSE_BYTES = 64 * 1024
# HTTP clients kept per thread, one per receiver TLS name, the most recently used.
CLIENTS_KEPT = 32
# Longest Retry-After we honour; beyond it the schedule's own delay applies.
MAX_RETRY_AFTER = 24 * 3600

Outcome = Literal["delivered", "retry", "disabled", "rejected", "unsafe"]


@dataclass
class Attempt:
    outcome: Outcome
    status_code: int | None = None
    error: str | None = None
    duration_ms: int = 0
    retry_after: float | None = None


@dataclass
class Decision:
    """What the handler does with the message: nothing more, send `next` later, or dead-letter it."""

    action: Literal["done", "wait", "retry", "dead_letter"]
    delay: float = 0
    next: WebhookMessage | None = None
    reason: str = ""
    attempt: dict = field(default_factory=dict)


# httpx's timeouts bound each read and write, not a request: a receiver that trickles a byte at a time would hold
# an attempt (and the Lambda) for hours. Each POST runs on an event loop under one deadline for all of it, and
# its connection is closed when the deadline cancels it. A loop (and its clients) per thread: the local stack
# delivers from several.
_per_thread = threading.local()


def _loop() -> asyncio.Runner:
    if not hasattr(_per_thread, "runner"):
        _per_thread.runner = asyncio.Runner()
    return _per_thread.runner


def http_client(tls_name: str | None = None) -> httpx.AsyncClient:
    # Clients live across invocations of a warm Lambda, so connections to the same receivers are reused. One per
    # TLS name: requests go to pinned addresses, and a pooled connection verified for one name must not carry
    # another name's request to the same address. The most recently used CLIENTS_KEPT are kept (each holds an SSL
    # context and idle sockets); the one used longest ago is closed.
    # trust_env=False: a proxy from the environment would make the connection, and the address check, moot.
    clients: OrderedDict[str | None, httpx.AsyncClient] = _per_thread.__dict__.setdefault("clients", OrderedDict())
    if tls_name in clients:
        clients.move_to_end(tls_name)
        return clients[tls_name]
    if len(clients) >= CLIENTS_KEPT:
        _, oldest = clients.popitem(last=False)
        _loop().run(oldest.aclose())
    clients[tls_name] = httpx.AsyncClient(
        follow_redirects=False, trust_env=False, headers={"user-agent": USER_AGENT},
        limits=httpx.Limits(max_connections=20, max_keepalive_connections=10))
    return clients[tls_name]


async def _post_within(client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str],
                       extensions: dict[str, str], seconds: float) -> httpx.Response:
    """The status and headers are all a delivery needs: TimeoutError if they have not come within `seconds`. Then, in
    what is left of them, a short body is read so the connection can carry the next POST; a body past
    MAX_RESPONSE_BYTES, or still arriving at the deadline, is left unread and the connection closed."""
    deadline = asyncio.get_running_loop().time() + seconds
    request = client.build_request("POST", url, content=body, headers=headers, extensions=extensions, timeout=seconds)
    async with asyncio.timeout_at(deadline):
        response = await client.send(request, stream=True)
    try:
        async with asyncio.timeout_at(deadline):
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read > MAX_RESPONSE_BYTES:
                    break
    except (TimeoutError, httpx.HTTPError, httpx.StreamError):
        pass  # the answer is in: the body was never needed (an in-memory answer is read already: StreamConsumed)
    finally:
        await response.aclose()
    return response


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, min(seconds, MAX_RETRY_AFTER))


def render_body(job: Job) -> str:
    return json.dumps(webhook_payload(job), separators=(",", ":"))


def post(job: Job, message: WebhookMessage, signing_secrets: list[str]) -> Attempt:
    settings = get_settings()
    try:
        # Checked on every attempt: the name may resolve elsewhere than it did at submit time. The request goes
        # to the address checked here, never to a second DNS answer (rebinding).
        target = pin(job.webhook or "", allow_loopback=settings.local)
    except UnsafeUrl as exc:
        return Attempt("unsafe", error=f"webhook URL refused: {exc}")
    body = render_body(job)
    headers = {
        **signed_headers(message.event_id, body, signing_secrets),
        "content-type": "application/json",
        "x-webhook-source": "darkroom",
        "x-media-id": job.id,
        "host": target.host_header,
    }
    started = time.perf_counter()
    try:
        response = _loop().run(_post_within(http_client(target.sni_hostname), target.url, body.encode(), headers,
                                            target.extensions, settings.webhook_timeout_seconds))
    except (httpx.TimeoutException, TimeoutError):
        return Attempt("retry", error=f"timed out after {settings.webhook_timeout_seconds:g}s",
                       duration_ms=int((time.perf_counter() - started) * 1000))
    except httpx.HTTPError as exc:
        return Attempt("retry", error=describe(exc),
                       duration_ms=int((time.perf_counter() - started) * 1000))
    duration = int((time.perf_counter() - started) * 1000)
    code = response.status_code
    if 200 <= code < 300:
        return Attempt("delivered", code, duration_ms=duration)
    if code == 410:
        return Attempt("disabled", code, error="receiver answered 410 Gone", duration_ms=duration)
    if code == 429 or code >= 500:
        return Attempt("retry", code, error=f"HTTP {code}", duration_ms=duration, retry_after=_retry_after(response))
    return Attempt("rejected", code, error=f"HTTP {code}", duration_ms=duration)


def _jitter(delay: float) -> float:
    return delay * random.uniform(0.9, 1.1)


def already_delivered(job: Job, event_id: str) -> bool:
    return any(d.get("event_id") == event_id and d.get("outcome") == "delivered" for d in job.deliveries)


def resume(job: Job, message: WebhookMessage, now: float) -> Decision | None:
    """What was decided when this message was handled before, or None if it was not.

    SQS redelivers a message whose invocation failed or timed out after the attempt was made: the attempt is
    then in the log, and POSTing again would send the event twice and start a second retry chain. The decision
    is repeated instead: its retry (or dead letter) may not have been sent before the failure."""
    number = message.attempt + 1
    mine = [d for d in job.deliveries if d.get("event_id") == message.event_id]
    if any(int(d.get("attempt") or 0) > number for d in mine):
        return Decision("done", reason="a later attempt was made")  # a duplicate of a chain that went on
    done = next((d for d in reversed(mine) if d.get("attempt") == number), None)
    if done is None:
        return None
    outcome = done.get("outcome")
    if outcome == "retrying":
        at = datetime.fromisoformat(done["next_attempt_at"]).timestamp() if done.get("next_attempt_at") else now
        nxt = message.model_copy(update={"attempt": number, "not_before": at})
        return Decision("retry", delay=max(0.0, at - now), next=nxt, reason="attempt made before", attempt=done)
    if outcome == "failed":
        return Decision("dead_letter", reason=f"after {number} attempts: {done.get('error') or 'delivery failed'}",
                        next=message.model_copy(update={"attempt": number}), attempt=done)
    return Decision("done", reason=f"attempt made before: {outcome}", attempt=done)


def read_job_and_workspace(message: WebhookMessage, store: JobStore) -> tuple[Job | None, Workspace | None]:
    """The job (its deliveries so far) and its workspace (the signing secrets), both strongly consistent.

    One BatchGetItem when the message names the workspace; a message queued by an older version does not,
    so the job is read first. Keys DynamoDB leaves unprocessed (throttling), and a job that is not in the
    workspace the message names, are read one by one."""
    workspaces = WorkspaceStore()
    if message.workspace_id is None:
        job = store.get(message.job_id)
        return job, (workspaces.get(job.workspace_id) if job else None)
    resp = store.ddb.batch_get_item(RequestItems={
        store.table: {"Keys": [{"id": {"S": message.job_id}}], "ConsistentRead": True},
        workspaces.table: {"Keys": [{"id": {"S": message.workspace_id}}], "ConsistentRead": True},
    })
    found = {table: [dynamo.deserialize(item) for item in items] for table, items in resp["Responses"].items()}
    unprocessed = resp.get("UnprocessedKeys") or {}
    if store.table in unprocessed:
        job = store.get(message.job_id)
    else:
        job = next((Job.from_item(item) for item in found.get(store.table, [])), None)
    if job is None:
        return None, None
    workspace = next((Workspace.model_validate(item) for item in found.get(workspaces.table, [])), None)
    if workspaces.table in unprocessed or job.workspace_id != message.workspace_id:
        workspace = workspaces.get(job.workspace_id)
    return job, workspace


def _record(store: JobStore, job: Job, record: dict, *, disable: bool) -> None:
    """Log the attempt on the job. A failure here never undoes what was decided: the POST has gone out, so
    raising would have SQS redeliver the message and POST again (one call once made about 12 POSTs, none
    logged). It is logged at ERROR instead."""
    try:
        store.record_delivery(job.id, record, known=job.deliveries, disable=disable)
    except Exception:  # noqa: BLE001 - any failure to record must not re-send
        logger.exception("webhook attempt not recorded", extra={"job_id": job.id, "event_id": record["event_id"],
                                                               "outcome": record.get("outcome")})


def process(message: WebhookMessage, *, store: JobStore | None = None, now: float | None = None) -> Decision:
    store = store or JobStore()
    now = now if now is not None else clock.now()
    # Within a second counts as due: SQS delays and visibility are whole seconds.
    if message.not_before - now > 1:
        return Decision("wait", delay=message.not_before - now)
    job, workspace = read_job_and_workspace(message, store)
    if job is None or not job.webhook:
        return Decision("done", reason="no job or no webhook")
    if not message.forced and (job.webhook_disabled or already_delivered(job, message.event_id)):
        return Decision("done", reason="disabled" if job.webhook_disabled else "already delivered")
    # A forced replay reuses the event's attempt numbers, so only an unforced message can be a redelivery.
    resumed = None if message.forced else resume(job, message, now)
    if resumed is not None:
        return resumed
    signing_secrets = workspace.active_webhook_secrets(now) if workspace else []
    if not signing_secrets:
        return Decision("dead_letter", reason="workspace has no webhook signing secret")

    attempt = post(job, message, signing_secrets)
    number = message.attempt + 1
    # The URL is the job's (GET …/deliveries shows it once), not repeated in every record.
    record = {"event_id": message.event_id, "event": message.event, "attempt": number, "at": clock.iso(now),
              "status_code": attempt.status_code, "error": (attempt.error or "")[:MAX_ERROR_CHARS] or None,
              "duration_ms": attempt.duration_ms}
    delays = retry_delays(get_settings())

    def remember(outcome: str, **extra) -> None:
        record.update(outcome=outcome, **extra)
        _record(store, job, record, disable=outcome == "disabled")

    if attempt.outcome in ("delivered", "disabled"):
        remember(attempt.outcome)
        return Decision("done", attempt=record)

    # 4xx other than 410/429 (and redirects): one short retry in case it was a deploy hiccup, then final.
    retryable = attempt.outcome == "retry" or (attempt.outcome == "rejected" and number == 1)
    if retryable and number <= len(delays):
        delay = _jitter(delays[number - 1] if attempt.outcome == "retry" else delays[0])
        if attempt.retry_after is not None:
            delay = max(delay, attempt.retry_after)
        remember("retrying", next_attempt_at=clock.iso(now + delay))
        nxt = message.model_copy(update={"attempt": number, "not_before": now + delay})
        return Decision("retry", delay=delay, next=nxt, attempt=record)

    remember("failed")
    reason = attempt.error or "delivery failed"
    return Decision("dead_letter", reason=f"after {number} attempts: {reason}",
                    next=message.model_copy(update={"attempt": number}), attempt=record)
