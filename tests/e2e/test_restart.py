"""What a restart of `darkroom dev` keeps: everything it acknowledged, after Ctrl-C and after SIGKILL.

Generations (records and output bytes), credits, extra API keys and the developer's key come back on the
same data dir; resources are not created again over the saved state.
"""

from __future__ import annotations

import hashlib
import signal

import httpx
import pytest

from tests.e2e.fault_helpers import balance, submit, wait_terminal

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-faults")]


def snapshot(stack, client, auth, ids):
    """What the user can see: each job's body and its output's bytes, the balance, the listing's total."""
    jobs = {}
    for job_id in ids:
        body = client.get(f"/api/generations/{job_id}", headers=auth).json()
        digest = hashlib.sha256(httpx.get(body["output"], timeout=30).content).hexdigest() if body["output"] else None
        jobs[job_id] = (body["status"], body["error"], digest)
    total = client.get("/api/generations", headers=auth).json()["pagination"]["total"]
    return jobs, balance(client, auth), total


def test_restart_keeps_generations_credits_and_keys(tmp_path, launch):
    data_dir = tmp_path / "darkroom"
    stack = launch(data_dir)
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        auth = {"Authorization": stack.api_key}
        ids = [submit(client, auth, f"kept {i}") for i in range(2)]
        wait_terminal(stack, ids)
        extra = client.post("/api/keys", headers=auth, json={"name": "ci", "scopes": ["media:read"]})
        assert extra.status_code in (200, 201), extra.text
        extra_secret = extra.json()["key"]
        before = snapshot(stack, client, auth, ids)
    assert before[0][ids[0]][0] == "success" and before[2] == 2

    for how in ("ctrl-c", "sigkill"):
        if how == "ctrl-c":
            assert stack.stop() == 0, stack.log_tail()
        else:
            stack.process.send_signal(signal.SIGKILL)
            stack.process.wait(timeout=10)
            stack.stop()
        stack = launch(data_dir)
        try:
            with httpx.Client(base_url=stack.url, timeout=30) as client:
                auth = {"Authorization": stack.api_key}
                assert snapshot(stack, client, auth, ids) == before, f"after {how}"
                listed = client.get("/api/generations", headers={"Authorization": extra_secret})
                assert listed.status_code == 200, f"the extra key after {how}: {listed.text}"
        finally:
            if how == "sigkill":
                assert stack.stop() == 0, stack.log_tail()
    assert "journaled writes replayed" in (data_dir / "moto" / "server.log").read_text()
