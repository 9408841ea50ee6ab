"""A model's speed settings (gpu/speed.py) on the serving path: an operator turns one on for a pool in the catalog
file, a job runs through the real worker, and the job records what each setting did, or why it fell back (fp8 on a
CPU): none is skipped in silence."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from functions.core.catalog import get_catalog
from functions.core.jobs import JobStatus, JobStore
from functions.core.settings import get_settings

pytestmark = pytest.mark.xdist_group("integration")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tuned_catalog(tmp_path, monkeypatch):
    """flux-schnell's pool (its text and edit models agree on speed) with VAE tiling on and fp8 asked for."""
    models = yaml.safe_load((REPO / "functions/core/catalog.yaml").read_text())["models"]
    pool = [copy.deepcopy(m) for m in models if m["id"] in ("flux-schnell", "flux-schnell-edit")]
    for model in pool:
        model["speed"] = {"vae_tiling": True, "quantize": "fp8"}
    path = tmp_path / "speed.yaml"
    path.write_text(yaml.safe_dump({"models": pool}))
    monkeypatch.setenv("DARKROOM_CATALOG_EXTRA", str(path))
    monkeypatch.setenv("DARKROOM_SYNC_WAIT_SECONDS", "240")
    get_catalog.cache_clear()
    get_settings.cache_clear()
    yield
    monkeypatch.delenv("DARKROOM_CATALOG_EXTRA")
    get_catalog.cache_clear()


def test_the_job_records_what_each_speed_setting_did(world, api, tenant, pipeline, tuned_catalog):
    resp = api.post("/v1/images/generations", json={"prompt": "a lighthouse", "model": "flux-schnell",
                                                    "size": "256x256"}, headers=tenant.headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    job = JobStore().list_for_workspace(tenant.workspace_id)[0][0]
    assert job.status == JobStatus.SUCCEEDED
    assert set(job.speed) == {"vae_tiling", "quantize"}
    assert "fp8 unavailable on cpu" in job.speed["quantize"]  # a fallback, said, not skipped
