"""The official `openai` Python SDK against the real local stack, with only base_url changed (seed 003).

Nothing here imports the product: the SDK talks HTTP to `darkroom dev`, and the images it gets back are
downloaded from the presigned URLs or decoded from base64 as a user would.
"""

from __future__ import annotations

import base64
import io
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI
from PIL import Image

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMPT = "A minimalist logo for a tech startup, flat design, blue tones"


@pytest.fixture
def sdk(stack) -> OpenAI:
    # max_retries=0: an error must surface as the SDK's exception class, not be retried away.
    with OpenAI(api_key=stack.api_key, base_url=stack.url + "/v1", max_retries=0, timeout=120) as client:
        yield client


def png(width: int, height: int, color: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA" if len(color) == 4 else "RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()


def fetch(url: str) -> Image.Image:
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200, (url, response.status_code)
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


def test_generate_url_as_in_the_seed(sdk):
    # Seed 003's call, at a size and on a model the tiny CPU pipelines finish well within the 25 s wait.
    response = sdk.images.generate(model="flux-schnell", prompt=PROMPT, n=1, size="256x256", quality="hd")
    assert isinstance(response.created, int) and len(response.data) == 1
    image = fetch(response.data[0].url)
    assert image.format == "PNG" and image.size == (256, 256)
    assert PROMPT in response.data[0].revised_prompt and response.data[0].revised_prompt != PROMPT  # vivid
    assert response.size == "256x256" and response.quality == "high" and response.output_format == "png"


def test_generate_b64_json_batch(sdk):
    response = sdk.images.generate(model="flux-schnell", prompt="a red fox", n=3, size="256x256",
                                   response_format="b64_json", output_format="webp")
    assert len(response.data) == 3
    for item in response.data:
        assert item.url is None
        image = Image.open(io.BytesIO(base64.b64decode(item.b64_json)))
        assert image.format == "WEBP" and image.size == (256, 256)


@pytest.mark.parametrize("model,size,expected", [
    ("flux-schnell", "512x256", (512, 256)),
    ("flux-schnell", "256x384", (256, 384)),
    ("sdxl-turbo", "auto", (512, 512)),
    ("stabilityai/sdxl-turbo", None, (512, 512)),
])
def test_sizes(sdk, model, size, expected):
    kwargs = {"size": size} if size else {}
    response = sdk.images.generate(model=model, prompt="a lighthouse", **kwargs)
    assert fetch(response.data[0].url).size == expected
    assert response.size == f"{expected[0]}x{expected[1]}"


def test_styles_make_the_revised_prompt(sdk, stack):
    natural = sdk.images.generate(model="flux-schnell", prompt="a cat", size="256x256", style="natural")
    vivid = sdk.images.generate(model="flux-schnell", prompt="a cat", size="256x256", style="vivid")
    assert natural.data[0].revised_prompt != vivid.data[0].revised_prompt
    assert natural.data[0].revised_prompt.startswith("a cat") and vivid.data[0].revised_prompt.startswith("a cat")
    # A preset by slug (Darkroom's extension, through extra_body), listed at /api/v1/styles.
    styles = httpx.get(f"{stack.url}/api/v1/styles", headers={"Authorization": f"Bearer {stack.api_key}"}).json()
    anime = next(s for s in styles["styles"] if s["slug"] == "anime-style")
    preset = sdk.images.generate(model="flux-schnell", prompt="a cat", size="256x256", style="natural",
                                 extra_body={"style_slug": "anime-style"})
    assert preset.data[0].revised_prompt.startswith(anime["prompt_template"].replace("{prompt}", "a cat"))


def test_edit_one_image(sdk):
    source = ("photo.png", png(256, 256, (200, 40, 40)), "image/png")
    response = sdk.images.edit(image=source, prompt="make the sky purple", size="256x256", n=2)
    assert len(response.data) == 2
    for item in response.data:
        assert fetch(item.url).size == (256, 256)


def test_edit_several_images_with_a_mask(sdk, tmp_path):
    first = tmp_path / "first.png"
    first.write_bytes(png(128, 128, (10, 200, 10)))
    with first.open("rb") as handle:
        response = sdk.images.edit(
            image=[handle, ("second.png", png(128, 128, (10, 10, 200)), "image/png")],
            mask=("mask.png", png(128, 128, (0, 0, 0, 0)), "image/png"),  # all transparent: repaint it all
            prompt="combine them", model="flux2-klein", size="256x256", response_format="b64_json")
    image = Image.open(io.BytesIO(base64.b64decode(response.data[0].b64_json)))
    assert image.size == (256, 256)


def test_models_list(sdk):
    ids = [m.id for m in sdk.models.list()]
    assert {"flux-schnell", "flux-dev", "sdxl-turbo", "playground-v2"} <= set(ids)
    assert all(m.owned_by == "darkroom" and m.object == "model" for m in sdk.models.list())
    assert sdk.models.retrieve("flux-dev").id == "flux-dev"
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("dall-e-9")


def test_bad_key_is_authentication_error(stack):
    with OpenAI(api_key="sk-not-a-darkroom-key", base_url=stack.url + "/v1", max_retries=0) as client, \
            pytest.raises(openai.AuthenticationError) as info:
        client.images.generate(prompt="x", size="256x256")
    assert info.value.status_code == 401 and info.value.code == "invalid_api_key"
    assert info.value.type == "authentication_error"


@pytest.mark.parametrize("kwargs,param,code", [
    ({"size": "100x100"}, "size", "invalid_size"),
    ({"size": "123x456"}, "size", "invalid_size"),
    ({"model": "dall-e-9"}, "model", "model_not_found"),
    ({"n": 11}, "n", None),
    ({"prompt": "x" * 4001}, "prompt", "prompt_too_long"),
    ({"style": "baroque"}, "style", "style_not_found"),
])
def test_bad_requests_are_bad_request_errors(sdk, kwargs, param, code):
    with pytest.raises(openai.BadRequestError) as info:
        sdk.images.generate(**{"prompt": "x", "size": "256x256", **kwargs})
    assert info.value.status_code == 400 and info.value.param == param, info.value.body
    assert info.value.type == "invalid_request_error"
    if code:
        assert info.value.code == code
    assert param in info.value.message


def test_streaming_is_refused_clearly(sdk):
    with pytest.raises(openai.BadRequestError) as info:
        sdk.images.generate(prompt="x", size="256x256", stream=True)
    assert info.value.param == "stream" and "not supported" in info.value.message


def _exhaust_a_two_per_minute_key(stack) -> openai.RateLimitError | None:
    """Two submits, then a third on a fresh 2/min key: the third's RateLimitError, or None when the calls
    crossed a minute (the shared counter's windows are fixed minutes, so the third then starts a new one)."""
    created = subprocess.run(
        [sys.executable, "-m", "infra.cli", "keys", "create", "--local", "--data-dir", str(stack.data_dir),
         "--workspace", f"ws-limited-{uuid.uuid4().hex[:6]}", "--name", "limited", "--rate-limit", "2"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert created.returncode == 0, created.stderr + created.stdout
    secret = created.stdout.strip().splitlines()[-1].strip()
    started = time.time()
    with OpenAI(api_key=secret, base_url=stack.url + "/v1", max_retries=0) as client:
        # Submits count against the key's shared (DynamoDB) counter, exactly; reads have a per-container bucket.
        client.images.generate(prompt="x", size="256x256", model="sdxl-turbo")
        client.images.generate(prompt="y", size="256x256", model="sdxl-turbo")
        try:
            client.images.generate(prompt="z", size="256x256", model="sdxl-turbo")
        except openai.RateLimitError as exc:
            return exc
    assert int(started // 60) != int(time.time() // 60), "the third submit within one minute was not refused"
    return None


def test_rate_limit_is_rate_limit_error(stack):
    refused = _exhaust_a_two_per_minute_key(stack) or _exhaust_a_two_per_minute_key(stack)
    assert refused is not None
    assert refused.status_code == 429 and refused.type == "rate_limit_error"
    assert refused.code == "rate_limit_exceeded"
    assert int(refused.response.headers["retry-after"]) > 0
    assert refused.response.headers["x-ratelimit-limit-requests"] == "2"


def test_a_lora_uploaded_once_runs_from_the_sdk_in_generations_and_edits(sdk, stack, tmp_path):
    """Registered with a plain multipart POST (as curl would), then named in extra_body: the SDK sends it as JSON for
    a generation and as bracketed form fields (loras[][path], loras[][scale]) for a multipart edit."""
    import hashlib

    from gpu.tiny import ensure_tiny_lora

    data = ensure_tiny_lora("flux", tmp_path, "sdk-ink").read_bytes()
    registered = httpx.post(f"{stack.url}/api/loras", headers={"Authorization": f"Bearer {stack.api_key}"},
                            files={"file": ("sdk-ink.safetensors", data, "application/octet-stream")}, timeout=60)
    assert registered.status_code == 201, registered.text
    lora_id = registered.json()["id"]
    sha = hashlib.sha256(data).hexdigest()
    try:
        made = sdk.images.generate(model="flux-schnell", prompt=PROMPT, size="256x256",
                                   extra_body={"loras": [{"path": lora_id, "scale": 0.6}]})
        assert made.model_extra["loras"] == [{"path": lora_id, "id": lora_id, "name": "sdk-ink.safetensors", "scale": 0.6,
                                              "sha256": sha}]
        edited = sdk.images.edit(model="flux-schnell", prompt="at night", size="256x256",
                                 image=("a.png", png(256, 256, (40, 90, 200)), "image/png"),
                                 extra_body={"loras": [{"path": lora_id, "scale": 0.9}]})
        assert [(x["id"], x["scale"]) for x in edited.model_extra["loras"]] == [(lora_id, 0.9)]
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.images.generate(model="flux-schnell", prompt=PROMPT, size="256x256",
                                extra_body={"loras": [{"path": "http://169.254.169.254/latest/x.safetensors"}]})
        assert refused.value.body["param"] == "loras.0.path"
    finally:
        httpx.delete(f"{stack.url}/api/loras/{lora_id}", headers={"Authorization": f"Bearer {stack.api_key}"})
