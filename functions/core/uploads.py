"""Input files (reference images): uploaded straight to S3 with a presigned POST, the serverless way around
Lambda's 6 MB payload limit, or stored directly when a small multipart upload comes through the API.

An upload is referred to later as `upload://<id>`. The API turns that into a key under the caller's own
workspace prefix, so one workspace can never point a job at another's files, and the worker reads it from
S3 directly (never over HTTP).
"""

from __future__ import annotations

import re
import secrets
from functools import lru_cache

from . import aws, links, storage
from .errors import FieldError, ValidationFailed
from .imageinfo import ImageHeader, read_header
from .lora_files import MAX_LORA_BYTES
from .settings import get_settings
from .urls import UnsafeUrl, check_url

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
UPLOAD_TTL_SECONDS = 3600
SCHEME = "upload://"
IMAGE_TYPES = {"image/png", "image/jpeg", "image/webp", "image/gif"}
_ID = re.compile(r"^up_[0-9a-f]{24}/[A-Za-z0-9._-]{1,128}$")


def _safe_name(filename: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", filename.rsplit("/", 1)[-1]).strip(".-") or "file"
    return name[:128]


def new_upload_id(filename: str) -> str:
    return f"up_{secrets.token_hex(12)}/{_safe_name(filename)}"


def key_for(workspace_id: str, upload_id: str) -> str:
    return f"{workspace_id}/uploads/{upload_id}"


# Magic numbers of the image types uploads accept.
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
               (b"GIF89a", "image/gif"))


def detect_image_type(data: bytes) -> str | None:
    """The image type the bytes themselves say (their magic number), or None."""
    for magic, kind in _SIGNATURES:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def check_content_type(content_type: str, field: str = "content_type") -> None:
    if content_type not in IMAGE_TYPES:
        raise ValidationFailed(f"Unsupported file type {content_type!r}",
                               errors=[FieldError(field, f"must be one of {', '.join(sorted(IMAGE_TYPES))}",
                                                  "unsupported_type")])


# A LoRA adapter's file (purpose "lora"): a safetensors file of up to MAX_LORA_BYTES, registered afterwards with
# POST /api/loras {"upload": "upload://…"} (functions/core/loras.py reads and judges its header then).
LORA_CONTENT_TYPE = "application/octet-stream"


def check_lora_upload(filename: str, content_type: str) -> None:
    if content_type != LORA_CONTENT_TYPE:
        raise ValidationFailed(f"Unsupported file type {content_type!r} for a LoRA",
                               errors=[FieldError("content_type", f"must be {LORA_CONTENT_TYPE} for a LoRA file",
                                                  "unsupported_type")])
    if not filename.lower().endswith(".safetensors"):
        raise ValidationFailed("A LoRA file must be a .safetensors file",
                               errors=[FieldError("filename", "must end with .safetensors (pickled .bin/.pt/.ckpt "
                                                              "files are never accepted)", "unsupported_type")])


def presigned_upload(workspace_id: str, filename: str, content_type: str, purpose: str = "image") -> dict:
    """A presigned POST for one file (an image of at most 20 MiB; purpose "lora": a .safetensors file of at most
    MAX_LORA_BYTES), and the reference to use in later requests."""
    if purpose == "lora":
        check_lora_upload(filename, content_type)
        max_bytes = MAX_LORA_BYTES
    else:
        check_content_type(content_type)
        max_bytes = MAX_UPLOAD_BYTES
    upload_id = new_upload_id(filename)
    post = aws.client("s3").generate_presigned_post(
        Bucket=get_settings().outputs_bucket,
        Key=key_for(workspace_id, upload_id),
        Fields={"Content-Type": content_type},
        Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
        ExpiresIn=UPLOAD_TTL_SECONDS,
    )
    return {"id": upload_id, "reference": SCHEME + upload_id,
            "upload": {"method": "POST", "url": post["url"], "fields": post["fields"]},
            "max_bytes": max_bytes, "expires_in": UPLOAD_TTL_SECONDS}


def upload_key_for_reference(workspace_id: str, value: str) -> str | None:
    """The S3 key an `upload://…` reference names in this workspace, or None if it is not a valid reference."""
    if not value.startswith(SCHEME) or not _ID.match(value[len(SCHEME):]):
        return None
    return key_for(workspace_id, value[len(SCHEME):])


def store(workspace_id: str, filename: str, content_type: str, data: bytes, field: str = "file") -> dict:
    """A small file that came through the API itself (multipart)."""
    check_content_type(content_type, field)
    if not data:
        raise ValidationFailed("The file is empty", errors=[FieldError(field, "is empty", "empty_file")])
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValidationFailed("The file is larger than 20 MiB",
                               errors=[FieldError(field, "is larger than 20 MiB", "file_too_large")])
    # Bytes that are not the image they claim to be are refused before anything is stored. (The worker
    # decodes every reference again, with its pixel limit, before any GPU time is spent.)
    actual = detect_image_type(data)
    if actual != content_type:
        found = f"its bytes are {actual}" if actual else "its bytes are not a PNG, JPEG, WebP or GIF image"
        raise ValidationFailed(f"The file is not a valid {content_type} ({found})",
                               errors=[FieldError(field, f"is not a valid {content_type} ({found})",
                                                  "content_mismatch")])
    upload_id = new_upload_id(filename)
    key = key_for(workspace_id, upload_id)
    storage.put_bytes(key, data, content_type)
    return {"id": upload_id, "reference": SCHEME + upload_id, "url": links.media_url(key),
            "size": len(data), "content_type": content_type}


# An image's header is in its first bytes (functions/core/imageinfo.py); a JPEG with a large EXIF block may hold
# its size further in, and then only the worker knows it.
HEADER_BYTES = 64 * 1024


@lru_cache(maxsize=256)
def upload_header(key: str) -> ImageHeader | None:
    """The header of an upload (None if it is not a format imageinfo reads); LookupError if there is none. An
    upload never changes under its key, so what was read is kept."""
    try:
        stored = storage.open_object(key, byte_range=f"bytes=0-{HEADER_BYTES - 1}")
    except storage.ObjectMissing:
        raise LookupError(key) from None
    with stored.body as body:
        return read_header(body.read())


def resolve_reference(value: str, workspace_id: str, field: str) -> dict:
    """A reference as the worker takes it: {"upload_key": …} for our uploads, {"url": …} for http(s). An upload
    must exist in the caller's workspace now: another workspace's, or one never uploaded, is a 400 here, not a
    failed job later."""
    if value.startswith(SCHEME):
        upload_id = value[len(SCHEME):]
        if not _ID.match(upload_id):
            raise ValidationFailed(f"{field}: malformed upload reference",
                                   errors=[FieldError(field, "is not a valid upload:// reference", "invalid_reference")])
        key = key_for(workspace_id, upload_id)
        try:
            upload_header(key)
        except LookupError:
            reason = "is not an upload of this workspace (each workspace sees its own uploads only)"
            raise ValidationFailed(f"{field}: {reason}",
                                   errors=[FieldError(field, reason, "upload_not_found")]) from None
        return {"upload_key": key}
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValidationFailed(f"{field}: must be an http(s) URL or an upload:// reference",
                               errors=[FieldError(field, "must be an http(s) URL or an upload:// reference",
                                                  "invalid_reference")])
    try:
        # Early, clear 400 for private targets; the worker checks again (and after every redirect).
        check_url(value, allow_loopback=get_settings().local, schemes=("http", "https"), must_resolve=False)
    except UnsafeUrl as exc:
        raise ValidationFailed(f"{field}: {exc}", errors=[FieldError(field, str(exc), "invalid_reference")]) from None
    return {"url": value}
