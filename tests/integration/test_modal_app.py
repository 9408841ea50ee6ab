"""The Modal app imports anywhere, its classes run locally (`.local()`) through the same worker, and what it asks
Modal for (memory, GPU, container caps, startup timeout) is read from modal's own definition of each class."""

from __future__ import annotations

import io
import uuid

import pytest
from PIL import Image

from functions.core import aws, clock
from functions.core.catalog import get_catalog
from functions.core.jobs import Job, JobStatus, JobStore
from functions.core.messages import WorkRequest


def _work(world, job) -> WorkRequest:
    return WorkRequest(job_id=job.id, workspace_id=job.workspace_id, model=job.model, params=job.params,
                       jobs_table=world.physical["JobsTable"].ref, results_queue_url=world.queue_url("ResultsQueue"),
                       bucket=world.physical["OutputsBucket"].ref)


def test_modal_class_runs_a_job_locally(world, api, tenant):
    from gpu import modal_app

    body = {"model": "sdxl-turbo", "input": {"prompt": "a lighthouse", "size": "256x256", "seed": 3}}
    job_id = api.post("/api/generate", json=body, headers=tenant.headers).json["_id"]
    world.messages("JobsQueue")  # dispatched by hand below, as the dispatch function would
    generator = modal_app.SDXLGenerator(weights=get_catalog().model("sdxl-turbo").weights)
    result = generator.generate.local(_work(world, JobStore().get(job_id)).model_dump())

    assert result["outcome"] == "succeeded" and result["seed"] == 3
    assert [o["width"] for o in result["outputs"]] == [256]
    assert JobStore().get(job_id).status == JobStatus.RUNNING  # the complete function finishes it
    reported = world.messages("ResultsQueue")
    assert [m["outcome"] for m in reported] == ["started", "succeeded"]


def test_every_catalog_class_is_served_by_the_app():
    from gpu import modal_app

    for model in get_catalog().models:
        assert hasattr(modal_app, model.modal_class), model.id


def _png(size=(256, 256), transparent_box: tuple[int, int, int, int] | None = None) -> bytes:
    image = Image.new("RGBA", size, (30, 90, 200, 255))
    if transparent_box:
        image.paste((0, 0, 0, 0), transparent_box)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _upload(world, workspace_id: str, data: bytes) -> str:
    key = f"{workspace_id}/uploads/{uuid.uuid4().hex[:12]}/ref.png"
    aws.client("s3").put_object(Bucket=world.physical["OutputsBucket"].ref, Key=key, Body=data,
                                ContentType="image/png")
    return key


# qwen-image-lightning: a built-in adapter, fused by the enter hook, and the worker finds that fused pipeline.
@pytest.mark.parametrize("text_model", ["flux-schnell", "z-image-turbo", "flux2-klein", "qwen-image-lightning"])
def test_one_container_serves_text_edit_and_inpaint_from_one_load(world, tenant, monkeypatch, text_model):
    """A pool per set of weights (not per model), and on Modal the weights load once: the container's enter hooks
    load the text pipeline, and edit and inpaint requests derive theirs from it, sharing every module. Before,
    a masked edit called from_pretrained again after move_to_gpu: a second FLUX in memory."""
    import diffusers

    from gpu import modal_app, pipelines, worker

    loads = []
    real = diffusers.DiffusionPipeline.from_pretrained.__func__  # every pipeline class loads through it

    def counting(cls, *args, **kwargs):
        loads.append(cls.__name__)
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(diffusers.DiffusionPipeline, "from_pretrained", classmethod(counting))
    pipelines.clear_cache()  # no pipeline left over from other tests in this process
    text = get_catalog().model(text_model)
    edit = get_catalog().model(text.edit_model)
    generator = getattr(modal_app, text.modal_class)(weights=text.weights)

    store = JobStore()
    reference = _upload(world, tenant.workspace_id, _png())
    mask = _upload(world, tenant.workspace_id, _png(transparent_box=(64, 64, 192, 192)))
    base = {"prompt": "a red balloon", "n": 1, "width": 256, "height": 256, "steps": 2, "seed": 5}
    for name, model, params in [
        ("text", text.id, base),
        # A multi-reference editor (flux2-klein) composes its references whole: no strength.
        ("edit", edit.id, base | {"references": [{"upload_key": reference}]}
         | ({"strength": 0.6} if edit.defaults.strength else {})),
        ("inpaint", edit.id, base | {"references": [{"upload_key": reference}], "strength": 0.6,
                                     "mask": {"upload_key": mask}}),
    ]:
        spec = get_catalog().model(model)
        job = Job(id=clock.new_object_id(clock.now()), workspace_id=tenant.workspace_id, model=model,
                  task=spec.task, params=params, created_at=clock.now())
        store.create(job)
        result = generator.generate.local(_work(world, job).model_dump())
        assert result["outcome"] == "succeeded", (name, result.get("error"))

    assert loads == [pipelines.FAMILIES[text.family].pipeline], loads  # one from_pretrained, by the enter hook
    device, dtype = worker.device_and_dtype()
    source = pipelines._source_key(worker.weights_source(text), worker.builtin_adapter(text))
    families = (text.family, edit.family, pipelines.inpaint_family(edit.family))
    loaded = {family: pipelines._cache[(family, source, device, dtype)] for family in families}
    for family in families[1:]:
        assert loaded[family].transformer is loaded[text.family].transformer, family
        assert loaded[family].text_encoder is loaded[text.family].text_encoder, family
    assert not [key for key in pipelines._cache if key[2] == "cpu" and key[3] == "bfloat16"]  # nothing left behind


def test_a_model_sent_to_another_pool_is_refused(world, tenant):
    from gpu import modal_app

    job = Job(id=clock.new_object_id(clock.now()), workspace_id=tenant.workspace_id, model="playground-v2",
              task="text-to-image", params={"prompt": "x", "width": 256, "height": 256, "steps": 1},
              created_at=clock.now())
    generator = modal_app.SDXLGenerator(weights=get_catalog().model("sdxl-turbo").weights)
    with pytest.raises(ValueError, match="sent to the wrong pool"):
        generator.generate.local(_work(world, job).model_dump())


def _user_instance(modal_class: str, model: str):
    """The class as written, with its enter hooks callable one by one (as Modal calls them around a snapshot)."""
    from gpu import modal_app

    instance = getattr(modal_app, modal_class)._get_user_cls()()
    instance.weights = get_catalog().model(model).weights
    return instance


@pytest.mark.parametrize("gpu_snapshot", [True, False])
def test_a_gpu_container_without_cuda_refuses_to_start(monkeypatch, gpu_snapshot):
    """On Modal (modal.is_local() is False) a CPU fallback would bill minutes of GPU time per job: refuse, before the
    snapshot when the GPU is in it, else after the restore."""
    import modal

    from functions.core.catalog import Catalog

    monkeypatch.setattr(modal, "is_local", lambda: False)
    monkeypatch.setattr(Catalog, "class_gpu_snapshot", lambda self, name: gpu_snapshot)
    instance = _user_instance("SDXLGenerator", "sdxl-turbo")
    if gpu_snapshot:
        with pytest.raises(RuntimeError, match="no CUDA device"):
            instance.load()
        return
    instance.load()
    with pytest.raises(RuntimeError, match="no CUDA device"):
        instance.start()


def test_with_a_gpu_snapshot_the_whole_start_runs_before_it(monkeypatch):
    """snap=True moves the pipeline, applies its settings and hands it to the worker; after a restore, snap=False only
    draws a fresh torch seed (each restored container would otherwise repeat the snapshot's random state)."""
    import torch

    from functions.core.catalog import Catalog
    from gpu import pipelines, worker

    pipelines.clear_cache()
    monkeypatch.setattr(Catalog, "class_gpu_snapshot", lambda self, name: True)
    instance = _user_instance("SDXLGenerator", "sdxl-turbo")
    instance.load()
    assert instance.started
    device, dtype = worker.device_and_dtype()
    key = (instance.family, pipelines._source_key(instance.source, instance.builtin, instance._pool().speed), device,
           dtype)
    assert pipelines._cache[key] is instance.pipe  # the worker's jobs run on the pipeline in the snapshot
    torch.manual_seed(7)
    instance.start()
    assert torch.initial_seed() != 7
    note = pipelines.speed_report(instance.pipe)["snapshot"]  # with each job: what the snapshot spared a container
    assert note.startswith("GPU memory snapshot: weights loaded in ") and " s before it, device start " in note
    assert note.endswith(" s after it was taken")


def test_the_move_to_the_gpu_keeps_the_modules_loaded_in_float32(monkeypatch):
    """On the GPU (bfloat16, the load dtype) the start moves the pipeline without a dtype cast: the modules
    from_pretrained keeps in float32 (Wan's _keep_in_fp32_modules) stay so, as the benchmark measures them."""
    import torch

    from functions.core.catalog import Catalog
    from gpu import pipelines, worker

    pipelines.clear_cache()
    monkeypatch.setattr(Catalog, "class_gpu_snapshot", lambda self, name: True)
    monkeypatch.setattr(worker, "device_and_dtype", lambda: ("cpu", "bfloat16"))  # the GPU's dtype, on this CPU
    instance = _user_instance("WanGenerator", "wan2.2-ti2v-5b")
    instance.load()
    transformer = instance.pipe.transformer
    assert transformer.scale_shift_table.dtype == torch.float32
    assert {p.dtype for p in transformer.condition_embedder.time_embedder.parameters()} == {torch.float32}
    assert transformer.proj_out.weight.dtype == torch.bfloat16
    pipelines.clear_cache()


def test_without_a_gpu_snapshot_the_device_start_runs_after_the_restore(monkeypatch):
    from functions.core.catalog import Catalog
    from gpu import pipelines

    pipelines.clear_cache()
    monkeypatch.setattr(Catalog, "class_gpu_snapshot", lambda self, name: False)
    instance = _user_instance("SDXLGenerator", "sdxl-turbo")
    instance.load()
    assert not instance.started  # the CPU snapshot holds the weights on the CPU only
    instance.start()
    assert instance.started
    assert " s after it; this container began " in pipelines.speed_report(instance.pipe)["snapshot"]


def test_class_options_carry_the_catalogs_gpu_snapshot(monkeypatch):
    from gpu import modal_app

    assert modal_app.class_options("SDXLGenerator")["experimental_options"] == {"enable_gpu_snapshot": True}
    catalog = get_catalog()
    off = [m.model_copy(update={"gpu_snapshot": False}) if m.id == "playground-v2" else m for m in catalog.models]
    monkeypatch.setattr(modal_app, "get_catalog", lambda: catalog.model_copy(update={"models": off}))
    # one model of the class that cannot be snapshotted turns it off for the class
    assert modal_app.class_options("SDXLGenerator")["experimental_options"] == {}  # left out, not "False"


def test_a_cache_volume_commits_one_at_a_time_and_a_failed_commit_fails_no_job(caplog):
    """Concurrent inputs of one container commit the LoRA Volume after their jobs: one commit at a time, and a commit
    Modal refuses (a file another input has open) is logged; the job's result was already sent."""
    import threading
    import time

    from gpu import modal_app

    class Volume:
        def __init__(self, fail: bool) -> None:
            self.fail, self.inside, self.most = fail, 0, 0

        def commit(self) -> None:
            self.inside += 1
            self.most = max(self.most, self.inside)
            time.sleep(0.02)
            self.inside -= 1
            if self.fail:
                raise RuntimeError("there are open files preventing the operation")

    volume = Volume(fail=False)
    threads = [threading.Thread(target=modal_app.commit_cache, args=(volume, "LoRA files")) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert volume.most == 1
    assert modal_app.commit_cache(Volume(fail=True), "LoRA files") is False
    assert "Volume commit failed (LoRA files" in caplog.text


def test_a_failed_lora_commit_after_the_job_still_answers_its_result(world, api, tenant, monkeypatch):
    from gpu import adapters, modal_app

    body = {"model": "sdxl-turbo", "input": {"prompt": "a lighthouse", "size": "256x256", "seed": 3}}
    first, second = (api.post("/api/generate", json=body, headers=tenant.headers).json["_id"] for _ in range(2))
    world.messages("JobsQueue")
    generator = modal_app.SDXLGenerator(weights=get_catalog().model("sdxl-turbo").weights)
    generator.generate.local(_work(world, JobStore().get(first)).model_dump())  # the container starts (on the CPU)
    tried = []

    class RefusingVolume:
        def commit(self) -> None:
            tried.append(True)
            raise RuntimeError("there are open files preventing the operation")

    monkeypatch.setattr(adapters, "take_added", lambda: True)  # as if the job fetched a LoRA file
    monkeypatch.setattr(modal_app, "loras", RefusingVolume())
    monkeypatch.setattr(modal_app.modal, "is_local", lambda: False)  # on Modal: the Volume is committed
    result = generator.generate.local(_work(world, JobStore().get(second)).model_dump())
    assert tried and result["outcome"] == "succeeded"
