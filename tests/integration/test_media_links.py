"""Media links through the api and a moto server over HTTP: a link handed out works, without a key, until its
stated expiry and not after.

A presigned S3 URL dies with the temporary credentials that signed it (a Lambda role's last hours), so before
this every "24 h" URL handed out by a deployed stack died early. Now a link is checked by the API: small files
come back inline, large ones as a redirect to an S3 URL signed at read time by the credentials held then. moto
checks neither signatures nor credential lifetimes, so the test checks what makes them hold deployed: the S3
URL is made when the link is read, with the reader's credentials, and never outlives the link.
"""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from functions.api import files
from functions.core import aws, clock
from tests.integration.conftest import PUBLIC_BASE_URL, fetch_media


def finished(api, tenant, drain) -> dict:
    body = {"tool": "create-image", "input": {"prompt": "a red lighthouse", "size": "256x256"}}
    job_id = api.post("/api/run", json=body, headers=tenant.headers).json["id"]
    drain("DispatchFunction", "JobsQueue")
    drain("CompleteFunction", "ResultsQueue")
    job = api.get(f"/api/generations/{job_id}", headers=tenant.headers).json
    assert job["status"] == "success", job
    return job


def path_of(url: str) -> str:
    split = urlsplit(url)
    return f"{split.path}?{split.query}"


def stored(world, key: str) -> bytes:
    return aws.client("s3").get_object(Bucket=world.env["DARKROOM_OUTPUTS_BUCKET"], Key=key)["Body"].read()


def test_a_link_serves_its_file_until_its_stated_expiry_and_not_after(world, api, tenant, dispatcher, drain,
                                                                      monkeypatch):
    job = finished(api, tenant, drain)
    url = job["output"]
    assert url.startswith(f"{PUBLIC_BASE_URL}/media/{tenant.workspace_id}/generations/{job['id']}/0.png?")
    expires = int(parse_qs(urlsplit(url).query)["expires"][0])
    assert expires - clock.now() == pytest.approx(24 * 3600, abs=5)
    original = stored(world, f"{tenant.workspace_id}/generations/{job['id']}/0.png")

    answer = api.get(path_of(url))  # no key: the signature is the access check
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    assert answer.get_data() == original and answer.headers["cache-control"].startswith("private")

    monkeypatch.setattr(clock, "now", lambda: expires - 1.0)  # a second before its stated expiry
    late = api.get(path_of(url))
    assert late.status_code == 200 and late.get_data() == original
    assert late.headers["cache-control"] == "private, max-age=1"  # no cache keeps it past its expiry

    monkeypatch.setattr(clock, "now", lambda: float(expires))
    gone = api.get(path_of(url))
    assert gone.status_code == 403
    assert gone.json["errors"][0]["field"] == "expires" and "expired" in gone.json["message"]


def test_a_large_file_is_a_redirect_signed_when_read_by_the_credentials_held_then(world, api, tenant, dispatcher,
                                                                                   drain, monkeypatch):
    monkeypatch.setattr(files, "INLINE_MAX_BYTES", 100)  # every output is "large"
    job = finished(api, tenant, drain)
    url = job["output"]
    expires = int(parse_qs(urlsplit(url).query)["expires"][0])
    original = stored(world, f"{tenant.workspace_id}/generations/{job['id']}/0.png")

    first = api.get(path_of(url))
    assert first.status_code == 302 and "private" in first.headers["cache-control"]
    assert httpx.get(first.headers["location"]).content == original

    # Hours later the function holds other credentials (a Lambda's are rotated long before 24 h): the S3 URL is
    # signed with those, now, a second before the link's stated expiry, and lives no longer than the link.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIAROTATEDLATER")
    aws.reset_clients()
    monkeypatch.setattr(clock, "now", lambda: expires - 1.0)
    late = api.get(path_of(url))
    assert late.status_code == 302
    s3_query = parse_qs(urlsplit(late.headers["location"]).query)
    assert s3_query["X-Amz-Credential"][0].startswith("ASIAROTATEDLATER/")
    assert int(s3_query["X-Amz-Expires"][0]) == 1
    assert httpx.get(late.headers["location"]).content == original

    monkeypatch.setattr(clock, "now", lambda: float(expires))
    assert api.get(path_of(url)).status_code == 403


def test_ranges_are_honoured_for_players_that_seek(world, api, tenant, dispatcher, drain):
    job = finished(api, tenant, drain)
    original = stored(world, f"{tenant.workspace_id}/generations/{job['id']}/0.png")
    part = api.get(path_of(job["output"]), headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.get_data() == original[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{len(original)}"
    outside = api.get(path_of(job["output"]), headers={"Range": f"bytes={len(original) + 10}-"})
    assert outside.status_code == 416 and outside.json["errors"][0]["field"] == "Range"


def test_every_link_of_a_generation_and_of_an_upload_leads_to_its_file(world, api, tenant, dispatcher, drain):
    job = finished(api, tenant, drain)
    for url in (*job["outputs"], job["thumbnail"]):
        assert api.get(path_of(url)).status_code == 200
    png = fetch_media(api, job["output"])
    upload = api.post("/files", data={"file": (io.BytesIO(png), "ref.png", "image/png")}, headers=tenant.headers)
    assert upload.status_code == 201, upload.json
    link = upload.json["url"]
    assert link.startswith(f"{PUBLIC_BASE_URL}/media/{tenant.workspace_id}/uploads/")
    assert fetch_media(api, link) == png


def test_a_forged_or_altered_link_is_a_403_and_a_deleted_file_a_404(world, api, tenant, dispatcher, drain):
    job = finished(api, tenant, drain)
    url = job["output"]
    for bad in (url.replace("/0.png", "/1.png"), url.replace("expires=", "expires=9"), url.split("&signature=")[0]):
        answer = api.get(path_of(bad))
        assert answer.status_code == 403, bad
        assert answer.json["errors"][0]["field"] in ("signature", "expires")
    aws.client("s3").delete_object(Bucket=world.env["DARKROOM_OUTPUTS_BUCKET"],
                                   Key=f"{tenant.workspace_id}/generations/{job['id']}/0.png")
    assert api.get(path_of(url)).status_code == 404
