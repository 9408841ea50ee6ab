"""Public sharing: make_public gives a share page served without a key; nothing else is reachable."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

pytestmark = pytest.mark.xdist_group("integration")


def made(api, tenant, dispatcher, drain, public: bool) -> dict:
    body = {"tool": "create-image", "input": {"prompt": "a red lighthouse", "size": "256x256",
                                              "make_public": public}}
    job_id = api.post("/api/run", json=body, headers=tenant.headers).json["id"]
    drain("DispatchFunction", "JobsQueue")
    drain("CompleteFunction", "ResultsQueue")
    return api.get(f"/api/generations/{job_id}", headers=tenant.headers).json


def test_public_job_has_a_share_page_without_auth(world, api, tenant, dispatcher, drain):
    job = made(api, tenant, dispatcher, drain, public=True)
    assert job["status"] == "success" and job["shareUrl"].startswith("http://localhost/shared/media/")
    path = urlsplit(job["shareUrl"]).path
    page = api.get(path)  # no key
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.get_data(as_text=True)
    assert '<meta property="og:image"' in html and "a red lighthouse" in html
    image_url = html.split('<meta property="og:image" content="')[1].split('"')[0].replace("&amp;", "&")
    assert httpx.get(image_url).status_code == 200
    tampered = path[:-3] + ("abc" if not path.endswith("abc") else "xyz")
    assert api.get(tampered).status_code == 404


def test_private_job_is_not_shared(world, api, tenant, dispatcher, drain):
    job = made(api, tenant, dispatcher, drain, public=False)
    assert "shareUrl" not in job
    assert api.get(f"/shared/media/{job['id']}-guess").status_code == 404
    # Everything else still needs a key.
    assert api.get(f"/api/generations/{job['id']}").status_code == 401
