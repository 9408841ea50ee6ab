"""A cancel stops the GPU work within a step, uploads nothing, cancels the GPU call, and charges exactly the
share of steps done when it was accepted (issue: a flux-dev job canceled at step 1 was refunded in full while
the worker ran all 50 steps and uploaded four images).

The job runs on the local dispatcher's worker thread (the real gpu worker and tiny pipeline), against the moto
server; each denoising step is slowed so a cancel lands mid-run.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from functions.complete.logic import complete
from functions.core import aws, credits, lifecycle
from functions.core.errors import ServiceUnavailable
from functions.core.jobs import JobKey, JobStatus, JobStore, Output
from functions.core.messages import ResultMessage
from functions.dispatch.dispatchers import get_dispatcher
from gpu import worker

STEP_SECONDS = 0.15


@pytest.fixture
def slow_steps(monkeypatch):
    """Every denoising step takes STEP_SECONDS; returns the times the steps ran."""
    seen: list[float] = []
    original = worker.CancelWatch.on_step

    def on_step(self, step, total):
        seen.append(time.monotonic())
        time.sleep(STEP_SECONDS)
        original(self, step, total)

    monkeypatch.setattr(worker.CancelWatch, "on_step", on_step)
    return seen


def wait_for(condition, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what} not reached in {timeout:.0f} s")


def outputs_of(world, workspace_id: str, job_id: str) -> list[str]:
    listed = aws.client("s3").list_objects_v2(Bucket=world.env["DARKROOM_OUTPUTS_BUCKET"],
                                              Prefix=f"{workspace_id}/generations/{job_id}/")
    return [o["Key"] for o in listed.get("Contents", [])]


def test_a_cancel_stops_the_run_within_a_step_and_charges_the_steps_done(world, api, tenant, drain, slow_steps):
    before = credits.balance(tenant.workspace_id)
    body = {"model": "flux-dev", "input": {"prompt": "a lighthouse", "size": "256x256", "steps": 30, "n": 2}}
    job_id = api.post("/api/generate", json=body, headers=tenant.headers).json["id"]
    drain("DispatchFunction", "JobsQueue")
    store = JobStore()
    wait_for(lambda: (store.get(job_id).progress or {}).get("step", 0) >= 3, what="step 3")

    canceled = api.post(f"/api/generations/{job_id}/cancel", headers=tenant.headers)
    canceled_at = time.monotonic()
    assert canceled.status_code == 200 and canceled.json["status"] == "error", canceled.json
    job = store.get(job_id)
    call = job.dispatch["call_id"]
    wait_for(lambda: get_dispatcher().call_state(call) == "finished", what="the worker stopping")

    # The worker stopped within a step or two of the cancel, of 30, and uploaded nothing.
    steps_after = [t for t in slow_steps if t > canceled_at]
    assert len(steps_after) <= 2, f"{len(steps_after)} steps ran after the cancel"
    assert len(slow_steps) < 10
    assert outputs_of(world, tenant.workspace_id, job_id) == []

    # Charged exactly the share of steps done when the cancel was accepted, the rest refunded, once.
    job = store.get(job_id)
    done, total = job.billed_progress["step"], job.billed_progress["total"]
    assert job.status == JobStatus.CANCELED and 3 <= done < total == 30
    assert job.refunded == round(job.cost * (1 - done / total), 6)
    assert credits.balance(tenant.workspace_id) == pytest.approx(before - job.cost * done / total, abs=1e-6)

    # The GPU call is canceled through the dispatch function, which alone holds the Modal token.
    assert {"job_id": job_id, "recheck_call": call} in world.messages("JobsQueue")


def test_a_queued_job_is_refunded_in_full_and_never_runs(world, api, tenant, drain, slow_steps):
    before = credits.balance(tenant.workspace_id)
    body = {"tool": "create-image", "input": {"prompt": "a lighthouse", "size": "256x256"}}
    job_id = api.post("/api/run", json=body, headers=tenant.headers).json["id"]
    assert api.post(f"/api/generations/{job_id}/cancel", headers=tenant.headers).status_code == 200
    drain("DispatchFunction", "JobsQueue")  # the dispatch skips it
    job = JobStore().get(job_id)
    assert job.refunded == job.cost and job.billed_progress is None and not slow_steps
    assert credits.balance(tenant.workspace_id) == before


def test_outputs_uploaded_before_the_worker_saw_the_cancel_are_deleted(world, api, tenant):
    body = {"tool": "create-image", "input": {"prompt": "a lighthouse", "size": "256x256"}}
    job_id = api.post("/api/run", json=body, headers=tenant.headers).json["id"]
    keys = [f"{tenant.workspace_id}/generations/{job_id}/0.png", f"{tenant.workspace_id}/generations/{job_id}/0.thumb.jpg"]
    for key in keys:
        aws.client("s3").put_object(Bucket=world.env["DARKROOM_OUTPUTS_BUCKET"], Key=key, Body=b"x")
    assert api.post(f"/api/generations/{job_id}/cancel", headers=tenant.headers).status_code == 200
    late = ResultMessage(job_id=job_id, workspace_id=tenant.workspace_id, outcome="succeeded", outputs=[
        Output(key=keys[0], thumbnail_key=keys[1], content_type="image/png", width=256, height=256)])
    assert complete(late) is None  # the cancel stands
    assert outputs_of(world, tenant.workspace_id, job_id) == []


def test_a_watch_stops_at_the_next_step_once_a_progress_write_is_refused():
    """CancelWatch on its own: a refused conditional write (the job is not running) stops the next step."""

    class Store:
        def __init__(self):
            self.running = True
            self.writes = 0

        def record_progress(self, job_id, step, total, *, deadline=None):
            self.writes += 1
            return self.running

    store = Store()
    with ThreadPoolExecutor(1) as reports:
        watch = worker.CancelWatch(store, "job", reports)
        watch.on_step(1, 10)
        watch.in_flight.result()
        store.running = False
        watch.on_step(2, 10)  # its write is refused...
        watch.in_flight.result()
        with pytest.raises(worker.JobCanceled):
            watch.on_step(3, 10)  # ...so the next step stops the pipeline
    assert store.writes == 2


def test_a_cancel_read_before_the_worker_moved_charges_the_steps_done_when_it_lands(world, api, tenant):
    """The refund is computed from the job as read; the worker takes it and records steps before the cancel's
    write: the write is refused, the job read again, and the charge follows the steps done when it landed."""
    before = credits.balance(tenant.workspace_id)
    body = {"model": "flux-dev", "input": {"prompt": "a lighthouse", "size": "256x256", "steps": 10}}
    job_id = api.post("/api/generate", json=body, headers=tenant.headers).json["id"]
    store = JobStore()
    as_read = store.get(job_id)
    assert as_read.status == JobStatus.QUEUED
    store.transition(JobKey(job_id, tenant.workspace_id), JobStatus.RUNNING)  # the worker takes it...
    assert store.record_progress(job_id, 4, 10)  # ...and runs four of ten steps

    job = lifecycle.cancel(as_read, store=store)
    assert job.status == JobStatus.CANCELED and job.billed_progress == {"step": 4, "total": 10}
    assert job.refunded == round(job.cost * 0.6, 6)
    assert credits.balance(tenant.workspace_id) == pytest.approx(before - job.cost * 0.4, abs=1e-6)


def test_a_cancel_racing_every_step_answers_503_and_writes_nothing(world, api, tenant, monkeypatch):
    body = {"model": "flux-dev", "input": {"prompt": "a lighthouse", "size": "256x256", "steps": 30}}
    job_id = api.post("/api/generate", json=body, headers=tenant.headers).json["id"]
    store = JobStore()
    store.transition(JobKey(job_id, tenant.workspace_id), JobStatus.RUNNING)
    before = credits.balance(tenant.workspace_id)
    steps = iter(range(1, 31))
    original = store.transition

    def worker_steps_first(*args, **kwargs):  # a step lands between every read and the cancel's write
        store.record_progress(job_id, next(steps), 30)
        return original(*args, **kwargs)

    monkeypatch.setattr(store, "transition", worker_steps_first)
    with pytest.raises(ServiceUnavailable):
        lifecycle.cancel(store.get(job_id), store=store)
    job = store.get(job_id)
    assert job.status == JobStatus.RUNNING and job.refunded is None
    assert credits.balance(tenant.workspace_id) == before
