"""Synchronous calls past API Gateway's 30 s, through the real `darkroom dev` with every job slowed to 40 s
(DARKROOM_WORKER_DELAY_SECONDS, as a GPU cold start would be).

The stack serves both deployed hosts: the function URL (the URL the README hands out), where a call waits
for its result, and the API Gateway host, where it answers the documented 504 with the job id after 25 s.
Every slow call starts at once, on its own thread, so the module costs about one 40 s job; each test then
checks one call's outcome.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-long-waits")]

DELAY_SECONDS = 40
# Far above any wait here; the SDK's own default (600 s) is what users get.
CLIENT_TIMEOUT = 300
RUN = uuid.uuid4().hex[:8]
# Seed 004's text-to-video curl, as written there (the operator aliases the vendor's model id).
SEED_VIDEO = {"prompt": "A cinematic drone shot flying through snowy mountains at sunrise",
              "model": "fal-ai/veo3.1/fast", "duration": 4, "aspect_ratio": "16:9"}
CATALOG_EXTRA = """
models:
  - id: ltx-video-fast
    name: LTX-Video fast
    task: text-to-video
    family: ltx
    repo: Lightricks/LTX-Video
    modal_class: LTXVideoGenerator
    credits_per_second: 2
    defaults: {steps: 4, guidance: 3.0, width: 512, height: 320, fps: 24, duration: 4}
    max_steps: 50
    max_side: 1280
    multiple_of: 32
    durations: [2, 4, 6]
    frame_multiple: 8
    max_frames: 257
aliases:
  fal-ai/veo3.1/fast: ltx-video-fast
"""


def prompt(name: str) -> str:
    return f"a lighthouse at dusk ({name} {RUN})"


@pytest.fixture(scope="module")
def slow_stack(tmp_path_factory, launch):
    data_dir = tmp_path_factory.mktemp("darkroom-slow")
    catalog = data_dir / "catalog-extra.yaml"
    catalog.write_text(CATALOG_EXTRA)
    running = launch(data_dir, extra_env={
        "DARKROOM_WORKER_DELAY_SECONDS": str(DELAY_SECONDS),
        "DARKROOM_LOCAL_FAULTS": "1",
        "DARKROOM_CATALOG_EXTRA": str(catalog),
    })
    assert running.gateway_url and running.gateway_url != running.url
    yield running
    code = running.stop()
    assert code == 0, f"darkroom dev did not stop cleanly (exit {code}); log tail:\n{running.log_tail()}"


def sdk(base: str, key: str, **options) -> OpenAI:
    """The official SDK with only base_url (and the test's options) changed: default retries included."""
    return OpenAI(api_key=key, base_url=base + "/v1", timeout=CLIENT_TIMEOUT, **options)


def sdk_generate(client: OpenAI, name: str):
    """images.generate, with the raw response kept: it says how many retries the SDK took."""
    raw = client.images.with_raw_response.generate(model="flux-schnell", prompt=prompt(name), size="256x256")
    return raw.retries_taken, raw.parse()


def sdk_error(client: OpenAI, name: str) -> openai.APIStatusError:
    try:
        client.images.generate(model="flux-schnell", prompt=prompt(name), size="256x256")
    except openai.APIStatusError as exc:
        return exc
    raise AssertionError("images.generate on the gateway host returned a result past 25 s")


def curl(base: str, key: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(base + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=CLIENT_TIMEOUT)


@pytest.fixture(scope="module")
def calls(slow_stack) -> dict[str, Future]:
    """Every slow call of this module, started together."""
    url, gateway, key = slow_stack.url, slow_stack.gateway_url, slow_stack.api_key
    started: dict[str, Callable[[], Any]] = {
        "sdk_function_url": lambda: sdk_generate(sdk(url, key), "sdk"),
        "video_function_url": lambda: curl(url, key, "/api/v1/videos/generate", SEED_VIDEO),
        "sdk_gateway": lambda: sdk_error(sdk(gateway, key), "gateway"),
        "aims_gateway": lambda: curl(gateway, key, "/api/v1/images/generate",
                                     {"prompt": prompt("aims-gateway"), "model": "flux-schnell", "size": "256x256"}),
        # The first attempt's response is lost (the local gateway's test-only fault, after the handler ran):
        # the SDK sees a 502 and retries on its own.
        "sdk_retry": lambda: sdk_generate(sdk(url, key, default_headers={"x-darkroom-local-fault": RUN}), "retry"),
    }
    pool = ThreadPoolExecutor(max_workers=len(started))
    futures = {name: pool.submit(call) for name, call in started.items()}
    yield futures
    pool.shutdown(wait=True)


def jobs_with_prompt(stack, text: str) -> list[dict]:
    response = httpx.get(f"{stack.url}/api/generations", params={"limit": 100},
                         headers={"Authorization": stack.api_key}, timeout=30)
    assert response.status_code == 200, response.text
    return [g for g in response.json()["data"] if (g.get("payload") or {}).get("prompt") == text]


def test_the_sdk_gets_its_image_on_the_function_url(calls, slow_stack, download_image):
    retries, result = calls["sdk_function_url"].result()
    assert retries == 0  # one request, answered with the image once the job was done
    image, _ = download_image(result.data[0].url)
    assert image.size == (256, 256) and result.size == "256x256"
    assert len(jobs_with_prompt(slow_stack, prompt("sdk"))) == 1


def test_the_seed_video_curl_gets_its_video_on_the_function_url(calls):
    response = calls["video_function_url"].result()
    assert response.status_code == 200, response.text
    body = response.json()
    video = body["video"]
    assert body["success"] is True and video["status"] == "completed" and video["model"] == "ltx-video-fast"
    assert (video["duration"], video["aspect_ratio"]) == (4, "16:9")
    assert httpx.get(video["url"], timeout=30, follow_redirects=True).content[4:8] == b"ftyp"  # an mp4 (over 4 MiB: a redirect to S3)


def test_the_gateway_host_answers_the_documented_504_with_the_job_id(calls, slow_stack, wait_for):
    error = calls["sdk_gateway"].result()
    assert error.status_code == 504 and isinstance(error, openai.InternalServerError)
    assert error.response.headers["x-should-retry"] == "false"  # so the SDK did not spend its retries
    body = error.body
    job_id = body["job_id"]
    assert body["code"] == "timeout" and job_id in body["message"] and "/api/generations/" in body["message"]
    # One job, not three: the SDK did not retry; and the job goes on to finish.
    assert [g["id"] for g in jobs_with_prompt(slow_stack, prompt("gateway"))] == [job_id]
    with httpx.Client(base_url=slow_stack.url, timeout=30) as client:
        assert wait_for(client, slow_stack.api_key, job_id, timeout=180)["status"] == "success"


def test_the_gateway_host_504_in_the_ai_media_studio_shape(calls, slow_stack):
    response = calls["aims_gateway"].result()
    assert response.status_code == 504, response.text
    body = response.json()
    assert set(body) == {"error", "code", "job_id"} and body["code"] == "timeout"
    assert body["job_id"] in body["error"]


def test_an_sdk_retry_after_a_5xx_joins_the_first_job(calls, slow_stack, download_image):
    retries, result = calls["sdk_retry"].result()
    assert retries == 1  # the first attempt's 502, then the retry that got the image
    image, _ = download_image(result.data[0].url)
    assert image.size == (256, 256)
    jobs = jobs_with_prompt(slow_stack, prompt("retry"))
    assert len(jobs) == 1 and jobs[0]["status"] == "success"
    assert jobs[0]["id"] in result.data[0].url


def test_two_hosts_in_dev_env(slow_stack):
    env = dict(line.split("=", 1) for line in slow_stack.env_file.read_text().splitlines() if "=" in line)
    assert env["DARKROOM_URL"] == slow_stack.url and env["DARKROOM_GATEWAY_URL"] == slow_stack.gateway_url
