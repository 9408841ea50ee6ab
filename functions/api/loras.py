"""A workspace's own LoRA adapters: `POST /api/loras` (register), `GET /api/loras`, `GET /api/loras/{id}`,
`DELETE /api/loras/{id}`. Thin: functions/core/loras.py reads the file's header and keeps the registry.

POST takes multipart/form-data with the file (`file`, and an optional `name`) for small files, or JSON naming
where the file is: `{"upload": "upload://…"}` (a presigned upload, `POST /api/uploads` with purpose "lora", for
any size up to 2 GiB), `{"url": "https://…"}` or `{"hf_repo": "owner/name", "weight_name": …, "revision": …}`.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import ConfigDict, Field

from functions.api.auth import Principal
from functions.api.multipart import parse_form
from functions.api.openapi import doc
from functions.api.request import json_body, json_response
from functions.core import loras
from functions.core.errors import FieldError, PayloadTooLarge, ValidationFailed
from functions.core.generation import parse_input
from functions.core.schema import Request

router = Router()

# A file through the API itself rides in the Lambda payload (6 MB, base64-encoded by API Gateway); larger ones go
# through a presigned upload.
MAX_MULTIPART_BYTES = 4 * 1024 * 1024


class RegisterLora(Request):
    """Exactly one of upload, url or hf_repo."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=100)
    upload: str | None = Field(None, max_length=300, description="upload://… from POST /api/uploads (purpose lora).")
    url: str | None = Field(None, min_length=1, max_length=2048, description="An https URL of a .safetensors file.")
    hf_repo: str | None = Field(None, min_length=3, max_length=193, description="A Hugging Face Hub repository.")
    weight_name: str | None = Field(None, min_length=1, max_length=255,
                                    description=f"The file in hf_repo; default {loras.DEFAULT_WEIGHT_NAME}.")
    revision: str | None = Field(None, min_length=1, max_length=100, description="Branch, tag or commit; default main.")


def _principal() -> Principal:
    principal: Principal = router.context["principal"]
    return principal


def _multipart(workspace_id: str) -> loras.LoraRecord:
    form = parse_form(router.current_event)
    files = form.files.get("file") or next(iter(form.files.values()), None)
    if not files:
        raise ValidationFailed("No file in the form", errors=[FieldError("file", "is required", "required")])
    upload = files[0]
    if len(upload.data) > MAX_MULTIPART_BYTES:
        reason = (f"is larger than the {MAX_MULTIPART_BYTES // (1024 * 1024)} MiB a form may carry; upload it with "
                  "POST /api/uploads (purpose lora), then register {\"upload\": reference}")
        raise PayloadTooLarge(f"file {reason}", errors=[FieldError(upload.field, reason, "file_too_large")])
    name = form.value("name")
    if name is not None and not 1 <= len(name) <= 100:
        raise ValidationFailed("name: must be 1 to 100 characters",
                               errors=[FieldError("name", "must be 1 to 100 characters", "invalid")])
    return loras.register_bytes(workspace_id, upload.data, upload.filename, name=name, field=upload.field)


def _json(workspace_id: str) -> loras.LoraRecord:
    body = parse_input(RegisterLora, json_body(router.current_event))
    given = [f for f in ("upload", "url", "hf_repo") if getattr(body, f) is not None]
    if len(given) != 1:
        reason = "exactly one of upload, url or hf_repo is required" if not given else \
            f"give only one of {', '.join(given)}"
        raise ValidationFailed(f"Invalid request: {reason}",
                               errors=[FieldError(given[1] if len(given) > 1 else "upload", reason, "invalid")])
    for extra in ("weight_name", "revision"):
        if getattr(body, extra) is not None and body.hf_repo is None:
            raise ValidationFailed(f"Invalid request: {extra} is only taken with hf_repo",
                                   errors=[FieldError(extra, "is only taken with hf_repo", "invalid")])
    if body.upload is not None:
        return loras.register_upload(workspace_id, body.upload, name=body.name)
    if body.url is not None:
        return loras.register_url(workspace_id, body.url, name=body.name)
    return loras.register_hub(workspace_id, body.hf_repo or "", weight_name=body.weight_name,
                              revision=body.revision, name=body.name)


@router.post("/api/loras", **doc(
    "Register a LoRA", ok="Lora", status=201, body=RegisterLora, form="LoraForm", errors=(400, 403, 409, 413),
    description="A .safetensors LoRA: multipart/form-data with the file (up to 4 MiB), or JSON naming an "
                "upload (POST /api/uploads with purpose lora, up to 2 GiB), a URL or a Hugging Face Hub file. "
                "Only the file's header is read: it must be a diffusers/peft or kohya LoRA that fits a base family."))
def register_lora() -> Response[dict]:
    workspace_id = _principal().workspace_id
    content_type = (router.current_event.headers or {}).get("content-type", "")
    record = _multipart(workspace_id) if content_type.lower().startswith("multipart/form-data") else \
        _json(workspace_id)
    return json_response(201, record.public())


@router.get("/api/loras", **doc("List LoRAs", ok="LoraList", errors=(403,)))
def list_loras() -> Response[dict]:
    records, usage = loras.list_loras(_principal().workspace_id)
    return json_response(200, {"data": [r.public() for r in records], "usage": usage.public()})


@router.get("/api/loras/<lora_id>", **doc("Get a LoRA", ok="Lora", errors=(403, 404)))
def get_lora(lora_id: str) -> Response[dict]:
    return json_response(200, loras.get(_principal().workspace_id, lora_id).public())


@router.delete("/api/loras/<lora_id>", **doc("Delete a LoRA", ok="LoraDeleted", errors=(403, 404)))
def delete_lora(lora_id: str) -> Response[dict]:
    record = loras.delete(_principal().workspace_id, lora_id)
    return json_response(200, {"id": record.id, "object": "lora", "deleted": True})
