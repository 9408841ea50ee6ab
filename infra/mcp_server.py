"""`darkroom mcp`: Darkroom as an MCP server over stdio, for agents (Claude Desktop / Code, Cursor, …).

Each tool is one or two calls of the public HTTP API through infra/client.py, the same client the CLI uses.
Generations wait with progress notifications and return the output URLs plus a small inline thumbnail.
API failures are tool errors (isError results with the API's own message); the server keeps running.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any, Literal, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ImageContent, TextContent
from pydantic import BaseModel, ConfigDict, Field

from infra.client import (
    LORA_SCALE_RANGE,
    MAX_LORAS,
    ApiError,
    Config,
    DarkroomClient,
    lora_source,
    output_urls,
)

T = TypeVar("T")

INSTRUCTIONS = """Darkroom generates images and short videos from prompts and reference images on the user's own
self-hosted stack. Every generation costs credits from the workspace's pool (see `account`; prices per image
or per video second are in `list_models`). Generation tools wait for the result and return presigned output
URLs (valid 24 h) and a thumbnail. A failed call is a tool error carrying the API's message, which names the
bad field: fix that argument and try again; do not retry unchanged."""

Prompt = Annotated[str, Field(description="What to generate, in plain words (up to 4000 characters).")]
Model = Annotated[str | None, Field(description="Model id from list_models; omit for the tool's default model.")]
Size = Annotated[str | None, Field(description='Output size "WIDTHxHEIGHT", e.g. "1024x1024"; each side a multiple '
                                               'of 16 between 256 and 2048. Omit for the model default.')]
AspectRatio = Annotated[str | None, Field(description='Aspect ratio such as "16:9" or "1:1", at the model\'s '
                                                      'default area; wins over size.')]
Seed = Annotated[int | None, Field(ge=0, description="Random seed: the same seed and inputs give the same output.")]
Style = Annotated[str | None, Field(description="A style preset's slug from list_styles (e.g. cinematic, pixel-art).")]
Negative = Annotated[str | None, Field(description="What to keep out of the image (negative prompt).")]
Steps = Annotated[int | None, Field(ge=1, description="Denoising steps; omit for the model's default.")]
Webhook = Annotated[str | None, Field(description="Optional https URL that gets the signed result when it finishes.")]
Wait = Annotated[bool, Field(description="Wait for the result (default). False returns the id at once; "
                                         "then poll get_generation.")]
Thumbnail = Annotated[bool, Field(description="Attach a small JPEG thumbnail of the result as image content.")]
Format = Annotated[Literal["png", "jpeg", "webp"] | None, Field(description="Image file format (default png).")]


class LoraAdapter(BaseModel):
    """One LoRA adapter for one generation."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1, max_length=2048,
                      description="A registered LoRA's id (lora_…, from list_loras / add_lora), a public Hugging Face "
                                  "file (owner/name, or owner/name/file.safetensors; @revision optional), or an "
                                  "https URL to a .safetensors file.")
    scale: float = Field(1.0, ge=LORA_SCALE_RANGE[0], le=LORA_SCALE_RANGE[1],
                         description="How strongly it applies: 0 off, 1 as trained (default), negative inverts it.")


Loras = Annotated[list[LoraAdapter] | None, Field(
    max_length=MAX_LORAS, description=f"Optional LoRA adapters (at most {MAX_LORAS}), applied together for this "
                                      "generation only; each must fit the model's base family (see list_loras).")]


def _text(doc: Any) -> TextContent:
    return TextContent(type="text", text=json.dumps(doc, indent=2))


def _summary(generation: dict[str, Any]) -> dict[str, Any]:
    """What an agent needs from a generation, without the request echo."""
    keys = ("id", "status", "model", "tool", "type", "error", "createdAt", "thumbnail", "shareUrl", "progress",
            "metadata", "loras")
    return {k: generation[k] for k in keys if generation.get(k) is not None} | {"outputs": output_urls(generation)}


def build(config: Config) -> MCPServer:
    client = DarkroomClient(config, timeout=60)
    server = MCPServer("darkroom", instructions=INSTRUCTIONS)

    async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """The blocking client in a worker thread; its failures become tool errors with the API's message."""
        try:
            return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))
        except ApiError as exc:
            raise ToolError(str(exc)) from None

    async def finished(gen_id: str, ctx: Context, timeout: float) -> dict[str, Any]:
        last, total = -1.0, None  # MCP progress must increase with every notification

        def report(generation: dict[str, Any]) -> None:
            nonlocal last, total
            step = generation.get("progress") or {}
            total = step.get("total") or total
            value, message = float(step.get("step", 0)), f"running, step {step.get('step')}/{total}"
            if not step:
                message = {"pending": "queued", "success": "done", "error": "failed"}.get(generation["status"],
                                                                                          "running")
            if generation["status"] in ("success", "error"):
                value = float(total or max(last + 1, 1))
            if value > last:
                last = value
                anyio.from_thread.run(ctx.report_progress, value, total, message)

        return await call(client.wait, gen_id, on_update=report, timeout=timeout)

    async def result(generation: dict[str, Any], thumbnail: bool) -> CallToolResult:
        if generation["status"] == "error":
            raise ToolError(f"Generation {generation['id']} failed: {generation.get('error') or 'unknown error'}")
        content: list[TextContent | ImageContent] = [_text(_summary(generation))]
        if thumbnail and generation.get("thumbnail"):
            data = await call(client.fetch, generation["thumbnail"])
            content.append(ImageContent(type="image", data=base64.b64encode(data).decode(), mime_type="image/jpeg"))
        return CallToolResult(content=content)

    async def generate(kind: str, prompt: str, ctx: Context, *, wait: bool, thumbnail: bool, timeout: float,
                       loras: list[LoraAdapter] | None = None, **request: Any) -> CallToolResult:
        adapters = [lora.model_dump() for lora in loras or []] or None
        created = await call(client.submit, kind, prompt, loras=adapters, **request)
        if not wait:
            return CallToolResult(content=[_text(created | {"hint": "poll get_generation with this id"})])
        return await result(await finished(created["id"], ctx, timeout), thumbnail)

    @server.tool()
    async def generate_image(
        prompt: Prompt, ctx: Context, model: Model = None, size: Size = None, aspect_ratio: AspectRatio = None,
        n: Annotated[int, Field(ge=1, le=10, description="Number of images, made as one batch.")] = 1,
        seed: Seed = None, style: Style = None, negative_prompt: Negative = None, steps: Steps = None,
        output_format: Format = None,
        reference_images: Annotated[list[str] | None, Field(
            description="Optional reference images (http(s) URLs, upload:// references or local file paths, "
                        "uploaded for you): turns this into image-to-image.")] = None,
        loras: Loras = None, webhook: Webhook = None, wait: Wait = True, include_thumbnail: Thumbnail = True,
    ) -> CallToolResult:
        """Generate images from a text prompt. Waits (with progress) and returns the image URLs and a thumbnail.
        Costs the model's credits per image."""
        return await generate("image", prompt, ctx, wait=wait, thumbnail=include_thumbnail, timeout=600,
                              loras=loras, model=model, references=reference_images, webhook=webhook, size=size,
                              aspect_ratio=aspect_ratio, n=n if n != 1 else None, seed=seed, style=style,
                              negative_prompt=negative_prompt, steps=steps, output_format=output_format)

    @server.tool()
    async def edit_image(
        image: Annotated[str, Field(description="The image to change: an http(s) URL, an upload:// reference, "
                                                "or a local file path (uploaded for you).")],
        prompt: Annotated[str, Field(description="How the image should change, or what it should become.")],
        ctx: Context, model: Model = None,
        strength: Annotated[float | None, Field(gt=0, le=1, description="How far to depart from the image: "
                                                                        "low keeps it, 1 redraws it.")] = None,
        size: Size = None, seed: Seed = None, style: Style = None, negative_prompt: Negative = None,
        steps: Steps = None, output_format: Format = None, loras: Loras = None, webhook: Webhook = None,
        wait: Wait = True, include_thumbnail: Thumbnail = True,
    ) -> CallToolResult:
        """Edit an image following a prompt (image-to-image). Returns the new image's URL and a thumbnail."""
        return await generate("image", prompt, ctx, wait=wait, thumbnail=include_thumbnail, timeout=600,
                              loras=loras, model=model, references=[image], webhook=webhook, strength=strength, size=size,
                              seed=seed, style=style, negative_prompt=negative_prompt, steps=steps,
                              output_format=output_format)

    @server.tool()
    async def generate_video(
        prompt: Prompt, ctx: Context, model: Model = None, size: Size = None, aspect_ratio: AspectRatio = None,
        duration: Annotated[float | None, Field(gt=0, le=60, description="Length in seconds, snapped to the "
                                                                         "model's supported lengths.")] = None,
        fps: Annotated[int | None, Field(ge=1, le=60, description="Frames per second.")] = None,
        seed: Seed = None, style: Style = None, negative_prompt: Negative = None, steps: Steps = None,
        first_frame: Annotated[str | None, Field(
            description="Optional first frame to animate: an http(s) URL, an upload:// reference or a local "
                        "file path.")] = None,
        loras: Loras = None, webhook: Webhook = None, wait: Wait = True, include_thumbnail: Thumbnail = True,
    ) -> CallToolResult:
        """Generate a short mp4 video from a prompt (or animate a first frame). Slower than images; costs the
        model's credits per second of video. Returns the video URL and a poster-frame thumbnail."""
        return await generate("video", prompt, ctx, wait=wait, thumbnail=include_thumbnail, timeout=900,
                              loras=loras, model=model, references=[first_frame] if first_frame else None, webhook=webhook,
                              size=size, aspect_ratio=aspect_ratio, duration=duration, fps=fps, seed=seed,
                              style=style, negative_prompt=negative_prompt, steps=steps)

    @server.tool()
    async def get_generation(
        generation_id: Annotated[str, Field(description="The generation id returned by a generate tool.")],
        ctx: Context,
        wait: Annotated[bool, Field(description="Wait until it finishes (with progress).")] = False,
        include_thumbnail: Thumbnail = True,
    ) -> CallToolResult:
        """A generation's status (pending, processing with step i/N, success, error) and its output URLs."""
        generation = await finished(generation_id, ctx, 900) if wait else await call(client.generation, generation_id)
        if generation["status"] == "success":
            return await result(generation, include_thumbnail)
        return CallToolResult(content=[_text(_summary(generation))])

    @server.tool()
    async def cancel_generation(
        generation_id: Annotated[str, Field(description="The generation id to cancel.")],
    ) -> dict[str, Any]:
        """Cancel a queued or running generation; its credits are refunded. Finished ones cannot be canceled."""
        return _summary(await call(client.cancel, generation_id))

    @server.tool()
    async def share_generation(
        generation_id: Annotated[str, Field(description="The generation id to share or unshare.")],
        public: Annotated[bool, Field(description="True: give it a public page anyone with the link can open "
                                                  "(no key). False: take the page down; its old link stops "
                                                  "working.")] = True,
    ) -> dict[str, Any]:
        """Give a finished generation a public share page (returns its share_url), or make it private again."""
        return await call(client.share, generation_id, public)

    @server.tool()
    async def list_generations(
        status: Annotated[Literal["pending", "processing", "success", "error", "canceled"] | None,
                          Field(description="Only generations in this state.")] = None,
        limit: Annotated[int, Field(ge=1, le=100, description="At most this many, newest first.")] = 20,
        offset: Annotated[int, Field(ge=0, description="Skip this many (paging).")] = 0,
    ) -> dict[str, Any]:
        """The workspace's recent generations, newest first, with their status and output URLs."""
        page = await call(client.generations, status=status, limit=limit, offset=offset)
        return {"generations": [_summary(g) | {"prompt": (g.get("payload") or {}).get("prompt")}
                                for g in page["data"]], "pagination": page["pagination"]}

    @server.tool()
    async def list_models() -> dict[str, Any]:
        """Models: id, task (text-to-image, image-to-image, text-to-video, image-to-video), credits, defaults."""
        return {"models": await call(client.models)}

    @server.tool()
    async def list_styles() -> dict[str, Any]:
        """Style presets to pass as `style`: slug, name, description and the prompt template each applies."""
        return {"styles": await call(client.styles)}

    @server.tool()
    async def list_loras() -> dict[str, Any]:
        """The workspace's registered LoRA adapters (id, name, the base families each fits, rank, size, source) and
        its LoRA quota. Pass an id as a generate tool's loras[].path."""
        page = await call(client.loras)
        return {"loras": page["data"], "usage": page.get("usage")}

    @server.tool()
    async def add_lora(
        source: Annotated[str, Field(
            min_length=1, max_length=2048,
            description="Where the .safetensors LoRA is: an https URL, a Hugging Face file "
                        "(owner/name[/file.safetensors][@revision]; default file pytorch_lora_weights.safetensors), "
                        "or a local file path (uploaded for you, up to 2 GiB).")],
        name: Annotated[str | None, Field(min_length=1, max_length=100,
                                          description="A name for it; default: the file's name.")] = None,
    ) -> dict[str, Any]:
        """Register a LoRA adapter in the workspace. Only the file's header is read; it must be a diffusers/peft or
        kohya LoRA that fits a base family this deployment runs. Returns its record, whose id goes in loras[].path."""
        return await call(client.add_lora, lora_source(source), name)

    @server.tool()
    async def delete_lora(
        lora_id: Annotated[str, Field(description="The LoRA's id (lora_…) from list_loras.")],
    ) -> dict[str, Any]:
        """Delete a registered LoRA adapter; queued generations that use it fail and are refunded."""
        return await call(client.delete_lora, lora_id)

    @server.tool()
    async def account() -> dict[str, Any]:
        """The workspace's credit balance and usage, and this key's scopes and rate limit."""
        return await call(client.account)

    return server


def serve(config: Config) -> None:
    # stdout is the protocol; logs go to stderr, and httpx's would print presigned URLs on every poll.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    build(config).run("stdio")
