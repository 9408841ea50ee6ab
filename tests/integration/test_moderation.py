"""Moderation end to end, through the local stack (the real api, dispatch and complete functions, the GPU worker
inline with its tiny random-weight safety checker), in the native, OpenAI and AI Media Studio dialects: an output
that passes is stored, one the checker blocks is not (nothing under the job's prefix), the job fails with the
dialect's content-policy error and is charged, the operator reads the event; a workspace's limits are 403s naming
the field, and its prompt policy a 400 naming the prompt, before any job exists.

The tiny checker scores about 0.01 unsafe; DARKROOM_MODERATION_THRESHOLD=0 forces every output over the line.
"""

from __future__ import annotations

import time

import boto3
import pytest

from functions.core import credits
from functions.core.catalog import get_catalog
from functions.core.jobs import JobStatus, JobStore
from functions.core.settings import get_settings

SMALL = {"prompt": "a lighthouse at dusk", "size": "256x256"}
SYNC = {**SMALL, "model": "sdxl-turbo"}  # the OpenAI and AI Media Studio bodies name the model


@pytest.fixture(autouse=True)
def roomy_wait(world, monkeypatch):
    monkeypatch.setenv("DARKROOM_SYNC_WAIT_SECONDS", "240")
    get_settings.cache_clear()


@pytest.fixture
def block_everything(monkeypatch):
    """Every level's threshold 0: whatever the checker scores, the output is blocked."""
    monkeypatch.setenv("DARKROOM_MODERATION_THRESHOLD", "0")
    get_settings.cache_clear()
    yield
    monkeypatch.delenv("DARKROOM_MODERATION_THRESHOLD")
    get_settings.cache_clear()


def stored_keys(world, workspace_id: str, job_id: str) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=world.endpoint, region_name="us-east-1", aws_access_key_id="local",
                      aws_secret_access_key="local")
    listed = s3.list_objects_v2(Bucket=get_settings().outputs_bucket, Prefix=f"{workspace_id}/generations/{job_id}/")
    return [o["Key"] for o in listed.get("Contents", [])]


def set_policy(api, tenant, **policy) -> dict:
    resp = api.put(f"/api/admin/workspaces/{tenant.workspace_id}/moderation", json=policy, headers=tenant.headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.json


def native_job(api, tenant, timeout: float = 180, model: str = "sdxl-turbo", **input_fields):
    resp = api.post("/api/generate", json={"model": model, "input": {**SMALL, **input_fields}},
                    headers=tenant.headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    job_id = resp.json["id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = JobStore().get(job_id)
        if job.terminal:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


# ---------------------------------------------------------------- native


def test_native_passes_at_its_level_and_a_blocked_job_stores_nothing_and_is_charged(world, api, tenant, pipeline,
                                                                                    monkeypatch):
    table = get_catalog().moderation
    passed = native_job(api, tenant, safety_tolerance=3)
    assert passed.status == JobStatus.SUCCEEDED, passed.error
    assert passed.params["moderation"] == {"level": 3, "threshold": table.thresholds[3]}
    report = passed.moderation
    assert report["checker"] == table.checker.id and report["level"] == 3 and len(report["scores"]) == 1
    assert 0 <= report["scores"][0] < table.thresholds[1]  # the tiny checker passes at every level
    assert len(stored_keys(world, tenant.workspace_id, passed.id)) == 2  # the image and its thumbnail

    monkeypatch.setenv("DARKROOM_MODERATION_THRESHOLD", "0")
    get_settings.cache_clear()
    before = credits.balance(tenant.workspace_id)
    blocked = native_job(api, tenant, n=2, prompt="a harbour at night")
    assert blocked.status == JobStatus.FAILED and blocked.error.code == "moderation_blocked"
    assert "blocked" in blocked.error.message and "image 1, 2 of 2" in blocked.error.message
    assert blocked.moderation["blocked"] == [0, 1] and blocked.moderation["threshold"] == 0
    assert stored_keys(world, tenant.workspace_id, blocked.id) == []  # never uploaded, neither image
    # Charged: the GPU ran. Not refunded, unlike every other failure.
    assert blocked.cost > 0 and blocked.refunded is None
    assert credits.balance(tenant.workspace_id) == pytest.approx(before - blocked.cost)
    shown = api.get(f"/api/generations/{blocked.id}", headers=tenant.headers).json
    assert shown["status"] == "error" and "safety checker blocked" in shown["error"] and shown["outputs"] == []
    assert shown["errorCode"] == "moderation_blocked"

    # The operator's record: the blocked job, what was asked and scored, never an image.
    view = api.get(f"/api/admin/workspaces/{tenant.workspace_id}/moderation", headers=tenant.headers).json
    [event] = view["events"]
    assert event["job_id"] == blocked.id and event["prompt"] == "a harbour at night"
    assert event["moderation"]["blocked"] == [0, 1] and event["credits_charged"] == blocked.cost
    assert view["policy"] == {"max_level": table.workspace_max_level, "allow_checker_off": False,
                              "blocked_terms": []}


def test_native_limits_and_the_checker_switch(world, api, tenant, pipeline, block_everything):
    table = get_catalog().moderation
    resp = api.post("/api/generate", json={"model": "sdxl-turbo", "input": {**SMALL, "safety_tolerance": 6}},
                    headers=tenant.headers)
    assert resp.status_code == 403, resp.get_data(as_text=True)
    assert resp.json["errors"][0]["field"] == "input.safety_tolerance"
    assert f"at most {table.workspace_max_level}" in resp.json["message"]
    resp = api.post("/api/generate", json={"model": "sdxl-turbo", "input": {**SMALL, "safety_checker": False}},
                    headers=tenant.headers)
    assert resp.status_code == 403 and resp.json["errors"][0]["field"] == "input.safety_checker"
    assert JobStore().list_for_workspace(tenant.workspace_id)[1] == 0  # refused before any job existed

    # The operator opens it: the checker off, even a threshold of 0 blocks nothing.
    set_policy(api, tenant, max_level=6, allow_checker_off=True)
    job = native_job(api, tenant, safety_checker=False)
    assert job.status == JobStatus.SUCCEEDED and job.moderation == {"checker": False}
    assert job.params["moderation"] == {"checker": False}
    # A stricter maximum caps the default level too.
    set_policy(api, tenant, max_level=1)
    resp = api.post("/api/generate", json={"model": "sdxl-turbo", "input": SMALL}, headers=tenant.headers)
    assert JobStore().get(resp.json["id"]).params["moderation"]["level"] == 1


# ---------------------------------------------------------------- OpenAI


def test_openai_moderation_levels_blocks_and_the_prompt_policy(world, api, tenant, pipeline, monkeypatch):
    table = get_catalog().moderation
    ok = api.post("/v1/images/generations", json={**SYNC, "moderation": "low"}, headers=tenant.headers)
    assert ok.status_code == 200, ok.get_data(as_text=True)
    job_id = ok.json["data"][0]["url"].split("/generations/")[1].split("/")[0]
    assert JobStore().get(job_id).params["moderation"]["level"] == table.openai["low"]

    set_policy(api, tenant, max_level=2, blocked_terms=["forbidden fruit"])
    denied = api.post("/v1/images/generations", json={**SYNC, "moderation": "low"}, headers=tenant.headers)
    assert denied.status_code == 403, denied.get_data(as_text=True)
    error = denied.json["error"]
    assert error["param"] == "moderation" and error["code"] == "moderation_not_allowed"
    assert error["type"] == "permission_error" and error["message"].startswith("Not allowed: moderation: ")
    refused = api.post("/v1/images/generations", json={**SYNC, "prompt": "a FORBIDDEN  Fruit bowl"},
                       headers=tenant.headers)
    assert refused.status_code == 400 and refused.json["error"]["param"] == "prompt"
    assert refused.json["error"]["code"] == "moderation_blocked"
    # A whole-word match only: "forbidden fruits" is another phrase.
    jobs_before = JobStore().list_for_workspace(tenant.workspace_id)[1]

    monkeypatch.setenv("DARKROOM_MODERATION_THRESHOLD", "0")
    get_settings.cache_clear()
    before = credits.balance(tenant.workspace_id)
    blocked = api.post("/v1/images/generations", json={**SYNC, "prompt": "forbidden fruits",
                                                       "safety_identifier": "end-user-7"}, headers=tenant.headers)
    assert blocked.status_code == 400, blocked.get_data(as_text=True)
    error = blocked.json["error"]
    assert error["code"] == "moderation_blocked" and error["type"] == "invalid_request_error"
    assert blocked.headers.get("x-should-retry") == "false"
    job = JobStore().get(error["job_id"])
    assert job.status == JobStatus.FAILED and job.error.code == "moderation_blocked"
    assert stored_keys(world, tenant.workspace_id, job.id) == []
    assert credits.balance(tenant.workspace_id) == pytest.approx(before - job.cost)
    assert JobStore().list_for_workspace(tenant.workspace_id)[1] == jobs_before + 1
    # The operator sees which of their users it was (OpenAI's safety_identifier).
    view = api.get(f"/api/admin/workspaces/{tenant.workspace_id}/moderation", headers=tenant.headers).json
    assert [(e["job_id"], e["end_user"]) for e in view["events"]] == [(job.id, "end-user-7")]


# ---------------------------------------------------------------- AI Media Studio


def test_aims_safety_tolerance_and_a_blocked_image(world, api, tenant, pipeline, monkeypatch):
    ok = api.post("/api/v1/images/generate", json={**SYNC, "safety_tolerance": "4"}, headers=tenant.headers)
    assert ok.status_code == 200, ok.get_data(as_text=True)
    job = JobStore().get(ok.json["images"][0]["generation_id"])
    assert job.params["moderation"]["level"] == 4 and job.moderation["level"] == 4

    denied = api.post("/api/v1/images/generate", json={**SYNC, "safety_tolerance": "6"}, headers=tenant.headers)
    assert denied.status_code == 403, denied.get_data(as_text=True)
    assert denied.json["code"] == "moderation_not_allowed" and "safety_tolerance" in denied.json["error"]

    monkeypatch.setenv("DARKROOM_MODERATION_THRESHOLD", "0")
    get_settings.cache_clear()
    blocked = api.post("/api/v1/images/generate", json={**SYNC, "n": 2}, headers=tenant.headers)
    assert blocked.status_code == 400, blocked.get_data(as_text=True)
    assert blocked.json["code"] == "moderation_blocked" and "safety checker" in blocked.json["error"]
    assert stored_keys(world, tenant.workspace_id, blocked.json["job_id"]) == []


# ---------------------------------------------------------------- video


def test_a_video_is_judged_on_its_sampled_frames_and_a_blocked_one_is_never_stored(world, api, tenant, pipeline,
                                                                                   block_everything):
    video = {"model": "ltx-video", "size": "256x256", "steps": 2, "duration": 2}
    job = native_job(api, tenant, **video)
    assert job.status == JobStatus.FAILED and job.error.code == "moderation_blocked", job.error
    assert "video 1 of 1" in job.error.message
    assert job.moderation["frames_checked"] == get_catalog().moderation.checker.video_frames
    assert stored_keys(world, tenant.workspace_id, job.id) == []
