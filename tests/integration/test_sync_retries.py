"""SDK retries of synchronous calls join the first attempt's job (functions/api/idempotency.py), on the
real api handler and the idempotency table in the moto server. The wait is cut short so each call
answers its 504 with the job id at once; the job's id says which job a call joined."""

from __future__ import annotations

import pytest

from functions.core.jobs import JobStore
from functions.core.settings import get_settings

GEN = "/v1/images/generations"
VIDEOS = "/api/v1/videos/generate"
BODY = {"prompt": "a lighthouse at dusk", "size": "256x256"}


@pytest.fixture(autouse=True)
def short_wait(world, monkeypatch):
    monkeypatch.setenv("DARKROOM_SYNC_WAIT_SECONDS", "0.2")
    get_settings.cache_clear()


def job_of(resp) -> str:
    assert resp.status_code == 504, (resp.status_code, resp.get_data(as_text=True))
    body = resp.json
    return body["error"]["job_id"] if "error" in body and isinstance(body["error"], dict) else body["job_id"]


def post(api, tenant, path=GEN, body=BODY, retry: int | None = None, **headers):
    if retry is not None:
        headers["x-stainless-retry-count"] = str(retry)
    return api.post(path, json=body, headers={**tenant.headers, **headers})


def test_a_retry_joins_the_first_attempts_job(api, tenant, dispatcher):
    first = job_of(post(api, tenant, retry=0))
    assert job_of(post(api, tenant, retry=1)) == first
    assert job_of(post(api, tenant, retry=2)) == first
    jobs, _ = JobStore().list_for_workspace(tenant.workspace_id)
    assert [j.id for j in jobs] == [first]


def test_deliberate_identical_requests_make_two_jobs_and_a_retry_joins_the_latest(api, tenant, dispatcher):
    one = job_of(post(api, tenant, retry=0))
    two = job_of(post(api, tenant))  # no retry header at all: a first attempt too (curl, other clients)
    assert one != two
    assert job_of(post(api, tenant, retry=1)) == two
    assert len(JobStore().list_for_workspace(tenant.workspace_id)[0]) == 2


def test_a_retry_with_nothing_to_join_starts_the_job(api, tenant, dispatcher):
    # The first attempt never reached the handler (a connection error): the retry does the work once.
    body = {**BODY, "prompt": "never seen before"}
    joined = job_of(post(api, tenant, body=body, retry=1))
    assert job_of(post(api, tenant, body=body, retry=2)) == joined
    assert len(JobStore().list_for_workspace(tenant.workspace_id)[0]) == 1


def test_chains_are_per_key_route_and_body(api, tenant, new_tenant, dispatcher):
    first = job_of(post(api, tenant, retry=0))
    assert job_of(post(api, tenant, body={**BODY, "n": 2}, retry=1)) != first
    other = new_tenant()
    assert job_of(post(api, other, retry=1)) != first
    video = {"prompt": "a lighthouse at dusk", "duration": 2}
    assert job_of(post(api, tenant, path=VIDEOS, body=video, retry=1)) != first


def test_an_explicit_idempotency_key_wins_over_the_retry_count(api, tenant, dispatcher):
    keyed = job_of(post(api, tenant, retry=0, **{"Idempotency-Key": "render-7"}))
    assert job_of(post(api, tenant, retry=0, **{"Idempotency-Key": "render-7"})) == keyed
    # Without the key, the same body is a new first attempt, whatever the keyed calls did.
    assert job_of(post(api, tenant, retry=0)) != keyed
