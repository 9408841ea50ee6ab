"""A model's speed settings (gpu/speed.py) on the serving path: an operator turns one on for a pool in the catalog
file, a job runs through the real worker, and the job records what each setting did, or why it fell back (fp8 on a
CPU): none is skipped in silence."""

from __future__ import annotations

import base64
import copy
import io
from pathlib import Path

import pytest
import yaml
from PIL import Image

from functions.core.catalog import get_catalog
from functions.core.jobs import JobStatus, JobStore
from functions.core.settings import get_settings

REPO = Path(__file__).resolve().parents[2]


def _flux_schnell_pool(tmp_path, monkeypatch, **overrides):
    """The catalog with flux-schnell's pool (its text and edit models agree on speed) changed by `overrides`."""
    models = yaml.safe_load((REPO / "functions/core/catalog.yaml").read_text())["models"]
    pool = [copy.deepcopy(m) for m in models if m["id"] in ("flux-schnell", "flux-schnell-edit")]
    for model in pool:
        for key, value in copy.deepcopy(overrides).items():  # defaults: merged into the model's own
            model[key] = {**model.get(key, {}), **value} if key == "defaults" else value
    path = tmp_path / "pool.yaml"
    path.write_text(yaml.safe_dump({"models": pool}))
    monkeypatch.setenv("DARKROOM_CATALOG_EXTRA", str(path))
    monkeypatch.setenv("DARKROOM_SYNC_WAIT_SECONDS", "240")
    get_catalog.cache_clear()
    get_settings.cache_clear()


@pytest.fixture
def tuned_catalog(tmp_path, monkeypatch):
    """flux-schnell's pool with VAE tiling on and fp8 asked for."""
    _flux_schnell_pool(tmp_path, monkeypatch, speed={"vae_tiling": True, "quantize": "fp8"})
    yield
    monkeypatch.delenv("DARKROOM_CATALOG_EXTRA")
    get_catalog.cache_clear()


def test_the_job_records_what_each_speed_setting_did(world, api, tenant, pipeline, tuned_catalog):
    resp = api.post("/v1/images/generations", json={"prompt": "a lighthouse", "model": "flux-schnell",
                                                    "size": "256x256"}, headers=tenant.headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    job = JobStore().list_for_workspace(tenant.workspace_id)[0][0]
    assert job.status == JobStatus.SUCCEEDED
    assert set(job.speed) == {"vae_tiling", "quantize", "warm_up"}  # settings on: the model ran once before the job
    assert "fp8 unavailable on cpu" in job.speed["quantize"]  # a fallback, said, not skipped


@pytest.fixture
def hotswap_catalog(tmp_path, monkeypatch):
    """flux-schnell's pool compiled (regional) with one hot-swap LoRA slot of rank 4, warmed up at a size that is
    cheap on this CPU."""
    _flux_schnell_pool(tmp_path, monkeypatch, speed={"compile": "regional", "lora_hotswap": {"rank": 4, "slots": 1}},
                       defaults={"width": 256, "height": 256})
    yield
    monkeypatch.delenv("DARKROOM_CATALOG_EXTRA")
    get_catalog.cache_clear()


def _lora(api, tenant, tmp_path, name: str, rank: int) -> str:
    import io

    from gpu.tiny import ensure_tiny_lora

    data = ensure_tiny_lora("flux", tmp_path, name, rank=rank).read_bytes()
    form = {"file": (io.BytesIO(data), f"{name}.safetensors", "application/octet-stream"), "name": name}
    resp = api.post("/api/loras", data=form, headers=tenant.headers, content_type="multipart/form-data")
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.json["id"]


def test_a_compiled_model_hot_swaps_loras_and_refuses_what_its_slots_cannot_take(world, api, tenant, pipeline,
                                                                                 hotswap_catalog, tmp_path):
    small = {"prompt": "a lighthouse", "model": "flux-schnell", "size": "256x256", "steps": 2, "seed": 5,
             "response_format": "b64_json"}
    ink, wide = _lora(api, tenant, tmp_path, "ink", 4), _lora(api, tenant, tmp_path, "wide", 8)
    plain = api.post("/v1/images/generations", json=small, headers=tenant.headers)
    inked = api.post("/v1/images/generations", json={**small, "loras": [{"path": ink, "scale": 1.0}]},
                     headers=tenant.headers)
    again = api.post("/v1/images/generations", json=small, headers=tenant.headers)
    assert plain.status_code == inked.status_code == again.status_code == 200, inked.get_data(as_text=True)
    def pixels(resp) -> bytes:  # the image, not the file: a signed file's manifest differs by its time and id
        return Image.open(io.BytesIO(base64.b64decode(resp.json["data"][0]["b64_json"]))).convert("RGB").tobytes()

    assert pixels(inked) != pixels(plain)
    assert pixels(again) == pixels(plain)  # the slot is empty again
    jobs = {job.params.get("loras", [{}])[0].get("id"): job
            for job in JobStore().list_for_workspace(tenant.workspace_id)[0]}
    assert jobs[ink].status == JobStatus.SUCCEEDED and jobs[ink].loras[0]["scale"] == 1.0
    assert jobs[ink].speed["lora_hotswap"].startswith("1 slot of rank 4 on transformer's ")
    # Compiled when the worker loaded it, before the first job: the warm-up at the model's default size.
    assert jobs[ink].speed["warm_up"].startswith("256x256, 2 steps: ")

    too_many = api.post("/v1/images/generations", json={**small, "loras": [{"path": ink}, {"path": ink}]},
                        headers=tenant.headers)
    assert too_many.status_code == 400 and too_many.json["error"]["param"] == "loras", too_many.json
    assert "at most 1 LoRA adapter at once" in too_many.json["error"]["message"]
    too_wide = api.post("/v1/images/generations", json={**small, "loras": [{"path": wide}]}, headers=tenant.headers)
    assert too_wide.status_code == 400 and too_wide.json["error"]["param"] == "loras.0.path", too_wide.json
    assert "rank 8" in too_wide.json["error"]["message"]
