"""The Replicate dialect on the real api handler, through the local gateway's event translation, against a moto
server; the dispatch and complete functions poll their real queues (the `pipeline` fixture) or are drained by the
test, step by step, where it controls when a job starts.

What Replicate's clients rely on: the routes and their statuses, the prediction object (statuses, output URLs,
tqdm-style logs they parse for progress, metrics, urls), `Prefer: wait`, `Cancel-After` (aborted before start,
canceled while running), cursor pagination, files, the stream's events, webhooks with the events filter, and
problem-details errors that name the field. The real clients run in tests/e2e/test_replicate_clients.py.
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
from urllib.parse import urlsplit

import pytest
from PIL import Image
from standardwebhooks.webhooks import Webhook

from functions.core.jobs import JobStatus, JobStore
from functions.core.settings import get_settings
from functions.core.workspaces import WorkspaceStore
from infra.local.receiver import WebhookReceiver
from tests.integration.conftest import RecordingDispatcher, fetch_media

FLUX = "/v1/models/black-forest-labs/flux-schnell/predictions"
SMALL = {"prompt": "a lighthouse at dusk", "width": 256, "height": 256, "num_inference_steps": 2}
# replicate-python's own progress pattern (Prediction.Progress._pattern).
PROGRESS = re.compile(r"^\s*(?P<percentage>\d+)%\s*\|.+?\|\s*(?P<current>\d+)\/(?P<total>\d+)")


@pytest.fixture(autouse=True)
def roomy_wait(world, monkeypatch):
    monkeypatch.setenv("DARKROOM_SYNC_WAIT_SECONDS", "240")
    get_settings.cache_clear()


def bearer(tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.key}"}


def token(tenant) -> dict[str, str]:
    return {"Authorization": f"Token {tenant.key}"}


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def created(resp) -> dict:
    assert resp.status_code == 201, (resp.status_code, resp.get_data(as_text=True))
    return resp.json


def problem(resp, status: int, field: str | None = None, *words: str) -> dict:
    """Replicate's problem details: title, detail and status; invalid input names each field."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    body = resp.json
    assert body["status"] == status and body["title"] and body["detail"], body
    if field is not None:
        assert field in [f["field"] for f in body["invalid_fields"]], body
        assert field in body["detail"], body
    for word in words:
        assert word in body["detail"], (word, body)
    return body


def png(width: int = 64, height: int = 64, color=(200, 40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()


def poll(api, tenant, prediction_id: str, timeout: float = 120) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        body = api.get(f"/v1/predictions/{prediction_id}", headers=bearer(tenant)).json
        if body["status"] in ("succeeded", "failed", "canceled", "aborted"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"prediction {prediction_id} did not finish")


# ---------------------------------------------------------------- create, wait, read


def test_prefer_wait_answers_the_finished_prediction(world, api, tenant, pipeline):
    resp = api.post(FLUX, json={"input": {**SMALL, "num_outputs": 2, "output_format": "jpg", "seed": 7}},
                    headers={**bearer(tenant), "Prefer": "wait"})
    body = created(resp)
    assert body["status"] == "succeeded" and body["error"] is None
    assert body["model"] == "black-forest-labs/flux-schnell" and len(body["version"]) == 64
    assert body["input"]["num_outputs"] == 2
    assert isinstance(body["output"], list) and len(body["output"]) == 2
    image = Image.open(io.BytesIO(fetch_media(api, body["output"][0])))
    assert image.format == "JPEG" and image.size == (256, 256)
    assert body["metrics"]["predict_time"] > 0 and body["metrics"]["total_time"] >= body["metrics"]["predict_time"]
    assert body["started_at"] and body["completed_at"] and body["created_at"]
    lines = [PROGRESS.match(line.strip()) for line in body["logs"].split("\n")]
    last = [m for m in lines if m][-1]
    assert (last["percentage"], last["current"], last["total"]) == ("100", "2", "2")
    assert "Using seed: 7" in body["logs"]
    for name, suffix in (("get", ""), ("cancel", "/cancel"), ("stream", "/stream")):
        assert path_of(body["urls"][name]) == f"/v1/predictions/{body['id']}{suffix}"
    # The same job, read through the native dialect.
    native = api.get(f"/api/generations/{body['id']}", headers=tenant.headers).json
    assert native["status"] == "success"


def test_without_prefer_the_create_answers_at_once_and_polling_finishes_it(world, api, tenant, pipeline):
    body = created(api.post(FLUX, json={"input": SMALL}, headers=token(tenant)))
    assert body["status"] in ("starting", "processing", "succeeded") and body["id"]
    done = poll(api, tenant, body["id"])
    assert done["status"] == "succeeded" and len(done["output"]) == 1
    assert JobStore().get(body["id"]).dialect == "replicate"


def test_prefer_wait_that_runs_out_answers_starting(world, api, tenant, monkeypatch, drain):
    """replicate-python takes any status but `starting` from a held create for a finished one."""
    from functions.dispatch import handler

    monkeypatch.setattr(handler, "get_dispatcher", lambda: RecordingDispatcher())
    started = time.monotonic()
    body = created(api.post(FLUX, json={"input": SMALL}, headers={**bearer(tenant), "Prefer": "wait=1"}))
    assert 1 <= time.monotonic() - started < 10
    assert body["status"] == "starting" and body["output"] is None


def test_version_and_deployment_routes_run_the_same_model(world, api, tenant, pipeline):
    model = api.get("/v1/models/black-forest-labs/flux-schnell", headers=bearer(tenant)).json
    version = model["latest_version"]["id"]
    schema = model["latest_version"]["openapi_schema"]["components"]["schemas"]
    assert {"prompt", "num_outputs", "aspect_ratio", "output_format", "seed", "megapixels", "image"} <= set(
        schema["Input"]["properties"])
    assert schema["Input"]["required"] == ["prompt"]
    assert schema["Output"] == {"type": "array", "items": {"type": "string", "format": "uri"}, "title": "Output"}
    assert api.get(f"/v1/models/black-forest-labs/flux-schnell/versions/{version}",
                   headers=bearer(tenant)).json["id"] == version
    for ref in (version, "black-forest-labs/flux-schnell", f"black-forest-labs/flux-schnell:{version}"):
        body = created(api.post("/v1/predictions", json={"version": ref, "input": SMALL},
                                headers={**bearer(tenant), "Prefer": "wait"}))
        assert body["status"] == "succeeded" and body["version"] == version
        assert JobStore().get(body["id"]).model == "flux-schnell"
    body = created(api.post("/v1/deployments/black-forest-labs/flux-schnell/predictions", json={"input": SMALL},
                            headers={**bearer(tenant), "Prefer": "wait"}))
    assert body["status"] == "succeeded"
    # Every catalog model is also darkroom/<id>; it is shown by its owner/name alias where it has one.
    body = created(api.post("/v1/models/darkroom/sdxl-turbo/predictions", json={"input": SMALL},
                            headers={**bearer(tenant), "Prefer": "wait"}))
    assert body["status"] == "succeeded" and body["model"] == "stabilityai/sdxl-turbo"
    assert api.get("/v1/models/darkroom/flux-schnell-edit", headers=bearer(tenant)).status_code == 200


def test_replicate_input_names_reach_the_worker(world, api, tenant, monkeypatch, drain):
    from functions.dispatch import handler

    recording = RecordingDispatcher()
    monkeypatch.setattr(handler, "get_dispatcher", lambda: recording)
    body = created(api.post("/v1/models/black-forest-labs/flux-dev/predictions", json={"input": {
        "prompt": "a fox", "num_outputs": 3, "aspect_ratio": "16:9", "megapixels": "0.25", "output_format": "webp",
        "output_quality": 55, "num_inference_steps": 3, "guidance": 4.5, "seed": 42, "go_fast": True,
        "disable_safety_checker": False}}, headers=bearer(tenant)))
    drain("DispatchFunction", "JobsQueue")
    params = recording.requests[0].params
    assert params["n"] == 3 and params["steps"] == 3 and params["guidance"] == 4.5 and params["seed"] == 42
    assert params["output_format"] == "webp" and params["quality"] == 55
    assert params["width"] > params["height"] and abs(params["width"] * params["height"] - 512 * 512) < 0.15 * 512 * 512
    assert body["input"]["go_fast"] is True  # recorded, as sent
    # Turning the output safety checker off is the workspace operator's to allow (functions/core/moderation.py).
    problem(api.post(FLUX, json={"input": {**SMALL, "disable_safety_checker": True}}, headers=bearer(tenant)), 403,
            "input.disable_safety_checker")


def test_bad_input_is_a_422_naming_the_field(world, api, tenant):
    cases = [({"prompt": "x", "num_outputs": 0}, "input.num_outputs"),
             ({"prompt": "x", "colour": "red"}, "input.colour"),
             ({"prompt": "x", "aspect_ratio": "wide"}, "input.aspect_ratio"),
             ({"prompt": "x", "output_format": "gif"}, "input.output_format"),
             ({"prompt": "x", "lora_scale": 0.5}, "input.lora_scale"),
             ({"prompt": "x", "num_inference_steps": 999}, "input.num_inference_steps"),
             ({"prompt": "x", "width": 250, "height": 256}, "input.width"),
             ({"prompt": "x", "megapixels": "1", "width": 256}, "input.megapixels"),
             ({"prompt": "x", "prompt_strength": 0.5}, "input.prompt_strength"),
             ({"prompt": "x", "image": "ftp://example.com/a.png"}, "input.image"),
             ({}, "input.prompt")]
    for inp, field in cases:
        problem(api.post(FLUX, json={"input": inp}, headers=bearer(tenant)), 422, field)
    problem(api.post(FLUX, json={"input": {"prompt": "x"}, "webhook_events_filter": ["finished"]},
                     headers=bearer(tenant)), 422, "webhook_events_filter.0")
    problem(api.post(FLUX, json={"prompt": "x"}, headers=bearer(tenant)), 422, "input")
    problem(api.post(FLUX, json={"input": SMALL}, headers={**bearer(tenant), "Prefer": "wait=600"}), 422, "Prefer")
    problem(api.post(FLUX, json={"input": SMALL}, headers={**bearer(tenant), "Cancel-After": "soon"}), 422,
            "Cancel-After")
    problem(api.post("/v1/predictions", json={"input": SMALL}, headers=bearer(tenant)), 422, "version")
    # A LoRA that cannot be had (no such Hugging Face repo here) names the field it came in.
    problem(api.post("/v1/models/darkroom/ltx-video/predictions",
                     json={"input": {"prompt": "x", "lora_weights": "owner/some-lora"}}, headers=bearer(tenant)),
            422, "input.lora_weights")
    assert not JobStore().list_for_workspace(tenant.workspace_id)[0], "nothing was submitted"


def test_unknown_models_and_predictions_are_replicate_404s(world, api, tenant, new_tenant, pipeline):
    problem(api.post("/v1/models/acme/nothing/predictions", json={"input": SMALL}, headers=bearer(tenant)), 404,
            None, "acme/nothing")
    problem(api.get("/v1/models/acme/nothing", headers=bearer(tenant)), 404)
    problem(api.post("/v1/predictions", json={"version": "0" * 64, "input": SMALL}, headers=bearer(tenant)), 404)
    problem(api.get("/v1/models/black-forest-labs/flux-schnell/versions/abc", headers=bearer(tenant)), 404)
    problem(api.get("/v1/predictions/0123456789abcdef01234567", headers=bearer(tenant)), 404)
    # Another workspace's prediction is as missing as one that never was.
    body = created(api.post(FLUX, json={"input": SMALL}, headers=bearer(tenant)))
    other = new_tenant()
    problem(api.get(f"/v1/predictions/{body['id']}", headers=bearer(other)), 404)
    problem(api.post(f"/v1/predictions/{body['id']}/cancel", headers=bearer(other)), 404)
    problem(api.get("/v1/predictions", headers={}), 401)


def test_the_openai_routes_under_v1_keep_their_shape(world, api, tenant):
    one = api.get("/v1/models/flux-schnell", headers=bearer(tenant))
    assert one.status_code == 200 and one.json["object"] == "model"
    missing = api.get("/v1/models/dall-e-9", headers=bearer(tenant))
    assert missing.status_code == 404 and missing.json["error"]["code"] == "model_not_found"
    replicate = api.get("/v1/models/black-forest-labs/flux-schnell", headers=bearer(tenant))
    assert replicate.status_code == 200 and replicate.json["owner"] == "black-forest-labs"


# ---------------------------------------------------------------- list, cancel, Cancel-After


def test_cursor_pagination_walks_every_prediction_newest_first(world, api, tenant, monkeypatch):
    from functions.api import replicate as routes
    from functions.dispatch import handler

    monkeypatch.setattr(handler, "get_dispatcher", lambda: RecordingDispatcher())
    monkeypatch.setattr(routes, "PAGE_SIZE", 2)
    made = [created(api.post(FLUX, json={"input": SMALL}, headers=bearer(tenant)))["id"] for _ in range(5)]
    seen, url, pages = [], "/v1/predictions", 0
    while url:
        page = api.get(url, headers=bearer(tenant)).json
        assert page["previous"] is None and len(page["results"]) <= 2
        seen += [p["id"] for p in page["results"]]
        url = path_of(page["next"]) if page["next"] else None
        pages += 1
    assert seen == list(reversed(made)) and pages == 3
    problem(api.get("/v1/predictions?cursor=bogus", headers=bearer(tenant)), 422, "cursor")


def test_cancel_a_queued_prediction(world, api, tenant, monkeypatch):
    from functions.dispatch import handler

    monkeypatch.setattr(handler, "get_dispatcher", lambda: RecordingDispatcher())
    body = created(api.post(FLUX, json={"input": SMALL}, headers=bearer(tenant)))
    canceled = api.post(path_of(body["urls"]["cancel"]), headers=bearer(tenant))
    assert canceled.status_code == 200 and canceled.json["status"] == "canceled"
    # Canceling again answers the prediction as it is.
    again = api.post(path_of(body["urls"]["cancel"]), headers=bearer(tenant))
    assert again.status_code == 200 and again.json["status"] == "canceled"
    assert JobStore().get(body["id"]).refunded == JobStore().get(body["id"]).cost


def test_cancel_after_aborts_before_start_and_cancels_while_running(world, api, tenant, monkeypatch, drain):
    from functions.dispatch import handler

    recording = RecordingDispatcher()
    monkeypatch.setattr(handler, "get_dispatcher", lambda: recording)
    submitted = time.monotonic()
    never_started = created(api.post(FLUX, json={"input": SMALL}, headers={**bearer(tenant), "Cancel-After": "1s"}))
    # Long enough that the first drain (slow on a loaded machine) dispatches it before its deadline comes.
    running = created(api.post(FLUX, json={"input": SMALL}, headers={**bearer(tenant), "Cancel-After": "8"}))
    late = created(api.post(FLUX, json={"input": SMALL}, headers={**bearer(tenant), "Cancel-After": "5m"}))
    drain("DispatchFunction", "JobsQueue")  # all three spawned (the recording dispatcher runs nothing)
    store = JobStore()
    store.transition(store.get(running["id"]), JobStatus.RUNNING)
    # Which call it got depends on whether the first job's 1 s deadline came before its dispatch (a loaded machine).
    running_call = store.get(running["id"]).dispatch["call_id"]
    time.sleep(max(0.0, submitted + 8.5 - time.monotonic()))
    # SQS shows a delayed message up to a second late, and the cancel's recheck of the GPU call is one more
    # message after that: drain until it has been handled, within a bound.
    give_up = time.monotonic() + 30
    while running_call not in recording.canceled and time.monotonic() < give_up:
        drain("DispatchFunction", "JobsQueue")
    aborted = api.get(f"/v1/predictions/{never_started['id']}", headers=bearer(tenant)).json
    assert aborted["status"] == "aborted" and aborted["started_at"] is None
    stopped = api.get(f"/v1/predictions/{running['id']}", headers=bearer(tenant)).json
    assert stopped["status"] == "canceled" and stopped["started_at"]
    assert store.get(never_started["id"]).refunded == store.get(never_started["id"]).cost
    # The running job's GPU call was canceled, as any cancel does.
    assert running_call in recording.canceled
    assert api.get(f"/v1/predictions/{late['id']}", headers=bearer(tenant)).json["status"] == "starting"


def delayed_messages(world) -> int:
    attributes = world.sqs().get_queue_attributes(QueueUrl=get_settings().jobs_queue_url,
                                                  AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"])


def test_a_cancel_after_that_cannot_be_queued_charges_nothing_and_a_retry_makes_one_job(world, api, new_tenant,
                                                                                       monkeypatch):
    """The deadline's delayed message is sent before the job is dispatched; a failed send fails the job (refunded,
    never dispatched) with a 503, and a retry with the same Idempotency-Key makes the one job that is charged."""
    from botocore.exceptions import ClientError

    from functions.core import credits, messages

    tenant = new_tenant()
    before, delayed_before = credits.balance(tenant.workspace_id), delayed_messages(world)
    send = messages.send

    def deadline_send_fails(queue_url, message, **kwargs):
        if getattr(message, "cancel_at", None) is not None:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "SendMessage")
        return send(queue_url, message, **kwargs)

    headers = {**bearer(tenant), "Cancel-After": "5m", "Idempotency-Key": "create-once"}
    with monkeypatch.context() as patch:
        patch.setattr(messages, "send", deadline_send_fails)
        problem(api.post(FLUX, json={"input": SMALL}, headers=headers), 503, None, "nothing was charged")
    assert credits.balance(tenant.workspace_id) == before
    assert world.messages("JobsQueue") == []  # the failed job was never dispatched

    retried = created(api.post(FLUX, json={"input": SMALL}, headers=headers))
    again = created(api.post(FLUX, json={"input": SMALL}, headers=headers))
    assert again["id"] == retried["id"]
    job = JobStore().get(retried["id"])
    assert credits.balance(tenant.workspace_id) == pytest.approx(before - job.cost, abs=1e-6)
    assert world.messages("JobsQueue") == [{"job_id": job.id}]
    assert delayed_messages(world) == delayed_before + 1  # the deadline, on its way in 5 minutes


# ---------------------------------------------------------------- stream, files, webhooks


def test_the_stream_has_logs_output_and_done_events_each_with_an_id(world, api, tenant, pipeline):
    body = created(api.post(FLUX, json={"input": SMALL, "stream": True}, headers=bearer(tenant)))
    resp = api.get(path_of(body["urls"]["stream"]), headers={**bearer(tenant), "Accept": "text/event-stream"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    events = [block for block in resp.get_data(as_text=True).split("\n\n") if block.strip()]
    parsed = [dict(line.split(": ", 1) for line in block.split("\n")) for block in events]
    assert all(e["id"] for e in parsed)
    kinds = [e["event"] for e in parsed]
    assert set(kinds) == {"logs", "output", "done"} and kinds[-1] == "done"
    outputs = [e["data"] for e in parsed if e["event"] == "output"]
    # The same files; each answer signs its links afresh, so their expiry (and signature) can differ by a second.
    assert [urlsplit(u).path for u in outputs] == [urlsplit(u).path for u in poll(api, tenant, body["id"])["output"]]


def test_files_upload_read_use_as_input_and_delete(world, api, tenant, pipeline):
    form = {"content": (io.BytesIO(png()), "photo.png", "image/png"), "metadata": json.dumps({"tag": "x"})}
    file = created(api.post("/v1/files", data=form, headers=bearer(tenant), content_type="multipart/form-data"))
    assert file["name"] == "photo.png" and file["content_type"] == "image/png" and file["metadata"] == {"tag": "x"}
    assert file["size"] == len(png()) and len(file["checksums"]["sha256"]) == 64
    assert api.get(f"/v1/files/{file['id']}", headers=bearer(tenant)).json == file
    assert [f["id"] for f in api.get("/v1/files", headers=bearer(tenant)).json["results"]] == [file["id"]]
    body = created(api.post(FLUX, json={"input": {**SMALL, "image": file["urls"]["get"], "prompt_strength": 0.6}},
                            headers={**bearer(tenant), "Prefer": "wait"}))
    assert body["status"] == "succeeded", body
    job = JobStore().get(body["id"])
    assert job.model == "flux-schnell-edit" and job.params["strength"] == 0.6
    assert body["model"] == "black-forest-labs/flux-schnell"  # the model named; its image input ran the edit model
    # A data: URI input is stored as an upload; the job records the upload, not the base64.
    data_uri = "data:image/png;base64," + base64.b64encode(png(color=(0, 90, 200))).decode()
    body = created(api.post(FLUX, json={"input": {**SMALL, "image": data_uri}},
                            headers={**bearer(tenant), "Prefer": "wait"}))
    assert body["status"] == "succeeded" and body["input"]["image"].startswith("upload://")
    assert api.delete(f"/v1/files/{file['id']}", headers=bearer(tenant)).status_code == 204
    problem(api.get(f"/v1/files/{file['id']}", headers=bearer(tenant)), 404)
    problem(api.post(FLUX, json={"input": {**SMALL, "image": file["urls"]["get"]}}, headers=bearer(tenant)), 422,
            "input.image")
    problem(api.post("/v1/files", data={"file": (io.BytesIO(png()), "a.png", "image/png")}, headers=bearer(tenant),
                     content_type="multipart/form-data"), 422, "file")
    problem(api.post("/v1/files", data={"content": (io.BytesIO(b"%PDF-1.4"), "a.pdf", "application/pdf")},
                     headers=bearer(tenant), content_type="multipart/form-data"), 422, "content")


def test_webhooks_follow_the_events_filter_signed_with_the_workspace_secret(world, api, tenant, pipeline, drain):
    with WebhookReceiver() as rx:
        filtered = created(api.post(FLUX, json={"input": SMALL, "webhook": rx.url,
                                                "webhook_events_filter": ["start", "completed"]},
                                    headers=bearer(tenant)))
        default = created(api.post(FLUX, json={"input": SMALL, "webhook": rx.url}, headers=bearer(tenant)))
        poll(api, tenant, filtered["id"])
        poll(api, tenant, default["id"])
        deadline = time.time() + 30
        while len(rx.requests) < 3 and time.time() < deadline:
            drain("WebhooksFunction", "WebhooksQueue")
            time.sleep(0.2)
        secret = api.get("/v1/webhooks/default/secret", headers=bearer(tenant)).json["key"]
        assert secret == WorkspaceStore().get(tenant.workspace_id).webhook_secrets[0].secret
        assert secret.startswith("whsec_")
        payloads = [Webhook(secret).verify(r["body"], r["headers"]) for r in rx.requests]
        events = sorted(r["headers"]["webhook-id"] for r in rx.requests)
    # Each event is the prediction as it stands when it is sent (the start event of a job that finished meanwhile
    # shows it finished), under its own webhook-id.
    assert events == sorted([f"evt_{filtered['id']}_running", f"evt_{filtered['id']}_succeeded",
                             f"evt_{default['id']}_succeeded"])
    assert {p["id"] for p in payloads} == {filtered["id"], default["id"]}
    done = next(p for p in payloads if p["status"] == "succeeded")
    assert done["output"] and done["metrics"]["predict_time"] > 0 and done["urls"]["get"]
    assert JobStore().get(filtered["id"]).webhook_events == ["start", "completed"]


def test_webhook_events_map_onto_the_jobs_events(world, api, tenant, monkeypatch):
    from functions.dispatch import handler

    monkeypatch.setattr(handler, "get_dispatcher", lambda: RecordingDispatcher())
    for events, expected in ((["output"], ["completed"]), (["logs"], ["start", "completed"]),
                             (["start"], ["start"]), (["completed", "output"], ["completed"])):
        body = created(api.post(FLUX, json={"input": SMALL, "webhook": "http://127.0.0.1:9/hook",
                                            "webhook_events_filter": events}, headers=bearer(tenant)))
        assert JobStore().get(body["id"]).webhook_events == expected, events
    body = created(api.post(FLUX, json={"input": SMALL, "webhook_completed": "http://127.0.0.1:9/hook"},
                            headers=bearer(tenant)))
    job = JobStore().get(body["id"])
    assert job.webhook == "http://127.0.0.1:9/hook" and job.webhook_events == ["completed"]


def test_scopes_guard_the_routes(world, api, new_tenant, monkeypatch):
    from functions.dispatch import handler

    monkeypatch.setattr(handler, "get_dispatcher", lambda: RecordingDispatcher())
    reader = new_tenant(["media:read"])
    problem(api.post(FLUX, json={"input": SMALL}, headers=bearer(reader)), 403)
    problem(api.get("/v1/webhooks/default/secret", headers=bearer(reader)), 403)
    assert api.get("/v1/predictions", headers=bearer(reader)).status_code == 200
    video_only = new_tenant(["video:generate"])
    problem(api.post(FLUX, json={"input": SMALL}, headers=bearer(video_only)), 403)


def test_a_job_of_another_dialect_reads_as_a_prediction(world, api, tenant, pipeline):
    body = {"tool": "create-image", "input": {"prompt": "a fox", "size": "256x256"}}
    job_id = api.post("/api/run", json=body, headers=tenant.headers).json["id"]
    done = poll(api, tenant, job_id)
    # The default create-image model, by its Replicate name (an owner/name alias of the catalog).
    assert done["status"] == "succeeded" and done["model"].startswith("black-forest-labs/")
    assert len(done["output"]) == 1 and done["input"]["prompt"] == "a fox"
    assert job_id in [p["id"] for p in api.get("/v1/predictions", headers=bearer(tenant)).json["results"]]


def test_lora_inputs_run_the_workspaces_adapters(world, api, tenant, pipeline, tmp_path):
    """lora_weights/lora_scale and extra_lora/extra_lora_scale onto the LoRA machinery: both adapters run, at their
    scales, and change the image; the job reports them."""
    import numpy as np

    from gpu import adapters
    from gpu.tiny import ensure_tiny_lora

    adapters.forget()
    ids = []
    for name in ("ink", "neon"):
        data = ensure_tiny_lora("flux", tmp_path, name).read_bytes()
        form = {"file": (io.BytesIO(data), f"{name}.safetensors", "application/octet-stream"), "name": name}
        resp = api.post("/api/loras", data=form, headers=tenant.headers, content_type="multipart/form-data")
        assert resp.status_code == 201, resp.get_data(as_text=True)
        ids.append(resp.json["id"])

    def image(**inputs) -> tuple[np.ndarray, dict]:
        body = created(api.post("/v1/models/black-forest-labs/flux-schnell-lora/predictions",
                                json={"input": {**SMALL, "seed": 7, **inputs}}, headers={**bearer(tenant), "Prefer": "wait"}))
        assert body["status"] == "succeeded", body
        pixels = Image.open(io.BytesIO(fetch_media(api, body["output"][0]))).convert("RGB")
        return np.asarray(pixels, dtype=np.int16), body

    plain, _ = image()
    both, body = image(lora_weights=ids[0], extra_lora=ids[1], extra_lora_scale=0.7)
    assert np.abs(both - plain).mean() > 1
    ran = JobStore().get(body["id"]).loras
    assert [(lora["id"], lora["scale"]) for lora in ran] == [(ids[0], 1.0), (ids[1], 0.7)]
    assert body["model"] == "black-forest-labs/flux-schnell"


def test_a_blocked_output_is_a_failed_prediction_saying_why(world, api, tenant, pipeline, monkeypatch):
    """Replicate answers an output its safety checker flags as a failed prediction with the reason in `error`
    (replicate-python raises ModelError with it); nothing was stored. The tiny checker is forced to block."""
    from functions.core.settings import get_settings

    monkeypatch.setenv("DARKROOM_MODERATION_THRESHOLD", "0")
    get_settings.cache_clear()
    body = created(api.post(FLUX, json={"input": SMALL}, headers={**bearer(tenant), "Prefer": "wait"}))
    assert body["status"] == "failed" and body["output"] is None, body
    assert "safety" in body["error"].lower() or "moderation" in body["error"].lower(), body["error"]
    job = JobStore().get(body["id"])
    assert job.outputs == [] and job.error.code == "moderation_blocked"
    monkeypatch.delenv("DARKROOM_MODERATION_THRESHOLD")
    get_settings.cache_clear()
