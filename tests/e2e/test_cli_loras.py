"""`darkroom loras …` and `darkroom generate … --lora` against the real `darkroom dev` stack, through the public
HTTP API only, with a real (tiny, peft-made) LoRA that fits the tiny pipelines the local stack runs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infra import client as client_module
from infra.cli import app

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

SMALL = "256x256"


@pytest.fixture(scope="module")
def ink(tmp_path_factory) -> Path:
    from gpu.tiny import ensure_tiny_lora

    return ensure_tiny_lora("flux", tmp_path_factory.mktemp("tiny-loras"), "ink")


def test_lora_add_list_show_generate_delete(cli, ink):
    added = cli.json("loras", "add", str(ink), "--name", "ink")
    lora_id = added["id"]
    assert lora_id.startswith("lora_") and added["name"] == "ink" and added["source"] == "upload", added
    assert "flux" in added["families"] and added["size"] == ink.stat().st_size

    listed = cli.json("loras", "list")
    assert lora_id in {r["id"] for r in listed["data"]} and listed["usage"]["count"] >= 1
    table = cli("loras", "list").stdout
    assert lora_id in table and "ink" in table and "flux" in table

    shown = cli.json("loras", "show", lora_id)
    assert shown["id"] == lora_id and shown["rank"] == added["rank"]
    text = cli("loras", "show", lora_id).stdout
    assert lora_id in text and f"--lora {lora_id}" in text

    done = cli.json("generate", "image", "a lighthouse", "--size", SMALL, "--steps", "2", "--seed", "7",
                    "--model", "flux-schnell", "--lora", f"{lora_id}:0.5")
    assert done["status"] == "success", done
    sha = hashlib.sha256(ink.read_bytes()).hexdigest()
    assert done["payload"]["loras"] == [{"path": lora_id, "scale": 0.5}], done["payload"]
    assert done["loras"] == [{"path": lora_id, "id": lora_id, "name": "ink", "scale": 0.5, "sha256": sha}]
    assert cli.json("get", done["id"])["loras"][0]["scale"] == 0.5
    assert "scale 0.5" in cli("get", done["id"]).stdout  # the human view names the adapters too

    deleted = cli.json("loras", "delete", lora_id)
    assert deleted == {"id": lora_id, "object": "lora", "deleted": True}
    assert lora_id not in {r["id"] for r in cli.json("loras", "list")["data"]}
    missing = cli.json("loras", "show", lora_id, code=1)
    assert missing["error"]["status"] == 404
    # A deleted LoRA is the API's 400 at submit, naming the field, not a failed job.
    refused = cli("generate", "image", "x", "--lora", lora_id, code=1)
    assert "input.loras.0.path" in refused.stderr and refused.stdout == ""


def test_a_large_lora_goes_through_a_presigned_upload(cli, ink, monkeypatch):
    monkeypatch.setattr(client_module, "LORA_FORM_MAX_BYTES", 16)  # the tiny file counts as "over 4 MiB"
    uploads: list[dict] = []
    upload = client_module.DarkroomClient.upload

    def spy(self, path, **kwargs):
        uploads.append(kwargs)
        return upload(self, path, **kwargs)

    monkeypatch.setattr(client_module.DarkroomClient, "upload", spy)
    added = cli.json("loras", "add", str(ink))
    assert uploads == [{"purpose": "lora"}]
    assert added["source"] == "upload" and added["name"] == ink.name and added["size"] == ink.stat().st_size
    assert cli("loras", "delete", added["id"]).stdout.strip() == f"Deleted {added['id']}"


def test_a_file_that_is_no_lora_is_the_apis_400(cli, tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    result = cli("loras", "add", str(junk), code=1)
    assert "file" in result.stderr and result.stdout == ""
    missing = cli("loras", "add", str(tmp_path / "nope.safetensors"), code=1)
    assert "No such file" in missing.stderr
    unknown = cli("loras", "add", "not a source", code=1)
    assert "Not a LoRA source" in unknown.stderr


@pytest.mark.parametrize("value", ["lora_0123456789abcdef01234567:abc", "lora_0123456789abcdef01234567:9",
                                   ":0.5", "lora_0123456789abcdef01234567:-4.5"])
def test_a_bad_lora_value_is_a_usage_error(value):
    # Usage errors are found before any request: a URL that answers nothing proves it.
    result = CliRunner().invoke(app, ["generate", "image", "x", "--lora", value, "--url", "http://127.0.0.1:9",
                                      "--api-key", "dr_x"], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.stdout + result.stderr
    assert "--lora" in result.stderr and "Traceback" not in result.stderr


def test_more_than_four_loras_is_a_usage_error():
    args = ["generate", "video", "x", "--url", "http://127.0.0.1:9", "--api-key", "dr_x"]
    for i in range(5):
        args += ["--lora", f"owner/name{i}"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "at most 4" in result.stderr, result.stderr
