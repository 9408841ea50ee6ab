"""A job's LoRA adapters: fetched by their source, cached by content hash, handed to the pipeline (gpu/loras.py).

A job's `params["loras"]` is what the API resolved at submit (functions/core/generation.py): for each adapter, the
`path` the caller sent, its `scale`, and where the file is: `{"upload_key": "<ws>/loras/…", "bucket": …}` (a LoRA
the workspace registered, read from the stack's adapters bucket directly and only from the job's own workspace) or
`{"url": "https://…"}` (an https URL, or a Hugging Face file's resolve URL), fetched with the reference images' SSRF
guard on every hop, within LORA_LIMITS.

Files are kept by content hash in a bounded cache (LoraCache: least recently used out first): on the Modal Volume
deployed (DARKROOM_LORA_CACHE), under the local data directory otherwise. A registered upload never changes, so its
hash is remembered for the process; a URL's is trusted for URL_TTL_SECONDS, then the file is fetched again (the hash
the job reports is always that of the bytes that ran).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from gpu.loras import Adapter, LoraCache
from gpu.references import InvalidReference, Limits, fetch_url, read_workspace_object

# The largest adapter a job may bring (a rank-128 LoRA of a 20B model is about 1.5 GB in bfloat16), and how long its
# download may take.
MAX_LORA_BYTES = 2 * 1024**3
LORA_LIMITS = Limits(max_bytes=MAX_LORA_BYTES, timeout=300.0, max_redirects=5)
# The cache's bound on disk.
CACHE_BYTES = int(os.environ.get("DARKROOM_LORA_CACHE_BYTES", str(20 * 1024**3)))
URL_TTL_SECONDS = 600.0


class InvalidLora(InvalidReference):
    code = "invalid_lora"


_known: dict[str, tuple[str, float]] = {}  # source -> (sha256, when learned)
_added = threading.Event()  # a file was added to the cache since take_added() last looked
_known_lock = threading.Lock()
_cache: LoraCache | None = None


def cache() -> LoraCache:
    global _cache
    with _known_lock:
        if _cache is None:
            data = Path(os.environ.get("DARKROOM_DATA_DIR", ".darkroom"))
            root = Path(os.environ.get("DARKROOM_LORA_CACHE") or data / "loras")
            _cache = LoraCache(root, CACHE_BYTES)
        return _cache


@contextmanager
def job_adapters(specs: list[dict[str, Any]], *, workspace_id: str, bucket: str,
                 allow_loopback: bool = False) -> Iterator[list[Adapter]]:
    """Each adapter of the job as a local file with its hash and scale, in order, kept in the cache (pinned against
    eviction by other jobs' files) until the block ends. Raises InvalidLora naming the adapter."""
    with ExitStack() as pins:
        adapters = []
        for index, spec in enumerate(specs):
            label = f"loras[{index}]"
            for _attempt in range(2):  # evicted between its download and its pin: fetched once more
                adapter = _adapter(spec, label, workspace_id=workspace_id, bucket=bucket,
                                   allow_loopback=allow_loopback)
                try:
                    path = pins.enter_context(cache().pinned(adapter.sha256))
                except KeyError:
                    forget(adapter.sha256)
                    continue
                adapters.append(Adapter(path=path, sha256=adapter.sha256, scale=adapter.scale))
                break
            else:
                raise InvalidLora(f"{label}: the LoRA cache could not keep the file (is it larger than the cache?)")
        yield adapters


def reported(specs: list[dict[str, Any]], adapters: list[Adapter]) -> list[dict[str, Any]]:
    """What the job reports of the adapters that ran: what was asked for, and the hash of the bytes that ran."""
    return [{k: v for k, v in {"path": spec.get("path"), "id": spec.get("id"), "name": spec.get("name"),
                                "scale": adapter.scale, "sha256": adapter.sha256}.items() if v is not None}
            for spec, adapter in zip(specs, adapters, strict=True)]


def _adapter(spec: dict[str, Any], label: str, *, workspace_id: str, bucket: str, allow_loopback: bool) -> Adapter:
    source = spec.get("source") or {}
    scale = float(spec.get("scale", 1.0))
    if "upload_key" in source:
        key, ttl = f"s3:{source.get('bucket') or bucket}/{source['upload_key']}", None
    elif "url" in source:
        key, ttl = f"url:{source['url']}", URL_TTL_SECONDS
    else:
        raise InvalidLora(f'{label}: its source must be {{"upload_key": …}} or {{"url": …}}')
    files = cache()
    with _known_lock:
        known = _known.get(key)
    if known and (ttl is None or time.monotonic() - known[1] < ttl) and (path := files.get(known[0])) is not None:
        return Adapter(path=path, sha256=known[0], scale=scale)
    if "upload_key" in source:
        # Registered files are in the stack's adapters bucket, which the API names in the source.
        data = _read_registered(source["upload_key"], label, workspace_id=workspace_id,
                                bucket=source.get("bucket") or bucket)
    else:
        try:
            data = fetch_url(source["url"], label, allow_loopback=allow_loopback, limits=LORA_LIMITS,
                             accept="application/octet-stream")
        except InvalidReference as exc:
            raise InvalidLora(str(exc)) from None
    sha256, path = files.put(data)
    _added.set()
    with _known_lock:
        _known[key] = (sha256, time.monotonic())
    return Adapter(path=path, sha256=sha256, scale=scale)


def _read_registered(key: str, label: str, *, workspace_id: str, bucket: str) -> bytes:
    return read_workspace_object(key, label, prefix=f"{workspace_id}/", bucket=bucket, max_bytes=MAX_LORA_BYTES,
                                 what="the LoRA", missing="was deleted after the job was submitted", error=InvalidLora)


def take_added() -> bool:
    """Whether a file was added to the cache since the last call: on Modal the cache is a Volume, committed then so
    that containers started later find the file."""
    added = _added.is_set()
    _added.clear()
    return added


def forget(sha256: str | None = None) -> None:
    """Forget the sources learned to hold this file (all of them when None: tests)."""
    with _known_lock:
        for key in [k for k, (sha, _) in _known.items() if sha256 is None or sha == sha256]:
            del _known[key]
