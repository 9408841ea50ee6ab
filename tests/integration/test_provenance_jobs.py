"""Provenance through the local stack: a job's stored output carries a valid C2PA manifest naming its model,
signed by the certificate the settings name (as `darkroom dev` sets it up), with the watermark when the deployment
turns it on; the job's record says what was done, or that nothing was signed."""

from __future__ import annotations

import base64
import io

import c2pa
import pytest
from PIL import Image

from functions.core import storage
from functions.core.jobs import JobStatus, JobStore
from functions.core.settings import get_settings
from gpu import provenance
from infra.local.signing_cert import ensure_dev_certificate


@pytest.fixture
def signing(tmp_path, monkeypatch):
    cert = ensure_dev_certificate(tmp_path)
    monkeypatch.setenv("DARKROOM_PROVENANCE_CERT_FILE", str(cert.chain))
    monkeypatch.setenv("DARKROOM_PROVENANCE_KEY_FILE", str(cert.key))
    monkeypatch.setenv("DARKROOM_PROVENANCE_WATERMARK", "true")
    monkeypatch.setenv("DARKROOM_SYNC_WAIT_SECONDS", "240")
    get_settings.cache_clear()
    yield cert
    get_settings.cache_clear()


def test_a_jobs_stored_output_carries_a_valid_manifest_naming_its_model(world, api, tenant, pipeline, signing):
    resp = api.post("/v1/images/generations", json={"prompt": "a lighthouse", "model": "flux-schnell",
                                                    "size": "256x256", "response_format": "b64_json"},
                    headers=tenant.headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    job = JobStore().list_for_workspace(tenant.workspace_id)[0][0]
    assert job.status == JobStatus.SUCCEEDED
    stored = storage.get_bytes(job.outputs[0].key)
    assert job.outputs[0].bytes == len(stored)
    assert base64.b64decode(resp.json["data"][0]["b64_json"]) == stored  # what the caller gets is what is stored

    with c2pa.Reader("image/png", io.BytesIO(stored)) as reader:
        assert reader.get_validation_state() == "Valid"
        manifest = reader.get_active_manifest()
    assert manifest["claim_generator_info"][0]["name"] == "Darkroom"
    created = manifest["assertions"][0]["data"]["actions"][0]
    assert created["action"] == "c2pa.created" and created["parameters"]["model"] == "flux-schnell"
    assert created["digitalSourceType"] == provenance.TRAINED_ALGORITHMIC_MEDIA
    assert provenance.check(stored)["watermark"]["found"]  # 256x256: just large enough to carry it
    assert job.provenance["c2pa"].startswith("signed by CN=Darkroom local signer")
    assert job.provenance["watermark"].startswith("embedded in 1 image")
    # The thumbnail is a preview for Darkroom's pages: not signed.
    assert c2pa.Reader.try_create("image/jpeg", io.BytesIO(storage.get_bytes(job.outputs[0].thumbnail_key))) is None


def test_an_edit_names_its_reference_as_the_parent(world, api, tenant, pipeline, signing):
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 40, 40)).save(buf, format="PNG")
    form = {"prompt": "make it blue", "size": "256x256", "image": (io.BytesIO(buf.getvalue()), "photo.png", "image/png")}
    resp = api.post("/v1/images/edits", data=form, headers=tenant.headers, content_type="multipart/form-data")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    job = JobStore().list_for_workspace(tenant.workspace_id)[0][0]
    report = provenance.check(storage.get_bytes(job.outputs[0].key))["manifest"]
    assert report["validation_state"] == "Valid" and report["model"] == job.model
    assert [a["action"] for a in report["actions"]] == ["c2pa.opened", "c2pa.edited"]
    assert report["ingredients"] == [{"title": "reference-0.png", "relationship": "parentOf"}]


def test_without_a_certificate_the_record_says_nothing_was_signed(world, api, tenant, pipeline, monkeypatch):
    monkeypatch.delenv("DARKROOM_PROVENANCE_SECRET_ARN", raising=False)  # the files: cleared by the world fixture
    monkeypatch.setenv("DARKROOM_SYNC_WAIT_SECONDS", "240")
    get_settings.cache_clear()
    resp = api.post("/v1/images/generations", json={"prompt": "a lighthouse", "model": "flux-schnell",
                                                    "size": "256x256"}, headers=tenant.headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    job = JobStore().list_for_workspace(tenant.workspace_id)[0][0]
    assert job.provenance["c2pa"].startswith("not signed: no signing certificate is configured")
    assert job.provenance["watermark"].startswith("off")
    assert c2pa.Reader.try_create("image/png", io.BytesIO(storage.get_bytes(job.outputs[0].key))) is None
