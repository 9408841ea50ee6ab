"""Replicate's official clients against the real local stack, with only the base URL changed: replicate-python
(1.x takes the base without /v1) and replicate-javascript (the base with /v1), installed from their registries.

Nothing here imports the product: the clients talk HTTP to `darkroom dev`; webhooks go to a receiver on loopback
and are verified with the `standardwebhooks` package.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import replicate
from PIL import Image
from replicate.client import Client
from replicate.exceptions import ReplicateError
from standardwebhooks.webhooks import Webhook

from infra.local.receiver import WebhookReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

MODEL = "black-forest-labs/flux-schnell"
SMALL = {"prompt": "a lighthouse at dusk", "width": 256, "height": 256, "num_inference_steps": 2}
CLIENTS = Path(__file__).resolve().parents[1] / "clients" / "js"


@pytest.fixture
def rep(stack) -> Client:
    return Client(api_token=stack.api_key, base_url=stack.url)


def png(color=(200, 40, 40), size=(96, 64)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def paths(urls: list[str]) -> list[str]:
    """Media links are signed when read (a fresh expiry each time): compare what they point at."""
    return [str(u).split("?", 1)[0] for u in urls]


def fetch(url: str) -> Image.Image:
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200, (url, response.status_code)
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


def test_run_with_only_the_base_url_changed(stack, monkeypatch):
    # The one-line switch: REPLICATE_BASE_URL (and the token) in the environment, replicate.run as written.
    monkeypatch.setenv("REPLICATE_API_TOKEN", stack.api_key)
    monkeypatch.setenv("REPLICATE_BASE_URL", stack.url)
    output = replicate.Client().run(MODEL, input={**SMALL, "num_outputs": 2, "output_format": "webp"})
    assert isinstance(output, list) and len(output) == 2
    images = [fetch(str(url)) for url in output]
    assert all(i.format == "WEBP" and i.size == (256, 256) for i in images)


def test_create_with_a_webhook_and_events_filter_then_wait(rep, stack):
    with WebhookReceiver() as rx:
        prediction = rep.predictions.create(model=MODEL, input=SMALL, webhook=rx.url,
                                            webhook_events_filter=["start", "completed"])
        assert prediction.status in ("starting", "processing", "succeeded")
        prediction.wait()
        assert prediction.status == "succeeded" and len(prediction.output) == 1
        assert prediction.progress is not None and prediction.progress.percentage == 1.0
        assert prediction.metrics["predict_time"] > 0
        assert rx.wait_until(lambda requests: len(requests) >= 2, timeout=60), rx.requests
        secret = rep.webhooks.default.secret().key
        payloads = [Webhook(secret).verify(r["body"], r["headers"]) for r in rx.requests]
        ids = sorted(r["headers"]["webhook-id"] for r in rx.requests)
    assert ids == [f"evt_{prediction.id}_running", f"evt_{prediction.id}_succeeded"]
    assert all(p["id"] == prediction.id for p in payloads)
    assert any(p["status"] == "succeeded" and paths(p["output"]) == paths(prediction.output) for p in payloads)
    # The same prediction through the list (cursor pagination) and the get.
    assert prediction.id in [p.id for p in rep.predictions.list().results]
    assert paths(rep.predictions.get(prediction.id).output) == paths(prediction.output)


def test_cancel(rep):
    prediction = rep.predictions.create(model="darkroom/ltx-video", input={"prompt": "waves", "num_inference_steps": 40})
    prediction.cancel()
    prediction.reload()
    assert prediction.status == "canceled" and prediction.output is None


def test_files_create_and_a_file_as_input(rep, tmp_path):
    uploaded = rep.files.create(io.BytesIO(png()), filename="photo.png", metadata={"purpose": "test"})
    assert uploaded.name == "photo.png" and uploaded.content_type == "image/png" and uploaded.size == len(png())
    assert rep.files.get(uploaded.id).checksums == uploaded.checksums
    assert uploaded.id in [f.id for f in rep.files.list()]
    output = rep.run(MODEL, input={**SMALL, "image": uploaded.urls["get"], "prompt_strength": 0.5})
    assert len(output) == 1 and fetch(str(output[0])).size == (256, 256)
    # An open file as input: the client uploads it with files.create itself.
    path = tmp_path / "blue.png"
    path.write_bytes(png(color=(20, 40, 220)))
    with path.open("rb") as handle:
        output = rep.run(MODEL, input={**SMALL, "image": handle})
    assert len(output) == 1
    assert rep.files.delete(uploaded.id) is True
    with pytest.raises(ReplicateError) as info:
        rep.files.get(uploaded.id)
    assert info.value.status == 404


def test_streaming(rep):
    events = list(rep.stream(MODEL, input=SMALL))
    kinds = [e.event.value for e in events]
    outputs = [str(e) for e in events if e.event.value == "output"]
    assert len(outputs) == 1 and fetch(outputs[0]).size == (256, 256)
    assert "logs" in kinds and kinds[-1] == "done"
    assert all(e.id for e in events)


def test_errors_are_replicate_errors_with_the_status(rep):
    with pytest.raises(ReplicateError) as info:
        rep.run("acme/nothing", input=SMALL)
    assert info.value.status == 404 and "acme/nothing" in info.value.detail
    with pytest.raises(ReplicateError) as info:
        rep.run(MODEL, input={**SMALL, "num_outputs": 99})
    assert info.value.status == 422 and "input.num_outputs" in info.value.detail


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    assert found, "node is not installed (Node 20 is part of the machine the tests run on)"
    assert (CLIENTS / "node_modules" / "replicate").is_dir(), "run `make test` (it installs tests/clients/js)"
    return found


def test_replicate_javascript(node, stack):
    with WebhookReceiver() as rx:
        env = {**os.environ, "DARKROOM_URL": stack.url, "DARKROOM_API_KEY": stack.api_key, "WEBHOOK_URL": rx.url}
        done = subprocess.run([node, "replicate.mjs"], cwd=CLIENTS, env=env, capture_output=True, text=True,
                              timeout=600, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        out = json.loads(done.stdout.strip().splitlines()[-1])
        assert rx.wait_until(lambda requests: len(requests) >= 1, timeout=60)
    assert len(out["run"]) == 2 and all(u.startswith(stack.url + "/media/") for u in out["run"])
    assert out["created"]["status"] in ("starting", "processing", "succeeded")
    assert out["waited"]["status"] == "succeeded" and len(out["waited"]["output"]) == 1
    assert out["file"]["name"] == "photo.png" and out["file"]["metadata"] == {"purpose": "test"} and out["fileRun"] == 1
    assert out["canceled"] == "canceled"
    assert out["error"] == {"status": 404, "name": "ApiError"}
    assert out["invalid"] == 422
    assert out["secret"].startswith("whsec_")
