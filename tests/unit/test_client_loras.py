"""infra/client.py's LoRA calls and `--lora PATH[:SCALE]` parsing, without a stack: the requests the client sends,
caught by an httpx MockTransport on a loopback URL (nothing leaves this process)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import typer

from infra.client import ApiError, Config, DarkroomClient, lora_source
from infra.user_commands import parse_loras


@pytest.fixture
def sent() -> list[httpx.Request]:
    return []


@pytest.fixture
def client(sent):
    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        request.read()
        return httpx.Response(201, json={"id": "lora_" + "0" * 24, "object": "lora"})

    darkroom = DarkroomClient(Config(url="http://127.0.0.1:9", api_key="dr_x", source="test"))
    darkroom._http = httpx.Client(base_url="http://127.0.0.1:9", transport=httpx.MockTransport(handler))
    yield darkroom
    darkroom.close()


def body(request: httpx.Request) -> dict:
    return json.loads(request.content)


def test_string_sources_become_url_or_hub_bodies(client, sent):
    client.add_lora("https://example.com/a.safetensors", name="a")
    client.add_lora("owner/name")
    client.add_lora("owner/name/dir/x.safetensors@v1.0")
    assert [body(r) for r in sent] == [
        {"url": "https://example.com/a.safetensors", "name": "a"},
        {"hf_repo": "owner/name"},
        {"hf_repo": "owner/name", "weight_name": "dir/x.safetensors", "revision": "v1.0"},
    ]
    assert all(r.method == "POST" and r.url.path == "/api/loras" for r in sent)
    with pytest.raises(ApiError, match="Not a LoRA source"):
        client.add_lora("not a source")


def test_a_small_file_goes_in_a_form(client, sent, tmp_path):
    path = tmp_path / "tiny.safetensors"
    path.write_bytes(b"x" * 100)
    client.add_lora(path, name="tiny")
    [request] = sent
    assert request.headers["content-type"].startswith("multipart/form-data")
    assert b'name="file"; filename="tiny.safetensors"' in request.content and b'name="name"' in request.content
    with pytest.raises(ApiError, match="No such file"):
        client.add_lora(tmp_path / "missing.safetensors")


def test_submit_sends_loras_and_ids_are_quoted(client, sent):
    client.submit("image", "x", loras=[{"path": "lora_a", "scale": 0.5}, {"path": "o/n", "scale": None}])
    assert body(sent[0])["input"]["loras"] == [{"path": "lora_a", "scale": 0.5}, {"path": "o/n"}]
    client.submit("image", "x")
    assert "loras" not in body(sent[1])["input"]
    client.lora("../generations")
    client.delete_lora("lora_b")
    assert sent[2].url.raw_path == b"/api/loras/..%2Fgenerations" and sent[3].method == "DELETE"


def test_lora_source_tells_files_from_urls_and_hub_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "owner").mkdir()
    (tmp_path / "owner" / "name").write_bytes(b"x")  # an existing file wins over a Hub name of the same spelling
    assert lora_source("owner/name") == Path("owner/name")
    assert lora_source("other/name") == "other/name"
    assert lora_source("https://example.com/a.safetensors") == "https://example.com/a.safetensors"
    assert lora_source("style.safetensors") == Path("style.safetensors")
    assert lora_source("./dir/style.safetensors") == Path("dir/style.safetensors")


def test_parse_loras():
    assert parse_loras(None) == []
    assert parse_loras(["lora_a", "lora_b:0.5", "o/n/f.safetensors@v1:-2", "https://h.example/x.safetensors"]) == [
        {"path": "lora_a", "scale": 1.0}, {"path": "lora_b", "scale": 0.5},
        {"path": "o/n/f.safetensors@v1", "scale": -2.0}, {"path": "https://h.example/x.safetensors", "scale": 1.0}]
    assert parse_loras(["https://h.example/x.safetensors:1.5"]) == [
        {"path": "https://h.example/x.safetensors", "scale": 1.5}]
    for bad in ("lora_a:abc", "lora_a:4.5", ":1", "lora_a:nan", "lora_a:"):
        with pytest.raises(typer.BadParameter):
            parse_loras([bad])
    with pytest.raises(typer.BadParameter, match="at most 4"):
        parse_loras(["lora_a"] * 5)
