"""A workspace's own LoRA adapters: the registry, and registration by reading only the file's header.

Sources: an upload (multipart through the API, or a presigned S3 POST then `upload://…`), copied to
`{workspace}/loras/{id}.safetensors`; a URL; a Hugging Face Hub file (`https://huggingface.co/{repo}/resolve/
{revision}/{weight_name}`). Whatever the source, only the safetensors header is read (an S3 ranged GET, or an
HTTP Range request through the SSRF guard, pinned to the checked address): it must be a LoRA
(functions/core/lora_files.py) that fits at least one base family, or the registration is a 400 naming the
field. Files over MAX_LORA_BYTES (2 GiB) are a 413; a workspace past its caps (Settings.lora_max_per_workspace,
lora_max_bytes_per_workspace: uploaded bytes only) a 409.

Storage: one item per workspace in the workspaces table, id `loras#{workspace}` (workspace ids cannot hold `#`),
with a map of records and two counters. One conditional UpdateItem adds a record and checks both caps, so two
concurrent registrations can never pass a cap; a count cap of at most 100 keeps the item far below 400 KB.

Uploaded files live in a bucket of their own (Settings.adapters_bucket, template.yaml: AdaptersBucket), without the
outputs bucket's expiry rule: a LoRA stays until it is deleted through the API.
"""

from __future__ import annotations

import http.client
import os
import re
import secrets
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urljoin, urlsplit

from . import aws, clock, dynamo, storage
from .errors import Conflict, FieldError, NotFound, PayloadTooLarge, ValidationFailed
from .lora_files import (
    HEADER_PREFIX_BYTES,
    MAX_LORA_BYTES,
    InvalidLoraFile,
    LoraInfo,
    candidate_families,
    families_fitting,
    fits,
    header_length,
    inspect,
    read_header,
    size_text,
)
from .observability import logger
from .schema import Schema
from .settings import get_settings
from .uploads import SCHEME as UPLOAD_SCHEME
from .uploads import upload_key_for_reference
from .urls import UnsafeUrl, pin

Source = Literal["upload", "url", "hub"]
ID_PATTERN = re.compile(r"^lora_[0-9a-f]{24}$")
HUB = "https://huggingface.co"
DEFAULT_WEIGHT_NAME = "pytorch_lora_weights.safetensors"  # diffusers' load_lora_weights default
MAX_REDIRECTS = 5
CONTENT_TYPE = "application/octet-stream"


class LoraRecord(Schema):
    id: str
    workspace_id: str
    name: str
    source: Source
    key: str | None = None  # uploads: the S3 key, under the workspace's prefix
    url: str | None = None
    hf_repo: str | None = None
    weight_name: str | None = None
    revision: str | None = None
    commit: str | None = None  # the Hub commit the revision named when registered (X-Repo-Commit)
    size: int
    layout: str
    rank: int
    alpha: float | None = None
    module_count: int
    tensor_count: int
    families: list[str]
    weights: Literal["real", "tiny"]
    created_at: float

    def public(self) -> dict[str, Any]:
        """What the API shows: never the S3 key nor the workspace."""
        body = self.model_dump(exclude={"key", "workspace_id"}, exclude_none=True)
        return {"id": body.pop("id"), "object": "lora", **body}


@dataclass(frozen=True)
class Usage:
    count: int
    bytes: int
    max_count: int
    max_bytes: int

    def public(self) -> dict[str, int]:
        return {"count": self.count, "bytes": self.bytes, "max_count": self.max_count, "max_bytes": self.max_bytes}


def new_id() -> str:
    return f"lora_{secrets.token_hex(12)}"


def key_for(workspace_id: str, lora_id: str) -> str:
    return f"{workspace_id}/loras/{lora_id}.safetensors"


def _weights() -> Literal["real", "tiny"]:
    """Whose signatures a LoRA must fit: the tiny pipelines' in the local stack unless it runs real weights (the
    worker's DARKROOM_WEIGHTS), the real ones deployed."""
    settings = get_settings()
    if settings.lora_weights:
        return settings.lora_weights
    return "tiny" if settings.local and os.environ.get("DARKROOM_WEIGHTS", "tiny") == "tiny" else "real"


# ---------------------------------------------------------------- errors


def _refused(field: str, reason: str, code: str = "invalid_lora") -> ValidationFailed:
    return ValidationFailed(f"{field} {reason}", errors=[FieldError(field, reason, code)])


def _too_large(field: str, size: int) -> PayloadTooLarge:
    reason = f"is {size_text(size)}, over the {size_text(MAX_LORA_BYTES)} a LoRA file may be"
    return PayloadTooLarge(f"{field} {reason}", errors=[FieldError(field, reason, "file_too_large")])


def _judge(header_bytes: bytes, total: int, field: str) -> tuple[LoraInfo, list[str]]:
    """The LoRA's info and the families it fits; a 400 naming `field` otherwise."""
    if total > MAX_LORA_BYTES:
        raise _too_large(field, total)
    try:
        info = inspect(read_header(header_bytes, total))
    except InvalidLoraFile as exc:
        raise _refused(field, str(exc)) from None
    weights = _weights()
    families = families_fitting(info, weights)
    if not families:
        known = candidate_families(info)
        reasons = "; ".join(f"{family}: {fits(info, family, weights)}" for family in known[:8]) or \
            "no base family's signature is known"
        raise _refused(field, f"fits no base family this deployment runs ({reasons[:1500]})", "lora_fits_no_family")
    return info, families


# ---------------------------------------------------------------- reading headers


def _s3_header(key: str, field: str) -> tuple[bytes, int, str | None]:
    """The header bytes of an object, its size and ETag. LookupError if there is no such object."""
    try:
        first = storage.open_object(key, byte_range=f"bytes=0-{HEADER_PREFIX_BYTES - 1}")
    except storage.ObjectMissing:
        raise LookupError(key) from None
    except storage.RangeNotSatisfiable:
        raise _refused(field, "is empty") from None
    with first.body as body:
        data = body.read()
    total = _total_from_range(first.content_range) or first.length
    if total > MAX_LORA_BYTES:
        raise _too_large(field, total)
    needed = _needed(data, field)
    if needed > len(data) and needed <= total:
        more = storage.open_object(key, byte_range=f"bytes=0-{needed - 1}")
        with more.body as body:
            data = body.read()
    return data, total, first.etag


def _total_from_range(content_range: str | None) -> int | None:
    match = re.match(r"^bytes \d+-\d+/(\d+)$", (content_range or "").strip())
    return int(match.group(1)) if match else None


def _needed(prefix: bytes, field: str) -> int:
    try:
        return 8 + header_length(prefix)
    except InvalidLoraFile as exc:
        raise _refused(field, str(exc)) from None


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to the checked address, with SNI and the certificate check on the URL's own name."""

    def __init__(self, address: str, port: int, *, server_name: str, timeout: float) -> None:
        super().__init__(address, port, timeout=timeout, context=ssl.create_default_context())
        self._server_name = server_name

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self._server_name)


@dataclass
class _Remote:
    data: bytes
    total: int
    commit: str | None


def _remote_header(url: str, field: str) -> _Remote:
    """The header of the file at `url`: HTTP Range requests, each hop checked and pinned (functions/core/urls.py),
    within Settings.lora_fetch_timeout_seconds for everything."""
    settings = get_settings()
    deadline = time.monotonic() + settings.lora_fetch_timeout_seconds
    first = _ranged_get(url, HEADER_PREFIX_BYTES, field, deadline, settings.local)
    if first.total > MAX_LORA_BYTES:
        raise _too_large(field, first.total)
    needed = _needed(first.data, field)
    if needed > len(first.data) and needed <= first.total:
        more = _ranged_get(url, needed, field, deadline, settings.local)
        first = _Remote(more.data, first.total, first.commit or more.commit)
    return first


def _ranged_get(url: str, length: int, field: str, deadline: float, allow_loopback: bool) -> _Remote:
    commit = None
    for _hop in range(MAX_REDIRECTS + 1):
        try:
            pinned = pin(url, allow_loopback=allow_loopback, schemes=("https",))
        except UnsafeUrl as exc:
            raise _refused(field, f"is not allowed: {exc}", "invalid_url") from None
        parts = urlsplit(pinned.url)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _refused(field, "could not be read in time", "fetch_timeout")
        address = str(pinned.address)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        conn: http.client.HTTPConnection = (
            _PinnedHTTPS(address, port, server_name=pinned.sni_hostname or address, timeout=remaining)
            if parts.scheme == "https" else http.client.HTTPConnection(address, port, timeout=remaining))
        try:
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            conn.request("GET", path, headers={"Host": pinned.host_header, "Range": f"bytes=0-{length - 1}",
                                               "Accept-Encoding": "identity", "User-Agent": "darkroom-lora/1"})
            resp = conn.getresponse()
            commit = commit or resp.getheader("x-repo-commit")
            if resp.status in (301, 302, 303, 307, 308):
                location = resp.getheader("location")
                if not location:
                    raise _refused(field, f"answered HTTP {resp.status} without a Location", "fetch_failed")
                url = urljoin(url, location)
                continue
            if resp.status == 206:
                total = _total_from_range(resp.getheader("content-range"))
            elif resp.status == 200:  # the server ignored the Range: read what was asked for, then hang up
                raw = resp.getheader("content-length") or ""
                total = int(raw) if raw.isdigit() else None
            elif resp.status == 416:
                raise _refused(field, "is empty")
            else:
                hint = " (a gated or private repository?)" if resp.status in (401, 403) else ""
                raise _refused(field, f"could not be read: the server answered HTTP {resp.status}{hint}",
                               "fetch_failed")
            if total is None:
                raise _refused(field, "could not be read: the server did not say the file's size", "fetch_failed")
            if total > MAX_LORA_BYTES:
                raise _too_large(field, total)
            data = _read_until(resp, min(length, total), deadline, field)
            return _Remote(data, total, commit)
        except TimeoutError:
            raise _refused(field, "could not be read in time", "fetch_timeout") from None
        except (OSError, http.client.HTTPException) as exc:
            raise _refused(field, f"could not be read ({type(exc).__name__})", "fetch_failed") from None
        finally:
            conn.close()
    raise _refused(field, f"redirected more than {MAX_REDIRECTS} times", "fetch_failed")


def _read_until(resp: http.client.HTTPResponse, length: int, deadline: float, field: str) -> bytes:
    buf = bytearray()
    while len(buf) < length:
        if time.monotonic() > deadline:
            raise _refused(field, "could not be read in time", "fetch_timeout")
        chunk = resp.read(min(64 * 1024, length - len(buf)))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


# ---------------------------------------------------------------- the registry (workspaces table)


def _registry_key(workspace_id: str) -> dict[str, Any]:
    return {"id": {"S": f"loras#{workspace_id}"}}


def _table() -> str:
    return get_settings().workspaces_table


def _read_registry(workspace_id: str) -> dict[str, Any] | None:
    resp = aws.client("dynamodb").get_item(TableName=_table(), Key=_registry_key(workspace_id), ConsistentRead=True)
    return dynamo.deserialize(resp["Item"]) if "Item" in resp else None


def _usage(item: dict[str, Any] | None) -> Usage:
    settings = get_settings()
    item = item or {}
    return Usage(count=int(item.get("lora_count", 0)), bytes=int(item.get("lora_bytes", 0)),
                 max_count=settings.lora_max_per_workspace, max_bytes=settings.lora_max_bytes_per_workspace)


def _full(usage: Usage, stored_bytes: int) -> Conflict | None:
    if usage.count >= usage.max_count:
        return Conflict(f"This workspace has {usage.count} LoRAs, the most it may have ({usage.max_count}); delete "
                        "one first", code="lora_limit_reached")
    if stored_bytes and usage.bytes + stored_bytes > usage.max_bytes:
        return Conflict(f"This workspace's uploaded LoRAs take {size_text(usage.bytes)}; "
                        f"{size_text(stored_bytes)} more would pass its {size_text(usage.max_bytes)} of storage; "
                        "delete one first", code="lora_storage_full")
    return None


def _check_room(workspace_id: str, stored_bytes: int) -> bool:
    """409 now if the workspace is full (before any copy); True if its registry item exists."""
    item = _read_registry(workspace_id)
    problem = _full(_usage(item), stored_bytes)
    if problem:
        raise problem
    return item is not None


def _add(record: LoraRecord, stored_bytes: int, exists: bool) -> None:
    ddb = aws.client("dynamodb")
    if not exists:
        try:
            ddb.put_item(TableName=_table(), Item=dynamo.serialize({
                "id": f"loras#{record.workspace_id}", "workspace_id": record.workspace_id, "loras": {},
                "lora_count": 0, "lora_bytes": 0}), ConditionExpression="attribute_not_exists(id)")
        except ddb.exceptions.ConditionalCheckFailedException:
            pass
    settings = get_settings()
    room = settings.lora_max_bytes_per_workspace - stored_bytes
    try:
        ddb.update_item(
            TableName=_table(), Key=_registry_key(record.workspace_id),
            UpdateExpression="SET loras.#id = :record ADD lora_count :one, lora_bytes :bytes",
            ConditionExpression="attribute_not_exists(loras.#id) AND lora_count < :max AND lora_bytes <= :room",
            ExpressionAttributeNames={"#id": record.id},
            ExpressionAttributeValues={":record": dynamo.value(record.model_dump(exclude_none=True)),
                                       ":one": {"N": "1"}, ":bytes": {"N": str(stored_bytes)},
                                       ":max": {"N": str(settings.lora_max_per_workspace)},
                                       ":room": {"N": str(room)}})
    except ddb.exceptions.ConditionalCheckFailedException:
        raise _full(_usage(_read_registry(record.workspace_id)), stored_bytes) or Conflict(
            "The LoRA could not be registered (a concurrent change); retry", code="lora_conflict") from None


def _record(workspace_id: str, lora_id: str, name: str, source: Source, size: int, info: LoraInfo,
            families: list[str], **where: Any) -> LoraRecord:
    return LoraRecord(id=lora_id, workspace_id=workspace_id, name=name, source=source, size=size, layout=info.layout,
                      rank=info.rank, alpha=info.alpha, module_count=len(info.modules),
                      tensor_count=info.tensor_count, families=families, weights=_weights(),
                      created_at=clock.now(), **where)


def _name(name: str | None, fallback: str) -> str:
    chosen = name if name is not None else fallback.rsplit("/", 1)[-1]
    cleaned = re.sub(r"[\x00-\x1f\x7f]+", " ", chosen).strip()[:100]
    return cleaned or "lora"


# ---------------------------------------------------------------- registration


def register_bytes(workspace_id: str, data: bytes, filename: str | None, *, name: str | None = None,
                   field: str = "file") -> LoraRecord:
    """A small file that came through the API itself (multipart): judged, then stored."""
    if not data:
        raise _refused(field, "is empty")
    info, families = _judge(data, len(data), field)
    exists = _check_room(workspace_id, len(data))
    lora_id = new_id()
    key = key_for(workspace_id, lora_id)
    storage.put_bytes(key, data, CONTENT_TYPE, bucket=get_settings().adapters_bucket)
    record = _record(workspace_id, lora_id, _name(name, filename or "lora.safetensors"), "upload", len(data),
                     info, families, key=key)
    _add_or_forget(record, exists)
    return record


def register_upload(workspace_id: str, reference: str, *, name: str | None = None,
                    field: str = "upload") -> LoraRecord:
    """A file uploaded with a presigned POST (`upload://…`, this workspace's only): judged from its header, then
    copied to the LoRA's own key (the copy names the ETag that was judged, so the bytes cannot change between)."""
    source_key = upload_key_for_reference(workspace_id, reference)
    if source_key is None:
        raise _refused(field, f"is not a valid {UPLOAD_SCHEME} reference", "invalid_reference")
    try:
        data, total, etag = _s3_header(source_key, field)
    except LookupError:
        raise _refused(field, "is not an upload of this workspace (or its file was not uploaded yet)",
                       "upload_not_found") from None
    info, families = _judge(data, total, field)
    exists = _check_room(workspace_id, total)
    lora_id = new_id()
    key = key_for(workspace_id, lora_id)
    settings = get_settings()
    copy: dict[str, Any] = {"CopySourceIfMatch": etag} if etag else {}
    from botocore.exceptions import ClientError

    try:
        aws.client("s3").copy_object(Bucket=settings.adapters_bucket, Key=key,
                                     CopySource={"Bucket": settings.outputs_bucket, "Key": source_key},
                                     ContentType=CONTENT_TYPE, MetadataDirective="REPLACE", **copy)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412", "NoSuchKey", "404"):
            raise Conflict("The upload changed while it was registered; retry", code="lora_conflict") from None
        raise
    record = _record(workspace_id, lora_id, _name(name, source_key), "upload", total, info, families, key=key)
    _add_or_forget(record, exists)
    return record


def _add_or_forget(record: LoraRecord, exists: bool) -> None:
    try:
        _add(record, record.size, exists)
    except BaseException:
        if record.key:
            storage.delete([record.key], bucket=get_settings().adapters_bucket)  # refused (a cap reached meanwhile)
        raise


def register_url(workspace_id: str, url: str, *, name: str | None = None, field: str = "url") -> LoraRecord:
    """A LoRA at a URL (https; loopback http too in the local stack): only its header is read, nothing stored."""
    remote = _remote_header(url, field)
    info, families = _judge(remote.data, remote.total, field)
    exists = _check_room(workspace_id, 0)
    record = _record(workspace_id, new_id(), _name(name, urlsplit(url).path or "lora"), "url", remote.total,
                     info, families, url=url)
    _add(record, 0, exists)
    return record


HF_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
WEIGHT_NAME = re.compile(r"^(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9._/-]{0,254}\.safetensors$")
REVISION = re.compile(r"^(?!.*\.\.)[A-Za-z0-9_][A-Za-z0-9._/-]{0,99}$")


def hub_url(hf_repo: str, weight_name: str, revision: str) -> str:
    return f"{HUB}/{hf_repo}/resolve/{quote(revision, safe='')}/{quote(weight_name, safe='/')}"


def register_hub(workspace_id: str, hf_repo: str, *, weight_name: str | None = None, revision: str | None = None,
                 name: str | None = None) -> LoraRecord:
    """A file of a Hugging Face Hub repository. The Hub's file listing needs its API, so the file is named:
    weight_name, default `pytorch_lora_weights.safetensors` (as diffusers' load_lora_weights assumes)."""
    weight_name = weight_name or DEFAULT_WEIGHT_NAME
    revision = revision or "main"
    if not HF_REPO.match(hf_repo):
        raise _refused("hf_repo", "must be a Hub repository id, owner/name", "invalid_repo")
    if not WEIGHT_NAME.match(weight_name):
        raise _refused("weight_name", "must be a .safetensors file path in the repository", "invalid_weight_name")
    if not REVISION.match(revision):
        raise _refused("revision", "must be a branch, tag or commit", "invalid_revision")
    field = "weight_name" if weight_name != DEFAULT_WEIGHT_NAME else "hf_repo"
    remote = _remote_header(hub_url(hf_repo, weight_name, revision), field)
    info, families = _judge(remote.data, remote.total, field)
    exists = _check_room(workspace_id, 0)
    record = _record(workspace_id, new_id(), _name(name, f"{hf_repo}"), "hub", remote.total, info, families,
                     hf_repo=hf_repo, weight_name=weight_name, revision=revision, commit=remote.commit)
    _add(record, 0, exists)
    return record


# ---------------------------------------------------------------- reading and deleting


def list_loras(workspace_id: str) -> tuple[list[LoraRecord], Usage]:
    """Newest first, with the workspace's usage of its caps."""
    item = _read_registry(workspace_id)
    records = [LoraRecord.model_validate(r) for r in ((item or {}).get("loras") or {}).values()]
    records.sort(key=lambda r: (r.created_at, r.id), reverse=True)
    return records, _usage(item)


def resolve(workspace_id: str, ref: str) -> LoraRecord | None:
    """The workspace's LoRA with id `ref`, or None (another workspace's id, an unknown or malformed one)."""
    if not isinstance(ref, str) or not ID_PATTERN.match(ref):
        return None
    resp = aws.client("dynamodb").get_item(
        TableName=_table(), Key=_registry_key(workspace_id), ConsistentRead=True,
        ProjectionExpression="loras.#id", ExpressionAttributeNames={"#id": ref})
    found = dynamo.deserialize(resp.get("Item", {})).get("loras", {}).get(ref)
    if not found:
        return None
    record = LoraRecord.model_validate(found)
    return record if record.workspace_id == workspace_id else None


def get(workspace_id: str, lora_id: str) -> LoraRecord:
    record = resolve(workspace_id, lora_id)
    if record is None:
        raise NotFound(f"LoRA {lora_id[:64]} not found", code="lora_not_found")
    return record


def delete(workspace_id: str, lora_id: str) -> LoraRecord:
    """Remove the record (and give back its share of the caps), then the uploaded file."""
    record = get(workspace_id, lora_id)
    ddb = aws.client("dynamodb")
    stored = record.size if record.source == "upload" else 0
    try:
        ddb.update_item(TableName=_table(), Key=_registry_key(workspace_id),
                        UpdateExpression="REMOVE loras.#id ADD lora_count :minus, lora_bytes :bytes",
                        ConditionExpression="attribute_exists(loras.#id)",
                        ExpressionAttributeNames={"#id": lora_id},
                        ExpressionAttributeValues={":minus": {"N": "-1"}, ":bytes": {"N": str(-stored)}})
    except ddb.exceptions.ConditionalCheckFailedException:
        raise NotFound(f"LoRA {lora_id} not found", code="lora_not_found") from None
    if record.key:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            storage.delete([record.key], bucket=get_settings().adapters_bucket)
        except (BotoCoreError, ClientError):  # the record is gone (nothing can use the file); the bucket's lifecycle rule removes it
            logger.exception("a deleted LoRA's file could not be deleted", extra={"lora": lora_id})
    return record


__all__ = ["LoraRecord", "Usage", "delete", "get", "key_for", "list_loras", "register_bytes", "register_hub",
           "register_upload", "register_url", "resolve"]


# ---------------------------------------------------------------- a request's adapters

# A path that names a Hub file rather than a registered LoRA or a URL: owner/name, owner/name/dir/file.safetensors,
# either with @revision.
_HUB_PATH = re.compile(r"^(?P<repo>[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95})"
                       r"(?:/(?P<file>[^@]+\.safetensors))?(?:@(?P<revision>[A-Za-z0-9_][A-Za-z0-9._/-]{0,99}))?$")


def for_job(workspace_id: str, path: str, scale: float, family: str, field: str, *,
            max_rank: int | None = None) -> dict[str, Any]:
    """One adapter of a request, as the worker takes it (gpu/adapters.py): what was asked for, and where the file is.

    `path` is a LoRA of the workspace (its id), an https URL, or a Hub file (owner/name[/file.safetensors][@rev]).
    The file is judged here, at submit, from its header alone, like a registration: a LoRA that does not fit the
    model's base `family` is a 400 naming `field`, not a failed job later. A Hub revision is pinned to the commit
    it named (X-Repo-Commit), so the job runs the file that was judged. `max_rank`: the highest rank the model
    takes (a model that hot-swaps adapters, catalog LoraHotswap), a 400 above it."""
    entry: dict[str, Any] = {"path": path, "scale": scale}
    if path.startswith("lora_"):
        record = resolve(workspace_id, path)
        if record is None:
            raise _refused(field, f"no LoRA {path[:64]} in this workspace (GET /api/loras lists them)", "lora_not_found")
        fitting, rank = record.families, record.rank
        entry |= {"id": record.id, "name": record.name}
        if record.key:
            entry["source"] = {"upload_key": record.key, "bucket": get_settings().adapters_bucket}
        else:
            url = record.url or hub_url(record.hf_repo or "", record.weight_name or DEFAULT_WEIGHT_NAME,
                                        record.commit or record.revision or "main")
            entry["source"] = {"url": url}
    else:
        if path.startswith(("https://", "http://")):
            url = path
        elif match := _HUB_PATH.match(path):
            url = hub_url(match["repo"], match["file"] or DEFAULT_WEIGHT_NAME, match["revision"] or "main")
        else:
            raise _refused(field, "must be a LoRA id (lora_…), a Hugging Face repo (owner/name, optionally "
                                  "/file.safetensors and @revision) or an https URL to a .safetensors file",
                           "invalid_lora_path")
        remote = _remote_header(url, field)
        info, fitting = _judge(remote.data, remote.total, field)
        rank = info.rank
        if remote.commit and "/resolve/" in url:
            url = re.sub(r"/resolve/[^/]+/", f"/resolve/{remote.commit}/", url, count=1)
        entry["source"] = {"url": url}
    if family not in fitting:
        raise _refused(field, f"this LoRA is for {', '.join(fitting) or 'no known base'}, not {family} (the model's "
                              "base); pick a model of that family", "lora_wrong_base")
    if max_rank is not None and rank > max_rank:
        raise _refused(field, f"has rank {rank}; this model hot-swaps LoRAs into its compiled denoiser, of rank "
                              f"{max_rank} at most", "lora_rank_too_high")
    return entry
