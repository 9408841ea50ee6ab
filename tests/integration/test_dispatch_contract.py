"""The contract between the dispatch function and the GPU side, pinned end to end.

The real ModalDispatcher runs against a stand-in `modal.Cls.from_name` that records exactly what would be
sent to Modal; that payload is then handed to the real Modal class with `.local()`. If either side changes
what it sends or expects, this breaks.
"""

from __future__ import annotations

import pytest

from functions.core.jobs import JobStatus, JobStore
from functions.core.messages import JobMessage, WorkRequest
from functions.dispatch import dispatchers
from functions.dispatch.logic import dispatch

pytestmark = pytest.mark.xdist_group("integration")

# What the worker needs, and nothing it cannot get from the payload (the Modal container has no settings).
# The AWS role and region are how the worker gets credentials (by web identity; none locally).
PINNED_FIELDS = {"job_id", "workspace_id", "model", "params", "jobs_table", "results_queue_url", "bucket",
                 "allow_loopback_urls", "aws_role_arn", "aws_region"}


class RecordingModal:
    """Stands in for `modal.Cls.from_name(app, cls)(model=…).generate.spawn(payload)`."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def from_name(self, app_name: str, class_name: str):
        recorder = self

        class Bound:
            def __init__(self, **parameters) -> None:
                self.parameters = parameters

            @property
            def generate(self):
                bound = self

                class Method:
                    @staticmethod
                    def spawn(payload: dict):
                        recorder.calls.append({"app": app_name, "class": class_name,
                                               "parameters": bound.parameters, "payload": payload})
                        return type("Call", (), {"object_id": f"fc-{len(recorder.calls)}"})()

                return Method()

        return Bound


def test_dispatcher_payload_runs_on_the_modal_class(world, api, tenant, monkeypatch):
    import modal

    from gpu import modal_app

    recording = RecordingModal()
    monkeypatch.setattr(modal.Cls, "from_name", recording.from_name)
    monkeypatch.setenv("MODAL_TOKEN_ID", "test")  # the secret lookup is skipped when a token is present
    body = {"model": "sdxl-turbo", "input": {"prompt": "a lighthouse", "size": "256x256", "seed": 11}}
    job_id = api.post("/api/generate", json=body, headers=tenant.headers).json["_id"]
    world.messages("JobsQueue")

    call_id = dispatch(JobMessage(job_id=job_id), dispatchers.ModalDispatcher("darkroom", ""), claim="m-1")

    assert call_id == "fc-1" and JobStore().get(job_id).dispatch["call_id"] == "fc-1"
    [call] = recording.calls
    assert call["app"] == "darkroom" and call["class"] == "SDXLGenerator"
    assert call["parameters"] == {"model": "sdxl-turbo"}
    assert set(call["payload"]) == PINNED_FIELDS
    WorkRequest.model_validate(call["payload"])  # the worker's own schema accepts it as is

    generator = getattr(modal_app, call["class"])(**call["parameters"])
    result = generator.generate.local(call["payload"])
    assert result["outcome"] == "succeeded" and result["seed"] == 11
    assert JobStore().get(job_id).status == JobStatus.RUNNING
