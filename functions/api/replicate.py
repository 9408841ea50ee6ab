"""Replicate dialect: predictions (create by model, by version, by deployment; get, list, cancel, stream),
models and their versions, input files, and the webhook signing secret, under /v1/ beside the OpenAI routes
(whose shapes differ: /v1/models/{model} is OpenAI's, /v1/models/{owner}/{name} Replicate's).

Asynchronous like the native API: a create answers 201 with the prediction at once, or, with `Prefer: wait[=N]`,
once the job finishes or N seconds (60 by default, bounded by the host's own limit: functions/core/waiting.py)
have passed. `Cancel-After` puts a deadline on the job: a delayed message on the jobs queue has the dispatch
function cancel it then (functions/dispatch/logic.py), `aborted` if it had not started.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from functions.api import idempotency, sync
from functions.api.auth import Principal
from functions.api.multipart import decode_data_url, parse_form, sniff_content_type
from functions.api.openapi import doc, query
from functions.api.request import json_body, json_response
from functions.core import aws, clock, inflight, storage, uploads
from functions.core.catalog import ModelSpec
from functions.core.errors import DarkroomError, GatewayTimeout, NotFound, TransitionRejected
from functions.core.generation import GenerationInput, parse_input, resolve_params, resolve_request
from functions.core.jobs import Job, JobStore
from functions.core.lifecycle import cancel
from functions.core.settings import get_settings
from functions.core.submit import SubmitRequest, check_webhook, submit
from functions.core.waiting import host_of, wait_for
from functions.core.workspaces import WorkspaceStore
from functions.dialects import REPLICATE
from functions.dialects import replicate as dialect
from functions.dialects.shared import bad_field, rename_fields

router = Router()

# Prefer: wait holds a create at most this long (Replicate's own limit), and 60 s when no number is given.
MAX_WAIT_SECONDS = 60
# Cancel-After: Go-style durations (1h30m, 5m, 45s, 500ms) or bare seconds.
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|ms|m|s))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
CANCEL_AFTER_RANGE = (1.0, 24 * 3600.0)
PAGE_SIZE = 100
_FILE_ID = re.compile(r"^up_[0-9a-f]{24}$")
FILES_PREFIX = "replicate-files"
CREATE_ERRORS = (402, 403, 404, 409, 413, 422)
# The headers a create reads, for the OpenAPI document.
CREATE_HEADERS = (
    {"name": "Prefer", "in": "header", "required": False, "schema": {"type": "string", "example": "wait=10"},
     "description": "wait, or wait=N (1-60 s): hold the create until the prediction finishes or N seconds pass."},
    {"name": "Cancel-After", "in": "header", "required": False, "schema": {"type": "string", "example": "5m"},
     "description": "A deadline (30s, 5m, 1h30m, or seconds; 1 s to 24 h): aborted if it passes before the "
                    "prediction starts, canceled if while it runs."},
    {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string", "maxLength": 255},
     "description": "A retry with the same key answers the first prediction."},
)


def _caller() -> Principal:
    return router.context["principal"]


# ---------------------------------------------------------------- headers


def prefer_wait(value: str | None) -> int | None:
    """Seconds `Prefer: wait` or `Prefer: wait=N` asks to hold the create (None: answer at once). Other
    preferences are not Darkroom's to apply (RFC 7240: a server ignores those it does not know)."""
    for preference in (value or "").split(","):
        name, _, number = preference.strip().partition("=")
        if name.strip().lower() != "wait":
            continue
        if not number.strip():
            return MAX_WAIT_SECONDS
        try:
            seconds = int(number.strip())
        except ValueError:
            raise bad_field("Prefer", f"wait={number.strip()} must be a whole number of seconds") from None
        if not 1 <= seconds <= MAX_WAIT_SECONDS:
            raise bad_field("Prefer", f"wait must be 1 to {MAX_WAIT_SECONDS} seconds, got {seconds}")
        return seconds
    return None


def cancel_after(value: str | None) -> float | None:
    """Seconds of a Cancel-After header: 30s, 5m, 1h30m, 250ms, or bare seconds."""
    if value is None or not value.strip():
        return None
    text = value.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text)
    elif _DURATION.match(text):
        unit = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
        seconds = sum(float(n) * unit[u] for n, u in _DURATION_PART.findall(text))
    else:
        raise bad_field("Cancel-After", 'must be a duration such as "30s", "5m" or "1h30m"')
    low, high = CANCEL_AFTER_RANGE
    if not low <= seconds <= high:
        raise bad_field("Cancel-After", f"must be between {low:g} s and {high / 3600:g} h, got {seconds:g} s")
    return seconds


# ---------------------------------------------------------------- create


def _file_record(workspace_id: str, file_id: str) -> dict[str, Any] | None:
    if not _FILE_ID.match(file_id):
        return None
    try:
        return json.loads(storage.get_bytes(_record_key(workspace_id, file_id)))
    except aws.client("s3").exceptions.NoSuchKey:
        return None


def _record_key(workspace_id: str, file_id: str) -> str:
    return f"{workspace_id}/{FILES_PREFIX}/{file_id}.json"


def _reference(workspace_id: str, value: str | None, field: str) -> str | None:
    """An input image as the core takes it: a data: URI stored as an upload, a /v1/files URL as that file's
    upload, anything else (an http(s) URL, an upload:// reference) as it is, checked by the core."""
    if value is None:
        return None
    if value.startswith("data:"):
        image = decode_data_url(value, field)
        return uploads.store(workspace_id, image.filename, image.content_type, image.data, field=field)["reference"]
    from functions.core import links

    files_url = f"{links.public_base_url()}/v1/files/"
    if value.startswith(files_url):
        record = _file_record(workspace_id, value[len(files_url):].split("?", 1)[0].strip("/"))
        if record is None:
            raise bad_field(field, "names no file of this workspace (POST /v1/files)", "upload_not_found")
        return uploads.SCHEME + record["upload_id"]
    return value


def _renamed(exc: DarkroomError) -> DarkroomError:
    """The core's field names as the input's (num_outputs, image…), in the fields and in the detail."""
    exc = rename_fields(exc, dialect.INPUT_NAMES)
    if exc.errors and exc.status == 400:
        exc.message = "Invalid request: " + "; ".join(f"{e.field}: {e.message}" for e in exc.errors)
    return exc


def _named(owner: str, name: str, ref: str) -> ModelSpec:
    """The model a route's path names, and the key's scope for its type, before the body is read (a key without
    the scope learns nothing of the request)."""
    model = dialect.find_model(owner, name)
    if model is None:
        raise dialect.model_not_found(ref)
    _caller().require(f"{model.type}:generate")
    return model


def _create(model: ModelSpec, body: dialect.PredictionRequest) -> Response:
    caller = _caller()
    event = router.current_event
    headers = {k.lower(): v for k, v in (event.headers or {}).items()}
    wait = prefer_wait(headers.get("prefer"))
    deadline = cancel_after(headers.get("cancel-after"))
    caller.require(f"{model.type}:generate")
    inp = dialect.parse_prediction_input(body.input)
    chosen = dialect.pick(model, inp)
    webhook, events = dialect.webhook_of(body), dialect.webhook_events(body)
    check_webhook(webhook, field_name="webhook" if body.webhook else "webhook_completed")
    try:
        # Every 422 the input itself can cause (sizes, steps…), before an image is stored.
        resolve_params(chosen, parse_input(GenerationInput, dialect.generation_input(chosen, inp)))
    except DarkroomError as exc:
        raise _renamed(exc) from None

    def work() -> dict[str, Any]:
        image = _reference(caller.workspace_id, inp.image, "input.image")
        mask = _reference(caller.workspace_id, inp.mask, "input.mask")
        record = dict(body.input)
        for name, stored in (("image", image), ("mask", mask)):
            if stored and str(record.get(name, "")).startswith("data:"):
                record[name] = stored  # the stored upload, not megabytes of base64 in the job record
        try:
            ran, params = resolve_request(chosen, parse_input(GenerationInput,
                                                              dialect.generation_input(chosen, inp, image, mask)),
                                          workspace_id=caller.workspace_id)
        except DarkroomError as exc:
            raise _renamed(exc) from None
        job = submit(SubmitRequest(workspace_id=caller.workspace_id, model=ran, params=params, input=record,
                                   dialect=REPLICATE, tool=sync.tool_for(ran), webhook=webhook,
                                   webhook_events=events, cancel_after=deadline))
        return job.model_dump(mode="json")

    fingerprint = {"route": event.path, "body": body.model_dump(mode="json"), "cancel_after": deadline}
    key = headers.get("idempotency-key")
    if wait is None:
        job = Job.model_validate(idempotency.once(key, caller.workspace_id, fingerprint, work))
        return json_response(201, dialect.prediction(job))
    # A held create occupies a Lambda environment, as a synchronous call does: the same in-flight caps.
    with inflight.sync_call(caller.key_id, caller.workspace_id):
        job = Job.model_validate(idempotency.once(key, caller.workspace_id, fingerprint, work))
        host = host_of(event.raw_event.get("requestContext") or {})
        try:
            job = wait_for(job, timeout=min(wait, sync._budget(router, host)))
        except GatewayTimeout:
            job = JobStore().get(job.id) or job
    return json_response(201, dialect.prediction(job, waited=True))


_CREATE_DESCRIPTION = ("Answers 201 with the prediction at once; with `Prefer: wait` (or `wait=N`, at most 60 s) "
                       "once it finishes or the wait runs out. `Cancel-After` (30s, 5m, 1h30m) cancels it then: "
                       "`aborted` if it had not started. An Idempotency-Key header makes a retry return the first "
                       "prediction.")


@router.post("/v1/models/<owner>/<name>/predictions", **doc(
    "Create a prediction with a model", dialect=REPLICATE, ok="ReplicatePrediction", status=201,
    body=dialect.PredictionRequest, errors=CREATE_ERRORS, params=CREATE_HEADERS,
    description=_CREATE_DESCRIPTION))
def create_model_prediction(owner: str, name: str) -> Response[dict]:
    model = _named(owner, name, f"{owner}/{name}")
    return _create(model, parse_input(dialect.PredictionRequest, json_body(router.current_event)))


@router.post("/v1/deployments/<owner>/<name>/predictions", **doc(
    "Create a prediction with a deployment", dialect=REPLICATE, ok="ReplicatePrediction", status=201,
    body=dialect.PredictionRequest, errors=CREATE_ERRORS, params=CREATE_HEADERS,
    description="A deployment is a model by another name: owner/name is resolved as the model route's. "
                + _CREATE_DESCRIPTION))
def create_deployment_prediction(owner: str, name: str) -> Response[dict]:
    model = _named(owner, name, f"deployment {owner}/{name}")
    return _create(model, parse_input(dialect.PredictionRequest, json_body(router.current_event)))


@router.post("/v1/predictions", **doc(
    "Create a prediction with a version", dialect=REPLICATE, ok="ReplicatePrediction", status=201,
    body=dialect.VersionedPredictionRequest, errors=CREATE_ERRORS, params=CREATE_HEADERS,
    description="`version`: a version id (GET /v1/models/{owner}/{name}), owner/name or owner/name:version. "
                + _CREATE_DESCRIPTION))
def create_prediction() -> Response[dict]:
    body = parse_input(dialect.VersionedPredictionRequest, json_body(router.current_event))
    return _create(dialect.model_for_version(body.version), body)


# ---------------------------------------------------------------- read, list, cancel, stream


def _job(prediction_id: str) -> Job:
    try:
        return JobStore().get_for_workspace(_caller().workspace_id, prediction_id)
    except NotFound:
        raise NotFound(f"Prediction {prediction_id} not found", code="prediction_not_found") from None


@router.get("/v1/predictions/<prediction_id>", **doc(
    "Get a prediction", dialect=REPLICATE, ok="ReplicatePrediction", errors=(403, 404),
    description="Any generation of the workspace, whichever dialect made it."))
def get_prediction(prediction_id: str) -> Response[dict]:
    return json_response(200, dialect.prediction(_job(prediction_id)))


def _cursor(value: str | None) -> str | None:
    if not value:
        return None
    try:
        decoded = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        decoded = ""
    if not re.fullmatch(r"\d{14}#[0-9A-Za-z_-]{1,64}", decoded):
        raise bad_field("cursor", "is not a cursor this API handed out (use the `next` URL as it is)")
    return decoded


@router.get("/v1/predictions", **doc(
    "List predictions", dialect=REPLICATE, ok="ReplicatePredictionList", errors=(403, 422),
    params=(query("cursor", {"type": "string"}, "From the previous page's `next`."),),
    description=f"Newest first, {PAGE_SIZE} a page; `next` is the URL of the next page (null on the last)."))
def list_predictions() -> Response[dict]:
    from functions.core import links

    before = _cursor((router.current_event.query_string_parameters or {}).get("cursor"))
    jobs, last = JobStore().page_for_workspace(_caller().workspace_id, limit=PAGE_SIZE, before=before)
    following = None
    if last:
        token = base64.urlsafe_b64encode(last.encode()).decode().rstrip("=")
        following = f"{links.public_base_url()}/v1/predictions?cursor={token}"
    return json_response(200, {"previous": None, "next": following,
                               "results": [dialect.prediction(j) for j in jobs]})


@router.post("/v1/predictions/<prediction_id>/cancel", **doc(
    "Cancel a prediction", dialect=REPLICATE, ok="ReplicatePrediction", errors=(403, 404),
    description="Stops its GPU work within a step (credits as POST /api/generations/{id}/cancel). A prediction "
                "that has finished is answered as it is."))
def cancel_prediction(prediction_id: str) -> Response[dict]:
    store = JobStore()
    job = _job(prediction_id)
    try:
        job = cancel(job, store=store)
    except TransitionRejected:
        job = store.get(job.id) or job
    return json_response(200, dialect.prediction(job))


@router.get("/v1/predictions/<prediction_id>/stream", **doc(
    "Stream a prediction", dialect=REPLICATE, ok=None, ok_media="text/event-stream", errors=(403, 404),
    description="Server-sent events `logs`, `output`, `error` and `done`, each with an id. The response is sent "
                "whole once the prediction finishes (or the host's wait runs out, without `done`)."))
def stream_prediction(prediction_id: str) -> Response[str]:
    caller = _caller()
    job = _job(prediction_id)
    if not job.terminal:
        host = host_of(router.current_event.raw_event.get("requestContext") or {})
        with inflight.sync_call(caller.key_id, caller.workspace_id):
            try:
                job = wait_for(job, timeout=sync._budget(router, host))
            except GatewayTimeout:
                job = JobStore().get(job.id) or job
    return Response(status_code=200, content_type="text/event-stream", body=dialect.sse_events(job),
                    headers={"cache-control": "no-store"})


# ---------------------------------------------------------------- models


def _model(owner: str, name: str) -> ModelSpec:
    model = dialect.find_model(owner, name)
    if model is None:
        raise dialect.model_not_found(f"{owner}/{name}")
    return model


@router.get("/v1/models/<owner>/<name>", **doc(
    "Get a model", dialect=REPLICATE, ok="ReplicateModel", errors=(404,),
    description="latest_version.openapi_schema describes its input (Replicate's names) and output."))
def get_model(owner: str, name: str) -> Response[dict]:
    return json_response(200, dialect.model_object(_model(owner, name), owner, name))


@router.get("/v1/models/<owner>/<name>/versions/<version>", **doc(
    "Get a model version", dialect=REPLICATE, ok="ReplicateVersion", errors=(404,)))
def get_version(owner: str, name: str, version: str) -> Response[dict]:
    model = _model(owner, name)
    if version != dialect.version_id(model):
        raise NotFound(f"Version {version} of {owner}/{name} not found; latest_version.id of GET "
                       f"/v1/models/{owner}/{name} names it", code="version_not_found")
    return json_response(200, dialect.version_object(model))


# ---------------------------------------------------------------- files


@router.post("/v1/files", **doc(
    "Upload a file", dialect=REPLICATE, ok="ReplicateFile", status=201, form="ReplicateFileForm",
    errors=(403, 413, 422),
    description="multipart/form-data: `content` (a PNG, JPEG, WebP or GIF image of up to 20 MiB) and optionally "
                "`metadata` (a JSON object). urls.get can be given as a prediction's image input."))
def create_file() -> Response[dict]:
    caller = _caller()
    form = parse_form(router.current_event)
    for name in form.files:
        if name not in ("content", "metadata"):
            raise bad_field(name, "is not a recognised file field; send the file as `content`", "unknown_field")
    for name in form.fields:
        if name not in ("metadata", "filename", "type"):
            raise bad_field(name, "is not a recognised field (content, metadata, filename, type)", "unknown_field")
    files = form.files.get("content") or []
    if len(files) != 1:
        raise bad_field("content", "is required: exactly one file", "required")
    # replicate-python sends metadata as a form field, replicate-javascript as a JSON part.
    parts = form.files.get("metadata") or []
    metadata = _metadata(parts[-1].data.decode("utf-8", "replace") if parts else form.value("metadata"))
    upload = files[0]
    name = form.value("filename") or upload.filename or "file"
    content_type = sniff_content_type(upload.data, form.value("type") or upload.content_type)
    try:
        record = store_file(caller.workspace_id, name, content_type, upload.data, metadata)
    except DarkroomError as exc:
        raise _renamed(exc) from None
    return json_response(201, dialect.file_object(record))


def store_file(workspace_id: str, name: str, content_type: str, data: bytes, metadata: dict[str, Any]) -> dict:
    """The file as an upload of the workspace (functions/core/uploads.py: images only, checked), and its record:
    what GET /v1/files shows and what resolves its urls.get to the upload when a prediction names it."""
    stored = uploads.store(workspace_id, name, content_type, data, field="content")
    record = {"id": stored["id"].split("/", 1)[0], "upload_id": stored["id"], "name": name,
              "content_type": content_type, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
              "md5": hashlib.md5(data).hexdigest(), "metadata": metadata, "created_at": clock.now()}
    storage.put_bytes(_record_key(workspace_id, record["id"]), json.dumps(record).encode(), "application/json")
    return record


def _metadata(value: str | None) -> dict[str, Any]:
    if value is None:
        return {}
    try:
        metadata = json.loads(value)
    except ValueError:
        metadata = None
    if not isinstance(metadata, dict) or len(value) > 4096:
        raise bad_field("metadata", "must be a JSON object of at most 4096 characters")
    return metadata


def _file(file_id: str) -> dict[str, Any]:
    record = _file_record(_caller().workspace_id, file_id)
    if record is None:
        raise NotFound(f"File {file_id} not found", code="file_not_found")
    return record


@router.get("/v1/files", **doc("List files", dialect=REPLICATE, ok="ReplicateFileList", errors=(403,),
                               description=f"The newest {PAGE_SIZE} files uploaded with POST /v1/files."))
def list_files() -> Response[dict]:
    workspace_id = _caller().workspace_id
    listed = aws.client("s3").list_objects_v2(Bucket=get_settings().outputs_bucket,
                                              Prefix=f"{workspace_id}/{FILES_PREFIX}/", MaxKeys=1000)
    newest = sorted(listed.get("Contents", []), key=lambda o: o["LastModified"], reverse=True)[:PAGE_SIZE]
    records = [json.loads(storage.get_bytes(o["Key"])) for o in newest]
    return json_response(200, {"previous": None, "next": None, "results": [dialect.file_object(r) for r in records]})


@router.get("/v1/files/<file_id>", **doc("Get a file", dialect=REPLICATE, ok="ReplicateFile", errors=(403, 404)))
def get_file(file_id: str) -> Response[dict]:
    return json_response(200, dialect.file_object(_file(file_id)))


@router.delete("/v1/files/<file_id>", **doc("Delete a file", dialect=REPLICATE, ok=None, status=204,
                                             errors=(403, 404)))
def delete_file(file_id: str) -> Response[str]:
    workspace_id = _caller().workspace_id
    record = _file(file_id)
    storage.delete([uploads.key_for(workspace_id, record["upload_id"]), _record_key(workspace_id, file_id)])
    return Response(status_code=204, body="")


# ---------------------------------------------------------------- webhooks


@router.get("/v1/webhooks/default/secret", **doc(
    "Get the webhook signing secret", dialect=REPLICATE, ok="ReplicateWebhookSecret", errors=(403,),
    description="The workspace's Standard Webhooks secret (GET /api/webhooks/secret; an admin key's)."))
def webhook_secret() -> Response[dict]:
    workspace = WorkspaceStore().with_webhook_secret(_caller().workspace_id)
    return json_response(200, {"key": workspace.webhook_secrets[0].secret})
