"""Synchronous calls in flight are capped per key and per workspace (a sync call holds a Lambda for its whole
job: a few keys could hold every environment and throttle the functions that finish jobs). Over the cap: 429
with Retry-After, in the dialect's shape, and no job made. A lease whose call died frees itself."""

from __future__ import annotations

import pytest

from functions.core import clock, inflight, settings
from functions.core.jobs import JobStore

OPENAI = {"model": "flux-schnell", "prompt": "a lighthouse", "size": "256x256"}
AIMS = {"model": "flux-schnell", "prompt": "a lighthouse", "size": "256x256"}


@pytest.fixture
def caps(monkeypatch):
    monkeypatch.setenv("DARKROOM_SYNC_CALLS_PER_KEY", "2")
    monkeypatch.setenv("DARKROOM_SYNC_CALLS_PER_WORKSPACE", "3")
    settings.get_settings.cache_clear()
    yield
    settings.get_settings.cache_clear()


def hold(scope: str, count: int, seconds: float = 300) -> list[inflight.Lease]:
    """`count` slots of `scope` taken, as calls in flight hold them (the caps fixture's: key 2, workspace 3)."""
    cap = {"key": 2, "workspace": 3}[scope.split("#")[0]]
    leases = [inflight.acquire(scope, cap, lease_seconds=seconds) for _ in range(count)]
    assert None not in leases
    return leases


def openai(api, tenant):
    return api.post("/v1/images/generations", json=OPENAI, headers={"Authorization": f"Bearer {tenant.key}"})


def test_a_key_at_its_cap_gets_a_429_and_no_job(world, api, tenant, caps, pipeline):
    from functions.core.keys import KeyStore

    key_id = KeyStore().lookup(tenant.key).key_id
    leases = hold(f"key#{key_id}", 2)
    refused = openai(api, tenant)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "5"
    assert refused.json["error"]["code"] == "too_many_inflight" and "2 synchronous" in refused.json["error"]["message"]
    aims = api.post("/api/v1/images/generate", json=AIMS, headers={"X-API-Key": tenant.key})
    assert aims.status_code == 429 and isinstance(aims.json["error"], str)
    assert JobStore().list_for_workspace(tenant.workspace_id)[1] == 0  # refused before anything was stored

    inflight.release(leases.pop())
    done = openai(api, tenant)
    assert done.status_code == 200, done.json
    # Its own lease was given back when it finished: the slot it took is free again.
    assert inflight.acquire(f"key#{key_id}", 2, lease_seconds=60) is not None


def test_a_workspace_caps_all_its_keys_together(world, api, new_tenant, caps, pipeline):
    from functions.core.keys import KeyStore

    first = new_tenant()
    second_key, _ = KeyStore().create(first.workspace_id, "second")
    hold(f"workspace#{first.workspace_id}", 3)
    refused = api.post("/v1/images/generations", json=OPENAI, headers={"Authorization": f"Bearer {second_key}"})
    assert refused.status_code == 429 and "workspace" in refused.json["error"]["message"]


def test_a_lease_whose_call_died_frees_itself(world, tenant, caps, monkeypatch):
    scope = f"key#{tenant.workspace_id}-dead"
    hold(scope, 2, seconds=30)  # two calls whose Lambdas died mid-wait: never released
    assert inflight.acquire(scope, 2, lease_seconds=30) is None
    now = clock.now()
    monkeypatch.setattr(clock, "now", lambda: now + 31)
    assert inflight.acquire(scope, 2, lease_seconds=30) is not None


def test_locally_a_key_at_its_cap_leaves_environments_for_short_requests():
    """12 slow synchronous calls held all 8 local api environments, and a status read waited 15.5 s: the local
    pool is now larger than a key's cap, so a key's waits can never take every environment."""
    from infra.local.lambda_runtime import MAX_ENVIRONMENTS

    default_cap = settings.Settings.model_fields["sync_calls_per_key"].default
    assert MAX_ENVIRONMENTS - default_cap >= 4
