"""The fal dialect on the real api handler, through the local gateway's event translation, with the dispatch,
complete and webhooks functions fed from a moto server's queues: the queue API on the Darkroom host (what
fal-client calls with FAL_QUEUE_RUN_HOST/FAL_RUN_HOST), the proxy route (@fal-ai/client's proxyUrl), the run host,
fal's errors, and fal's webhook. The real clients run against the local stack in tests/e2e/test_fal_clients.py.
"""

from __future__ import annotations

import base64
import io
import json
import time
from urllib.parse import urlsplit

import pytest
from PIL import Image
from standardwebhooks.webhooks import Webhook

from functions.core import credits
from functions.core.catalog import get_catalog
from functions.core.jobs import JobStatus, JobStore
from functions.core.settings import get_settings
from functions.core.workspaces import WorkspaceStore
from infra.local.receiver import WebhookReceiver
from tests.integration.conftest import fetch_media, serve_files

SCHNELL = "fal-ai/flux/schnell"
QUEUE = f"/fal/queue/{SCHNELL}"
SMALL = {"prompt": "a lighthouse at dusk", "image_size": {"width": 256, "height": 256}}


@pytest.fixture(autouse=True)
def roomy_wait(world, monkeypatch):
    """Tiny pipelines on a busy 2-core machine: give synchronous waits room."""
    monkeypatch.setenv("DARKROOM_SYNC_WAIT_SECONDS", "240")
    get_settings.cache_clear()


def key(tenant) -> dict[str, str]:
    """fal's clients authenticate with `Authorization: Key <key>`."""
    return {"Authorization": f"Key {tenant.key}"}


def ok(resp, status: int = 200) -> dict:
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    return resp.json


def detail(resp, status: int, *words: str):
    """fal's error: `{"detail": …}` with the status; every word appears in it."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    assert set(resp.json) >= {"detail"}, resp.json
    text = json.dumps(resp.json["detail"])
    for word in words:
        assert word in text, (word, resp.json)
    return resp.json["detail"]


def invalid(resp, *loc) -> dict:
    """A 422 whose detail names the field at `loc` ({loc, msg, type}), as fal's FastAPI apps answer."""
    items = detail(resp, 422)
    assert isinstance(items, list) and items, items
    found = [i for i in items if i["loc"] == list(loc)]
    assert found, (loc, items)
    assert found[0]["msg"] and found[0]["type"]
    return found[0]


def run_queued(drain, job_id: str) -> None:
    """The dispatch function (the GPU worker inline) and the complete function, once each."""
    drain("DispatchFunction", "JobsQueue")
    drain("CompleteFunction", "ResultsQueue")
    assert JobStore().get(job_id).terminal


def decoded(api, url: str) -> Image.Image:
    if url.startswith("data:"):
        return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    return Image.open(io.BytesIO(fetch_media(api, url)))


# ---------------------------------------------------------------- the queue API on the Darkroom host


def test_submit_status_result_on_the_darkroom_host(world, api, tenant, dispatcher, drain):
    before = credits.balance(tenant.workspace_id)
    queued = ok(api.post(QUEUE, json={**SMALL, "num_images": 2, "seed": 42, "output_format": "png"},
                         headers=key(tenant)))
    request_id = queued["request_id"]
    # fal-client calls these URLs as given: on the host it called, over https (it speaks nothing else).
    base = f"https://localhost/fal/queue/fal-ai/flux/requests/{request_id}"
    assert queued == {"request_id": request_id, "response_url": base, "status_url": f"{base}/status",
                      "cancel_url": f"{base}/cancel", "status": "IN_QUEUE", "queue_position": 0}
    path = urlsplit(base).path

    status = api.get(f"{path}/status?logs=1", headers=key(tenant))
    assert status.headers["x-fal-request-id"] == request_id
    status = ok(status)
    assert status["status"] == "IN_QUEUE" and status["queue_position"] == 0
    assert [line["message"] for line in status["logs"]] == ["Request queued for flux-schnell"]
    assert ok(api.get(f"{path}/status", headers=key(tenant)))["logs"] is None  # only when asked for
    detail(api.get(path, headers=key(tenant)), 400, "still in progress")

    run_queued(drain, request_id)
    done = ok(api.get(f"{path}/status?logs=true", headers=key(tenant)))
    assert done["status"] == "COMPLETED" and done["metrics"]["inference_time"] > 0
    assert "error" not in done and done["logs"][-1]["message"].startswith("Generation completed")

    result = ok(api.get(path, headers=key(tenant)))
    assert result["seed"] == 42 and result["prompt"] == SMALL["prompt"]
    assert result["has_nsfw_concepts"] == [False, False] and result["timings"]["inference"] > 0
    assert len(result["images"]) == 2
    for image in result["images"]:
        assert (image["content_type"], image["width"], image["height"]) == ("image/png", 256, 256)
        assert decoded(api, image["url"]).size == (256, 256)
    # One job, read through the other dialects too; the credits are the ledger's.
    job = JobStore().get(request_id)
    assert job.dialect == "fal" and job.model == "flux-schnell" and job.params["n"] == 2
    native = ok(api.get(f"/api/generations/{request_id}", headers=tenant.headers))
    assert native["status"] == "success" and native["payload"]["num_images"] == 2
    assert credits.balance(tenant.workspace_id) == before - job.cost


def test_an_idempotency_key_makes_a_submit_safe_to_retry(world, api, tenant):
    headers = {**key(tenant), "Idempotency-Key": "fal-retry-1"}
    first = ok(api.post(QUEUE, json=SMALL, headers=headers))
    assert ok(api.post(QUEUE, json=SMALL, headers=headers)) == first
    assert JobStore().list_for_workspace(tenant.workspace_id)[1] == 1
    assert api.post(QUEUE, json={**SMALL, "seed": 1}, headers=headers).status_code == 422  # another request


def test_a_job_of_another_dialect_reads_through_fals_queue(world, api, tenant, dispatcher, drain):
    """One job, many dialects: a native submit is a fal request too (the request id is the generation's id)."""
    job_id = api.post("/api/run", json={"tool": "create-image", "input": {"prompt": "a fox", "size": "256x256"}},
                      headers=tenant.headers).json["id"]
    base = f"/fal/queue/fal-ai/whatever/requests/{job_id}"
    assert ok(api.get(f"{base}/status", headers=key(tenant)))["status"] == "IN_QUEUE"
    run_queued(drain, job_id)
    result = ok(api.get(base, headers=key(tenant)))
    assert result["prompt"] == "a fox" and result["images"][0]["content_type"] == "image/png"


def test_queue_position_counts_the_workspace_requests_ahead(world, api, tenant, new_tenant):
    submitted = [ok(api.post(QUEUE, json=SMALL, headers=key(tenant))) for _ in range(3)]
    assert [s["queue_position"] for s in submitted] == [0, 1, 2]
    ids = [s["request_id"] for s in submitted]
    ok(api.post(QUEUE, json=SMALL, headers=key(new_tenant())))  # another workspace's queue is not counted
    positions = [ok(api.get(f"{QUEUE.rsplit('/', 1)[0]}/requests/{i}/status", headers=key(tenant)))["queue_position"]
                 for i in ids]
    assert positions == [0, 1, 2]


def test_cancel_refunds_and_then_says_already_completed(world, api, tenant):
    before = credits.balance(tenant.workspace_id)
    request_id = ok(api.post(QUEUE, json=SMALL, headers=key(tenant)))["request_id"]
    base = f"/fal/queue/fal-ai/flux/requests/{request_id}"
    assert ok(api.put(f"{base}/cancel", headers=key(tenant)), 202) == {"status": "CANCELLATION_REQUESTED"}
    status = ok(api.get(f"{base}/status", headers=key(tenant)))
    assert status["status"] == "COMPLETED" and status["error_type"] == "request_canceled"
    again = api.put(f"{base}/cancel", headers=key(tenant))
    assert again.status_code == 400 and again.json["status"] == "ALREADY_COMPLETED"
    detail(api.get(base, headers=key(tenant)), 500, "canceled")
    assert JobStore().get(request_id).status == JobStatus.CANCELED
    assert credits.balance(tenant.workspace_id) == before


def test_another_workspace_cannot_see_or_cancel_a_request(world, api, tenant, new_tenant):
    request_id = ok(api.post(QUEUE, json=SMALL, headers=key(tenant)))["request_id"]
    base = f"/fal/queue/fal-ai/flux/requests/{request_id}"
    other = key(new_tenant())
    for method, path in (("GET", f"{base}/status"), ("GET", base), ("PUT", f"{base}/cancel"),
                         ("GET", f"{base}/status/stream")):
        detail(api.open(path, method=method, headers=other), 404, "not found")
    assert JobStore().get(request_id).status == JobStatus.QUEUED


def test_status_stream_is_server_sent_events_until_completed(world, api, tenant, dispatcher, drain, monkeypatch):
    request_id = ok(api.post(QUEUE, json=SMALL, headers=key(tenant)))["request_id"]
    stream = f"/fal/queue/fal-ai/flux/requests/{request_id}/status/stream"
    monkeypatch.setenv("DARKROOM_SYNC_WAIT_SECONDS", "0.3")
    get_settings.cache_clear()
    waiting = api.get(stream, headers=key(tenant))
    assert waiting.status_code == 200 and waiting.mimetype == "text/event-stream"
    events = [json.loads(line[6:]) for line in waiting.get_data(as_text=True).splitlines() if line.startswith("data: ")]
    assert [e["status"] for e in events] == ["IN_QUEUE"]  # the wait ran out first: the client reads again
    run_queued(drain, request_id)
    done = api.get(f"{stream}?logs=1", headers=key(tenant)).get_data(as_text=True)
    assert done.endswith("\n\n")
    events = [json.loads(line[6:]) for line in done.splitlines() if line.startswith("data: ")]
    assert events[-1]["status"] == "COMPLETED" and events[-1]["logs"]


# ---------------------------------------------------------------- the run host, inputs and outputs


def test_run_host_answers_the_result_with_sync_mode_data_uris(world, api, tenant, pipeline):
    resp = api.post(f"/fal/run/{SCHNELL}", json={**SMALL, "image_size": "square", "sync_mode": True},
                    headers=key(tenant))
    result = ok(resp)
    image = result["images"][0]
    assert image["url"].startswith("data:image/jpeg;base64,") and image["content_type"] == "image/jpeg"
    assert decoded(api, image["url"]).format == "JPEG" and (image["width"], image["height"]) == (512, 512)
    assert resp.headers["x-fal-request-id"] == JobStore().get(resp.headers["x-fal-request-id"]).id


def test_image_url_edits_with_the_models_image_to_image_counterpart(world, api, tenant, pipeline):
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (30, 120, 220)).save(buffer, format="PNG")
    with serve_files({"/photo.png": (buffer.getvalue(), "image/png")}) as host:
        resp = api.post(f"/fal/run/{SCHNELL}", json={**SMALL, "image_url": f"{host}/photo.png", "strength": 0.6},
                        headers=key(tenant))
    job = JobStore().get(resp.headers["x-fal-request-id"])
    assert ok(resp)["images"] and job.model == "flux-schnell-edit" and job.params["strength"] == 0.6
    assert job.params["references"] == [{"url": f"{host}/photo.png"}]


def test_image_urls_compose_on_a_multi_reference_model(world, api, tenant):
    urls = ["http://127.0.0.1:9/a.png", "http://127.0.0.1:9/b.png"]
    request_id = ok(api.post("/fal/queue/darkroom/flux2-klein", json={**SMALL, "image_urls": urls},
                             headers=key(tenant)))["request_id"]
    job = JobStore().get(request_id)
    assert job.model == "flux2-klein-edit" and job.params["references"] == [{"url": u} for u in urls]
    invalid(api.post(f"/fal/queue/{SCHNELL}", json={**SMALL, "image_urls": urls}, headers=key(tenant)),
            "body", "image_urls")  # flux-schnell edits one image per output


def test_a_video_endpoint_answers_fals_video_object(world, api, tenant, pipeline):
    resp = api.post("/fal/run/fal-ai/ltx-video", json={"prompt": "waves", "resolution": "256p", "duration": "2s"},
                    headers=key(tenant))
    video = ok(resp)["video"]
    assert video["content_type"] == "video/mp4" and video["file_name"].endswith(".mp4")
    assert fetch_media(api, video["url"])[4:8] == b"ftyp"
    job = JobStore().get(resp.headers["x-fal-request-id"])
    assert job.type == "video" and job.params["duration"] == 2 and job.model == "ltx-video"


def test_image_size_presets_and_objects_map_to_pixels(world, api, tenant):
    for image_size, pixels in (("landscape_4_3", (1024, 768)), ("portrait_16_9", (576, 1024)),
                               ({"width": 320, "height": 256}, (320, 256))):
        request_id = ok(api.post(QUEUE, json={"prompt": "x", "image_size": image_size}, headers=key(tenant)))[
            "request_id"]
        params = JobStore().get(request_id).params
        assert (params["width"], params["height"]) == pixels, image_size
    job = JobStore().get(ok(api.post(QUEUE, json={"prompt": "x", "num_inference_steps": 3, "guidance_scale": 2.5,
                                                  "enable_safety_checker": True}, headers=key(tenant)))["request_id"])
    assert (job.params["steps"], job.params["guidance"]) == (3, 2.5)
    assert job.params["moderation"]["level"] >= 1  # the checker runs, at the workspace's default level


def test_the_safety_checker_switch_is_the_workspaces_to_allow(world, api, tenant):
    off = {"prompt": "x", "enable_safety_checker": False}
    denied = api.post(QUEUE, json=off, headers=key(tenant))
    assert denied.status_code == 403 and "enable_safety_checker" in json.dumps(denied.json["detail"]), denied.json
    resp = api.put(f"/api/admin/workspaces/{tenant.workspace_id}/moderation", json={"allow_checker_off": True},
                   headers=tenant.headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    job = JobStore().get(ok(api.post(QUEUE, json=off, headers=key(tenant)))["request_id"])
    assert job.params["moderation"] == {"checker": False}, job.params


# ---------------------------------------------------------------- errors, fal's shapes


def test_invalid_input_is_a_422_naming_each_field(world, api, tenant):
    headers = key(tenant)
    invalid(api.post(QUEUE, json={"image_size": "square"}, headers=headers), "body", "prompt")
    invalid(api.post(QUEUE, json={**SMALL, "acceleration": "high"}, headers=headers), "body", "acceleration")
    invalid(api.post(QUEUE, json={**SMALL, "image_size": "huge"}, headers=headers), "body", "image_size")
    bad_side = invalid(api.post(QUEUE, json={"prompt": "x", "image_size": {"width": 99999, "height": 64}},
                                headers=headers), "body", "image_size")
    assert "width" in bad_side["msg"]
    invalid(api.post(QUEUE, json={**SMALL, "image_size": {"width": 250, "height": 256}}, headers=headers),
            "body", "image_size", "width")
    invalid(api.post(QUEUE, json={**SMALL, "num_inference_steps": 150}, headers=headers), "body",
            "num_inference_steps")
    invalid(api.post(QUEUE, json={**SMALL, "num_images": 0}, headers=headers), "body", "num_images")
    invalid(api.post(QUEUE, json={**SMALL, "loras": [{"path": "", "scale": 1}]}, headers=headers),
            "body", "loras", 0, "path")
    invalid(api.post(QUEUE, json={**SMALL, "negative_prompt": "blurry"}, headers=headers), "body", "negative_prompt")
    invalid(api.post(f"{QUEUE}?fal_webhook=ftp://example.com/hook", json=SMALL, headers=headers),
            "query", "fal_webhook")
    invalid(api.post(f"{QUEUE}?priority=high", json=SMALL, headers=headers), "query", "priority")
    invalid(api.post(f"/fal/run/{SCHNELL}?fal_webhook=https://example.com/h", json=SMALL, headers=headers),
            "query", "fal_webhook")
    invalid(api.post("/fal/queue/fal-ai/flux/dev/image-to-image", json=SMALL, headers=headers), "body", "image_url")
    invalid(api.post("/fal/queue/fal-ai/ltx-video", json={"prompt": "x", "duration": "long"}, headers=headers),
            "body", "duration")
    request_id = ok(api.post(QUEUE, json=SMALL, headers=headers))["request_id"]
    invalid(api.get(f"/fal/queue/fal-ai/flux/requests/{request_id}/status?logs=maybe", headers=headers),
            "query", "logs")
    invalid(api.post(QUEUE, data="not json", headers={**headers, "Content-Type": "application/json"}), "body")
    assert JobStore().list_for_workspace(tenant.workspace_id)[1] == 1  # none of the refused ones made a job


def test_steps_below_the_models_minimum_are_a_422_naming_the_field(world, api, tenant):
    """Fewer steps than the model's pipeline runs were accepted and charged, then failed on the GPU."""
    minimum = get_catalog().model("ltx-video").min_steps
    item = invalid(api.post("/fal/queue/fal-ai/ltx-video", json={"prompt": "x", "num_inference_steps": minimum - 1},
                            headers=key(tenant)), "body", "num_inference_steps")
    assert f"at least {minimum}" in item["msg"]
    assert JobStore().list_for_workspace(tenant.workspace_id)[1] == 0


def test_a_license_not_accepted_names_the_endpoint_in_the_path(world, api, tenant, monkeypatch):
    monkeypatch.setenv("DARKROOM_ACCEPTED_LICENSES", "")
    get_settings.cache_clear()
    item = invalid(api.post("/fal/queue/fal-ai/flux/dev", json=SMALL, headers=key(tenant)), "path", "endpoint_id")
    assert "flux-1-dev-non-commercial" in item["msg"] and item["type"] == "license_not_accepted"


def test_unsupported_headers_are_refused_by_name(world, api, tenant):
    for name, value in (("X-Fal-Queue-Priority", "low"), ("X-Fal-Request-Timeout", "30"),
                        ("X-Fal-Runner-Hint", "warm")):
        resp = api.post(QUEUE, json=SMALL, headers={**key(tenant), name: value})
        items = detail(resp, 400)
        assert items[0]["loc"] == ["header", name.lower()], items
    ok(api.post(QUEUE, json=SMALL, headers={**key(tenant), "X-Fal-Queue-Priority": "normal"}))


def test_unknown_endpoints_and_requests_are_fals_404(world, api, tenant):
    message = detail(api.post("/fal/queue/fal-ai/recraft/v3", json=SMALL, headers=key(tenant)), 404,
                     "fal-ai/recraft/v3", "not found", SCHNELL, "fal-ai/wan/v2.2-5b/text-to-video")
    assert "darkroom/" in message
    detail(api.get(f"/fal/queue/fal-ai/flux/requests/{'0' * 24}/status", headers=key(tenant)), 404, "not found")
    detail(api.get("/fal/queue/fal-ai/flux/requests/nope/status", headers=key(tenant)), 404)
    detail(api.delete("/fal/queue/fal-ai/flux/requests/x/cancel", headers=key(tenant)), 405)
    # An endpoint id with a longer path (fal-ai/wan/v2.2-5b/text-to-video) reaches its model too.
    wan = ok(api.post("/fal/queue/fal-ai/wan/v2.2-5b/text-to-video", json={"prompt": "waves", "duration": 2},
                      headers=key(tenant)))
    assert wan["status_url"].startswith("https://localhost/fal/queue/fal-ai/wan/requests/")
    assert JobStore().get(wan["request_id"]).model == "wan2.2-ti2v-5b"
    # Any catalog model is reachable as darkroom/<id>, and an alias with a slash as itself.
    for endpoint in ("darkroom/sdxl-turbo", "stabilityai/sdxl-turbo"):
        job = JobStore().get(ok(api.post(f"/fal/queue/{endpoint}", json=SMALL, headers=key(tenant)))["request_id"])
        assert job.model == "sdxl-turbo"


def test_a_key_needs_the_scopes_of_the_call(world, api, tenant, new_tenant):
    from functions.core.keys import KeyStore

    reader, _ = KeyStore().create(tenant.workspace_id, "reader", scopes=["media:read"])
    resp = api.post(QUEUE, json=SMALL, headers={"Authorization": f"Key {reader}"})
    assert resp.status_code == 403 and "image:generate" in resp.json["detail"]
    video_only, _ = KeyStore().create(tenant.workspace_id, "video", scopes=["video:generate"])
    assert api.post(QUEUE, json=SMALL, headers={"Authorization": f"Key {video_only}"}).status_code == 403
    request_id = ok(api.post(QUEUE, json=SMALL, headers=key(tenant)))["request_id"]
    cancel = f"/fal/queue/fal-ai/flux/requests/{request_id}/cancel"
    assert api.put(cancel, headers={"Authorization": f"Key {reader}"}).status_code == 403
    # Through the proxy the carried call's scope applies the same way.
    proxied = api.put("/fal/proxy", headers={"Authorization": f"Key {reader}",
                                             "x-fal-target-url": f"https://queue.fal.run{cancel[len('/fal/queue'):]}"})
    assert proxied.status_code == 403 and "media:write" in proxied.json["detail"]
    assert api.post(QUEUE, json=SMALL).status_code == 401


# ---------------------------------------------------------------- the proxy route (@fal-ai/client's proxyUrl)


def proxied(api, tenant, method: str, target: str, body=None):
    return api.open("/fal/proxy", method=method, json=body,
                    headers={**key(tenant), "x-fal-target-url": target})


def test_the_proxy_serves_the_call_its_target_names(world, api, tenant, dispatcher, drain):
    queued = ok(proxied(api, tenant, "POST", f"https://queue.fal.run/{SCHNELL}", SMALL))
    request_id = queued["request_id"]
    base = f"https://queue.fal.run/fal-ai/flux/requests/{request_id}"
    # The answered URLs stay fal's: the client sends them back through the proxy.
    assert (queued["status_url"], queued["response_url"]) == (f"{base}/status", base)
    assert ok(proxied(api, tenant, "GET", f"{base}/status?logs=1"))["status"] == "IN_QUEUE"
    run_queued(drain, request_id)
    assert ok(proxied(api, tenant, "GET", f"{base}/status?logs=0"))["status"] == "COMPLETED"
    result = ok(proxied(api, tenant, "GET", base))
    assert result["images"][0]["width"] == 256
    again = ok(proxied(api, tenant, "POST", f"https://queue.fal.run/{SCHNELL}", SMALL))["request_id"]
    assert ok(proxied(api, tenant, "PUT", f"https://queue.fal.run/fal-ai/flux/requests/{again}/cancel"), 202)
    # fal's run host through the proxy: the result itself (a job readable like any other).
    assert JobStore().get(again).status == JobStatus.CANCELED


def test_the_proxy_takes_only_fals_queue_and_run_urls(world, api, tenant):
    items = detail(api.post("/fal/proxy", json=SMALL, headers=key(tenant)), 400)
    assert items[0]["loc"] == ["header", "x-fal-target-url"]
    for target in ("http://queue.fal.run/fal-ai/flux/schnell", "https://evil.example/fal-ai/flux/schnell",
                   "https://queue.fal.run.evil.example/fal-ai/flux/schnell", "https://rest.fal.ai/storage/upload",
                   "https://user:pw@queue.fal.run/fal-ai/flux/schnell", "https://queue.fal.run:8443/fal-ai/flux/schnell",
                   "https://127.0.0.1/fal-ai/flux/schnell", "not a url at all", "https://[::1"):
        detail(proxied(api, tenant, "POST", target, SMALL), 412, "x-fal-target-url")
    detail(proxied(api, tenant, "POST", "https://queue.fal.run/only-owner", SMALL), 404, "not found")
    detail(proxied(api, tenant, "GET", f"https://queue.fal.run/{SCHNELL}"), 405)
    assert JobStore().list_for_workspace(tenant.workspace_id)[1] == 0


# ---------------------------------------------------------------- fal's webhook


def test_fal_webhook_gets_fals_payload_signed(world, api, tenant, dispatcher, drain):
    rx = WebhookReceiver()
    try:
        queued = ok(api.post(f"{QUEUE}?fal_webhook={rx.url}", json=SMALL, headers=key(tenant)))
        run_queued(drain, queued["request_id"])
        deadline = time.time() + 20
        while not rx.requests and time.time() < deadline:
            drain("WebhooksFunction", "WebhooksQueue")
            time.sleep(0.2)
        assert len(rx.requests) == 1  # the completion only: fal sends no start event
        request = rx.requests[0]
        secret = WorkspaceStore().get(tenant.workspace_id).webhook_secrets[0].secret
        payload = Webhook(secret).verify(request["body"], request["headers"])
        assert payload["request_id"] == queued["request_id"] and payload["status"] == "OK"
        assert payload["error"] is None and payload["payload"]["images"][0]["width"] == 256
    finally:
        rx.close()


def test_a_failed_request_reports_error_in_status_result_and_webhook(world, api, tenant):
    from functions.complete.logic import complete
    from functions.core.messages import ResultMessage
    from functions.dialects import fal

    request_id = ok(api.post(QUEUE, json=SMALL, headers=key(tenant)))["request_id"]
    store = JobStore()
    store.transition(store.get(request_id), JobStatus.RUNNING)
    complete(ResultMessage(job_id=request_id, outcome="failed", error={"code": "oom", "message": "out of memory"}))
    base = f"/fal/queue/fal-ai/flux/requests/{request_id}"
    status = ok(api.get(f"{base}/status", headers=key(tenant)))
    assert (status["status"], status["error"], status["error_type"]) == ("COMPLETED", "out of memory", "oom")
    failed = api.get(base, headers=key(tenant))
    assert failed.status_code == 500 and "out of memory" in failed.json["detail"]
    assert failed.json["request_id"] == request_id
    payload = fal.webhook_payload(store.get(request_id))
    assert payload == {"request_id": request_id, "gateway_request_id": request_id, "status": "ERROR",
                       "payload": {"detail": "out of memory"}, "error": "out of memory"}


def test_a_blocked_image_is_a_completed_result_with_its_images_withheld_and_flagged(world, api, tenant, pipeline,
                                                                                   monkeypatch):
    """As fal's apps answer an output their safety checker flags: has_nsfw_concepts true and no image, not an
    error. Nothing was stored (functions/core/moderation.py). The tiny checker is forced to block."""
    from functions.core.settings import get_settings

    monkeypatch.setenv("DARKROOM_MODERATION_THRESHOLD", "0")
    get_settings.cache_clear()
    try:
        run = ok(api.post(f"/fal/run/{SCHNELL}", json={**SMALL, "num_images": 2, "seed": 5}, headers=key(tenant)))
        assert run["images"] == [] and run["has_nsfw_concepts"] == [True, True] and run["seed"] == 5
        request_id = ok(api.post(QUEUE, json=SMALL, headers=key(tenant)))["request_id"]
        base = f"/fal/queue/{SCHNELL.split('/')[0]}/{SCHNELL.split('/')[1]}/requests/{request_id}"
        for _ in range(600):
            status = ok(api.get(f"{base}/status", headers=key(tenant)))
            if status["status"] == "COMPLETED":
                break
            time.sleep(0.2)
        assert status["status"] == "COMPLETED" and "error" not in status, status
        result = ok(api.get(base, headers=key(tenant)))
        assert result["images"] == [] and result["has_nsfw_concepts"] == [True]
        job = JobStore().get(request_id)
        assert job.outputs == [] and job.error.code == "moderation_blocked"
    finally:
        monkeypatch.delenv("DARKROOM_MODERATION_THRESHOLD")
        get_settings.cache_clear()
