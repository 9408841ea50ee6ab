"""The Modal app imports anywhere and its classes run locally (`.local()`) through the same worker."""

from __future__ import annotations

import pytest

from functions.core.jobs import JobStatus, JobStore
from functions.core.messages import WorkRequest

pytestmark = pytest.mark.xdist_group("integration")


def test_modal_class_runs_a_job_locally(world, api, tenant):
    from gpu import modal_app

    body = {"model": "sdxl-turbo", "input": {"prompt": "a lighthouse", "size": "256x256", "seed": 3}}
    job_id = api.post("/api/generate", json=body, headers=tenant.headers).json["_id"]
    world.messages("JobsQueue")  # dispatched by hand below, as the dispatch function would
    job = JobStore().get(job_id)
    request = WorkRequest(job_id=job.id, workspace_id=job.workspace_id, model=job.model, params=job.params,
                          jobs_table=world.physical["JobsTable"].ref,
                          results_queue_url=world.queue_url("ResultsQueue"),
                          bucket=world.physical["OutputsBucket"].ref)

    generator = modal_app.SDXLGenerator(model="sdxl-turbo")
    result = generator.generate.local(request.model_dump())

    assert result["outcome"] == "succeeded" and result["seed"] == 3
    assert [o["width"] for o in result["outputs"]] == [256]
    assert JobStore().get(job_id).status == JobStatus.RUNNING  # the complete function finishes it
    reported = world.messages("ResultsQueue")
    assert [m["outcome"] for m in reported] == ["started", "succeeded"]


def test_every_catalog_class_is_served_by_the_app():
    from functions.core.catalog import get_catalog
    from gpu import modal_app

    for model in get_catalog().models:
        assert hasattr(modal_app, model.modal_class), model.id
