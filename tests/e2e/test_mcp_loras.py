"""`darkroom mcp`'s LoRA tools as an MCP client runs them: list_loras, add_lora, delete_lora and the generate tools'
`loras`, over stdio against the real `darkroom dev` stack, with a real tiny LoRA (gpu/tiny.py)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

DARKROOM = Path(sys.executable).with_name("darkroom")


def text_of(result) -> dict:
    return json.loads(next(c for c in result.content if c.type == "text").text)


def test_mcp_lora_tools_over_stdio(stack, tmp_path):
    from gpu.tiny import ensure_tiny_lora

    ink = ensure_tiny_lora("flux", tmp_path, "ink")
    report: dict = {}

    async def session(errlog) -> None:
        params = StdioServerParameters(command=str(DARKROOM), args=["mcp"], cwd=str(tmp_path),
                                       env={"DARKROOM_URL": stack.url, "DARKROOM_API_KEY": stack.api_key})
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            report["tools"] = (await client.list_tools()).tools
            report["added"] = added = await client.call_tool("add_lora", {"source": str(ink), "name": "ink"})
            lora_id = (added.structured_content or {}).get("id", "lora_missing")
            report["listed"] = await client.call_tool("list_loras", {})
            report["image"] = await client.call_tool("generate_image", {
                "prompt": "a lighthouse", "size": "256x256", "steps": 2, "seed": 7, "model": "flux-schnell",
                "include_thumbnail": False, "loras": [{"path": lora_id, "scale": 0.5}]})
            report["bad_scale"] = await client.call_tool("generate_image", {
                "prompt": "x", "loras": [{"path": lora_id, "scale": 9}]})
            report["bad_source"] = await client.call_tool("add_lora", {"source": "not a source"})
            # A loopback https URL with nothing behind it: the API's own 400 (never a non-loopback address).
            report["bad_url"] = await client.call_tool("add_lora",
                                                       {"source": "https://127.0.0.1:9/x.safetensors"})
            report["deleted"] = await client.call_tool("delete_lora", {"lora_id": lora_id})
            report["after"] = await client.call_tool("list_loras", {})
            report["deleted_again"] = await client.call_tool("delete_lora", {"lora_id": lora_id})

    async def bounded(errlog) -> None:
        with anyio.fail_after(240):
            await session(errlog)

    with open(tmp_path / "mcp-stderr.log", "w") as errlog:
        anyio.run(bounded, errlog)

    tools = {t.name: t for t in report["tools"]}
    assert {"list_loras", "add_lora", "delete_lora"} <= set(tools)
    for name in ("generate_image", "edit_image", "generate_video"):
        assert "loras" in tools[name].input_schema["properties"], name
    for name in ("list_loras", "add_lora", "delete_lora"):
        assert len(tools[name].description or "") > 20
        for prop, schema in tools[name].input_schema.get("properties", {}).items():
            assert schema.get("description"), f"{name}.{prop} has no description"

    added = report["added"]
    assert not added.is_error, added.content
    record = added.structured_content
    lora_id = record["id"]
    assert lora_id.startswith("lora_") and record["name"] == "ink" and "flux" in record["families"]
    assert lora_id in {r["id"] for r in report["listed"].structured_content["loras"]}
    assert report["listed"].structured_content["usage"]["count"] >= 1

    image = report["image"]
    assert not image.is_error, image.content
    generation = text_of(image)
    assert generation["status"] == "success" and len(generation["outputs"]) == 1
    sha = hashlib.sha256(ink.read_bytes()).hexdigest()
    assert generation["loras"] == [{"path": lora_id, "id": lora_id, "name": "ink", "scale": 0.5, "sha256": sha}]

    assert report["bad_scale"].is_error and "scale" in report["bad_scale"].content[0].text
    assert report["bad_source"].is_error and "Not a LoRA source" in report["bad_source"].content[0].text
    assert report["bad_url"].is_error and "url" in report["bad_url"].content[0].text

    assert not report["deleted"].is_error and report["deleted"].structured_content["deleted"] is True
    assert lora_id not in {r["id"] for r in report["after"].structured_content["loras"]}
    assert report["deleted_again"].is_error and "not found" in report["deleted_again"].content[0].text.lower()
