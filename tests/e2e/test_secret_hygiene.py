"""Secrets never reach the logs: a whole job with a webhook, and the error paths, through `darkroom dev`.

One `darkroom dev` process hosts every function (api, dispatch, the GPU worker, complete, webhooks,
sweeper), and all of them log to its stdout/stderr, which the fixture writes to one file. After the traffic,
that file must not contain the API key used, a wrong key that was tried, the webhook secrets (whsec_… or
their base64 body), any webhook-signature value, or the Modal token the process had in its environment.
"""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest

from infra.local.receiver import WebhookReceiver

FAKE_MODAL_TOKEN_ID = "ak-FAKEmodalTOKENid0123456789"
FAKE_MODAL_TOKEN_SECRET = "as-FAKEmodalTOKENsecret0123456789"


def _answer(request: dict, so_far: list[dict]) -> tuple[int, float, dict]:
    """/hook answers 500 to its first delivery (the retry path), then 200; /dead always answers 500 (the
    dead-letter path, which the webhooks function logs)."""
    first = sum(r["path"] == request["path"] for r in so_far) == 1
    return (500 if request["path"] == "/dead" or first else 200), 0.0, {}


@pytest.fixture(scope="module")
def logged_stack(tmp_path_factory, launch):
    running = launch(tmp_path_factory.mktemp("hygiene"), extra_env={
        "MODAL_TOKEN_ID": FAKE_MODAL_TOKEN_ID, "MODAL_TOKEN_SECRET": FAKE_MODAL_TOKEN_SECRET,
        "DARKROOM_WEBHOOK_RETRY_SCHEDULE": "1,1,1"})
    yield running
    if running.process.poll() is None:
        running.stop()


def _secrets_of(whsec: str) -> list[str]:
    body = whsec.removeprefix("whsec_")
    return [whsec, body, base64.b64decode(body).hex()]


def test_no_secret_reaches_any_log_line(logged_stack, wait_for):
    stack = logged_stack
    receiver = WebhookReceiver(answer=_answer)
    forbidden: dict[str, str] = {"modal token id": FAKE_MODAL_TOKEN_ID, "modal token secret": FAKE_MODAL_TOKEN_SECRET}
    try:
        with httpx.Client(base_url=stack.url, timeout=60) as client:
            dev = {"Authorization": stack.api_key}
            created = client.post("/api/keys", json={"name": "hygiene", "rate_limit": 10_000}, headers=dev)
            assert created.status_code == 201, created.text
            key = created.json()["key"]
            forbidden["api key"] = key
            auth = {"Authorization": f"Bearer {key}"}

            # The webhook secret is the operator's (an admin key): the dev key reads and rotates it.
            old = client.get("/api/webhooks/secret", headers=dev).json()["secret"]
            rotated = client.post("/api/webhooks/secret/rotate", json={"grace_seconds": 3600}, headers=dev).json()
            for name, whsec in (("old webhook secret", old), ("webhook secret", rotated["secret"])):
                for i, value in enumerate(_secrets_of(whsec)):
                    forbidden[f"{name} [{i}]"] = value

            # The happy path: a job with a webhook, delivered after one failed attempt (both secrets sign).
            jobs = [client.post("/api/run", headers=auth, json={
                "tool": "create-image", "webhook": receiver.base_url + path,
                "input": {"prompt": "a lighthouse at dusk", "size": "256x256"}}) for path in ("/hook", "/dead")]
            assert [j.status_code for j in jobs] == [202, 202], [j.text for j in jobs]
            for j in jobs:
                assert wait_for(client, key, j.json()["id"])["status"] == "success"
            # /hook: a 500, then delivered; /dead: the first attempt and three retries, then the dead-letter queue.
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                dead = client.get(f"/api/generations/{jobs[1].json()['id']}/deliveries", headers=auth).json()["data"]
                if len(receiver.requests) >= 6 and any(d["outcome"] == "failed" for d in dead):
                    break
                time.sleep(0.5)
            assert [r["path"] for r in receiver.requests].count("/hook") == 2
            assert any(d["outcome"] == "failed" for d in dead), dead
            # The error paths: wrong keys in every header form and dialect, and a refused webhook.
            wrong = "dr_" + "W" * 43
            forbidden["wrong key"] = wrong
            for path, headers in (("/api/account", {"Authorization": wrong}),
                                  ("/api/generations", {"Authorization": f"Bearer {wrong}"}),
                                  ("/api/v1/models", {"X-API-Key": wrong})):
                assert client.get(path, headers=headers).status_code == 401
            assert client.post("/v1/images/generations", json={"prompt": "x"},
                               headers={"Authorization": f"Bearer {wrong}"}).status_code == 401
            refused = client.post("/api/run", headers=auth, json={
                "tool": "create-image", "webhook": "http://user:hunter2hunter2@127.0.0.1:9/x", "input": {"prompt": "x"}})
            assert refused.status_code == 400
            forbidden["webhook credentials"] = "hunter2hunter2"
    finally:
        receiver.close()

    signatures = [r["headers"].get("webhook-signature") for r in receiver.requests]
    assert all(signatures)
    for i, header in enumerate(signatures):
        forbidden[f"webhook-signature {i}"] = header
        for j, part in enumerate(header.split()):
            forbidden[f"webhook-signature {i}.{j}"] = part.split(",", 1)[1]
    assert any(len(h.split()) == 2 for h in signatures), "rotation should have made two signatures"

    assert stack.stop() == 0
    log = stack.log_path.read_text(errors="replace")
    lines = log.splitlines()
    json_lines = [line for line in lines if line.startswith("{")]
    # The capture has the functions' own lines (so the check below checks them): dispatch's "dispatched" and
    # the webhooks function's dead-letter warning, besides the gateway's access log.
    functions = {json.loads(line).get("function_name") for line in json_lines}
    assert {"DispatchFunction", "WebhooksFunction"} <= functions, functions
    assert any("webhook dead-lettered" in line for line in json_lines)
    leaks = {name: [line[:200] for line in lines if value in line] for name, value in forbidden.items()}
    assert not {name: found for name, found in leaks.items() if found}, "secrets in the log"
    # The dev key is printed once, on purpose, in the banner that `make dev` shows; never in a log line.
    dev_lines = [i for i, line in enumerate(lines) if stack.api_key in line]
    banner = next(i for i, line in enumerate(lines) if "Darkroom is ready" in line)
    banner_end = next(i for i, line in enumerate(lines) if "Press Ctrl-C to stop" in line)
    assert dev_lines and all(banner < i < banner_end for i in dev_lines), [lines[i][:120] for i in dev_lines]
