"""JavaScript clients people point at an OpenAI-compatible image API, installed from npm (tests/clients/js,
by `make test`) and run with node against the real local stack, with only the base URL and key changed.

- the OpenAI Node SDK 7: generate, an edit of several images with a mask, an error;
- the Vercel AI SDK (`ai` 7) with `@ai-sdk/openai` and `@ai-sdk/openai-compatible`: generate and edit. Both
  require `data[].b64_json` and send no response_format on edits: every edit failed with "Invalid JSON response"
  while Darkroom answered URLs only.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

CLIENTS = Path(__file__).resolve().parents[1] / "clients" / "js"


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    assert found, "node is not installed (Node 20 is part of the machine the tests run on)"
    assert (CLIENTS / "node_modules" / "openai").is_dir(), "run `make test` (it installs tests/clients/js)"
    return found


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("js-images")
    paths = {}
    for name, image in (("IMAGE_A", Image.new("RGB", (64, 64), (200, 40, 40))),
                        ("IMAGE_B", Image.new("RGB", (64, 64), (40, 40, 200))),
                        ("MASK", Image.new("RGBA", (64, 64), (0, 0, 0, 0)))):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        (folder / f"{name}.png").write_bytes(buffer.getvalue())
        paths[name] = str(folder / f"{name}.png")
    return paths


def run(node: str, script: str, stack, images: dict[str, str]) -> dict:
    env = {**os.environ, **images, "DARKROOM_URL": stack.url, "DARKROOM_API_KEY": stack.api_key}
    done = subprocess.run([node, script], cwd=CLIENTS, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_openai_node_sdk_generates_edits_with_a_mask_and_raises_its_error(node, stack, images):
    out = run(node, "openai-node.mjs", stack, images)
    assert out["generate"]["count"] == 2 and all(n > 100 for n in out["generate"]["b64"])
    assert out["generate"]["url"].startswith(stack.url + "/media/") and out["generate"]["size"] == "256x256"
    assert out["generate"]["model"] == "flux-schnell"
    # gpt-image-1 is an alias: the catalog model that answers it ran, with both images and the mask.
    assert out["edit"]["count"] == 1 and out["edit"]["b64"] > 100 and out["edit"]["model"].endswith("-edit")
    assert out["error"] == {"status": 400, "param": "size", "code": "invalid_size", "type": "BadRequestError"}


def test_the_vercel_ai_sdk_generates_and_edits_with_both_providers(node, stack, images):
    out = run(node, "vercel-ai.mjs", stack, images)
    for provider in ("openai", "openai-compatible"):
        for call in ("generate", "edit"):
            result = out[provider][call]
            assert result["mediaType"] == "image/png" and result["bytes"] > 100, (provider, call, result)
