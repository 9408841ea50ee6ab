"""The user's side of `darkroom`: generate, watch, list, cancel, share, browse the catalog, upload, LoRA adapters
(`darkroom loras …`, `--lora` on generate), and the MCP server.

Every command goes through the public HTTP API (infra/client.py), so it works the same against `darkroom dev`
and a deployed stack. Human output is rich; `--json` prints exactly one JSON document on stdout (the API's
own, or {"error": …}) and nothing else there. Failures are one line on stderr and exit code 1.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column, Table

from infra.client import (
    DEFAULT_DATA_DIR,
    LORA_SCALE_RANGE,
    MAX_LORAS,
    ApiError,
    DarkroomClient,
    lora_source,
    output_urls,
    resolve_config,
)

PANEL = "Generate and browse (public API)"
app = typer.Typer()
generate_app = typer.Typer(help="Generate an image or a video, wait for it, download it.", no_args_is_help=True)
app.add_typer(generate_app, name="generate", rich_help_panel=PANEL)
loras_app = typer.Typer(help="Your workspace's LoRA adapters: register, list, show, delete (use them with "
                             "`darkroom generate … --lora ID[:SCALE]`).", no_args_is_help=True)
app.add_typer(loras_app, name="loras", rich_help_panel=PANEL)
out = Console()
err = Console(stderr=True)

Url = Annotated[str | None, typer.Option(
    "--url", help="API base URL (default: DARKROOM_URL, else .darkroom/dev.env, else .darkroom/deploy.env)")]
ApiKey = Annotated[str | None, typer.Option("--api-key", help="API key (default: DARKROOM_API_KEY, else the env file's)")]
DataDir = Annotated[Path, typer.Option(help="Where dev.env / deploy.env are looked for.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout (for scripts).")]
Timeout = Annotated[float, typer.Option(help="Seconds to wait for the result (it keeps running after).")]
OutDir = Annotated[Path | None, typer.Option("--out", "-o", help="Download the outputs into this folder.")]


class Format(str, Enum):
    png = "png"
    jpeg = "jpeg"
    webp = "webp"


# ---------------------------------------------------------------- plumbing


def _print_json(doc: Any) -> None:
    typer.echo(json.dumps(doc, indent=2))


def _fail(message: str, json_out: bool, doc: Any = None) -> None:
    if json_out:
        _print_json(doc if doc is not None else {"error": {"message": message}})
    err.print(f"[bold red]Error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


@contextmanager
def _api(url: str | None, api_key: str | None, data_dir: Path, json_out: bool) -> Iterator[DarkroomClient]:
    """A client for the configured stack; every ApiError becomes one line and exit 1, never a traceback."""
    try:
        with DarkroomClient(resolve_config(url, api_key, data_dir)) as client:
            yield client
    except ApiError as exc:
        _fail(str(exc), json_out, exc.to_json())


def _table(*headers: str) -> Table:
    # The first column is an id that other commands take: never wrapped or cut.
    return Table(Column(headers[0], no_wrap=True), *headers[1:])


def _label(generation: dict[str, Any]) -> str:
    return {"pending": "queued", "processing": "running", "success": "done", "error": "failed"}.get(
        generation["status"], generation["status"])


def _wait(client: DarkroomClient, gen_id: str, *, quiet: bool, timeout: float) -> dict[str, Any]:
    """Poll to the end, with a live display on stderr: queued, running step i/N, done."""
    if quiet:
        return client.wait(gen_id, timeout=timeout)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    try:
        with Progress(*columns, console=err) as progress:
            task = progress.add_task(f"{gen_id} queued", total=None)

            def show(generation: dict[str, Any]) -> None:
                step = generation.get("progress") or {}
                total = step.get("total") or progress.tasks[0].total
                done = step.get("step", 0)
                if generation["status"] == "success":
                    total = total or 1
                    done = total
                progress.update(task, description=f"{gen_id} {_label(generation)}", completed=done, total=total)

            return client.wait(gen_id, on_update=show, timeout=timeout)
    except KeyboardInterrupt:
        err.print(f"Stopped waiting; {gen_id} keeps running: darkroom get {gen_id} --watch")
        raise typer.Exit(130) from None


def _finish(client: DarkroomClient, generation: dict[str, Any], out_dir: Path | None, json_out: bool) -> None:
    """Show (and download) a finished generation; a failed one exits 1 with its own error."""
    if generation["status"] == "error":
        _fail(f"generation {generation['id']} failed: {generation.get('error') or 'unknown error'}", json_out,
              generation)
    files = client.download(generation, out_dir) if out_dir and generation["status"] == "success" else []
    if json_out:
        _print_json(generation | ({"files": [str(p) for p in files]} if out_dir else {}))
        return
    _show_generation(generation)
    for path in files:
        out.print(f"  saved  {path}", highlight=False)


def _show_generation(generation: dict[str, Any]) -> None:
    meta = generation.get("metadata") or {}
    size = f"{meta['width']}x{meta['height']}" if meta.get("width") else ""
    step = generation.get("progress")
    status = _label(generation) + (f" (step {step['step']}/{step['total']})" if step else "")
    colour = {"done": "green", "failed": "red"}.get(_label(generation), "yellow")
    out.print(f"[bold]{generation['id']}[/]  [{colour}]{status}[/]  {generation.get('model') or ''}  "
              f"{generation.get('tool') or ''}  {size}", highlight=False)
    if generation.get("error"):
        out.print(f"  error  {escape(generation['error'])}", highlight=False)
    for lora in generation.get("loras") or []:
        label = f"{lora['name']} ({lora['id']})" if lora.get("id") else lora.get("path", "")
        out.print(f"  lora   {escape(label)}  scale {lora.get('scale', 1.0):g}", highlight=False)
    for url in output_urls(generation):
        out.print(f"  output {url}", highlight=False, soft_wrap=True)


def _generate(kind: str, prompt: str, *, model: str | None, refs: list[str] | None, webhook: str | None,
              no_wait: bool, out_dir: Path | None, timeout: float, url: str | None, api_key: str | None,
              data_dir: Path, json_out: bool, loras: list[dict[str, Any]] | None = None, **options: Any) -> None:
    with _api(url, api_key, data_dir, json_out) as client:
        created = client.submit(kind, prompt, model=model, references=refs, webhook=webhook, loras=loras or None,
                                **options)
        if no_wait:
            if json_out:
                _print_json(created)
            else:
                typer.echo(created["id"])
            return
        _finish(client, _wait(client, created["id"], quiet=json_out, timeout=timeout), out_dir, json_out)


# ---------------------------------------------------------------- generate

Prompt = Annotated[str, typer.Argument(help="What to generate.")]
Model = Annotated[str | None, typer.Option("--model", "-m", help="Model id (`darkroom models`); default: the tool's.")]
Size = Annotated[str | None, typer.Option("--size", "-s", help='Output size "WIDTHxHEIGHT", e.g. 1024x1024.')]
Ratio = Annotated[str | None, typer.Option("--aspect-ratio", "-a", help='e.g. "16:9" (wins over --size).')]
Seed = Annotated[int | None, typer.Option(help="Same seed, same output.")]
Style = Annotated[str | None, typer.Option(help="A style preset's slug (`darkroom styles`).")]
Ref = Annotated[list[str] | None, typer.Option(
    "--ref", help="Reference image: a local file (uploaded for you), an http(s) URL or upload://…; repeatable.")]
Negative = Annotated[str | None, typer.Option("--negative", help="What to avoid (negative prompt).")]
Steps = Annotated[int | None, typer.Option(help="Denoising steps (model default if omitted).")]
Webhook = Annotated[str | None, typer.Option(help="URL to POST the signed result to when it finishes.")]
NoWait = Annotated[bool, typer.Option("--no-wait", help="Print the id at once; don't wait.")]

# PATH[:SCALE]: a scale is a number after the last ':' that follows the last '/' (so https://host/x.safetensors
# and owner/name@rev keep their own characters).
_SCALE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _bad_lora(message: str) -> typer.BadParameter:
    return typer.BadParameter(message, param_hint="'--lora'")


def parse_loras(values: list[str] | None) -> list[dict[str, Any]]:
    """--lora values as the API takes them, [{"path", "scale"}]; typer.BadParameter (a usage error) otherwise."""
    values = values or []
    if len(values) > MAX_LORAS:
        raise _bad_lora(f"at most {MAX_LORAS} LoRAs per generation, got {len(values)}")
    low, high = LORA_SCALE_RANGE
    parsed = []
    for value in values:
        path, scale = value.strip(), 1.0
        head, sep, tail = path.rpartition(":")
        if sep and "/" not in tail:
            if not _SCALE.match(tail.strip()):
                raise _bad_lora(f"{value!r}: the scale after ':' must be a number from {low:g} to {high:g}")
            path, scale = head.strip(), float(tail)
            if not math.isfinite(scale) or not low <= scale <= high:
                raise _bad_lora(f"{value!r}: the scale must be from {low:g} to {high:g}, got {tail}")
        if not path:
            raise _bad_lora(f"{value!r}: give PATH[:SCALE], a LoRA id (lora_…), a Hugging Face file "
                                     "(owner/name[/file.safetensors][@rev]) or an https URL, e.g. lora_…:0.8")
        parsed.append({"path": path, "scale": scale})
    return parsed


Lora = Annotated[list[str] | None, typer.Option(
    "--lora", metavar="PATH[:SCALE]",
    help=f"A LoRA adapter: its id (`darkroom loras list`), a Hugging Face file owner/name[/file.safetensors][@rev] "
         f"or an https URL, with an optional scale ({LORA_SCALE_RANGE[0]:g} to {LORA_SCALE_RANGE[1]:g}, default 1), "
         f"e.g. lora_…:0.8; repeatable, up to {MAX_LORAS}.")]


@generate_app.command("image")
def generate_image(
    prompt: Prompt,
    model: Model = None,
    size: Size = None,
    aspect_ratio: Ratio = None,
    n: Annotated[int, typer.Option("-n", help="Number of images (one batch).")] = 1,
    seed: Seed = None,
    style: Style = None,
    ref: Ref = None,
    strength: Annotated[float | None, typer.Option(help="With --ref: how far to depart from it (0-1].")] = None,
    negative: Negative = None,
    steps: Steps = None,
    lora: Lora = None,
    fmt: Annotated[Format | None, typer.Option("--format", help="Output format.")] = None,
    webhook: Webhook = None,
    out_dir: OutDir = None,
    no_wait: NoWait = False,
    timeout: Timeout = 600,
    url: Url = None, api_key: ApiKey = None, data_dir: DataDir = DEFAULT_DATA_DIR, json_out: Json = False,
) -> None:
    """Generate images from a prompt (with --ref: edit a reference image)."""
    loras = parse_loras(lora)
    _generate("image", prompt, model=model, refs=ref, webhook=webhook, no_wait=no_wait, out_dir=out_dir,
              timeout=timeout, url=url, api_key=api_key, data_dir=data_dir, json_out=json_out, loras=loras,
              size=size, aspect_ratio=aspect_ratio, n=n if n != 1 else None, seed=seed, style=style,
              strength=strength, negative_prompt=negative, steps=steps, output_format=fmt.value if fmt else None)


@generate_app.command("video")
def generate_video(
    prompt: Prompt,
    model: Model = None,
    size: Size = None,
    aspect_ratio: Ratio = None,
    duration: Annotated[float | None, typer.Option(help="Seconds (snapped to the model's supported lengths).")] = None,
    fps: Annotated[int | None, typer.Option(help="Frames per second.")] = None,
    seed: Seed = None,
    style: Style = None,
    ref: Annotated[list[str] | None, typer.Option(
        "--ref", help="First frame: a local file (uploaded for you), an http(s) URL or upload://….")] = None,
    negative: Negative = None,
    steps: Steps = None,
    lora: Lora = None,
    webhook: Webhook = None,
    out_dir: OutDir = None,
    no_wait: NoWait = False,
    timeout: Timeout = 900,
    url: Url = None, api_key: ApiKey = None, data_dir: DataDir = DEFAULT_DATA_DIR, json_out: Json = False,
) -> None:
    """Generate an mp4 from a prompt (with --ref: animate a first frame)."""
    loras = parse_loras(lora)
    _generate("video", prompt, model=model, refs=ref, webhook=webhook, no_wait=no_wait, out_dir=out_dir,
              timeout=timeout, url=url, api_key=api_key, data_dir=data_dir, json_out=json_out, loras=loras,
              size=size, aspect_ratio=aspect_ratio, duration=duration, fps=fps, seed=seed, style=style,
              negative_prompt=negative, steps=steps)


# ---------------------------------------------------------------- generations

GenId = Annotated[str, typer.Argument(help="The generation's id.")]


@app.command("get", rich_help_panel=PANEL)
def get_generation(
    gen_id: GenId,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Follow it live until it finishes.")] = False,
    out_dir: OutDir = None,
    timeout: Timeout = 600,
    url: Url = None, api_key: ApiKey = None, data_dir: DataDir = DEFAULT_DATA_DIR, json_out: Json = False,
) -> None:
    """Show one generation: status, progress, outputs (--watch follows it to the end)."""
    with _api(url, api_key, data_dir, json_out) as client:
        generation = _wait(client, gen_id, quiet=json_out, timeout=timeout) if watch else client.generation(gen_id)
        if watch or generation["status"] in ("success", "error"):
            _finish(client, generation, out_dir, json_out)
        elif json_out:
            _print_json(generation)
        else:
            _show_generation(generation)


class Status(str, Enum):
    pending = "pending"
    processing = "processing"
    success = "success"
    error = "error"
    canceled = "canceled"


@app.command("list", rich_help_panel=PANEL)
def list_generations(
    status: Annotated[Status | None, typer.Option(help="Only generations in this state.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many (1-100), newest first.")] = 20,
    offset: Annotated[int, typer.Option(help="Skip this many.")] = 0,
    url: Url = None, api_key: ApiKey = None, data_dir: DataDir = DEFAULT_DATA_DIR, json_out: Json = False,
) -> None:
    """List your generations, newest first."""
    with _api(url, api_key, data_dir, json_out) as client:
        page = client.generations(status=status.value if status else None, limit=limit, offset=offset)
    if json_out:
        _print_json(page)
        return
    table = _table("id", "status", "model", "created", "prompt")
    for g in page["data"]:
        table.add_row(g["id"], _label(g), g.get("model") or "", g.get("createdAt") or "",
                      escape(((g.get("payload") or {}).get("prompt") or "")[:60]))
    out.print(table)
    info = page["pagination"]
    out.print(f"{len(page['data'])} of {info['total']}" + ("  (more: --offset)" if info["hasMore"] else ""))


@app.command("cancel", rich_help_panel=PANEL)
def cancel_generation(
    gen_id: GenId,
    url: Url = None, api_key: ApiKey = None, data_dir: DataDir = DEFAULT_DATA_DIR, json_out: Json = False,
) -> None:
    """Cancel a queued or running generation (its credits are refunded)."""
    with _api(url, api_key, data_dir, json_out) as client:
        generation = client.cancel(gen_id)
    if json_out:
        _print_json(generation)
    else:
        out.print(f"Canceled {gen_id}")


@app.command("share", rich_help_panel=PANEL)
def share_generation(
    gen_id: GenId,
    off: Annotated[bool, typer.Option("--off", help="Make it private: the link stops working for good.")] = False,
    url: Url = None, api_key: ApiKey = None, data_dir: DataDir = DEFAULT_DATA_DIR, json_out: Json = False,
) -> None:
    """Give a generation a public share page (no key needed) and print its link; --off takes it away."""
    with _api(url, api_key, data_dir, json_out) as client:
        state = client.share(gen_id, public=not off)
    if json_out:
        _print_json(state)
    elif state["public"]:
        typer.echo(state["share_url"])
    else:
        out.print(f"{gen_id} is private; its old share link no longer works", highlight=False)


# ---------------------------------------------------------------- catalog, files, account


@app.command("models", rich_help_panel=PANEL)
def list_models(
    url: Url = None, api_key: ApiKey = None, data_dir: DataDir = DEFAULT_DATA_DIR, json_out: Json = False,
) -> None:
    """The model catalog: ids, tasks, credits, default sizes."""
    with _api(url, api_key, data_dir, json_out) as client:
        models = client.models()
    if json_out:
        _print_json(models)
        return
    table = _table("id", "name", "task", "credits", "default")
    for m in models:
        d = m.get("defaults") or {}
        price = (f"{m['creditsPerSecond']:g}/s" if m.get("creditsPerSecond") is not None
                 else f"{m['credits']:g}/image")
        table.add_row(m["id"], escape(m["name"]), m["task"], price,
                      f"{d.get('width', '')}x{d.get('height', '')}, {d.get('steps', '')} steps")
    out.print(table)


@app.command("tools", rich_help_panel=PANEL)
def list_tools(
    url: Url = None, api_key: ApiKey = None, data_dir: DataDir = DEFAULT_DATA_DIR, json_out: Json = False,
) -> None:
    """Tools (create-image, edit-image, create-video, image-to-video) and the models that serve them."""
    with _api(url, api_key, data_dir, json_out) as client:
        tools = client.tools()
    if json_out:
        _print_json(tools)
        return
    table = _table("slug", "type", "default model", "models", "description")
    for t in tools:
        table.add_row(t["slug"], t["type"], t["defaultModel"], ", ".join(m["id"] for m in t["models"]),
                      escape(t.get("description") or ""))
    out.print(table)


@app.command("styles", rich_help_panel=PANEL)
def list_styles(
    url: Url = None, api_key: ApiKey = None, data_dir: DataDir = DEFAULT_DATA_DIR, json_out: Json = False,
) -> None:
    """Style presets for --style."""
    with _api(url, api_key, data_dir, json_out) as client:
        styles = client.styles()
    if json_out:
        _print_json(styles)
        return
    table = _table("slug", "name", "description")
    for s in styles:
        table.add_row(s["slug"], escape(s["name"]), escape(s.get("description") or ""))
    out.print(table)


@app.command("upload", rich_help_panel=PANEL)
def upload_file(
    path: Annotated[Path, typer.Argument(help="An image file (png, jpeg, webp, gif; up to 20 MiB).")],
    url: Url = None, api_key: ApiKey = None, data_dir: DataDir = DEFAULT_DATA_DIR, json_out: Json = False,
) -> None:
    """Upload a reference image; prints the upload://… reference to pass to --ref."""
    with _api(url, api_key, data_dir, json_out) as client:
        uploaded = client.upload(path)
    if json_out:
        _print_json(uploaded)
    else:
        typer.echo(uploaded["reference"])


# ---------------------------------------------------------------- LoRA adapters

LoraId = Annotated[str, typer.Argument(help="The LoRA's id (lora_…, from `darkroom loras list`).")]


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)


def _where(lora: dict[str, Any]) -> str:
    if lora.get("hf_repo"):
        return f"{lora['hf_repo']}/{lora.get('weight_name') or ''}@{lora.get('revision') or 'main'}"
    return lora.get("url") or lora.get("source") or ""


@loras_app.command("list")
def list_loras(
    url: Url = None, api_key: ApiKey = None, data_dir: DataDir = DEFAULT_DATA_DIR, json_out: Json = False,
) -> None:
    """The workspace's LoRAs, with how much of its quota they use."""
    with _api(url, api_key, data_dir, json_out) as client:
        page = client.loras()
    if json_out:
        _print_json(page)
        return
    table = _table("id", "name", "families", "rank", "size", "source")
    for lora in page["data"]:
        table.add_row(lora["id"], escape(lora["name"]), ", ".join(lora.get("families") or []),
                      str(lora.get("rank", "")), _size(lora.get("size") or 0), escape(_where(lora)))
    out.print(table)
    usage = page.get("usage") or {}
    if usage:
        out.print(f"{usage['count']} of {usage['max_count']} LoRAs, {_size(usage['bytes'])} of "
                  f"{_size(usage['max_bytes'])} uploaded", highlight=False)


def _show_lora(lora: dict[str, Any]) -> None:
    out.print(f"[bold]{lora['id']}[/]  {escape(lora['name'])}", highlight=False)
    rows = [("source", f"{lora.get('source', '')}  {_where(lora) if lora.get('source') != 'upload' else ''}"),
            ("families", ", ".join(lora.get("families") or [])),
            ("layout", f"{lora.get('layout', '')}, rank {lora.get('rank', '')}"
                       + (f", alpha {lora['alpha']:g}" if lora.get("alpha") is not None else "")),
            ("size", _size(lora.get("size") or 0)),
            ("use", f"darkroom generate image \"…\" --lora {lora['id']}:1.0")]
    for label, value in rows:
        out.print(f"  {label:<9}{escape(value.strip())}", highlight=False, soft_wrap=True)


@loras_app.command("add")
def add_lora(
    source: Annotated[str, typer.Argument(
        help="A local .safetensors file (up to 2 GiB; over 4 MiB it goes through a presigned upload), an https "
             "URL, or a Hugging Face file: owner/name[/file.safetensors][@revision].")],
    name: Annotated[str | None, typer.Option("--name", help="A name for it (default: the file's name).")] = None,
    url: Url = None, api_key: ApiKey = None, data_dir: DataDir = DEFAULT_DATA_DIR, json_out: Json = False,
) -> None:
    """Register a LoRA adapter (only its header is read: it must fit a base family); prints its id."""
    with _api(url, api_key, data_dir, json_out) as client:
        lora = client.add_lora(lora_source(source), name=name)
    if json_out:
        _print_json(lora)
    else:
        typer.echo(lora["id"])


@loras_app.command("show")
def show_lora(
    lora_id: LoraId,
    url: Url = None, api_key: ApiKey = None, data_dir: DataDir = DEFAULT_DATA_DIR, json_out: Json = False,
) -> None:
    """One LoRA: where it is from, the base families it fits, its rank and size."""
    with _api(url, api_key, data_dir, json_out) as client:
        lora = client.lora(lora_id)
    if json_out:
        _print_json(lora)
    else:
        _show_lora(lora)


@loras_app.command("delete")
def delete_lora(
    lora_id: LoraId,
    url: Url = None, api_key: ApiKey = None, data_dir: DataDir = DEFAULT_DATA_DIR, json_out: Json = False,
) -> None:
    """Delete a LoRA (queued jobs that use it fail, refunded)."""
    with _api(url, api_key, data_dir, json_out) as client:
        deleted = client.delete_lora(lora_id)
    if json_out:
        _print_json(deleted)
    else:
        out.print(f"Deleted {lora_id}", highlight=False)


@app.command("account", rich_help_panel=PANEL)
def show_account(
    url: Url = None, api_key: ApiKey = None, data_dir: DataDir = DEFAULT_DATA_DIR, json_out: Json = False,
) -> None:
    """Your workspace, credit balance and usage, and this key's scopes and rate limit."""
    with _api(url, api_key, data_dir, json_out) as client:
        account = client.account()
    if json_out:
        _print_json(account)
        return
    usage, key = account["usage"], account["key"]
    out.print(f"workspace  {account['workspace']['id']} ({account['workspace'].get('name') or ''})", highlight=False)
    out.print(f"credits    {account['credits']:g}  (used {usage['creditsUsed']:g}, refunded "
              f"{usage['creditsRefunded']:g}, added {usage['creditsAdded']:g})", highlight=False)
    out.print(f"key        {key['id']}  scopes {' '.join(key['scopes'])}  {key['rateLimit']}/min", highlight=False)


@app.command("mcp", rich_help_panel=PANEL)
def mcp_server(
    url: Url = None, api_key: ApiKey = None, data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Run the MCP server over stdio (for Claude, Cursor and other MCP clients)."""
    try:
        config = resolve_config(url, api_key, data_dir)
    except ApiError as exc:
        _fail(str(exc), False)
    try:
        from infra.mcp_server import serve
    except ImportError as exc:  # the `cli` extra is not installed
        _fail(f"darkroom mcp needs the MCP SDK ({exc}): pip install 'darkroom[cli]'", False)
    serve(config)
