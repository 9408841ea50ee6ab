"""A workspace's own LoRA adapters through the api function on the local stack (moto over HTTP): registration
from a multipart file, a presigned upload, a URL and the Hub (both on loopback), reading only the header;
listing, reading, deleting; another workspace's ids are 404; the caps (409) and the size limit (413); hostile
URLs refused before any connection."""

from __future__ import annotations

import http.client
import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import numpy as np
import pytest
from safetensors.numpy import save

from functions.core import lora_files, loras, storage, urls
from functions.core.settings import get_settings

# The local stack judges LoRAs against the tiny weights' signatures; a fixture catalog stands in for the
# generated functions/core/lora_signatures.json.
SIGNATURES = {"families": {"flux": {"tiny": {"transformer.single_transformer_blocks.0.attn.to_q": [32, 32],
                                             "transformer.transformer_blocks.0.attn.to_k": [32, 32]},
                                    "real": {}}}}


def lora_bytes(rank: int = 4, modules: tuple[str, ...] = ("transformer.single_transformer_blocks.0.attn.to_q",),
               width: int = 32) -> bytes:
    tensors = {}
    for module in modules:
        tensors[f"{module}.lora_A.weight"] = np.zeros((rank, width), np.float16)
        tensors[f"{module}.lora_B.weight"] = np.ones((width, rank), np.float16)
    return save(tensors)


LORA = lora_bytes()


@pytest.fixture(autouse=True)
def signatures(monkeypatch):
    monkeypatch.setattr(lora_files, "_signatures", lambda: SIGNATURES)


@contextmanager
def range_server(files: dict[str, bytes], *, redirects: dict[str, str] | None = None,
                 headers: dict[str, str] | None = None) -> Iterator[tuple[str, list[str]]]:
    """127.0.0.1, answering Range requests with 206 (as S3, the Hub's CDN and most servers do); yields its base URL
    and the Range headers it was sent."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Range", ""))
            if self.path in (redirects or {}):
                self.send_response(302)
                self.send_header("Location", redirects[self.path])
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                return
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            start, end = 0, len(body) - 1
            if self.headers.get("Range", "").startswith("bytes="):
                first, _, last = self.headers["Range"][6:].partition("-")
                start, end = int(first), min(int(last), len(body) - 1)
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(end - start + 1))
            self.end_headers()
            self.wfile.write(body[start:end + 1])

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def post_file(api, tenant, data: bytes, name: str | None = None, filename: str = "style.safetensors"):
    form = {"file": (io.BytesIO(data), filename, "application/octet-stream")}
    if name is not None:
        form["name"] = name
    return api.post("/api/loras", data=form, headers=tenant.headers, content_type="multipart/form-data")


def test_multipart_registration_list_get_and_delete(world, api, tenant):
    resp = post_file(api, tenant, LORA, name="my style")
    assert resp.status_code == 201, resp.get_data(as_text=True)
    lora = resp.json
    assert lora["id"].startswith("lora_") and lora["object"] == "lora" and lora["name"] == "my style"
    assert lora["source"] == "upload" and lora["size"] == len(LORA) and lora["layout"] == "diffusers"
    assert lora["rank"] == 4 and lora["families"] == ["flux"] and lora["weights"] == "tiny"
    assert "key" not in lora and "workspace_id" not in lora
    key = f"{tenant.workspace_id}/loras/{lora['id']}.safetensors"
    assert storage.get_bytes(key, bucket=get_settings().adapters_bucket) == LORA
    record = loras.resolve(tenant.workspace_id, lora["id"])
    assert record is not None and record.key == key and record.workspace_id == tenant.workspace_id

    listed = api.get("/api/loras", headers=tenant.headers)
    assert listed.status_code == 200 and [x["id"] for x in listed.json["data"]] == [lora["id"]]
    assert listed.json["usage"]["count"] == 1 and listed.json["usage"]["bytes"] == len(LORA)
    assert api.get(f"/api/loras/{lora['id']}", headers=tenant.headers).json == lora

    gone = api.delete(f"/api/loras/{lora['id']}", headers=tenant.headers)
    assert gone.status_code == 200 and gone.json == {"id": lora["id"], "object": "lora", "deleted": True}
    assert api.get(f"/api/loras/{lora['id']}", headers=tenant.headers).status_code == 404
    assert api.delete(f"/api/loras/{lora['id']}", headers=tenant.headers).status_code == 404
    with pytest.raises(storage.ObjectMissing):
        storage.open_object(key)
    assert api.get("/api/loras", headers=tenant.headers).json["usage"] == {
        "count": 0, "bytes": 0, "max_count": 50, "max_bytes": 10 * 1024 ** 3}


def test_another_workspace_sees_none_of_it(world, api, tenant, new_tenant):
    lora = post_file(api, tenant, LORA).json
    other = new_tenant()
    assert api.get(f"/api/loras/{lora['id']}", headers=other.headers).status_code == 404
    refused = api.delete(f"/api/loras/{lora['id']}", headers=other.headers)
    assert refused.status_code == 404 and set(refused.json) == {"message", "errors"}
    assert api.get("/api/loras", headers=other.headers).json["data"] == []
    assert loras.resolve(other.workspace_id, lora["id"]) is None
    assert loras.resolve(tenant.workspace_id, lora["id"]) is not None  # untouched
    assert loras.resolve(tenant.workspace_id, "lora_../../x") is None


def test_presigned_upload_then_register(world, api, tenant):
    data = lora_bytes(rank=8, modules=("transformer.single_transformer_blocks.0.attn.to_q",
                                       "transformer.transformer_blocks.0.attn.to_k"))
    images_only = api.post("/api/uploads", json={"filename": "a.safetensors", "content_type": "application/octet-stream"},
                           headers=tenant.headers)
    assert images_only.status_code == 400  # uploads are images unless they say they are a LoRA
    pickled = api.post("/api/uploads", json={"filename": "a.bin", "content_type": "application/octet-stream",
                                             "purpose": "lora"}, headers=tenant.headers)
    assert pickled.status_code == 400 and pickled.json["errors"][0]["field"] == "filename"
    upload = api.post("/api/uploads", json={"filename": "big style.safetensors", "purpose": "lora",
                                            "content_type": "application/octet-stream"}, headers=tenant.headers)
    assert upload.status_code == 201, upload.json
    assert upload.json["max_bytes"] == lora_files.MAX_LORA_BYTES
    posted = httpx.post(upload.json["upload"]["url"], data=upload.json["upload"]["fields"],
                        files={"file": ("x.safetensors", data, "application/octet-stream")})
    assert posted.status_code in (200, 204), posted.text

    other = api.post("/api/loras", json={"upload": upload.json["reference"]},
                     headers={"Authorization": _other_key(world)})
    assert other.status_code == 400 and other.json["errors"][0]["field"] == "upload"

    resp = api.post("/api/loras", json={"upload": upload.json["reference"]}, headers=tenant.headers)
    assert resp.status_code == 201, resp.json
    assert resp.json["name"] == "big-style.safetensors" and resp.json["rank"] == 8 and resp.json["module_count"] == 2
    copied = loras.resolve(tenant.workspace_id, resp.json["id"]).key
    assert copied == f"{tenant.workspace_id}/loras/{resp.json['id']}.safetensors" and storage.get_bytes(copied, bucket=get_settings().adapters_bucket) == data


def _other_key(world) -> str:
    from tests.integration.conftest import make_tenant

    return make_tenant().key


def test_refused_files_name_the_field_and_store_nothing(world, api, tenant):
    for data, reason in ((b"\x80\x04\x95" + b"\x00" * 64, "pickle"), (b"PK\x03\x04" + b"\x00" * 64, "zip"),
                         (lora_bytes(width=48), "fits no base family"),
                         (LORA[:-7], "truncated")):
        resp = post_file(api, tenant, data)
        assert resp.status_code == 400, resp.json
        assert resp.json["errors"][0]["field"] == "file" and reason in resp.json["errors"][0]["message"], resp.json
    bad_ref = api.post("/api/loras", json={"upload": "upload://../../etc/passwd"}, headers=tenant.headers)
    assert bad_ref.status_code == 400 and bad_ref.json["errors"][0]["field"] == "upload"
    for body, field in (({}, "upload"), ({"url": "https://a.example/x", "hf_repo": "a/b"}, "hf_repo"),
                        ({"url": "https://a.example/x", "revision": "main"}, "revision"),
                        ({"hf_repo": "not a repo"}, "hf_repo"), ({"hf_repo": "a/b", "weight_name": "x.bin"}, "weight_name")):
        resp = api.post("/api/loras", json=body, headers=tenant.headers)
        assert resp.status_code == 400 and resp.json["errors"][0]["field"] == field, (body, resp.json)
    assert api.get("/api/loras", headers=tenant.headers).json["data"] == []


def test_register_from_a_url_reads_only_the_header(world, api, tenant):
    big = LORA
    with range_server({"/style.safetensors": big, "/x.bin": b"\x80\x04junk"},
                      redirects={"/moved": "/style.safetensors"}) as (base, ranges):
        resp = api.post("/api/loras", json={"url": f"{base}/moved", "name": "from the web"}, headers=tenant.headers)
        assert resp.status_code == 201, resp.json
        assert resp.json["source"] == "url" and resp.json["url"] == f"{base}/moved" and resp.json["size"] == len(big)
        assert ranges and all(r.startswith("bytes=0-") for r in ranges)
        refused = api.post("/api/loras", json={"url": f"{base}/x.bin"}, headers=tenant.headers)
        assert refused.status_code == 400 and refused.json["errors"][0]["field"] == "url"
        assert "pickle" in refused.json["errors"][0]["message"]
        missing = api.post("/api/loras", json={"url": f"{base}/nothing"}, headers=tenant.headers)
        assert missing.status_code == 400 and "HTTP 404" in missing.json["errors"][0]["message"]
    assert api.get("/api/loras", headers=tenant.headers).json["usage"]["bytes"] == 0  # nothing stored


def test_a_long_header_takes_a_second_ranged_read(world, api, tenant, monkeypatch):
    modules = tuple(f"transformer.transformer_blocks.{i}.attn.to_{p}" for i in range(1500) for p in "qkv")
    data = lora_bytes(modules=modules)
    assert lora_files.header_length(data[:8]) > lora_files.HEADER_PREFIX_BYTES
    signatures = {"families": {"flux": {"tiny": {key: [32, 32] for key in modules}}}}
    monkeypatch.setattr(lora_files, "_signatures", lambda: signatures)
    with range_server({"/many.safetensors": data}) as (base, ranges):
        resp = api.post("/api/loras", json={"url": f"{base}/many.safetensors"}, headers=tenant.headers)
    assert resp.status_code == 201, resp.json
    assert resp.json["module_count"] == 4500 and len(ranges) == 2


def test_register_from_the_hub(world, api, tenant, monkeypatch):
    with range_server({"/owner/style/resolve/v1/loras/a.safetensors": LORA},
                      redirects={"/owner/style/resolve/main/pytorch_lora_weights.safetensors":
                                 "/owner/style/resolve/v1/loras/a.safetensors"},
                      headers={"X-Repo-Commit": "0123456789abcdef0123456789abcdef01234567"}) as (base, _):
        monkeypatch.setattr(loras, "HUB", base)  # huggingface.co, on loopback
        resp = api.post("/api/loras", json={"hf_repo": "owner/style"}, headers=tenant.headers)
        assert resp.status_code == 201, resp.json
        assert resp.json["hf_repo"] == "owner/style" and resp.json["weight_name"] == "pytorch_lora_weights.safetensors"
        assert resp.json["revision"] == "main" and resp.json["commit"] == "0123456789abcdef0123456789abcdef01234567"
        named = api.post("/api/loras", json={"hf_repo": "owner/style", "weight_name": "loras/a.safetensors",
                                             "revision": "v1"}, headers=tenant.headers)
        assert named.status_code == 201, named.json
        missing = api.post("/api/loras", json={"hf_repo": "owner/style", "weight_name": "b.safetensors"},
                           headers=tenant.headers)
        assert missing.status_code == 400 and missing.json["errors"][0]["field"] == "weight_name"
    assert loras.hub_url("o/r", "x.safetensors", "main").endswith("/o/r/resolve/main/x.safetensors")


def test_hostile_urls_are_refused_without_a_connection(world, api, tenant, monkeypatch):
    def no_connection(*_args, **_kwargs):
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(http.client.HTTPConnection, "connect", no_connection)
    real_resolve = urls._resolve
    monkeypatch.setattr(urls, "_resolve", lambda name, port: [urls.ipaddress.ip_address("169.254.169.254")]
                        if name == "lora.attacker.example" else real_resolve(name, port))
    for url in ("http://169.254.169.254/latest/meta-data/iam", "https://lora.attacker.example/a.safetensors",
                "https://metadata.google.internal/x", "https://10.0.0.8/a.safetensors", "file:///etc/passwd",
                "https://user:pw@example.com/a", "http://0x7f000001/a"):
        resp = api.post("/api/loras", json={"url": url}, headers=tenant.headers)
        assert resp.status_code == 400, (url, resp.json)
        assert resp.json["errors"][0]["field"] == "url" and "not allowed" in resp.json["errors"][0]["message"], url


def test_caps_are_409_and_too_large_is_413(world, api, tenant, monkeypatch):
    monkeypatch.setenv("DARKROOM_LORA_MAX_PER_WORKSPACE", "2")
    monkeypatch.setenv("DARKROOM_LORA_MAX_BYTES_PER_WORKSPACE", str(len(LORA) + 10))
    get_settings.cache_clear()
    assert post_file(api, tenant, LORA).status_code == 201
    full = post_file(api, tenant, LORA)
    assert full.status_code == 409 and "storage" in full.json["message"], full.json
    with range_server({"/a.safetensors": LORA}) as (base, _):
        assert api.post("/api/loras", json={"url": f"{base}/a.safetensors"}, headers=tenant.headers).status_code == 201
        count = api.post("/api/loras", json={"url": f"{base}/a.safetensors"}, headers=tenant.headers)
        assert count.status_code == 409 and "the most it may have (2)" in count.json["message"]
    assert len(api.get("/api/loras", headers=tenant.headers).json["data"]) == 2
    assert len(_keys(world, tenant.workspace_id)) == 1  # the refused upload left no file behind

    monkeypatch.setattr(loras, "MAX_LORA_BYTES", len(LORA) - 1)
    other = _fresh(world)
    big = post_file(api, other, LORA)
    assert big.status_code == 413 and big.json["errors"][0]["field"] == "file", big.json
    with range_server({"/a.safetensors": LORA}) as (base, _):
        remote = api.post("/api/loras", json={"url": f"{base}/a.safetensors"}, headers=other.headers)
        assert remote.status_code == 413 and remote.json["errors"][0]["field"] == "url"
    from functions.api import loras as api_loras

    monkeypatch.setattr(api_loras, "MAX_MULTIPART_BYTES", 10)
    form = post_file(api, other, LORA)
    assert form.status_code == 413 and "POST /api/uploads" in form.json["errors"][0]["message"]


def _fresh(world):
    from tests.integration.conftest import make_tenant

    return make_tenant()


def _keys(world, workspace_id: str) -> list[str]:
    import boto3

    s3 = boto3.client("s3", endpoint_url=world.endpoint, region_name="us-east-1", aws_access_key_id="local",
                      aws_secret_access_key="local")
    listed = s3.list_objects_v2(Bucket=get_settings().adapters_bucket, Prefix=f"{workspace_id}/loras/")
    return [o["Key"] for o in listed.get("Contents", [])]
