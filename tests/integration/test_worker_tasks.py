"""Every catalog task through the real worker against the moto server: jobs written with JobStore (as the
API would), `gpu.worker.run` on tiny pipelines, outputs read back from S3 and decoded."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from functions.core import aws, storage
from functions.core.catalog import get_catalog
from functions.core.jobs import Job, JobStatus, JobStore
from functions.core.messages import ResultMessage, WorkRequest
from gpu import worker
from tests.integration.conftest import serve_files

# Its own group: these tests run beside the other integration tests, on their own moto server.
pytestmark = pytest.mark.xdist_group("worker-tasks")

PROMPT = "a lighthouse at dusk"


def _png(color: tuple[int, int, int], size: tuple[int, int] = (320, 240)) -> bytes:
    x = np.linspace(0, 255, size[0], dtype=np.uint8)[None, :].repeat(size[1], 0)
    pixels = np.stack([x, np.full_like(x, color[1]), np.full_like(x, color[2])], -1)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


REFERENCE = _png((0, 40, 200))


@pytest.fixture(scope="module")
def image_server() -> Iterator[str]:
    """Serves /ref.png and /note.txt on 127.0.0.1 (the local stack allows loopback references)."""
    with serve_files({"/ref.png": (REFERENCE, "image/png"), "/note.txt": (b"not an image", "text/plain")}) as url:
        yield url


def upload(world, workspace_id: str, data: bytes = REFERENCE, name: str = "ref.png") -> str:
    key = f"{workspace_id}/uploads/{uuid.uuid4().hex[:12]}/{name}"
    aws.client("s3").put_object(Bucket=world.physical["OutputsBucket"].ref, Key=key, Body=data,
                                ContentType="image/png")
    return key


def make_request(world, workspace_id: str, model_id: str, *, allow_loopback: bool = False,
                 **params) -> WorkRequest:
    model = get_catalog().model(model_id)
    assert model is not None
    params = {"prompt": PROMPT, "n": 1, "width": 256, "height": 256, "steps": 2, "seed": 3} | params
    job = Job(id=uuid.uuid4().hex, workspace_id=workspace_id, model=model.id, task=model.task, type=model.type,
              params=params, created_at=time.time())
    JobStore().create(job)
    return WorkRequest(job_id=job.id, workspace_id=workspace_id, model=model.id, params=params,
                       jobs_table=world.physical["JobsTable"].ref,
                       results_queue_url=world.queue_url("ResultsQueue"),
                       bucket=world.physical["OutputsBucket"].ref, allow_loopback_urls=allow_loopback)


def run(world, request: WorkRequest) -> ResultMessage:
    result = worker.run(request)
    assert result is not None
    assert [m["outcome"] for m in world.messages("ResultsQueue")] == ["started", result.outcome]
    return result


def fetch(world, key: str) -> tuple[bytes, str]:
    obj = aws.client("s3").get_object(Bucket=world.physical["OutputsBucket"].ref, Key=key)
    return obj["Body"].read(), obj["ContentType"]


def decode_image(world, key: str, fmt: str) -> Image.Image:
    data, content_type = fetch(world, key)
    image = Image.open(io.BytesIO(data))
    assert image.format == fmt and content_type == f"image/{fmt.lower()}"
    image.load()
    return image


def decode_video(world, key: str, tmp_path: Path) -> tuple[dict, int]:
    data, content_type = fetch(world, key)
    assert content_type == "video/mp4"
    path = tmp_path / f"{uuid.uuid4().hex}.mp4"
    path.write_bytes(data)
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    frames = sum(1 for _ in reader)
    return meta, frames


def model_params(model_id: str, world, workspace_id: str) -> dict:
    """What the API would resolve for each task, small enough for tiny pipelines."""
    model = get_catalog().model(model_id)
    params: dict = {}
    if model.takes_references:
        params["references"] = [{"upload_key": upload(world, workspace_id)}]
    if model.last_frame:
        params["last_frame"] = {"upload_key": upload(world, workspace_id)}
    if model.type == "video":
        params.update(fps=8, duration=2)  # 16 frames -> 17 (8k+1, and 4k+1)
    return params


# --- every model, every task -----------------------------------------------------------------------


@pytest.mark.parametrize("model_id", [m.id for m in get_catalog().models])
def test_every_catalog_model_runs_end_to_end(world, tenant, model_id, tmp_path):
    model = get_catalog().model(model_id)
    request = make_request(world, tenant.workspace_id, model_id,
                           **model_params(model_id, world, tenant.workspace_id))
    result = run(world, request)

    assert result.outcome == "succeeded", result.error
    assert result.seed == 3 and len(result.outputs) == 1
    out = result.outputs[0]
    assert out.key.startswith(f"{tenant.workspace_id}/generations/{request.job_id}/")
    assert (out.width, out.height) == (256, 256)
    assert {"load", "inference", "vae_decode", "encode", "upload"} <= set(result.timings)
    if model.type == "video":
        meta, frames = decode_video(world, out.key, tmp_path)
        assert meta["codec"] == "h264" and meta["size"] == (256, 256)
        assert frames == out.frames == 17 and out.fps == 8
        assert out.duration == pytest.approx(17 / 8) and meta["duration"] == pytest.approx(17 / 8, abs=0.05)
        assert out.content_type == "video/mp4"
        poster = decode_image(world, out.thumbnail_key, "JPEG")
        assert poster.size == (256, 256)
    else:
        assert decode_image(world, out.key, "PNG").size == (256, 256)
        assert decode_image(world, out.thumbnail_key, "JPEG").size == (256, 256)
        assert out.content_type == "image/png" and out.duration is None
    if model.takes_references:
        assert "fetch" in result.timings
    job = JobStore().get(request.job_id)
    assert job.status == JobStatus.RUNNING  # the complete function finishes it
    assert job.progress and job.progress["step"] == job.progress["total"] >= 1


def test_every_tool_default_model_is_covered():
    covered = {m.id for m in get_catalog().models}
    assert {t.default_model for t in get_catalog().tools} <= covered
    assert {t.task for t in get_catalog().tools} == {"text-to-image", "image-to-image", "text-to-video",
                                                     "image-to-video"}


# --- images ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt, pil_format, ext", [("jpeg", "JPEG", "jpg"), ("webp", "WEBP", "webp")])
def test_output_formats_and_n(world, tenant, fmt, pil_format, ext):
    request = make_request(world, tenant.workspace_id, "sdxl-turbo", n=2, width=320, height=192,
                           output_format=fmt, quality=80)
    result = run(world, request)
    assert [o.key.rsplit(".", 1)[1] for o in result.outputs] == [ext, ext]
    images = [decode_image(world, o.key, pil_format) for o in result.outputs]
    assert [im.size for im in images] == [(320, 192)] * 2
    assert not np.array_equal(np.asarray(images[0]), np.asarray(images[1]))


def test_same_seed_same_image_through_the_worker(world, tenant):
    keys = []
    for _ in range(2):
        result = run(world, make_request(world, tenant.workspace_id, "flux-schnell", seed=42))
        keys.append(result.outputs[0].key)
    first, second = (np.asarray(decode_image(world, k, "PNG")) for k in keys)
    assert keys[0] != keys[1] and np.array_equal(first, second)


def test_image_to_image_uses_the_uploaded_reference(world, tenant):
    red = upload(world, tenant.workspace_id, _png((255, 0, 0)))
    green = upload(world, tenant.workspace_id, _png((0, 255, 0)))
    outputs = []
    for key in (red, green, red):
        result = run(world, make_request(world, tenant.workspace_id, "sdxl-turbo-edit", width=320, height=256,
                                         references=[{"upload_key": key}], strength=0.5))
        assert result.outcome == "succeeded", result.error
        outputs.append(np.asarray(decode_image(world, result.outputs[0].key, "PNG")))
    assert outputs[0].shape == (256, 320, 3)
    assert np.array_equal(outputs[0], outputs[2])  # same reference, same seed: same pixels
    assert not np.array_equal(outputs[0], outputs[1])  # the reference is what changed


def test_image_to_image_from_a_url_in_the_local_stack(world, tenant, image_server):
    request = make_request(world, tenant.workspace_id, "flux-schnell-edit", allow_loopback=True,
                           references=[{"url": image_server + "/ref.png"}], strength=0.8)
    result = run(world, request)
    assert result.outcome == "succeeded", result.error
    assert decode_image(world, result.outputs[0].key, "PNG").size == (256, 256)


def test_image_to_video_from_a_url_with_explicit_frames(world, tenant, image_server, tmp_path):
    request = make_request(world, tenant.workspace_id, "ltx-video-i2v", allow_loopback=True, width=320,
                           height=192, frames=9, fps=24, references=[{"url": image_server + "/ref.png"}])
    result = run(world, request)
    assert result.outcome == "succeeded", result.error
    out = result.outputs[0]
    meta, frames = decode_video(world, out.key, tmp_path)
    assert frames == 9 and meta["size"] == (320, 192) and meta["fps"] == 24
    assert (out.frames, out.fps, out.duration) == (9, 24, pytest.approx(9 / 24, abs=1e-3))


def test_text_to_video_defaults_come_from_the_catalog(world, tenant, tmp_path):
    # No frames, fps or duration: the catalog's (24 fps, 4 s -> 97 frames), at a tiny size and step count.
    result = run(world, make_request(world, tenant.workspace_id, "ltx-video", steps=2))
    out = result.outputs[0]
    assert (out.frames, out.fps) == (97, 24)
    _, frames = decode_video(world, out.key, tmp_path)
    assert frames == 97


# --- bad references --------------------------------------------------------------------------------


def _assert_invalid_reference(world, result: ResultMessage, *words: str) -> None:
    assert result.outcome == "failed" and result.error.code == "invalid_reference"
    for word in words:
        assert word in result.error.message, result.error.message
    assert result.outputs == []
    assert JobStore().get(result.job_id).status == JobStatus.RUNNING  # the complete step fails and refunds


def test_another_workspaces_upload_is_refused(world, tenant):
    other = upload(world, f"ws-other-{uuid.uuid4().hex[:6]}")
    result = run(world, make_request(world, tenant.workspace_id, "flux-schnell-edit",
                                     references=[{"upload_key": other}]))
    _assert_invalid_reference(world, result, "references[0]", "not an upload of this workspace")


@pytest.mark.parametrize("case", ["missing-upload", "not-an-image", "http-404", "loopback-deployed"])
def test_bad_references_fail_the_job(world, tenant, image_server, case):
    ws = tenant.workspace_id
    refs, loopback, words = {
        "missing-upload": ([{"upload_key": f"{ws}/uploads/nope/ref.png"}], False, ["not found"]),
        "not-an-image": ([{"upload_key": upload(world, ws, b"%PDF-1.4")}], False, ["not a valid"]),
        "http-404": ([{"url": image_server + "/missing.png"}], True, ["HTTP 404"]),
        "loopback-deployed": ([{"url": image_server + "/ref.png"}], False, ["not a public address"]),
    }[case]
    # The second reference is the bad one: the message says which.
    refs = [{"upload_key": upload(world, ws)}, *refs]
    result = run(world, make_request(world, ws, "ltx-video-i2v", allow_loopback=loopback, references=refs))
    _assert_invalid_reference(world, result, "references[1]", *words)


def test_a_reference_task_without_references_fails(world, tenant):
    result = run(world, make_request(world, tenant.workspace_id, "sdxl-turbo-edit"))
    _assert_invalid_reference(world, result, "needs at least one reference image")


def test_references_sent_to_a_text_model_fail_rather_than_being_ignored(world, tenant):
    result = run(world, make_request(world, tenant.workspace_id, "flux-schnell",
                                     references=[{"upload_key": upload(world, tenant.workspace_id)}]))
    _assert_invalid_reference(world, result, "takes no reference images", "flux-schnell-edit")


def test_storage_keys_stay_in_the_workspace(world, tenant):
    result = run(world, make_request(world, tenant.workspace_id, "ltx-video", frames=9, fps=24))
    out = result.outputs[0]
    assert out.key == storage.output_key(tenant.workspace_id, result.job_id, 0, "mp4")
    assert out.thumbnail_key == storage.thumbnail_key(tenant.workspace_id, result.job_id, 0)


# --- the Modal classes run the same worker ---------------------------------------------------------


@pytest.mark.parametrize("cls_name, model_id", [("LTXVideoGenerator", "ltx-video-i2v"),
                                                ("FluxGenerator", "flux-schnell-edit")])
def test_modal_classes_serve_reference_tasks_locally(world, tenant, cls_name, model_id):
    from gpu import modal_app

    params = model_params(model_id, world, tenant.workspace_id)
    request = make_request(world, tenant.workspace_id, model_id, **params)
    generator = getattr(modal_app, cls_name)(weights=get_catalog().model(model_id).weights)
    result = generator.generate.local(request.model_dump())
    assert result["outcome"] == "succeeded", result.get("error")
    assert [m["outcome"] for m in world.messages("ResultsQueue")] == ["started", "succeeded"]
    assert result["outputs"][0]["content_type"] == ("video/mp4" if model_id.startswith("ltx") else "image/png")
