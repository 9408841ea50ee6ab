"""Public sharing: make_public gives a share page served without a key; nothing else is reachable."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.integration.conftest import fetch_media


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
    assert fetch_media(api, image_url)[:8] == b"\x89PNG\r\n\x1a\n"
    tampered = path[:-3] + ("abc" if not path.endswith("abc") else "xyz")
    assert api.get(tampered).status_code == 404


def test_private_job_is_not_shared(world, api, tenant, dispatcher, drain):
    job = made(api, tenant, dispatcher, drain, public=False)
    assert "shareUrl" not in job
    assert api.get(f"/shared/media/{job['id']}-guess").status_code == 404
    # Everything else still needs a key.
    assert api.get(f"/api/generations/{job['id']}").status_code == 401


def share(api, tenant, job_id: str, public) -> object:
    return api.post(f"/api/generations/{job_id}/share", json={"public": public}, headers=tenant.headers)


def test_share_toggle_on_a_finished_generation(world, api, tenant, dispatcher, drain):
    job = made(api, tenant, dispatcher, drain, public=False)
    shared = share(api, tenant, job["id"], True)
    assert shared.status_code == 200, shared.json
    assert shared.json["id"] == job["id"] and shared.json["public"] is True
    first = shared.json["share_url"]
    assert first.startswith(f"http://localhost/shared/media/{job['id']}-")
    path = urlsplit(first).path
    page = api.get(path)  # no key
    assert page.status_code == 200 and "a red lighthouse" in page.get_data(as_text=True)
    # The generation shows its link to every reader, as make_public's would.
    assert api.get(f"/api/generations/{job['id']}", headers=tenant.headers).json["shareUrl"] == first

    # Sharing twice keeps the one link.
    again = share(api, tenant, job["id"], True)
    assert again.status_code == 200 and again.json["share_url"] == first

    # Unsharing takes the page away, and the stored link with it.
    off = share(api, tenant, job["id"], False)
    assert off.status_code == 200 and off.json == {"id": job["id"], "public": False, "share_url": None}
    assert api.get(path).status_code == 404
    assert "shareUrl" not in api.get(f"/api/generations/{job['id']}", headers=tenant.headers).json
    assert share(api, tenant, job["id"], False).json["public"] is False  # unsharing twice is a no-op

    # Sharing again: a new, different link; the old one stays dead.
    renewed = share(api, tenant, job["id"], True).json["share_url"]
    assert renewed != first and renewed.startswith(f"http://localhost/shared/media/{job['id']}-")
    assert api.get(urlsplit(renewed).path).status_code == 200
    assert api.get(path).status_code == 404


def test_make_public_at_submit_can_be_unshared(world, api, tenant, dispatcher, drain):
    job = made(api, tenant, dispatcher, drain, public=True)
    path = urlsplit(job["shareUrl"]).path
    assert share(api, tenant, job["id"], True).json["share_url"] == job["shareUrl"]
    assert share(api, tenant, job["id"], False).json["public"] is False
    assert api.get(path).status_code == 404


def test_a_queued_generation_can_be_shared_and_a_canceled_one_cannot(world, api, tenant):
    queued = api.post("/api/run", json={"tool": "create-image", "input": {"prompt": "waits"}},
                      headers=tenant.headers).json["id"]
    shared = share(api, tenant, queued, True)
    assert shared.status_code == 200 and shared.json["public"] is True
    page = api.get(urlsplit(shared.json["share_url"]).path)
    assert page.status_code == 200 and "still being made" in page.get_data(as_text=True)

    canceled = api.post("/api/run", json={"tool": "create-image", "input": {"prompt": "canceled"}},
                        headers=tenant.headers).json["id"]
    assert api.post(f"/api/generations/{canceled}/cancel", headers=tenant.headers).status_code == 200
    refused = share(api, tenant, canceled, True)
    assert refused.status_code == 409 and "canceled" in refused.json["message"]
    assert set(refused.json) == {"message", "errors"}
    # Unsharing is always allowed (and a no-op here).
    assert share(api, tenant, canceled, False).json == {"id": canceled, "public": False, "share_url": None}


def test_share_toggle_needs_the_owner_the_scope_and_a_boolean(world, api, tenant, new_tenant, dispatcher, drain):
    job = made(api, tenant, dispatcher, drain, public=False)
    other = new_tenant()
    resp = share(api, other, job["id"], True)
    assert resp.status_code == 404 and set(resp.json) == {"message", "errors"}  # native error format
    assert api.get(f"/api/generations/{job['id']}", headers=tenant.headers).json.get("shareUrl") is None

    reader = new_tenant(scopes=["media:read", "image:generate"])
    mine = api.post("/api/run", json={"tool": "create-image", "input": {"prompt": "mine"}},
                    headers=reader.headers).json["id"]
    denied = share(api, reader, mine, True)
    assert denied.status_code == 403 and "media:write" in denied.json["message"]

    for body, code in (({"public": "yes"}, "bool_type"), ({"public": 1}, "bool_type"), ({}, "required")):
        bad = api.post(f"/api/generations/{job['id']}/share", json=body, headers=tenant.headers)
        assert bad.status_code == 400, body
        assert [(e["field"], e["code"]) for e in bad.json["errors"]] == [("public", code)], bad.json
    extra = api.post(f"/api/generations/{job['id']}/share", json={"public": True, "url": "mine"},
                     headers=tenant.headers)
    assert extra.status_code == 400 and extra.json["errors"][0]["field"] == "url"
    assert "shareUrl" not in api.get(f"/api/generations/{job['id']}", headers=tenant.headers).json
    assert api.post(f"/api/generations/{job['id']}/share", headers=tenant.headers).status_code == 400


def test_unsharing_ends_the_page_and_its_files_at_once(world, api, tenant, dispatcher, drain):
    """Shared files went out as presigned URLs valid 24 h after unsharing, on a page cached publicly for 5
    minutes: now they go through the share route, checked on every request."""
    job = made(api, tenant, dispatcher, drain, public=True)
    page = api.get(urlsplit(job["shareUrl"]).path)
    html = page.get_data(as_text=True)
    image = html.split('<meta property="og:image" content="')[1].split('"')[0]
    assert image.startswith(job["shareUrl"] + "/") and "X-Amz" not in html  # no S3 URL on the page
    file_path = urlsplit(image).path
    served = api.get(file_path)
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    assert served.headers["cache-control"].startswith("private")
    assert share(api, tenant, job["id"], False).json["public"] is False
    assert api.get(file_path).status_code == 404 and api.get(urlsplit(job["shareUrl"]).path).status_code == 404
    assert api.get(file_path.rsplit("/", 1)[0] + "/other.png").status_code == 404


def test_the_share_page_is_hardened_and_revalidated(world, api, tenant, dispatcher, drain):
    job = made(api, tenant, dispatcher, drain, public=True)
    page = api.get(urlsplit(job["shareUrl"]).path)
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp and "script-src" not in csp
    assert "'sha256-" in csp.split("style-src", 1)[1].split(";")[0]  # its inline style, by hash
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "private, no-cache"  # never kept by a shared cache
    again = api.get(urlsplit(job["shareUrl"]).path, headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304 and again.get_data() == b""


def test_a_share_link_names_the_configured_origin_whatever_the_host_header(world, api, tenant, dispatcher, drain):
    """A `Host: evil.example` request produced a share URL on evil.example, stored and shown to the workspace."""
    job = made(api, tenant, dispatcher, drain, public=False)
    shared = api.post(f"/api/generations/{job['id']}/share", json={"public": True},
                      headers={**tenant.headers, "Host": "evil.example"})
    assert shared.json["share_url"].startswith("http://localhost/shared/media/")
    body = {"tool": "create-image", "input": {"prompt": "x", "make_public": True}}
    made_public = api.post("/api/run", json=body, headers={**tenant.headers, "Host": "evil.example"}).json
    stored = api.get(f"/api/generations/{made_public['id']}", headers=tenant.headers).json["shareUrl"]
    assert "evil.example" not in stored and stored.startswith("http://localhost/")
