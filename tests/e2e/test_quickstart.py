"""The README quick starts (seeds 000, 001, 002) against the real local stack, plus the API's edges.

Every request here is one a user could send with curl to `darkroom dev`; only the host differs from the
seeds' examples.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from PIL import Image

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

REPO_ROOT = Path(__file__).resolve().parents[2]
HEX24 = re.compile(r"^[0-9a-f]{24}$")
ISO_MS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
SEED_PROMPT = "Astronaut in a jungle, cold color palette, muted colors, detailed, 8k"
SMALL = "256x256"


def run(client: httpx.Client, auth: dict[str, str], **input_fields) -> dict:
    """POST /api/run create-image; asserts the 202 and returns its body."""
    response = client.post("/api/run", headers=auth, json={"tool": "create-image", "input": input_fields})
    assert response.status_code == 202, response.text
    return response.json()


def assert_success(done: dict) -> dict:
    assert done["status"] == "success", f"generation {done['id']} ended {done['status']}: {done['error']!r}"
    return done


def assert_error(response: httpx.Response, status: int, field: str, code: str | None = None) -> dict:
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.text}"
    body = response.json()
    assert isinstance(body.get("message"), str) and body["message"], body
    assert isinstance(body.get("errors"), list), body
    fields = [e["field"] for e in body["errors"]]
    assert field in fields, f"expected an error naming {field!r}, got {body}"
    for err in body["errors"]:
        assert set(err) >= {"field", "message", "code"}, err
    if code is not None:
        assert code in [e["code"] for e in body["errors"] if e["field"] == field], body
    return body


# ---------------------------------------------------------------- seed 000: /api/run, poll, download


def test_quickstart_run_poll_download(client, auth, stack, wait_for, download_image):
    prompt = "A futuristic city at sunset, cyberpunk style, neon lights"
    response = client.post("/api/run", headers={**auth, "Content-Type": "application/json"},
                           json={"tool": "create-image", "input": {"prompt": prompt, "size": SMALL}})
    assert response.status_code == 202, response.text
    created = response.json()
    assert set(created) == {"id", "status", "tool", "createdAt"}, created
    assert created["status"] == "processing"
    assert created["tool"] == "create-image"
    assert HEX24.match(created["id"]), created["id"]
    assert ISO_MS_Z.match(created["createdAt"]), created["createdAt"]
    datetime.fromisoformat(created["createdAt"])

    done = wait_for(client, stack.api_key, created["id"])
    assert_success(done)
    assert {"id", "status", "output", "thumbnail", "tool", "type", "createdAt", "payload", "error"} <= set(done)
    assert done["id"] == created["id"]
    assert done["tool"] == "create-image"
    assert done["type"] == "image"
    assert done["error"] is None
    assert done["createdAt"] == created["createdAt"]
    assert done["payload"]["prompt"] == prompt

    image, _ = download_image(done["output"])
    assert image.format == "PNG"
    assert image.size == (256, 256)
    thumb, _ = download_image(done["thumbnail"])
    assert thumb.format == "JPEG"


def test_quickstart_run_with_webhook_is_accepted(client, auth, stack, wait_for):
    # Seed 000's webhook variant: the unreachable webhook must not hold up or fail the generation.
    response = client.post("/api/run", headers=auth, json={
        "tool": "create-image", "input": {"prompt": "A futuristic city at sunset", "size": SMALL},
        "webhook": "https://your-server.com/webhook"})
    assert response.status_code == 202, response.text
    assert_success(wait_for(client, stack.api_key, response.json()["id"]))


# ---------------------------------------------------------------- seeds 001/002: /api/generate


def test_seed_generate_playground(client, auth, stack, wait_for):
    """Seeds 001/002 verbatim: playground-v2 at its default size (1024x1024, 30 steps)."""
    response = client.post("/api/generate", headers={**auth, "Content-Type": "application/json"}, json={
        "model": "playground-v2",
        "input": {"prompt": SEED_PROMPT},
        "webhook": "https://your-server.com/api/webhook",
    })
    assert response.status_code in (200, 201, 202), response.text
    body = response.json()
    assert {"_id": body.get("_id"), "status": "pending", "model": "playground-v2", "output": None}.items() <= body.items()
    assert HEX24.match(body["_id"]), body

    # About 12 s with the tiny CPU pipelines on an idle 2-core machine; much more on a busy one.
    done = wait_for(client, stack.api_key, body["_id"], timeout=240)
    assert_success(done)
    assert done["model"] == "playground-v2"
    assert done["metadata"]["width"] == 1024 and done["metadata"]["height"] == 1024, done


def test_seed_generate_playground_small(client, auth, stack, wait_for, download_image):
    """The same request at 256x256: the full result shape and a decodable image."""
    response = client.post("/api/generate", headers=auth, json={
        "model": "playground-v2",
        "input": {"prompt": SEED_PROMPT, "size": SMALL},
        "webhook": "https://your-server.com/api/webhook",
    })
    assert response.status_code in (200, 201, 202), response.text
    body = response.json()
    assert body["status"] == "pending" and body["model"] == "playground-v2" and body["output"] is None, body

    done = wait_for(client, stack.api_key, body["_id"])
    assert_success(done)
    assert done["id"] == body["_id"]
    assert done["model"] == "playground-v2"
    assert done["tool"] == "create-image"
    assert done["type"] == "image"
    assert done["payload"]["prompt"] == SEED_PROMPT
    assert done["error"] is None
    image, _ = download_image(done["output"])
    assert image.format == "PNG"
    assert image.size == (256, 256)
    thumb, _ = download_image(done["thumbnail"])
    assert thumb.format == "JPEG"


# ---------------------------------------------------------------- authentication


@pytest.mark.parametrize("form", ["raw", "bearer", "x-api-key"])
def test_auth_header_forms(client, stack, form):
    headers = {"raw": {"Authorization": stack.api_key},
               "bearer": {"Authorization": f"Bearer {stack.api_key}"},
               "x-api-key": {"X-API-Key": stack.api_key}}[form]
    response = client.get("/api/models", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["data"]


def test_missing_key_is_401(client):
    response = client.get("/api/models")
    assert_error(response, 401, "authorization")
    response = client.post("/api/run", json={"tool": "create-image", "input": {"prompt": "x"}})
    assert_error(response, 401, "authorization")


@pytest.mark.parametrize("headers", [
    {"Authorization": "dr_not-a-real-key"},
    {"Authorization": "Bearer dr_not-a-real-key"},
    {"X-API-Key": "dr_not-a-real-key"},
])
def test_wrong_key_is_401(client, headers):
    assert_error(client.get("/api/models", headers=headers), 401, "authorization")


# ---------------------------------------------------------------- validation: 400s naming the field, never 500


VALID_INPUT = {"prompt": "a red fox", "size": SMALL}


@pytest.mark.parametrize(("path", "body", "field", "code"), [
    ("/api/run", {"tool": "create-image", "input": VALID_INPUT, "colour": "red"}, "colour", "unknown_field"),
    ("/api/generate", {"model": "sdxl-turbo", "input": VALID_INPUT, "colour": "red"}, "colour", "unknown_field"),
    ("/api/run", {"tool": "create-image", "input": {**VALID_INPUT, "colour": "red"}}, "input.colour",
     "unknown_field"),
    ("/api/run", {"tool": "make-sandwich", "input": VALID_INPUT}, "tool", None),
    ("/api/run", {"tool": "create-image", "model": "no-such-model", "input": VALID_INPUT}, "model", None),
    ("/api/generate", {"model": "no-such-model", "input": VALID_INPUT}, "model", None),
    ("/api/run", {"tool": "create-image", "input": {"size": SMALL}}, "input.prompt", None),
    ("/api/generate", {"model": "playground-v2", "input": {}}, "input.prompt", None),
    ("/api/run", {"tool": "create-image", "input": {"prompt": "   "}}, "input.prompt", None),
    ("/api/run", {"tool": "create-image", "input": {"prompt": "x", "size": "100x100"}}, "input.size", None),
    ("/api/run", {"tool": "create-image", "input": {"prompt": "x", "size": "250x250"}}, "input.size", None),
    ("/api/run", {"tool": "create-image", "input": {"prompt": "x", "size": "huge"}}, "input.size", None),
    ("/api/run", {"tool": "create-image", "input": {"prompt": "x", "width": 320, "height": 192}}, "input.height",
     "invalid_size"),
    ("/api/run", {"tool": "create-image", "input": {"prompt": "x", "width": 328, "height": 256}}, "input.width",
     "invalid_size"),
    ("/api/run", {"tool": "create-image", "input": {"prompt": "x", "size": "4096x4096"}}, "input.size", None),
    ("/api/run", {"tool": "create-image", "input": {"prompt": "x", "n": 0}}, "input.n", None),
    ("/api/run", {"tool": "create-image", "input": {"prompt": "x", "output_format": "gif"}},
     "input.output_format", None),
    ("/api/run", {"tool": "create-image", "input": {"prompt": "x", "seed": -1}}, "input.seed", None),
    ("/api/run", {"input": VALID_INPUT}, "tool", None),
    ("/api/run", {"tool": "create-image"}, "input", None),
    ("/api/run", {"tool": "create-image", "input": "a red fox"}, "input", None),
    ("/api/run", ["create-image"], "body", None),
])
def test_validation_names_the_field(client, auth, path, body, field, code):
    assert_error(client.post(path, headers=auth, json=body), 400, field, code)


@pytest.mark.parametrize("raw", [b'{"tool": "create-image", "input": {"prompt": ', b"not json at all", b""])
def test_malformed_body_is_400(client, auth, raw):
    response = client.post("/api/run", headers={**auth, "Content-Type": "application/json"}, content=raw)
    assert_error(response, 400, "body")


# ---------------------------------------------------------------- what the pipelines produce


def _pixels(client, auth, stack, wait_for, download_image, **input_fields) -> tuple[Image.Image, bytes]:
    created = run(client, auth, **input_fields)
    done = wait_for(client, stack.api_key, created["id"])
    assert_success(done)
    image, _ = download_image(done["output"])
    return image, image.convert("RGB").tobytes()


def test_same_seed_same_image(client, auth, stack, wait_for, download_image):
    base = {"prompt": "a lighthouse in a storm", "size": SMALL}
    first, first_px = _pixels(client, auth, stack, wait_for, download_image, seed=1234, **base)
    _, again_px = _pixels(client, auth, stack, wait_for, download_image, seed=1234, **base)
    _, other_px = _pixels(client, auth, stack, wait_for, download_image, seed=4321, **base)
    assert first.size == (256, 256)
    assert first_px == again_px, "the same seed and size gave different pixels"
    assert first_px != other_px, "different seeds gave identical pixels"


def test_n2_gives_two_outputs(client, auth, stack, wait_for, download_image):
    created = run(client, auth, prompt="two foxes", size=SMALL, n=2, seed=7)
    done = wait_for(client, stack.api_key, created["id"])
    assert_success(done)
    assert len(done["outputs"]) == 2, done
    assert len(set(done["outputs"])) == 2
    assert done["output"] == done["outputs"][0]
    for url in done["outputs"]:
        image, _ = download_image(url)
        assert image.format == "PNG"
        assert image.size == (256, 256)


@pytest.mark.parametrize(("fmt", "pil_format"), [("jpeg", "JPEG"), ("webp", "WEBP")])
def test_output_format(client, auth, stack, wait_for, download_image, fmt, pil_format):
    created = run(client, auth, prompt="a red fox", size=SMALL, output_format=fmt, quality=80)
    done = wait_for(client, stack.api_key, created["id"])
    assert_success(done)
    image, _ = download_image(done["output"])
    assert image.format == pil_format
    assert image.size == (256, 256)


def test_width_height_honoured(client, auth, stack, wait_for, download_image):
    # Sides must be multiples of 16 within 256..2048 (320x192 is refused: see the validation cases).
    created = run(client, auth, prompt="a wide fox", width=384, height=256)
    done = wait_for(client, stack.api_key, created["id"])
    assert_success(done)
    assert done["metadata"]["width"] == 384 and done["metadata"]["height"] == 256, done
    image, _ = download_image(done["output"])
    assert image.size == (384, 256)
    thumb, _ = download_image(done["thumbnail"])
    assert thumb.format == "JPEG"


# ---------------------------------------------------------------- listing


def test_list_generations(client, auth, stack, wait_for):
    ids = [run(client, auth, prompt=f"list me {i}", size=SMALL)["id"] for i in range(2)]
    for gen_id in ids:
        assert_success(wait_for(client, stack.api_key, gen_id))

    response = client.get("/api/generations", headers=auth, params={"limit": 1, "offset": 0})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["data"]) == 1
    page = body["pagination"]
    assert page["total"] >= 2
    assert (page["limit"], page["offset"], page["hasMore"]) == (1, 0, True), page

    response = client.get("/api/generations", headers=auth, params={"limit": 100})
    assert response.status_code == 200, response.text
    listed = {g["id"] for g in response.json()["data"]}
    assert set(ids) <= listed

    response = client.get("/api/generations", headers=auth, params={"status": "success", "limit": 100})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data and all(g["status"] == "success" for g in data)
    assert set(ids) <= {g["id"] for g in data}

    response = client.get("/api/generations", headers=auth, params={"status": "error", "limit": 100})
    assert response.status_code == 200, response.text
    assert not set(ids) & {g["id"] for g in response.json()["data"]}


@pytest.mark.parametrize(("params", "field"), [
    ({"status": "bogus"}, "status"),
    ({"limit": 1000}, "limit"),
    ({"limit": 0}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"offset": -1}, "offset"),
])
def test_list_generations_bad_query(client, auth, params, field):
    assert_error(client.get("/api/generations", headers=auth, params=params), 400, field)


def test_unknown_generation_is_404(client, auth):
    response = client.get("/api/generations/" + "0" * 24, headers=auth)
    assert response.status_code == 404, response.text
    assert response.json()["message"]


# ---------------------------------------------------------------- workspaces


def test_workspace_isolation(client, auth, stack, wait_for):
    created = run(client, auth, prompt="mine only", size=SMALL)
    assert_success(wait_for(client, stack.api_key, created["id"]))

    cli = subprocess.run(
        [sys.executable, "-m", "infra.cli", "keys", "create", "--local", "--data-dir", str(stack.data_dir),
         "--workspace", "other", "--name", "t"],
        cwd=REPO_ROOT, check=False, capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    other_key = cli.stdout.strip().splitlines()[-1].strip()
    assert other_key and other_key != stack.api_key
    other = {"Authorization": other_key}

    assert client.get("/api/models", headers=other).status_code == 200
    response = client.get(f"/api/generations/{created['id']}", headers=other)
    assert response.status_code == 404, response.text
    response = client.post(f"/api/generations/{created['id']}/cancel", headers=other)
    assert response.status_code == 404, response.text
    response = client.get("/api/generations", headers=other, params={"limit": 100})
    assert response.status_code == 200, response.text
    assert created["id"] not in {g["id"] for g in response.json()["data"]}

    # The other workspace's own work stays its own, too.
    theirs = run(client, other, prompt="theirs", size=SMALL)
    assert_success(wait_for(client, other_key, theirs["id"]))
    assert client.get(f"/api/generations/{theirs['id']}", headers=auth).status_code == 404
    # ... and the first workspace still sees its generation.
    assert client.get(f"/api/generations/{created['id']}", headers=auth).status_code == 200


# ---------------------------------------------------------------- cancel


def test_cancel_finished_generation_is_409(client, auth, stack, wait_for):
    created = run(client, auth, prompt="too late to cancel", size=SMALL)
    assert_success(wait_for(client, stack.api_key, created["id"]))
    response = client.post(f"/api/generations/{created['id']}/cancel", headers=auth)
    assert response.status_code == 409, response.text
    assert response.json()["message"]
    after = client.get(f"/api/generations/{created['id']}", headers=auth).json()
    assert after["status"] == "success" and after["output"], after


def test_cancel_unknown_generation_is_404(client, auth):
    response = client.post("/api/generations/" + "f" * 24 + "/cancel", headers=auth)
    assert response.status_code == 404, response.text


# ---------------------------------------------------------------- catalog


def test_tools(client, auth):
    response = client.get("/api/tools", headers=auth)
    assert response.status_code == 200, response.text
    tools = {t["slug"]: t for t in response.json()["data"]}
    assert "create-image" in tools
    listed = tools["create-image"]
    assert "prompt" in listed["inputSchema"]["properties"]
    assert listed["models"]

    response = client.get("/api/tools/create-image", headers=auth)
    assert response.status_code == 200, response.text
    tool = response.json()
    assert tool["slug"] == "create-image"
    assert tool["type"] == "image"
    schema = tool["inputSchema"]
    assert schema["type"] == "object"
    assert {"prompt", "size", "n", "seed", "output_format"} <= set(schema["properties"])
    assert "prompt" in schema.get("required", [])
    model_ids = {m["id"] for m in tool["models"]}
    assert {"flux-schnell", "sdxl-turbo", "playground-v2", "flux-dev"} <= model_ids
    assert tool["defaultModel"] in model_ids

    response = client.get("/api/tools/nope", headers=auth)
    assert response.status_code == 404, response.text
    assert response.json()["message"]


def test_models(client, auth):
    response = client.get("/api/models", headers=auth)
    assert response.status_code == 200, response.text
    models = {m["id"]: m for m in response.json()["data"]}
    assert {"flux-schnell", "sdxl-turbo", "playground-v2", "flux-dev"} <= set(models)
    assert models["playground-v2"]["defaults"]["width"] == 1024
    assert "create-image" in models["playground-v2"]["tools"]


def test_unknown_route_is_404_json(client, auth):
    response = client.get("/api/nothing-here", headers=auth)
    assert response.status_code == 404, response.text
    assert response.json()["message"]


def test_the_gateway_host_sends_every_path_to_the_api_as_deployed(stack):
    """API Gateway has one catch-all route for the api (template.yaml): a known route is served through it, and an
    unknown path is the api's own 404 in its dialect's shape, not the gateway's."""
    models = httpx.get(stack.gateway_url + "/v1/models", headers={"Authorization": f"Bearer {stack.api_key}"},
                       timeout=30)
    assert models.status_code == 200 and models.json()["object"] == "list"
    unknown = httpx.get(stack.gateway_url + "/v1/no-such-route", headers={"Authorization": f"Bearer {stack.api_key}"},
                        timeout=30)
    assert unknown.status_code == 404
    assert "No route for GET /v1/no-such-route" in unknown.json()["error"]["message"]
