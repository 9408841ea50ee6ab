"""Uploads and the native API's task inputs: references, edit counterparts, video durations."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image

from functions.core import storage
from functions.core.catalog import get_catalog
from functions.core.jobs import JobStore
from tests.integration.conftest import fetch_media


def png_bytes(size=(64, 64), color=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_presigned_upload_then_edit_with_the_reference(world, api, tenant):
    resp = api.post("/api/uploads", json={"filename": "cat photo.png", "content_type": "image/png"},
                    headers=tenant.headers)
    assert resp.status_code == 201, resp.json
    upload = resp.json
    assert upload["reference"].startswith("upload://up_") and upload["reference"].endswith("/cat-photo.png")
    posted = httpx.post(upload["upload"]["url"], data=upload["upload"]["fields"],
                        files={"file": ("cat.png", png_bytes(), "image/png")})
    assert posted.status_code in (200, 204), posted.text
    key = f"{tenant.workspace_id}/uploads/{upload['id']}"
    assert storage.get_bytes(key) == png_bytes()

    body = {"tool": "edit-image", "model": "flux-schnell",
            "input": {"prompt": "make it blue", "image_urls": [upload["reference"]], "size": "256x256"}}
    job_id = api.post("/api/run", json=body, headers=tenant.headers).json["id"]
    job = JobStore().get(job_id)
    assert job.task == "image-to-image" and job.params["references"] == [{"upload_key": key}]
    assert job.params["strength"] > 0


def test_a_reference_always_resolves_inside_the_callers_workspace(world, api, tenant, new_tenant):
    stored = api.post("/files", data={"file": (io.BytesIO(png_bytes()), "a.png", "image/png")},
                      headers=tenant.headers, content_type="multipart/form-data").json
    body = {"model": "sdxl-turbo", "input": {"prompt": "x", "image_urls": [stored["reference"]]}}
    job_id = api.post("/api/generate", json=body, headers=tenant.headers).json["_id"]
    refs = JobStore().get(job_id).params["references"]
    assert refs == [{"upload_key": f"{tenant.workspace_id}/uploads/{stored['id']}"}]
    other = new_tenant()  # the same reference from another workspace names its own prefix, where there is none
    refused = api.post("/api/generate", json=body, headers=other.headers)
    assert refused.status_code == 400 and refused.json["errors"][0]["field"] == "input.image_urls.0"
    # A presigned upload not made yet is refused too, until its file is there.
    pending = api.post("/api/uploads", json={"filename": "b.png", "content_type": "image/png"},
                       headers=tenant.headers).json
    late = {"model": "sdxl-turbo", "input": {"prompt": "x", "image_urls": [pending["reference"]]}}
    assert api.post("/api/generate", json=late, headers=tenant.headers).status_code == 400


def test_multipart_file_upload_fronts(world, api, tenant):
    for path in ("/files", "/api/v1/uploads"):
        resp = api.post(path, data={"file": (io.BytesIO(png_bytes()), "pic.png", "application/octet-stream")},
                        headers=tenant.headers, content_type="multipart/form-data")
        assert resp.status_code == 201, (path, resp.get_data(as_text=True))
        assert resp.json["content_type"] == "image/png" and resp.json["size"] == len(png_bytes())
        assert fetch_media(api, resp.json["url"]) == png_bytes()
    bad = api.post("/files", data={"file": (io.BytesIO(b"not an image"), "x.txt", "text/plain")},
                   headers=tenant.headers, content_type="multipart/form-data")
    assert bad.status_code == 400 and bad.json["errors"][0]["field"] == "file"


def test_text_to_image_with_references_switches_to_the_edit_model(world, api, tenant):
    body = {"model": "flux-schnell", "input": {"prompt": "x", "image_url": "https://93.184.216.34/a.png"}}
    job_id = api.post("/api/generate", json=body, headers=tenant.headers).json["_id"]
    job = JobStore().get(job_id)
    assert job.model == get_catalog().model("flux-schnell").edit_model and job.tool == "edit-image"
    assert job.params["references"] == [{"url": "https://93.184.216.34/a.png"}]


def test_video_duration_snaps_and_sets_frames_and_price(world, api, tenant):
    model = get_catalog().model("ltx-video")
    body = {"tool": "create-video", "model": "ltx-video", "input": {"prompt": "waves", "duration": 4.4,
                                                                    "size": "256x256"}}
    resp = api.post("/api/run", json=body, headers=tenant.headers)
    assert resp.status_code == 202, resp.json
    job = JobStore().get(resp.json["id"])
    snapped = model.snap_duration(4.4)
    assert job.type == "video" and job.params["duration"] == snapped
    assert job.params["frames"] == model.frames_for(snapped, model.defaults.fps)
    # Seconds × the per-second price × the work: 256x256 is under a quarter of the default frame, so the floor.
    assert job.cost == model.credits_per_second * snapped * 0.25 == model.price(job.params)


@pytest.mark.parametrize("body,field", [
    ({"tool": "create-video", "input": {"prompt": "x", "n": 2}}, "input.n"),
    ({"tool": "image-to-video", "input": {"prompt": "x"}}, "input.image_urls"),
    ({"tool": "edit-image", "input": {"prompt": "x", "image_urls": ["ftp://host/a.png"]}}, "input.image_urls.0"),
    ({"tool": "edit-image", "input": {"prompt": "x", "image_urls": ["upload://../../etc"]}}, "input.image_urls.0"),
    ({"tool": "create-image", "input": {"prompt": "x", "duration": 3}}, "input.duration"),
    ({"tool": "edit-image", "input": {"prompt": "x", "image_urls": ["https://a.example/1.png"] * 11}},
     "input.image_urls"),
])
def test_bad_task_inputs_name_the_field(api, tenant, body, field):
    resp = api.post("/api/run", json=body, headers=tenant.headers)
    assert resp.status_code == 400, resp.json
    assert resp.json["errors"][0]["field"] == field, resp.json


def test_a_mask_of_the_wrong_size_is_refused_at_submit_in_the_native_dialect(world, api, tenant):
    """As the OpenAI dialect does: both files are uploads, so their headers are read before anything is paid."""
    def upload(image: Image.Image, name: str) -> str:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return api.post("/files", data={"file": (io.BytesIO(buffer.getvalue()), name, "image/png")},
                        headers=tenant.headers, content_type="multipart/form-data").json["reference"]

    image = upload(Image.new("RGB", (64, 64)), "image.png")
    wrong = upload(Image.new("RGBA", (32, 32), (0, 0, 0, 0)), "mask.png")
    opaque = upload(Image.new("RGB", (64, 64)), "flat.png")
    for mask, reason in ((wrong, "is 32x32 but the image is 64x64"), (opaque, "alpha channel")):
        body = {"tool": "edit-image", "input": {"prompt": "x", "image_urls": [image], "mask_url": mask}}
        refused = api.post("/api/run", json=body, headers=tenant.headers)
        assert refused.status_code == 400 and refused.json["errors"][0]["field"] == "input.mask_url"
        assert reason in refused.json["errors"][0]["message"]
    good = upload(Image.new("RGBA", (64, 64), (0, 0, 0, 0)), "good.png")
    body = {"tool": "edit-image", "input": {"prompt": "x", "image_urls": [image], "mask_url": good}}
    assert api.post("/api/run", json=body, headers=tenant.headers).status_code == 202
