"""Every task and a signed webhook, through the real `darkroom dev` over HTTP with the native API."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import httpx
import imageio_ffmpeg
import pytest
from PIL import Image
from standardwebhooks.webhooks import Webhook

from infra.local.receiver import WebhookReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


def png(color=(30, 120, 200), size=(96, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def upload_presigned(client, auth) -> str:
    upload = client.post("/api/uploads", json={"filename": "ref.png", "content_type": "image/png"}, headers=auth)
    assert upload.status_code == 201, upload.text
    body = upload.json()
    posted = httpx.post(body["upload"]["url"], data=body["upload"]["fields"],
                        files={"file": ("ref.png", png(), "image/png")})
    assert posted.status_code in (200, 204), posted.text
    return body["reference"]


def decode_mp4(url: str, tmp_path: Path) -> tuple[dict, int]:
    path = tmp_path / "out.mp4"
    path.write_bytes(httpx.get(url, timeout=30, follow_redirects=True).content)
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    return meta, sum(1 for _ in reader)


def run(client, auth, wait_for, stack, tool: str, inp: dict) -> dict:
    resp = client.post("/api/run", json={"tool": tool, "input": inp}, headers=auth)
    assert resp.status_code == 202, resp.text
    done = wait_for(client, stack.api_key, resp.json()["id"], timeout=180)
    assert done["status"] == "success", done
    return done


def test_text_to_video_is_an_mp4_of_the_right_length(client, auth, wait_for, stack, tmp_path):
    done = run(client, auth, wait_for, stack, "create-video",
               {"prompt": "waves at dusk", "size": "256x256", "duration": 2, "steps": 4})
    meta, frames = decode_mp4(done["output"], tmp_path)
    assert done["type"] == "video" and meta["codec"].startswith("h264")
    assert tuple(meta["size"]) == (256, 256)
    assert frames == done["metadata"]["frames"] and abs(frames / meta["fps"] - done["metadata"]["duration"]) < 0.5
    assert Image.open(io.BytesIO(httpx.get(done["thumbnail"]).content)).format == "JPEG"


def test_image_to_video_from_an_uploaded_reference(client, auth, wait_for, stack, tmp_path):
    reference = upload_presigned(client, auth)
    done = run(client, auth, wait_for, stack, "image-to-video",
               {"prompt": "slow zoom", "image_urls": [reference], "size": "256x256", "duration": 2, "steps": 4})
    meta, frames = decode_mp4(done["output"], tmp_path)
    assert frames > 1 and tuple(meta["size"]) == (256, 256)


def test_edit_image_from_an_uploaded_reference_is_deterministic(client, auth, wait_for, stack):
    stored = client.post("/files", files={"file": ("ref.png", png(), "image/png")}, headers=auth)
    assert stored.status_code == 201, stored.text
    inp = {"prompt": "make it sunset", "image_urls": [stored.json()["reference"]], "size": "256x256", "seed": 5,
           "output_format": "webp"}
    first = run(client, auth, wait_for, stack, "edit-image", inp)
    second = run(client, auth, wait_for, stack, "edit-image", inp)
    images = [Image.open(io.BytesIO(httpx.get(g["output"]).content)) for g in (first, second)]
    assert images[0].format == "WEBP" and images[0].size == (256, 256)
    assert images[0].tobytes() == images[1].tobytes()


def test_webhook_reaches_a_loopback_receiver_signed(client, auth, wait_for, stack):
    with WebhookReceiver() as receiver:
        body = {"tool": "create-image", "input": {"prompt": "a fox", "size": "256x256"}, "webhook": receiver.url}
        job_id = client.post("/api/run", json=body, headers=auth).json()["id"]
        assert receiver.wait_until(bool, timeout=60), "no webhook arrived"
        secret = dict(line.split("=", 1) for line in stack.env_file.read_text().splitlines())[
            "DARKROOM_WEBHOOK_SECRET"]
        request = receiver.requests[0]
        payload = Webhook(secret).verify(request["body"], request["headers"])
        assert {"_id", "status", "output", "model", "type", "payload", "error"} <= payload.keys()
        assert payload["_id"] == job_id and payload["status"] == "success"
        assert json.loads(request["body"])["output"].startswith("http://127.0.0.1")
        # The attempt is recorded once the receiver's answer is back, a moment after the request arrived.
        deadline = time.monotonic() + 30
        while not (deliveries := client.get(f"/api/generations/{job_id}/deliveries", headers=auth).json()["data"]) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [d["outcome"] for d in deliveries] == ["delivered"]
