"""`darkroom dev` as a developer runs it: start, Ctrl-C, start again; and the first request after "ready".

Each test runs its own short-lived stack (own port, own data dir), never the session one.
"""

from __future__ import annotations

import time

import httpx
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


def test_ctrl_c_then_restart_keeps_the_api_key(tmp_path, stack_launcher):
    data_dir = tmp_path / "darkroom"
    first = stack_launcher(data_dir)
    print(f"\ncold start: ready in {first.ready_seconds:.2f}s")
    key = first.api_key
    assert key
    assert httpx.get(f"{first.url}/api/models", headers={"Authorization": key}, timeout=10).status_code == 200

    stopping = time.monotonic()
    code = first.stop()
    print(f"stopped in {time.monotonic() - stopping:.2f}s")
    # The CLI catches KeyboardInterrupt and shuts the stack down: Ctrl-C is the clean path, exit status 0.
    assert code == 0, f"Ctrl-C did not stop darkroom dev cleanly within 20s (exit {code}):\n{first.log_tail()}"
    log = first.log_tail()
    assert "Stopped." in log, log
    # Everything it started is gone: the gateway and the moto server it ran as a child.
    for url in (f"{first.url}/api/models", f"{first.moto_endpoint}/moto-api/"):
        with pytest.raises(httpx.TransportError):
            httpx.get(url, timeout=2)

    second = stack_launcher(data_dir)
    print(f"restart: ready in {second.ready_seconds:.2f}s")
    assert second.api_key == key, "the restarted stack's dev.env holds a different DARKROOM_API_KEY"
    response = httpx.get(f"{second.url}/api/models", headers={"Authorization": key}, timeout=10)
    assert response.status_code == 200, response.text
    assert {m["id"] for m in response.json()["data"]} >= {"flux-schnell", "playground-v2"}
    # The first run made no generations (state persists across restarts: tests/e2e/test_restart.py).
    listing = httpx.get(f"{second.url}/api/generations", headers={"Authorization": key}, timeout=10)
    assert listing.status_code == 200, listing.text
    assert listing.json()["pagination"]["total"] == 0
    assert second.stop() == 0, second.log_tail()


def test_first_requests_right_after_ready_succeed(tmp_path, stack_launcher):
    """A developer runs the quick start's curl the moment `darkroom dev` says it is ready.

    The stack warms the tiny pipelines in a background thread; a job that arrives meanwhile must still
    succeed (wait for or share the warm-up), not fail."""
    running = stack_launcher(tmp_path / "darkroom")
    auth = {"Authorization": running.api_key}
    with httpx.Client(base_url=running.url, timeout=30) as client:
        ids = []
        for body in ({"tool": "create-image", "model": "sdxl-turbo",
                      "input": {"prompt": "a red fox", "size": "256x256"}},
                     {"tool": "create-image", "input": {"prompt": "a red fox", "size": "256x256"}}):
            response = client.post("/api/run", headers=auth, json=body)
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])
        deadline = time.monotonic() + 120
        pending = set(ids)
        results = {}
        while pending and time.monotonic() < deadline:
            for gen_id in list(pending):
                body = client.get(f"/api/generations/{gen_id}", headers=auth).json()
                if body["status"] in ("success", "error"):
                    results[gen_id] = body
                    pending.discard(gen_id)
            time.sleep(0.25)
    assert not pending, f"still unfinished after 120s: {pending}"
    for gen_id, body in results.items():
        assert body["status"] == "success", (
            f"{gen_id} ({body['model']}) failed right after ready: {body['error']!r}\n{running.log_tail(3000)}")
