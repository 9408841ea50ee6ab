"""Credits: reserved with the job, refunded exactly once, never negative, never charged twice."""

from __future__ import annotations

import threading

import pytest

from functions.core import credits
from functions.core.catalog import get_catalog
from functions.core.errors import PaymentRequired, TransitionRejected
from functions.core.jobs import JobStatus, JobStore
from functions.core.lifecycle import finish
from functions.core.submit import SubmitRequest, submit
from functions.core.workspaces import WorkspaceStore

# At the model's reference size and steps (1024x1024, flux-schnell's 4): 1 credit an image.
RUN = {"tool": "create-image", "model": "flux-schnell", "input": {"prompt": "a lighthouse", "size": "1024x1024", "n": 2}}


def funded_workspace(new_tenant, amount: float):
    tenant = new_tenant()
    credits.add(tenant.workspace_id, amount - credits.balance(tenant.workspace_id))
    return tenant


def test_submit_reserves_n_times_the_price(world, api, new_tenant):
    tenant = funded_workspace(new_tenant, 10)
    job_id = api.post("/api/run", json=RUN, headers=tenant.headers).json["id"]
    assert JobStore().get(job_id).cost == 2 * get_catalog().model("flux-schnell").credits_per_image
    assert credits.balance(tenant.workspace_id) == 8
    assert credits.usage(tenant.workspace_id)["credits_used"] == 2


@pytest.mark.parametrize("size,steps,n,cost", [
    ("1024x1024", 4, 10, 10), ("2048x2048", 4, 10, 40), ("2048x2048", 12, 10, 120), ("2048x1024", 8, 1, 4),
    ("256x256", 4, 10, 2.5),  # the floor: a quarter of an image's price
])
def test_the_price_follows_size_steps_and_n(world, api, new_tenant, size, steps, n, cost):
    """n=10 at 2048x2048 and 12 steps cost what n=10 at 256x256 and 4 steps did: the price ignored the work."""
    tenant = funded_workspace(new_tenant, 1000)
    body = {"tool": "create-image", "model": "flux-schnell",
            "input": {"prompt": "a lighthouse", "size": size, "steps": steps, "n": n}}
    job_id = api.post("/api/run", json=body, headers=tenant.headers).json["id"]
    assert JobStore().get(job_id).cost == cost
    assert credits.balance(tenant.workspace_id) == 1000 - cost
    listed = {m["id"]: m for m in api.get("/api/models", headers=tenant.headers).json["data"]}
    assert listed["flux-schnell"]["pricing"]["reference"] == {"width": 1024, "height": 1024, "steps": 4}


def test_insufficient_credits_is_402_and_writes_nothing(world, api, new_tenant):
    tenant = funded_workspace(new_tenant, 1)
    resp = api.post("/api/run", json=RUN, headers=tenant.headers)
    assert resp.status_code == 402 and "costs 2" in resp.json["message"]
    assert JobStore().list_for_workspace(tenant.workspace_id)[1] == 0
    assert credits.balance(tenant.workspace_id) == 1
    assert world.messages("JobsQueue") == []


def test_failure_and_cancel_refund_exactly_once(world, api, new_tenant):
    tenant = funded_workspace(new_tenant, 10)
    store = JobStore()
    failed = api.post("/api/run", json=RUN, headers=tenant.headers).json["id"]
    canceled = api.post("/api/run", json=RUN, headers=tenant.headers).json["id"]
    assert credits.balance(tenant.workspace_id) == 6
    store.transition(store.get(failed), JobStatus.RUNNING)
    for _ in range(2):  # a retried result message must not refund twice
        finish(store.get(failed), JobStatus.FAILED, fields={"error": {"code": "x", "message": "boom"}})
    assert credits.balance(tenant.workspace_id) == 8 and store.get(failed).refunded == 2
    for _ in range(2):
        assert api.post(f"/api/generations/{canceled}/cancel", headers=tenant.headers).status_code == 200
    assert credits.balance(tenant.workspace_id) == 10
    with pytest.raises(TransitionRejected):
        finish(store.get(failed), JobStatus.CANCELED)
    assert credits.balance(tenant.workspace_id) == 10


def test_concurrent_submits_and_refunds_never_overspend(world, new_tenant):
    # The exact scenario: 50 parallel submits against a balance for 20.
    tenant = funded_workspace(new_tenant, 20)
    model = get_catalog().model("sdxl-turbo")
    accepted, refused = [], []
    barrier = threading.Barrier(50)

    def one() -> None:
        request = SubmitRequest(workspace_id=tenant.workspace_id, model=model, input={"prompt": "x"},
                                params={"prompt": "x", "n": 1, "width": 512, "height": 512, "steps": 1})
        barrier.wait()
        try:
            accepted.append(submit(request))
        except PaymentRequired:
            refused.append(1)

    threads = [threading.Thread(target=one) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(accepted) == 20 and len(refused) == 30
    assert credits.balance(tenant.workspace_id) == 0

    # Every job failed and canceled at once, from several threads: each refunds exactly once.
    barrier = threading.Barrier(len(accepted) * 2)

    def end(job, target) -> None:
        barrier.wait()
        try:
            finish(JobStore().get(job.id), target)
        except TransitionRejected:
            pass

    threads = [threading.Thread(target=end, args=(job, target)) for job in accepted
               for target in (JobStatus.FAILED, JobStatus.CANCELED)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert credits.balance(tenant.workspace_id) == 20
    assert all(JobStore().get(j.id).refunded == 1 for j in accepted)


def test_new_workspaces_start_with_the_default_credits(world):
    workspace = WorkspaceStore().ensure("ws-default-credits")
    assert workspace.credits == credits.balance("ws-default-credits") == 1000


@pytest.mark.parametrize("tool,model_id,extra,cost", [
    ("create-video", "ltx-video", {}, 8),  # 4 s at 24 fps: 97 frames
    ("create-video", "ltx-video", {"fps": 60}, round(8 * 241 / 97, 4)),  # 241 frames in the same 4 s
    ("create-video", "ltx-video", {"fps": 12, "duration": 2}, round(4 * 25 / 49, 4)),  # 25 frames, not 49
    ("create-image", "sdxl-turbo", {"guidance": 2.0}, 2),  # classifier-free guidance: two passes a step, not one
    ("create-image", "qwen-image-lightning", {"guidance": 4.0}, 20),
    ("create-image", "qwen-image", {"guidance": 1.0}, 62.5),  # its default guidance runs two; none runs one
])
def test_the_price_follows_the_frames_and_denoiser_passes_that_run(world, api, new_tenant, tool, model_id, extra,
                                                                     cost):
    """A higher frame rate made more frames for the same credits, and guidance doubled the denoiser's passes for
    free: the price ignored both."""
    tenant = funded_workspace(new_tenant, 1000)
    body = {"tool": tool, "model": model_id, "input": {"prompt": "a lighthouse", **extra}}
    resp = api.post("/api/run", json=body, headers=tenant.headers)
    assert resp.status_code in (200, 201, 202), resp.get_data(as_text=True)
    assert JobStore().get(resp.json["id"]).cost == cost
    assert credits.balance(tenant.workspace_id) == 1000 - cost
