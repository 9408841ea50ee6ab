"""A small client for Darkroom's public HTTP API (the native dialect), shared by the user commands and the
MCP server. It speaks HTTP only, so it works the same against `darkroom dev` and a deployed stack.

Where the URL and key come from, first match wins (each of the two separately):
  1. explicit arguments (the CLI's --url / --api-key),
  2. the DARKROOM_URL / DARKROOM_API_KEY environment variables,
  3. .darkroom/dev.env (written by `darkroom dev`), then .darkroom/deploy.env (written by `darkroom deploy`).
A key is taken from a file only together with that file's URL (or when the URL already chosen is the
file's), so a local key is never sent to another host.
"""

from __future__ import annotations

import mimetypes
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote, urlparse

import httpx
from dotenv import dotenv_values

DEFAULT_DATA_DIR = Path(".darkroom")
ENV_FILES = ("dev.env", "deploy.env")
FINISHED = ("success", "error")
IMAGE_TOOLS = {False: "create-image", True: "edit-image"}
VIDEO_TOOLS = {False: "create-video", True: "image-to-video"}
# LoRA adapters (functions/api/loras.py, functions/core/generation.py): a file of up to 4 MiB goes in a form through
# the API itself, a larger one through a presigned upload (purpose lora); at most 4 per request, scales in -4..4.
LORA_FORM_MAX_BYTES = 4 * 1024 * 1024
LORA_CONTENT_TYPE = "application/octet-stream"
MAX_LORAS = 4
LORA_SCALE_RANGE = (-4.0, 4.0)
# A Hugging Face Hub file as the API spells it: owner/name, or owner/name/dir/file.safetensors; @revision optional.
HUB_PATH = re.compile(r"^(?P<repo>[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95})"
                      r"(?:/(?P<file>[^@]+\.safetensors))?(?:@(?P<revision>[A-Za-z0-9_][A-Za-z0-9._/-]{0,99}))?$")


@dataclass
class ApiError(Exception):
    """Any failure talking to Darkroom, with the API's own message and the fields it named."""

    message: str
    status: int | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    url: str | None = None

    def __str__(self) -> str:
        # The native dialect's message often names the field already ("Invalid request: input.size: …").
        extra = [f"{e['field']}: {e['message']}" for e in self.errors
                 if e.get("field") and e.get("message") and e["field"] not in self.message]
        return self.message + (f" ({'; '.join(extra)})" if extra else "")

    def to_json(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "status": self.status, "errors": self.errors}}


@dataclass(frozen=True)
class Config:
    url: str
    api_key: str
    source: str  # where the URL came from, for error messages


def resolve_config(url: str | None = None, api_key: str | None = None,
                   data_dir: Path = DEFAULT_DATA_DIR) -> Config:
    source = "--url" if url else None
    if not url and os.environ.get("DARKROOM_URL"):
        url, source = os.environ["DARKROOM_URL"], "DARKROOM_URL"
    api_key = api_key or os.environ.get("DARKROOM_API_KEY") or None
    for name in ENV_FILES:
        if url and api_key:
            break
        values = dotenv_values(data_dir / name)
        file_url = (values.get("DARKROOM_URL") or "").rstrip("/")
        if not file_url or (url and url.rstrip("/") != file_url):
            continue
        url, source = file_url, str(data_dir / name)
        api_key = api_key or values.get("DARKROOM_API_KEY") or None
    if not url:
        raise ApiError("No Darkroom URL: pass --url, set DARKROOM_URL, or start the local stack with "
                       "`darkroom dev` (it writes .darkroom/dev.env)")
    if not api_key:
        raise ApiError(f"No API key for {url}: pass --api-key or set DARKROOM_API_KEY")
    return Config(url=url.rstrip("/"), api_key=api_key, source=source or "DARKROOM_URL")


def _error_from(response: httpx.Response) -> ApiError:
    """The message of whichever dialect answered: native {message, errors}, OpenAI {error: {message}},
    AI Media Studio {error: "…"}; the raw text when the body is not JSON (a proxy's error page)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    message, errors = None, []
    if isinstance(body, dict):
        error = body.get("error")
        message = body.get("message") or (error.get("message") if isinstance(error, dict) else error)
        errors = [e for e in body.get("errors") or [] if isinstance(e, dict)]
    if not message:
        message = response.text.strip()[:300] or response.reason_phrase
    return ApiError(str(message), status=response.status_code, errors=errors, url=str(response.request.url))


class DarkroomClient:
    """One method per API call; every failure is an ApiError."""

    def __init__(self, config: Config, *, timeout: float = 60.0) -> None:
        self.config = config
        self._http = httpx.Client(base_url=config.url, timeout=timeout,
                                  headers={"Authorization": config.api_key, "User-Agent": "darkroom-cli"})
        # Presigned URLs (S3) carry their own signature; they must never see the API key.
        self._plain = httpx.Client(timeout=timeout, follow_redirects=True)

    def close(self) -> None:
        self._http.close()
        self._plain.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ transport

    def _unreachable(self, url: str, exc: httpx.HTTPError) -> ApiError:
        hint = ("start the local stack with `darkroom dev` (or `make dev`)"
                if urlparse(url).hostname in ("127.0.0.1", "localhost", "::1")
                else "check DARKROOM_URL and that the stack is deployed (`darkroom deploy`)")
        reason = type(exc).__name__ if not str(exc) else str(exc)
        return ApiError(f"Cannot reach Darkroom at {self.config.url} ({reason}); {hint}", url=url)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self._unreachable(self.config.url + path, exc) from None
        if response.is_error:
            raise _error_from(response)
        return response.json()

    # ------------------------------------------------------------ generations

    def submit(self, kind: str, prompt: str, *, model: str | None = None, references: list[str] | None = None,
               webhook: str | None = None, loras: list[dict[str, Any]] | None = None,
               **options: Any) -> dict[str, Any]:
        """POST /api/run for an image or a video; `references` are URLs, upload:// references or local paths
        (uploaded first); `loras` are `{"path": lora id | owner/name[/file.safetensors][@rev] | https URL,
        "scale": float}` (scale optional, default 1). Options left at None are not sent, so the model's defaults
        apply."""
        refs = [self.reference(r) for r in references or []]
        tool = (IMAGE_TOOLS if kind == "image" else VIDEO_TOOLS)[bool(refs)]
        inp = {"prompt": prompt, **{k: v for k, v in options.items() if v is not None}}
        if refs:
            inp["image_urls"] = refs
        if loras:
            inp["loras"] = [{k: v for k, v in lora.items() if v is not None} for lora in loras]
        body: dict[str, Any] = {"tool": tool, "input": inp}
        if model:
            body["model"] = model
        if webhook:
            body["webhook"] = webhook
        return self.request("POST", "/api/run", json=body)

    def generation(self, gen_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/generations/{gen_id}")

    def generations(self, *, status: str | None = None, limit: int = 20, offset: int = 0) -> dict[str, Any]:
        params = {"limit": limit, "offset": offset} | ({"status": status} if status else {})
        return self.request("GET", "/api/generations", params=params)

    def cancel(self, gen_id: str) -> dict[str, Any]:
        return self.request("POST", f"/api/generations/{gen_id}/cancel")

    def share(self, gen_id: str, public: bool = True) -> dict[str, Any]:
        """Make a generation public ({id, public, share_url}) or private; unsharing kills the old link."""
        return self.request("POST", f"/api/generations/{gen_id}/share", json={"public": public})

    def wait(self, gen_id: str, *, on_update: Callable[[dict[str, Any]], None] | None = None,
             timeout: float = 600.0, interval: float = 0.5) -> dict[str, Any]:
        """Poll until the generation succeeds or fails; on_update sees every state read."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.generation(gen_id)
            if on_update:
                on_update(current)
            if current["status"] in FINISHED:
                return current
            if time.monotonic() > deadline:
                raise ApiError(f"Generation {gen_id} is still {current['status']} after {timeout:.0f}s; "
                               f"it keeps running: `darkroom get {gen_id} --watch`")
            time.sleep(interval)

    # ------------------------------------------------------------ catalog and account

    def models(self) -> list[dict[str, Any]]:
        return self.request("GET", "/api/models")["data"]

    def tools(self) -> list[dict[str, Any]]:
        return self.request("GET", "/api/tools")["data"]

    def styles(self) -> list[dict[str, Any]]:
        return self.request("GET", "/api/styles")["data"]

    def account(self) -> dict[str, Any]:
        return self.request("GET", "/api/account")

    # ------------------------------------------------------------ files

    def upload(self, path: Path, *, purpose: str | None = None) -> dict[str, Any]:
        """A presigned S3 POST (no Lambda payload limit): ask for it, then send the file straight to S3.
        purpose "lora": a .safetensors LoRA file (application/octet-stream), to register with add_lora."""
        if not path.is_file():
            raise ApiError(f"No such file: {path}")
        content_type = (LORA_CONTENT_TYPE if purpose == "lora"
                        else mimetypes.guess_type(path.name)[0] or "application/octet-stream")
        body = {"filename": path.name, "content_type": content_type} | ({"purpose": purpose} if purpose else {})
        created = self.request("POST", "/api/uploads", json=body)
        target = created["upload"]
        try:
            with path.open("rb") as data:
                posted = self._plain.post(target["url"], data=target["fields"],
                                          files={"file": (path.name, data, content_type)})
        except httpx.HTTPError as exc:
            raise self._unreachable(target["url"], exc) from None
        if posted.is_error:
            raise ApiError(f"Upload of {path} was refused by storage ({posted.status_code}): {posted.text[:300]}",
                           status=posted.status_code)
        return {"id": created["id"], "reference": created["reference"], "filename": path.name,
                "content_type": content_type, "size": path.stat().st_size}

    # ------------------------------------------------------------ LoRA adapters

    def loras(self) -> dict[str, Any]:
        """GET /api/loras: {data: [records], usage: {count, bytes, max_count, max_bytes}}."""
        return self.request("GET", "/api/loras")

    def lora(self, lora_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/loras/{quote(lora_id, safe='')}")

    def delete_lora(self, lora_id: str) -> dict[str, Any]:
        return self.request("DELETE", f"/api/loras/{quote(lora_id, safe='')}")

    def add_lora(self, source: Path | str, name: str | None = None) -> dict[str, Any]:
        """Register a LoRA. A Path is a local .safetensors file: sent in a form when it is at most 4 MiB, else
        uploaded with a presigned POST (purpose lora) and registered as {"upload": reference}. A str is an https
        URL ({"url"}) or a Hub file, owner/name[/file.safetensors][@revision] ({"hf_repo", "weight_name",
        "revision"}); see lora_source for telling a local path from those."""
        extra = {"name": name} if name is not None else {}
        if isinstance(source, Path):
            path = source.expanduser()
            if not path.is_file():
                raise ApiError(f"No such file: {path}")
            if path.stat().st_size > LORA_FORM_MAX_BYTES:
                uploaded = self.upload(path, purpose="lora")
                return self.request("POST", "/api/loras", json={"upload": uploaded["reference"], **extra})
            with path.open("rb") as data:
                return self.request("POST", "/api/loras", data=extra,
                                    files={"file": (path.name, data, LORA_CONTENT_TYPE)})
        if source.startswith(("https://", "http://")):
            return self.request("POST", "/api/loras", json={"url": source, **extra})
        match = HUB_PATH.match(source)
        if not match:
            raise ApiError(f"Not a LoRA source: {source!r}; give a local .safetensors file, an https URL, or a "
                           "Hugging Face file as owner/name[/file.safetensors][@revision]")
        hub = {"hf_repo": match["repo"], "weight_name": match["file"], "revision": match["revision"]}
        return self.request("POST", "/api/loras", json={k: v for k, v in hub.items() if v} | extra)

    def reference(self, value: str) -> str:
        """A reference image as the API takes it: URLs and upload:// references as they are, files uploaded."""
        if value.startswith(("http://", "https://", "upload://")):
            return value
        return self.upload(Path(value).expanduser())["reference"]

    def fetch(self, url: str) -> bytes:
        try:
            response = self._plain.get(url)
        except httpx.HTTPError as exc:
            raise self._unreachable(url, exc) from None
        if response.is_error:
            raise ApiError(f"Download failed ({response.status_code}): {url}", status=response.status_code)
        return response.content

    def download(self, generation: dict[str, Any], out_dir: Path) -> list[Path]:
        """Every output of a finished generation into out_dir, named <id>[-<i>].<ext>."""
        out_dir.mkdir(parents=True, exist_ok=True)
        urls = output_urls(generation)
        paths = []
        for i, url in enumerate(urls):
            suffix = Path(urlparse(url).path).suffix or ".bin"
            path = out_dir / (f"{generation['id']}{f'-{i}' if len(urls) > 1 else ''}{suffix}")
            path.write_bytes(self.fetch(url))
            paths.append(path)
        return paths


def lora_source(value: str) -> Path | str:
    """What a user typed as a LoRA source, for add_lora: an existing local file (or anything that reads as a path:
    ./…, /…, ~…, a bare *.safetensors name) is a Path; URLs and Hub names stay strings."""
    if value.startswith(("https://", "http://")):
        return value
    path = Path(value).expanduser()
    if path.is_file() or value.startswith(("/", "./", "../", "~")) or (
            "/" not in value and value.lower().endswith(".safetensors")):
        return path
    return value


def output_urls(generation: dict[str, Any]) -> list[str]:
    return list(generation.get("outputs") or ([generation["output"]] if generation.get("output") else []))
