"""`darkroom mcp` as an MCP client runs it: a subprocess over stdio (the SDK's stdio_client and ClientSession),
configured only by DARKROOM_URL / DARKROOM_API_KEY, pointed at the real `darkroom dev` stack."""

from __future__ import annotations

import base64
import io
import json
import re
import sys
from pathlib import Path

import anyio
import httpx
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from PIL import Image

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

DARKROOM = Path(sys.executable).with_name("darkroom")
REQUIRED_TOOLS = {"generate_image", "generate_video", "edit_image", "get_generation", "list_generations",
                  "share_generation", "list_models", "list_styles", "account"}


def test_mcp_server_over_stdio(stack, tmp_path):
    report: dict = {}

    async def session(errlog) -> None:
        params = StdioServerParameters(command=str(DARKROOM), args=["mcp"], cwd=str(tmp_path),
                                       env={"DARKROOM_URL": stack.url, "DARKROOM_API_KEY": stack.api_key})
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            report["tools"] = (await client.list_tools()).tools
            progress: list[tuple[float, float | None, str | None]] = []

            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                progress.append((value, total, message))

            report["image"] = await client.call_tool(
                "generate_image", {"prompt": "a red fox in snow", "size": "256x256", "seed": 11},
                progress_callback=on_progress)
            report["progress"] = progress
            report["unknown_model"] = await client.call_tool("generate_image",
                                                             {"prompt": "x", "model": "no-such-model"})
            report["bad_argument"] = await client.call_tool("list_generations", {"limit": 1000})
            report["missing"] = await client.call_tool("get_generation", {"generation_id": "0" * 24})
            # Still serving after the errors.
            report["account"] = await client.call_tool("account", {})
            report["listed"] = await client.call_tool("list_generations", {"status": "success", "limit": 5})
            made = json.loads(next(c for c in report["image"].content if c.type == "text").text)["id"]
            report["shared"] = await client.call_tool("share_generation", {"generation_id": made})
            link = (report["shared"].structured_content or {}).get("share_url", "")
            async with httpx.AsyncClient(timeout=30) as web:  # public while shared: no key
                report["page_shared"] = (await web.get(link)).status_code if link else None
                report["unshared"] = await client.call_tool("share_generation",
                                                            {"generation_id": made, "public": False})
                report["page_unshared"] = (await web.get(link)).status_code if link else None

    async def bounded(errlog) -> None:
        with anyio.fail_after(240):
            await session(errlog)

    with open(tmp_path / "mcp-stderr.log", "w") as errlog:
        anyio.run(bounded, errlog)

    tools = {t.name: t for t in report["tools"]}
    assert REQUIRED_TOOLS <= set(tools), sorted(tools)
    for tool in tools.values():
        assert tool.description and len(tool.description) > 20, tool.name
        for name, prop in tool.input_schema.get("properties", {}).items():
            assert prop.get("description"), f"{tool.name}.{name} has no description"
    assert "prompt" in tools["generate_image"].input_schema["required"]
    assert {"image", "prompt"} <= set(tools["edit_image"].input_schema["required"])

    image = report["image"]
    assert not image.is_error, image.content
    text = next(c for c in image.content if c.type == "text")
    generation = json.loads(text.text)
    assert generation["status"] == "success" and len(generation["outputs"]) == 1
    output = httpx.get(generation["outputs"][0], timeout=30)
    assert output.status_code == 200
    assert Image.open(io.BytesIO(output.content)).size == (256, 256)
    thumb = next(c for c in image.content if c.type == "image")
    assert thumb.mime_type == "image/jpeg"
    assert Image.open(io.BytesIO(base64.b64decode(thumb.data))).format == "JPEG"
    values = [p[0] for p in report["progress"]]
    assert values and values == sorted(set(values)), report["progress"]  # strictly increasing, as MCP requires

    unknown = report["unknown_model"]
    assert unknown.is_error and "Unknown model 'no-such-model'" in unknown.content[0].text
    assert report["bad_argument"].is_error and "limit" in report["bad_argument"].content[0].text
    assert report["missing"].is_error and "not found" in report["missing"].content[0].text

    account = report["account"]
    assert not account.is_error and account.structured_content["workspace"]["id"] == "dev"
    listed = report["listed"].structured_content
    assert generation["id"] in {g["id"] for g in listed["generations"]}

    assert not report["shared"].is_error and report["shared"].structured_content["public"] is True
    assert report["page_shared"] == 200
    assert report["unshared"].structured_content["public"] is False
    assert report["page_unshared"] == 404  # the old link is dead


def test_docs_name_the_real_tools():
    """README's MCP section and SKILL.md's list exactly the tools the server has (no stack needed to list them)."""
    from infra.client import Config
    from infra.mcp_server import build

    served = {t.name for t in anyio.run(build(Config(url="http://127.0.0.1:9", api_key="x", source="test")).list_tools)}
    assert REQUIRED_TOOLS <= served
    root = Path(__file__).resolve().parents[2]
    readme = root.joinpath("README.md").read_text().split("## MCP server", 1)[1].split("\n## ", 1)[0]
    skill = root.joinpath("SKILL.md").read_text().split("## MCP tools", 1)[1].split("\n## ", 1)[0]
    for name, section in (("README.md", readme), ("SKILL.md", skill)):
        named = set(re.findall(r"`([a-z]+_[a-z_]+|account)`", section))
        assert named == served, f"{name}: documents {sorted(named - served)}, misses {sorted(served - named)}"
