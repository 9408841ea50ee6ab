"""Python clients people point at an OpenAI-compatible image API, and the exact requests of two that cannot be
installed here, all against the real local stack with only the base URL and key changed.

- LiteLLM (`image_generation`, `image_edit`, Darkroom's own fields through `extra_body`), and LangChain's
  `DallEAPIWrapper`: installed from PyPI (the dev extra), run in a process of their own. LiteLLM fetches a price
  list from GitHub at import unless LITELLM_LOCAL_MODEL_COST_MAP is set: it is, so nothing leaves the machine.
- Open WebUI and n8n are servers, not libraries: their requests are replayed byte for byte as their source
  builds them (the file and commit are named at each replay).
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys

import httpx
import pytest
from PIL import Image

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


def run_python(code: str, stack, **env: str) -> dict:
    environment = {**os.environ, "DARKROOM_URL": stack.url, "DARKROOM_API_KEY": stack.api_key,
                   "LITELLM_LOCAL_MODEL_COST_MAP": "True", **env}
    done = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def png(color=(200, 40, 40), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (64, 64), color).save(buffer, format="PNG")
    return buffer.getvalue()


def decoded(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


LITELLM = """
import json, os, sys
import litellm
base, key = os.environ["DARKROOM_URL"] + "/v1", os.environ["DARKROOM_API_KEY"]
made = litellm.image_generation(model="openai/flux-schnell", prompt="a lighthouse", api_base=base, api_key=key,
                                size="256x256", n=2, extra_body={"seed": 11, "steps": 2})
with open(os.environ["IMAGE"], "rb") as image:
    edited = litellm.image_edit(model="openai/sdxl-turbo", prompt="make it blue", image=image, api_base=base,
                                api_key=key, size="256x256", extra_body={"negative_prompt": "red", "guidance": 2.0})
print(json.dumps({"made": [bool(d.b64_json) and bool(d.url) for d in made.data],
                  "edited": [bool(d.b64_json) for d in edited.data], "url": made.data[0].url}))
"""


def test_litellm_generates_and_edits_with_extra_body(stack, tmp_path):
    image = tmp_path / "image.png"
    image.write_bytes(png())
    out = run_python(LITELLM, stack, IMAGE=str(image))
    assert out["made"] == [True, True] and out["edited"] == [True]
    job_id = out["url"].split("/generations/")[1].split("/")[0]
    job = httpx.get(f"{stack.url}/api/generations/{job_id}", headers={"Authorization": stack.api_key}).json()
    assert job["payload"]["seed"] == 11 and job["payload"]["steps"] == 2  # extra_body reached the job


LANGCHAIN = """
import json, os, warnings
warnings.simplefilter("ignore")
from langchain_community.utilities.dalle_image_generator import DallEAPIWrapper
wrapper = DallEAPIWrapper(api_key=os.environ["DARKROOM_API_KEY"], base_url=os.environ["DARKROOM_URL"] + "/v1",
                          size="256x256")
print(json.dumps({"model": wrapper.model_name, "url": wrapper.run("a lighthouse at dusk")}))
"""


def test_langchains_dalle_wrapper_gets_a_url_for_dall_e_2(stack):
    """LangChain sends {model: dall-e-2, quality: standard, size, n: 1} with no response_format and reads
    data[].url: dall-e-2 is one of the OpenAI names the catalog answers."""
    out = run_python(LANGCHAIN, stack)
    assert out["model"] == "dall-e-2" and out["url"].startswith(stack.url + "/media/")
    image = Image.open(io.BytesIO(httpx.get(out["url"], timeout=30).content))
    assert image.size == (256, 256)


def test_open_webui_generation_and_edit_as_it_sends_them(stack):
    """open-webui/open-webui, backend/open_webui/routers/images.py at 02530d5: `image_generations` posts
    {model, prompt, n, size, **IMAGES_OPENAI_API_PARAMS}, with response_format b64_json unless the model is one
    that answers URLs (gpt-image models: none sent); it takes data[].url, fetched with the same Bearer header,
    else b64_json. `image_edits` posts a form of str() values with the image as `image` (one) or `image[]`."""
    headers = {"Authorization": f"Bearer {stack.api_key}", "Content-Type": "application/json"}
    body = {"model": "gpt-image-1", "prompt": "a lighthouse", "n": 1, "size": "512x512",
            "seed": 4, "steps": 2}  # IMAGES_OPENAI_API_PARAMS, as an operator sets them
    answer = httpx.post(f"{stack.url}/v1/images/generations", json=body, headers=headers, timeout=120)
    assert answer.status_code == 200, answer.text
    item = answer.json()["data"][0]
    fetched = httpx.get(item["url"], headers={"Authorization": headers["Authorization"]}, timeout=30)
    assert fetched.status_code == 200 and Image.open(io.BytesIO(fetched.content)).size == (512, 512)

    form = {"model": "gpt-image-1", "prompt": "make it blue", "n": "1", "size": "256x256",
            "response_format": "b64_json"}
    files = [("image[]", ("image.png", png(), "image/png")), ("image[]", ("second.png", png((0, 0, 200)), "image/png"))]
    edited = httpx.post(f"{stack.url}/v1/images/edits", data=form, files=files,
                        headers={"Authorization": headers["Authorization"]}, timeout=120)
    assert edited.status_code == 200, edited.text
    assert decoded(edited.json()["data"][0]["b64_json"]).size == (256, 256)


def test_the_model_lists_open_webui_and_n8n_pick_from(stack):
    """Open WebUI's OpenAI engine offers dall-e-2, dall-e-3, gpt-image-1 and gpt-image-1.5; n8n's picker keeps
    ids starting gpt-image or dall-e. Each of them is a model here."""
    listed = httpx.get(f"{stack.url}/v1/models", headers={"Authorization": f"Bearer {stack.api_key}"}).json()
    ids = {m["id"] for m in listed["data"]}
    assert {"dall-e-2", "dall-e-3", "gpt-image-1", "gpt-image-1.5"} <= ids
    assert [i for i in ids if i.startswith(("gpt-image", "dall-e"))]


@pytest.mark.parametrize("body", [
    {"prompt": "a lighthouse", "model": "gpt-image-1", "size": "1024x1024"},
    {"prompt": "a lighthouse", "model": "dall-e-3", "response_format": "b64_json", "quality": "standard",
     "size": "1024x1024", "style": "vivid"},
    {"prompt": "a lighthouse", "model": "dall-e-2", "response_format": "b64_json", "n": 2, "size": "256x256"},
])
def test_n8n_generation_as_it_sends_it(stack, body):
    """n8n-io/n8n, packages/@n8n/nodes-langchain/nodes/vendors/OpenAi/actions/image/generate.operation.ts at
    4b50040: {prompt, model, response_format (b64_json, left out for gpt-image-1), ...options}; it decodes
    data[].b64_json into a binary file."""
    answer = httpx.post(f"{stack.url}/v1/images/generations", json=body,
                        headers={"Authorization": f"Bearer {stack.api_key}"}, timeout=180)
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert len(data) == body.get("n", 1)
    width, height = (int(side) for side in body["size"].split("x"))
    assert all(decoded(item["b64_json"]).size == (width, height) for item in data)
