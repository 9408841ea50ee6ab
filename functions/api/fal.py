"""fal dialect: fal's queue API and its synchronous run host, for code written against fal's official clients.

Two ways in, one set of operations (docs/dialects.md):
- on the Darkroom host itself, for Python `fal-client` with FAL_QUEUE_RUN_HOST=<host>/fal/queue and
  FAL_RUN_HOST=<host>/fal/run: `POST /fal/queue/{owner}/{app}[/{path}]` submits, `GET …/requests/{id}/status`,
  `…/status/stream`, `GET …/requests/{id}`, `PUT …/requests/{id}/cancel`; `POST /fal/run/{owner}/{app}[/{path}]`
  answers with the result (the synchronous wait of functions/api/sync.py). The status, response and cancel URLs
  a submit answers are on the host the call came to, over https (fal-client speaks nothing else);
- `/fal/proxy`, for @fal-ai/client's `proxyUrl`: each call names the fal URL it meant in `x-fal-target-url`.
  Only fal's queue and run hosts are taken (fal's own proxy answers anything else with 412); the URL is never
  fetched, only read for the operation it names, and the URLs answered stay fal's (the client sends them back
  through the proxy).

The endpoint id (`fal-ai/flux/schnell`) names a catalog model by alias (functions/core/catalog.yaml), or
`darkroom/<model id>`; unknown ones are fal's 404. The request id is the generation's id: the job is readable
through every other dialect.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from functions.api import idempotency, sync
from functions.api.openapi import SYNC_ERRORS, doc, header, query
from functions.api.request import json_body, json_response
from functions.core.catalog import ModelSpec, get_catalog
from functions.core.errors import Conflict, DarkroomError, MethodNotAllowed, TransitionRejected
from functions.core.generation import parse_input
from functions.core.jobs import Job, JobStatus, JobStore
from functions.core.lifecycle import cancel
from functions.core.settings import get_settings
from functions.core.submit import SubmitRequest, check_webhook, submit
from functions.core.waiting import host_of, wait_budget
from functions.dialects import FAL
from functions.dialects import fal as dialect
from functions.dialects.shared import ContentBlocked, require_success

router = Router()

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$")
# Headers fal's clients send for features Darkroom does not have: refused when present, never ignored.
_UNSUPPORTED_HEADERS = {
    "x-fal-request-timeout": "a server-side start timeout is not supported; cancel the request instead",
    "x-fal-runner-hint": "runner hints are not supported: one pool serves each model",
    "x-fal-object-lifecycle-preference": "output lifecycle settings are not supported: media links last 24 h",
}
# The query parameters each operation takes.
_QUERY = {"submit": {"fal_webhook"}, "status": {"logs"}, "stream": {"logs"}, "result": set(), "cancel": set(),
          "run": set()}


@dataclass
class Call:
    """One fal call: which host (queue or run), the method, the path after the host, its query, and where the
    answer's URLs point."""

    host: str  # "queue" | "run"
    method: str
    segments: list[str]
    query: dict[str, str] = field(default_factory=dict)
    base: str = ""  # e.g. https://queue.fal.run, or https://<darkroom host>/fal/queue

    @property
    def endpoint(self) -> str:
        return "/".join(self.segments)

    @property
    def app_base(self) -> str:
        return f"{self.base}/{self.segments[0]}/{self.segments[1]}"

    def operation(self) -> tuple[str, str | None]:
        """(operation, request id): submit, run, status, stream, result or cancel."""
        if len(self.segments) < 2 or not all(_SEGMENT.match(s) for s in self.segments):
            raise dialect.FalNotFound(f"Application '{self.endpoint}' not found: fal endpoint ids are "
                                      "owner/app[/path]", code="application_not_found")
        if self.host == "run":
            return self._only("POST", "run"), None
        rest = self.segments[2:]
        if rest[:1] == ["requests"] and len(rest) >= 2:
            request_id, tail = rest[1], rest[2:]
            operations = {(): ("GET", "result"), ("status",): ("GET", "status"),
                          ("status", "stream"): ("GET", "stream"), ("cancel",): ("PUT", "cancel")}
            if tuple(tail) not in operations:
                raise dialect.FalNotFound(f"No queue operation at {self.endpoint}", code="route_not_found")
            method, name = operations[tuple(tail)]
            return self._only(method, name), request_id
        return self._only("POST", "submit"), None

    def _only(self, method: str, name: str) -> str:
        if self.method != method:
            raise MethodNotAllowed(f"{self.method} is not allowed for a fal {name}; use {method}",
                                   code="method_not_allowed", headers={"allow": method})
        return name


# ---------------------------------------------------------------- the operations


def _principal():
    return sync.principal(router)


def _check_query(call: Call, operation: str) -> None:
    for name in call.query:
        if name not in _QUERY[operation]:
            raise dialect.refuse(name, f"is not a query parameter of a fal {operation}"
                                       f"{' (fal_webhook is for the queue)' if name == 'fal_webhook' else ''}",
                                 "unknown_field", where="query")


def _check_headers() -> None:
    headers = {k.lower(): v for k, v in (router.current_event.headers or {}).items()}
    for name, why in _UNSUPPORTED_HEADERS.items():
        if name in headers:
            raise dialect.refuse(name, why, "unsupported_parameter", where="header")
    priority = headers.get("x-fal-queue-priority")
    if priority not in (None, "", "normal"):
        raise dialect.refuse("x-fal-queue-priority", "only normal: one queue per model serves every request",
                             "unsupported_parameter", where="header")


def _logs_flag(call: Call) -> bool:
    value = call.query.get("logs", "0").lower()
    if value not in ("0", "1", "true", "false", ""):
        raise dialect.refuse("logs", "must be 1 or 0")
    return value in ("1", "true")


def _model(call: Call) -> ModelSpec:
    catalog = get_catalog()
    endpoint = call.endpoint
    model = catalog.model(endpoint)
    if model is None and call.segments[0] == "darkroom":
        model = catalog.model("/".join(call.segments[1:]))
    if model is None:
        served = sorted({a for m in catalog.models for a in m.aliases if a.startswith("fal-ai/")})
        raise dialect.unknown_endpoint(endpoint, served)
    return model


def _translate(call: Call, body: Any) -> sync.SyncGeneration:
    """The request, validated and translated: the model that runs (an edit endpoint's, or the text model's
    image-to-image counterpart when image_url is sent) and its GenerationInput fields."""
    base = _model(call)
    _principal().require(f"{base.type}:generate")  # before any input check: a key without it learns nothing
    request_model = dialect.FalVideoRequest if base.type == "video" else dialect.FalImageRequest
    request = parse_input(request_model, body)
    model = _with_references(call, base, dialect.references(request))
    translate = dialect.video_input if model.type == "video" else dialect.image_input
    fields, names = translate(request, model)
    record = request.model_dump(mode="json", exclude_none=True)
    return sync.SyncGeneration(model=model, fields=fields, record=record, dialect=FAL, names=names,
                               references_field="image_url")


def _with_references(call: Call, model: ModelSpec, references: bool) -> ModelSpec:
    counterpart = get_catalog().with_references(model)
    if references:
        if counterpart is None:
            raise dialect.refuse("image_url", f"{call.endpoint} ({model.id}) takes no reference image",
                                 "unsupported_parameter")
        return counterpart
    if model.takes_references:
        raise dialect.refuse("image_url", f"is required: {call.endpoint} ({model.id}, {model.task}) edits the image "
                                          "it is given", "required")
    return model


def _job(request_id: str | None) -> Job:
    try:
        return JobStore().get_for_workspace(_principal().workspace_id, request_id or "")
    except DarkroomError:
        raise dialect.FalNotFound(f"Request {request_id} not found", code="request_not_found") from None


def _with_id(response: Response, request_id: str) -> Response:
    response.headers["x-fal-request-id"] = request_id
    return response


def submit_call(call: Call) -> Response:
    _check_query(call, "submit")
    gen = _translate(call, json_body(router.current_event))
    webhook = call.query.get("fal_webhook") or None
    check_webhook(webhook, field_name="fal_webhook")
    caller = _principal()
    model, params = sync.validate(gen, caller.workspace_id)
    request = SubmitRequest(workspace_id=caller.workspace_id, model=model, params=params, input=gen.record,
                            dialect=FAL, tool=sync.tool_for(model), webhook=webhook, webhook_events=["completed"])
    fingerprint = {"dialect": FAL, "endpoint": call.endpoint, "input": gen.record, "webhook": webhook}
    headers = router.current_event.headers or {}
    job = idempotency.once(headers.get("idempotency-key"), caller.workspace_id, fingerprint,
                           lambda: submit(request).model_dump(mode="json"))
    position = JobStore().queued_before(Job.model_validate(job))
    body = {**dialect.Urls(call.app_base, job["id"]).body(), "status": "IN_QUEUE", "queue_position": position}
    return _with_id(json_response(200, body), job["id"])


def run_call(call: Call) -> Response:
    _check_query(call, "run")
    gen = _translate(call, json_body(router.current_event))
    try:
        job = sync.run(router, gen)
    except ContentBlocked as exc:  # fal answers a blocked image as a result with its images withheld
        blocked = JobStore().get(exc.job_id)
        if blocked is None or not dialect.withheld(blocked):
            raise
        return _with_id(json_response(200, dialect.withheld_body(blocked)), blocked.id)
    return _with_id(json_response(200, dialect.result_body(job)), job.id)


def status_call(call: Call, request_id: str | None) -> Response:
    _check_query(call, "status")
    _principal().require("media:read")
    with_logs = _logs_flag(call)
    job = _job(request_id)
    position = JobStore().queued_before(job) if job.status == JobStatus.QUEUED else 0
    body = dialect.status_body(job, dialect.Urls(call.app_base, job.id), with_logs=with_logs,
                               queue_position=position)
    return _with_id(json_response(200, body), job.id)


def stream_call(call: Call, request_id: str | None) -> Response:
    """The status as server-sent events, one `data:` event per status seen, until COMPLETED. A Lambda answer is
    buffered: the events arrive together when the request completes, or when this host's wait runs out (then
    the last event is not COMPLETED, and the client polls or reads the stream again)."""
    _check_query(call, "stream")
    _principal().require("media:read")
    with_logs = _logs_flag(call)
    job = _job(request_id)
    store, urls = JobStore(), dialect.Urls(call.app_base, job.id)
    event = router.current_event
    budget = wait_budget(host_of(event.raw_event.get("requestContext") or {}),
                         configured=get_settings().sync_wait_seconds)
    deadline, interval = time.monotonic() + budget, 0.05
    events: list[dict[str, Any]] = []
    while True:
        body = dialect.status_body(job, urls, with_logs=with_logs,
                                   queue_position=store.queued_before(job) if job.status == JobStatus.QUEUED else 0)
        if not events or {k: v for k, v in body.items() if k != "logs"} != {
                k: v for k, v in events[-1].items() if k != "logs"}:
            events.append(body)
        if job.terminal or time.monotonic() >= deadline:
            break
        time.sleep(min(interval, max(deadline - time.monotonic(), 0)))
        interval = min(interval * 1.5, 1.0)
        job = store.get(job.id) or job
    text = "".join(f"data: {json.dumps(e)}\n\n" for e in events)
    return _with_id(Response(status_code=200, content_type="text/event-stream", body=text,
                             headers={"cache-control": "no-cache"}), job.id)


def result_call(call: Call, request_id: str | None) -> Response:
    _check_query(call, "result")
    _principal().require("media:read")
    job = _job(request_id)
    if not job.terminal:
        raise dialect.refuse_in_progress(job.id)
    if dialect.withheld(job):
        return _with_id(json_response(200, dialect.withheld_body(job)), job.id)
    job = require_success(job, references_field="image_url")
    return _with_id(json_response(200, dialect.result_body(job)), job.id)


def cancel_call(call: Call, request_id: str | None) -> Response:
    _check_query(call, "cancel")
    _principal().require("media:write")
    job = _job(request_id)
    try:
        if job.terminal:  # a repeated cancel too: the transition itself is idempotent
            raise TransitionRejected(job.id, JobStatus.CANCELED.value, job.status.value)
        cancel(job, store=JobStore())
    except TransitionRejected:
        conflict = Conflict(f"Request {job.id} already completed", code="already_completed")
        conflict.status = 400
        conflict.fal_status = "ALREADY_COMPLETED"
        raise conflict from None
    return _with_id(json_response(202, {"status": "CANCELLATION_REQUESTED"}), job.id)


def dispatch(call: Call) -> Response:
    _check_headers()
    operation, request_id = call.operation()
    if operation == "submit":
        return submit_call(call)
    if operation == "run":
        return run_call(call)
    return {"status": status_call, "stream": stream_call, "result": result_call,
            "cancel": cancel_call}[operation](call, request_id)


# ---------------------------------------------------------------- routes on the Darkroom host


def _here(host: str) -> Call:
    """The call a route on the Darkroom host carries: /fal/{queue|run}/{owner}/{app}/…"""
    event = router.current_event
    segments = event.path.split("/")[3:]
    headers = {k.lower(): v for k, v in (event.headers or {}).items()}
    where = headers.get("host") or (event.raw_event.get("requestContext") or {}).get("domainName") or "localhost"
    return Call(host=host, method=event.http_method, segments=segments,
                query=dict(event.query_string_parameters or {}), base=f"https://{where}/fal/{host}")


_SUBMIT: dict[str, Any] = {
    "dialect": FAL, "ok": "FalQueued", "body": dialect.FalImageRequest, "errors": (400, 402, 403, 404, 409, 422),
    "params": (query("fal_webhook", {"type": "string"}, "POSTed fal's webhook body when the request completes, "
                                                        "signed (Standard Webhooks)."),),
    "description": "Queues a generation with the catalog model the endpoint id names (an alias such as "
                   "fal-ai/flux/schnell, or darkroom/<model id>); {path} may span several segments "
                   "(fal-ai/wan/v2.2-5b/text-to-video). Video endpoints take FalVideoRequest."}
_RUN: dict[str, Any] = {
    "dialect": FAL, "ok": ("FalImageResult", "FalVideoResult"), "body": dialect.FalImageRequest,
    "errors": (*SYNC_ERRORS, 404),
    "description": "fal's run host: answers with the result once it is ready (the synchronous wait; 504 with the "
                   "request id if it runs out). Video endpoints take FalVideoRequest."}


@router.post("/fal/queue/<owner>/<app>", **doc("Queue a fal request", **_SUBMIT))
def queue_submit(owner: str, app: str) -> Response[dict]:
    return dispatch(_here("queue"))


@router.post("/fal/queue/<owner>/<app>/<path>", **doc("Queue a fal request (endpoint with a path)", **_SUBMIT))
def queue_submit_path(owner: str, app: str, path: str) -> Response[dict]:
    return dispatch(_here("queue"))


# Endpoint ids with a longer path (fal-ai/wan/v2.2-5b/text-to-video): the routes above, one and two segments on.
@router.post("/fal/queue/<owner>/<app>/<path>/<more>", include_in_schema=False)
@router.post("/fal/queue/<owner>/<app>/<path>/<more>/<further>", include_in_schema=False)
def queue_submit_deeper(**_: str) -> Response[dict]:
    return dispatch(_here("queue"))


@router.get("/fal/queue/<owner>/<app>/requests/<request_id>/status", **doc(
    "Get a fal request's status", dialect=FAL, ok="FalStatus", errors=(400, 403, 404, 422),
    params=(query("logs", {"type": "string", "enum": ["0", "1", "true", "false"]}, "1: include the logs."),),
    description="IN_QUEUE (with queue_position: this workspace's queued requests ahead of it), IN_PROGRESS or "
                "COMPLETED (with metrics; with error and error_type if it failed or was canceled)."))
def queue_status(owner: str, app: str, request_id: str) -> Response[dict]:
    return dispatch(_here("queue"))


@router.get("/fal/queue/<owner>/<app>/requests/<request_id>/status/stream", **doc(
    "Stream a fal request's status", dialect=FAL, ok_media="text/event-stream", errors=(400, 403, 404, 422),
    params=(query("logs", {"type": "string", "enum": ["0", "1", "true", "false"]}, "1: include the logs."),),
    description="Server-sent events, `data: <status>` per status until COMPLETED (buffered: they arrive together "
                "when the request completes or the host's wait runs out)."))
def queue_status_stream(owner: str, app: str, request_id: str) -> Response[str]:
    return dispatch(_here("queue"))


@router.get("/fal/queue/<owner>/<app>/requests/<request_id>", **doc(
    "Get a fal request's result", dialect=FAL, ok=("FalImageResult", "FalVideoResult"),
    errors=(400, 403, 404, 413, 422),
    description="The result once COMPLETED; 400 while it is in progress; the failure's error otherwise."))
def queue_result(owner: str, app: str, request_id: str) -> Response[dict]:
    return dispatch(_here("queue"))


@router.put("/fal/queue/<owner>/<app>/requests/<request_id>/cancel", **doc(
    "Cancel a fal request", dialect=FAL, ok="FalCancel", status=202, errors=(400, 403, 404),
    description="Cancels a queued or running request (a running one stops within a step; README: Guarantees). "
                "400 with status ALREADY_COMPLETED once it finished."))
def queue_cancel(owner: str, app: str, request_id: str) -> Response[dict]:
    return dispatch(_here("queue"))


@router.post("/fal/run/<owner>/<app>", **doc("Run a fal request synchronously", **_RUN))
def run(owner: str, app: str) -> Response[dict]:
    return dispatch(_here("run"))


@router.post("/fal/run/<owner>/<app>/<path>", **doc("Run a fal request synchronously (endpoint with a path)",
                                                    **_RUN))
def run_path(owner: str, app: str, path: str) -> Response[dict]:
    return dispatch(_here("run"))


@router.post("/fal/run/<owner>/<app>/<path>/<more>", include_in_schema=False)
@router.post("/fal/run/<owner>/<app>/<path>/<more>/<further>", include_in_schema=False)
def run_deeper(**_: str) -> Response[dict]:
    return dispatch(_here("run"))


# ---------------------------------------------------------------- the proxy, for @fal-ai/client's proxyUrl


def _proxied() -> Call:
    event = router.current_event
    headers = {k.lower(): v for k, v in (event.headers or {}).items()}
    raw = (headers.get("x-fal-target-url") or "").strip()
    if not raw:
        raise dialect.refuse("x-fal-target-url", "is required: the fal URL this call is meant for (what "
                                                 "@fal-ai/client's proxyUrl sends)", "required")
    try:
        target = urlsplit(raw)
        port = target.port
    except ValueError:
        raise dialect.FalTargetRejected("Invalid x-fal-target-url header: not a URL") from None
    host = (target.hostname or "").lower()
    if (target.scheme != "https" or host not in dialect.QUEUE_HOSTS | dialect.RUN_HOSTS or target.username
            or target.password or port not in (None, 443) or target.fragment):
        raise dialect.FalTargetRejected(
            f"Invalid x-fal-target-url header: {raw[:200]!r} is not a fal queue or run URL (https://queue.fal.run/… "
            "or https://fal.run/…); nothing else is served through this proxy")
    kind = "queue" if host in dialect.QUEUE_HOSTS else "run"
    query = dict(event.query_string_parameters or {})
    query.update(parse_qsl(target.query, keep_blank_values=True))
    return Call(host=kind, method=event.http_method, segments=[s for s in target.path.split("/") if s],
                query=query, base=f"https://{host}")


_PROXY: dict[str, Any] = {
    "dialect": FAL, "ok": ("FalQueued", "FalStatus", "FalImageResult", "FalVideoResult", "FalCancel"),
    "errors": (400, 402, 403, 404, 409, 412, 413, 422, 504),
    "params": (header("x-fal-target-url", "The fal URL the call is meant for: https://queue.fal.run/… or "
                                          "https://fal.run/… (412 for any other host)."),),
    "description": "@fal-ai/client's proxyUrl: the call x-fal-target-url names is served here as the /fal/queue "
                   "and /fal/run routes serve it (never fetched); the URLs answered stay fal's."}


@router.post("/fal/proxy", **doc("fal proxy (submit, run)", body=dialect.FalImageRequest, **_PROXY))
def proxy_post() -> Response[dict]:
    return dispatch(_proxied())


@router.get("/fal/proxy", **doc("fal proxy (status, status stream, result)", **_PROXY))
def proxy_get() -> Response[dict]:
    return dispatch(_proxied())


@router.put("/fal/proxy", **doc("fal proxy (cancel)", **_PROXY))
def proxy_put() -> Response[dict]:
    return dispatch(_proxied())
