"""AI Media Studio's video parameters that need a capability, on the real api handler with the worker running the
tiny pipelines: `audio: true` (an mp4 whose AAC track ffmpeg finds), `last_frame_url` (a first-last-frame model),
the refusals that name the models able to serve them, and a model whose license the operator has not accepted."""

from __future__ import annotations

import io

import pytest
from media_probe import streams
from PIL import Image

from functions.core import uploads
from functions.core.catalog import get_catalog
from functions.core.jobs import JobStatus, JobStore
from functions.core.settings import get_settings
from tests.integration.conftest import fetch_media, serve_files

VIDEOS = "/api/v1/videos/generate"


@pytest.fixture(autouse=True)
def roomy_wait(world, monkeypatch):
    """Tiny pipelines on a busy 2-core machine: give the synchronous wait room (the timeout has its test)."""
    monkeypatch.setenv("DARKROOM_SYNC_WAIT_SECONDS", "240")
    get_settings.cache_clear()


def frame(tenant, color, name: str) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (96, 64), color).save(buf, format="PNG")
    return uploads.store(tenant.workspace_id, name, "image/png", buf.getvalue())["reference"]


def generated(api, tenant, body: dict) -> tuple[dict, bytes]:
    resp = api.post(VIDEOS, json=body, headers=tenant.headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    video = resp.json["video"]
    assert video["status"] == "completed" and JobStore().get(video["id"]).status == JobStatus.SUCCEEDED
    return video, fetch_media(api, video["url"])


def test_audio_true_returns_an_mp4_with_an_aac_track(world, api, tenant, pipeline):
    video, mp4 = generated(api, tenant, {"prompt": "waves breaking on rocks", "model": "ltx-2", "audio": True,
                                         "duration": 2, "resolution": "256p"})
    assert video["audio"] is True and video["frames"] == 49
    described = streams(mp4)
    assert "Video: h264" in described and "Audio: aac" in described
    silent, mp4 = generated(api, tenant, {"prompt": "waves", "model": "ltx-2", "duration": 2, "resolution": "256p"})
    assert silent["audio"] is False and "Audio:" not in streams(mp4)


def test_last_frame_url_ends_the_video_on_a_first_last_frame_model(world, api, tenant, pipeline):
    first, last = frame(tenant, (230, 40, 30), "first.png"), frame(tenant, (30, 60, 230), "last.png")
    video, mp4 = generated(api, tenant, {"prompt": "the sky turns from red to blue", "model": "wan2.1-flf2v-14b",
                                         "first_frame_url": first, "last_frame_url": last, "duration": 2,
                                         "resolution": "256p"})
    job = JobStore().get(video["id"])
    assert job.model == "wan2.1-flf2v-14b" and job.params["last_frame"]["upload_key"]
    assert video["fps"] == 16 and video["frames"] == 33 and "Video: h264" in streams(mp4)


def test_extend_video_url_continues_the_clip(world, api, tenant, pipeline):
    from gpu import encode

    clip = [Image.new("RGB", (96, 64), (10 * i, 80, 200 - 10 * i)) for i in range(17)]
    with serve_files({"/clip.mp4": (encode.encode_video(clip, 24.0), "video/mp4")}) as host:
        video, mp4 = generated(api, tenant, {"prompt": "the camera keeps panning", "model": "ltx-2",
                                             "extend_video_url": f"{host}/clip.mp4", "duration": 2,
                                             "resolution": "256p"})
    job = JobStore().get(video["id"])
    assert job.params["extend_video"] == {"url": f"{host}/clip.mp4"}
    assert video["frames"] == 17 + 48 and video["fps"] == 24  # the clip, then 2 s more
    # Priced as the 2 s it makes and the second of the clip it conditions on.
    assert job.cost == get_catalog().model("ltx-2").price({**job.params, "extend_video": None}) * 3 / 2
    assert "Video: h264" in streams(mp4)


@pytest.mark.parametrize("body, field, able", [
    ({"audio": True}, "audio", "ltx-2"),
    ({"image_url": "UPLOAD", "last_frame_url": "UPLOAD"}, "last_frame_url", "wan2.1-flf2v-14b"),
    ({"extend_video_url": "https://example.com/clip.mp4"}, "extend_video_url", "ltx-2"),
])
def test_a_capability_the_model_lacks_is_a_400_naming_the_field_and_the_models_that_have_it(
        world, api, tenant, body, field, able):
    body = {k: frame(tenant, (10, 10, 10), "f.png") if v == "UPLOAD" else v for k, v in body.items()}
    resp = api.post(VIDEOS, json={"prompt": "x", "model": "wan2.2-ti2v-5b", **body}, headers=tenant.headers)
    assert resp.status_code == 400, resp.json
    assert resp.json["error"].startswith(f"Invalid request: {field}:") and able in resp.json["error"]


def test_a_model_whose_license_is_not_accepted_is_refused(world, api, tenant, monkeypatch):
    monkeypatch.setenv("DARKROOM_ACCEPTED_LICENSES", "")
    get_settings.cache_clear()
    resp = api.post(VIDEOS, json={"prompt": "x", "model": "ltx-2", "audio": True}, headers=tenant.headers)
    assert resp.status_code == 400 and resp.json["code"] == "license_not_accepted", resp.json
    assert "ltx-2-community" in resp.json["error"] and "wan2.2-ti2v-5b" in resp.json["error"]
    listed = {m["id"]: m for m in api.get(VIDEOS, headers=tenant.headers).json["available_models"]}
    assert listed["ltx-2"]["enabled"] is False and listed["wan2.2-ti2v-5b"]["enabled"] is True
    assert listed["ltx-2"]["capabilities"]["audio"] is True and listed["ltx-2"]["commercial_use"] is False
