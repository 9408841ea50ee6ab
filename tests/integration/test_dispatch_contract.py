"""The contract between the dispatch function and the GPU side, pinned end to end.

The real ModalDispatcher, configured from DispatchFunction's environment in template.yaml (resolved with the
stack's parameters), runs against a stand-in of the installed modal SDK that checks every call against its real
signature (tests/modal_standin.py). The recorded payload is then handed to the real Modal class with `.local()`.
If either side changes what it sends or expects, this breaks.
"""

from __future__ import annotations

import pytest
from modal_standin import RecordingModal

from functions.core import clock
from functions.core.catalog import get_catalog
from functions.core.jobs import JobStatus, JobStore
from functions.core.messages import JobMessage, WorkRequest
from functions.core.settings import Settings
from functions.dispatch import dispatchers
from functions.dispatch.logic import dispatch
from functions.sweeper.logic import sweep
from infra.local.template import Resolver, functions, load

# What the worker needs, and nothing it cannot get from the payload (the Modal container has no settings).
# The AWS role and region are how the worker gets credentials (by web identity; none locally). The provenance
# fields name the C2PA signing certificate's secret (or local files) and the watermark switch (gpu/provenance.py).
# run_deadline_seconds: how long the worker may go without reporting before the sweeper fails its job (its progress
# writes push the deadline out).
PINNED_FIELDS = {"job_id", "workspace_id", "model", "params", "jobs_table", "results_queue_url", "bucket",
                 "allow_loopback_urls", "aws_role_arn", "aws_region", "provenance_secret_arn",
                 "provenance_cert_file", "provenance_key_file", "provenance_watermark", "run_deadline_seconds"}


@pytest.fixture
def modal(monkeypatch) -> RecordingModal:
    monkeypatch.setenv("MODAL_TOKEN_ID", "test")  # the secret lookup is skipped when a token is present
    return RecordingModal().install(monkeypatch)


def deployed_dispatcher(world, **parameters: str) -> dispatchers.Dispatcher:
    """The dispatcher the deployed DispatchFunction builds: its template environment, with these parameters."""
    template = load()
    resolver = Resolver(template, world.physical, parameters)
    env = {}
    for name, value in functions(template)["DispatchFunction"].environment.items():
        try:
            env[name] = str(resolver.resolve(value))
        except KeyError:
            pass  # resources the local stack has no stand-in for (the worker role, the token secret)
    settings = Settings.from_env(env)
    assert settings.dispatcher == "modal"
    return dispatchers.ModalDispatcher(settings.modal_app, "", settings.modal_environment)


def submit(api, tenant, model: str = "sdxl-turbo") -> str:
    body = {"model": model, "input": {"prompt": "a lighthouse", "size": "256x256", "seed": 11}}
    return api.post("/api/generate", json=body, headers=tenant.headers).json["_id"]


def test_dispatcher_payload_runs_on_the_modal_class(world, api, tenant, modal):
    from gpu import modal_app

    job_id = submit(api, tenant)
    world.messages("JobsQueue")
    dispatcher = deployed_dispatcher(world, ModalAppName="darkroom-x", ModalEnvironment="staging")

    call_id = dispatch(JobMessage(job_id=job_id), dispatcher, claim="m-1")

    assert call_id == "fc-1" and JobStore().get(job_id).dispatch["call_id"] == "fc-1"
    [lookup] = modal.of("lookup")
    # The app is looked up where it was deployed: without environment_name every spawn of an app in another
    # environment is NotFoundError, and every job ends refunded as undispatchable.
    assert (lookup["app"], lookup["env"], lookup["class"]) == ("darkroom-x", "staging", "SDXLGenerator")
    [call] = modal.of("spawn")
    assert call["parameters"] == {"weights": get_catalog().model("sdxl-turbo").weights}
    assert set(call["payload"]) == PINNED_FIELDS
    WorkRequest.model_validate(call["payload"])  # the worker's own schema accepts it as is

    generator = getattr(modal_app, call["class"])(**call["parameters"])
    result = generator.generate.local(call["payload"])
    assert result["outcome"] == "succeeded" and result["seed"] == 11
    assert JobStore().get(job_id).status == JobStatus.RUNNING


def test_a_text_model_and_its_edit_model_share_one_pool(world, api, tenant, modal):
    """flux-schnell and flux-schnell-edit have the same weights: the same class instance (one warm pool)."""
    from functions.core import uploads

    dispatcher = deployed_dispatcher(world)
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
    reference = uploads.store(tenant.workspace_id, "ref.png", "image/png", png)["reference"]
    edit = {"model": "flux-schnell-edit", "input": {"prompt": "x", "size": "256x256", "image_urls": [reference]}}
    for model, job_id in (("flux-schnell", submit(api, tenant, "flux-schnell")),
                          ("flux-schnell-edit", api.post("/api/generate", json=edit, headers=tenant.headers).json["_id"])):
        assert job_id, model
        dispatch(JobMessage(job_id=job_id), dispatcher, claim=f"m-{model}")
    world.messages("JobsQueue")
    spawns = modal.of("spawn")
    assert [c["payload"]["model"] for c in spawns] == ["flux-schnell", "flux-schnell-edit"]
    assert {(c["class"], c["parameters"]["weights"]) for c in spawns} == {
        ("FluxGenerator", get_catalog().model("flux-schnell").weights)}


def _overdue(job_id: str) -> float:
    """A moment just past the job's current deadline."""
    return JobStore().get(job_id).deadline + 1


def test_a_call_in_a_long_cold_start_is_kept_not_replaced(world, api, tenant, modal):
    """Dispatched, the job has its class's startup_timeout (FLUX: 900 s) plus a margin to be taken, not the old
    300 s; past that, the sweeper has Modal asked about the call, and a pending call is kept: no second GPU call."""
    from functions.core.settings import get_settings

    job_id = submit(api, tenant, "flux-schnell")
    world.messages("JobsQueue")
    dispatcher = deployed_dispatcher(world)
    dispatch(JobMessage(job_id=job_id), dispatcher, claim="m-1")
    job = JobStore().get(job_id)
    startup = get_catalog().class_startup_timeout("FluxGenerator")
    assert job.deadline >= clock.now() + startup  # covers the container's load and snapshot

    sweep(now=job.deadline - 1)  # not before: other tests' jobs in this table may be swept, this one is not
    assert [m for m in world.messages("JobsQueue") if m["job_id"] == job_id] == []
    assert JobStore().get(job_id).deadline == job.deadline
    assert sweep(now=_overdue(job_id))["rechecked"] >= 1
    (recheck,) = [m for m in world.messages("JobsQueue") if m["job_id"] == job_id]
    assert recheck == {"job_id": job_id, "recheck_call": "fc-1"}

    assert dispatch(JobMessage(**recheck), dispatcher, claim="m-2") is None  # Modal: still pending
    kept = JobStore().get(job_id)
    assert kept.status == JobStatus.QUEUED and kept.dispatch["call_id"] == "fc-1" and kept.attempts == 1
    assert kept.deadline >= clock.now() + startup
    assert [c["call_id"] for c in modal.of("get")] == ["fc-1"] and modal.canceled == []
    assert len(modal.of("spawn")) == 1
    assert get_settings().queue_deadline_seconds > startup


def test_a_call_that_ended_without_its_job_is_canceled_and_replaced(world, api, tenant, modal):
    job_id = submit(api, tenant)
    world.messages("JobsQueue")
    dispatcher = deployed_dispatcher(world)
    dispatch(JobMessage(job_id=job_id), dispatcher, claim="m-1")
    sweep(now=_overdue(job_id))
    (recheck,) = [m for m in world.messages("JobsQueue") if m["job_id"] == job_id]
    modal.call_states["fc-1"] = "failed"  # e.g. its container died, or its identity token was refused

    assert dispatch(JobMessage(**recheck), dispatcher, claim="m-2") == "fc-2"
    assert modal.canceled == ["fc-1"]  # a retried input can no longer start a container for it
    job = JobStore().get(job_id)
    assert job.dispatch["call_id"] == "fc-2" and job.attempts == 2


def test_a_call_waiting_past_the_queue_deadline_is_given_up_and_refunded(world, api, tenant, modal, monkeypatch):
    from functions.core import settings

    job_id = submit(api, tenant)
    world.messages("JobsQueue")
    dispatcher = deployed_dispatcher(world)
    dispatch(JobMessage(job_id=job_id), dispatcher, claim="m-1")
    monkeypatch.setenv("DARKROOM_QUEUE_DEADLINE_SECONDS", "60")
    settings.get_settings.cache_clear()
    monkeypatch.setattr(clock, "now", lambda real=clock.now: real() + 3600)  # an hour in Modal's queue
    sweep()
    (recheck,) = [m for m in world.messages("JobsQueue") if m["job_id"] == job_id]

    assert dispatch(JobMessage(**recheck), dispatcher, claim="m-2") is None
    assert modal.canceled == ["fc-1"] and len(modal.of("spawn")) == 1
    sweep(now=clock.now() + 1)
    failed = JobStore().get(job_id)
    assert failed.status == JobStatus.FAILED and failed.error.code == "timeout"
    assert "waited" in failed.error.message and failed.refunded == failed.cost


def test_a_pending_call_of_a_finished_job_is_canceled(world, api, tenant, modal):
    """The sweeper fails a job stuck running; the dispatch function then cancels its call, so the GPU stops."""
    job_id = submit(api, tenant)
    world.messages("JobsQueue")
    dispatcher = deployed_dispatcher(world)
    dispatch(JobMessage(job_id=job_id), dispatcher, claim="m-1")
    store = JobStore()
    store.transition(store.get(job_id), JobStatus.RUNNING)  # the call took it, then hung
    sweep(now=_overdue(job_id))
    assert store.get(job_id).status == JobStatus.FAILED
    (recheck,) = [m for m in world.messages("JobsQueue") if m["job_id"] == job_id]
    assert dispatch(JobMessage(**recheck), dispatcher, claim="m-2") is None
    assert modal.canceled == ["fc-1"] and len(modal.of("spawn")) == 1


def test_a_call_that_took_its_job_before_the_recheck_is_left_running(world, api, tenant, modal):
    """The sweeper asks about a call past its start deadline; before the dispatch function handles that, the call
    gets its container and takes the job. Modal still says "pending" (no output yet): the call is running the job,
    and canceling it would lose the job (its worker sends no result) until the run deadline fails it."""
    job_id = submit(api, tenant, "flux-schnell")
    world.messages("JobsQueue")
    dispatcher = deployed_dispatcher(world)
    dispatch(JobMessage(job_id=job_id), dispatcher, claim="m-1")
    assert sweep(now=_overdue(job_id))["rechecked"] >= 1
    (recheck,) = [m for m in world.messages("JobsQueue") if m["job_id"] == job_id]
    store = JobStore()
    store.transition(store.get(job_id), JobStatus.RUNNING)  # fc-1 took it
    assert dispatch(JobMessage(**recheck), dispatcher, claim="m-2") is None
    assert modal.canceled == [] and len(modal.of("spawn")) == 1
    assert store.get(job_id).status == JobStatus.RUNNING


def _spawn_then(monkeypatch, dispatcher, then) -> None:
    """The dispatcher's spawn, with `then(job_id)` happening before the dispatch function records the call."""
    spawn = dispatcher.spawn

    def spawn_and_then(request):
        call_id = spawn(request)
        then(request.job_id)
        return call_id

    monkeypatch.setattr(dispatcher, "spawn", spawn_and_then)


def test_a_warm_container_that_took_the_job_first_keeps_its_run_deadline(world, api, tenant, modal, monkeypatch):
    """A warm container can take the job before the dispatch function records its call: the record must not cut
    the running job's deadline back to a start deadline, or the sweeper fails (and refunds) a job that runs."""
    from functions.core.settings import get_settings

    job_id = submit(api, tenant, "flux-schnell")
    world.messages("JobsQueue")
    dispatcher = deployed_dispatcher(world)
    store = JobStore()
    _spawn_then(monkeypatch, dispatcher, lambda job_id: store.transition(store.get(job_id), JobStatus.RUNNING))
    assert dispatch(JobMessage(job_id=job_id), dispatcher, claim="m-1") == "fc-1"
    job = store.get(job_id)
    assert job.status == JobStatus.RUNNING and job.dispatch["call_id"] == "fc-1"  # recorded, for a cancel to name
    assert job.deadline == pytest.approx(job.started_at + get_settings().run_deadline_seconds, abs=1)
    assert modal.canceled == []


def test_a_job_canceled_before_its_call_was_recorded_has_the_call_canceled(world, api, tenant, modal, monkeypatch):
    """A cancel between the claim and the record finds no call to stop: the dispatch function, recording it, finds
    the job ended and cancels the call, so no container starts (paid for) for a job already refunded."""
    from functions.core.lifecycle import cancel

    job_id = submit(api, tenant)
    world.messages("JobsQueue")
    dispatcher = deployed_dispatcher(world)
    store = JobStore()
    _spawn_then(monkeypatch, dispatcher, lambda job_id: cancel(store.get(job_id), store=store))
    assert dispatch(JobMessage(job_id=job_id), dispatcher, claim="m-1") is None
    assert modal.canceled == ["fc-1"]
    job = store.get(job_id)
    assert job.status == JobStatus.CANCELED and job.refunded == job.cost


def test_a_rotated_modal_token_is_read_again_from_the_stacks_secret(world, api, tenant, modal):
    """`darkroom deploy` rewrites the secret when the operator rotates the token; a warm dispatch function still
    holds the old one, which Modal now refuses: it reads the secret again, past its cache, and spawns."""
    import json

    import boto3

    secrets = boto3.client("secretsmanager", endpoint_url=world.endpoint, region_name="us-east-1",
                           aws_access_key_id="local", aws_secret_access_key="local")
    arn = secrets.create_secret(Name=f"modal-token-{clock.new_object_id(clock.now())}",
                                SecretString=json.dumps({"token_id": "ak-old", "token_secret": "as-old"}))["ARN"]
    dispatcher = dispatchers.ModalDispatcher("darkroom", arn, "main")
    first = submit(api, tenant)
    dispatch(JobMessage(job_id=first), dispatcher, claim="m-1")

    secrets.put_secret_value(SecretId=arn, SecretString=json.dumps({"token_id": "ak-new", "token_secret": "as-new"}))
    modal.refused_tokens.add("ak-old")
    second = submit(api, tenant)
    assert dispatch(JobMessage(job_id=second), dispatcher, claim="m-2") == "fc-2"
    assert [c["token_id"] for c in modal.of("client")] == ["ak-old", "ak-new"]
    assert JobStore().get(second).dispatch["call_id"] == "fc-2"
