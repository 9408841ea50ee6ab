"""Uploads of input files: `POST /api/uploads` (a presigned S3 POST, for files of any size up to 20 MiB),
and the vendors' multipart fronts `POST /files` (Artificial Studio) and `POST /api/v1/uploads`
(AI Media Studio), which also take a JSON body to get a presigned upload instead."""

from __future__ import annotations

from typing import Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import ConfigDict, Field

from functions.api.auth import Principal
from functions.api.multipart import parse_form, sniff_content_type
from functions.api.openapi import doc
from functions.api.request import json_body, json_response
from functions.core import uploads
from functions.core.errors import FieldError, ValidationFailed
from functions.core.generation import parse_input
from functions.core.schema import Request
from functions.dialects import AIMS

router = Router()


class UploadRequest(Request):
    model_config = ConfigDict(extra="forbid")
    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field(description="image/png, image/jpeg, image/webp or image/gif (purpose lora: "
                                          "application/octet-stream)")
    purpose: Literal["image", "lora"] = Field(
        "image", description="lora: a .safetensors LoRA file of up to 2 GiB, to register with POST /api/loras "
                             "{\"upload\": reference}.")


def _principal() -> Principal:
    principal: Principal = router.context["principal"]
    return principal


def _presigned(principal: Principal) -> Response[dict]:
    body = parse_input(UploadRequest, json_body(router.current_event))
    return json_response(201, uploads.presigned_upload(principal.workspace_id, body.filename, body.content_type,
                                                       body.purpose))


def _multipart(principal: Principal) -> Response[dict]:
    form = parse_form(router.current_event)
    files = form.files.get("file") or next(iter(form.files.values()), None)
    if not files:
        raise ValidationFailed("No file in the form", errors=[FieldError("file", "is required", "required")])
    upload = files[0]
    content_type = sniff_content_type(upload.data, upload.content_type)
    return json_response(201, uploads.store(principal.workspace_id, upload.filename or "file", content_type,
                                            upload.data, field=upload.field))


def _either() -> Response[dict]:
    principal = _principal()
    content_type = (router.current_event.headers or {}).get("content-type", "")
    if content_type.lower().startswith("multipart/form-data"):
        return _multipart(principal)
    return _presigned(principal)


@router.post("/api/uploads", **doc(
    "Get a presigned upload", ok="PresignedUpload", status=201, body=UploadRequest, errors=(400, 403),
    description="POST the file (up to 20 MiB) to upload.url with upload.fields; then pass `reference` as an "
                "image URL."))
def create_upload() -> Response[dict]:
    return _presigned(_principal())


@router.post("/files", **doc(
    "Upload a file", ok=("StoredUpload", "PresignedUpload"), status=201, body=UploadRequest, form="UploadForm",
    errors=(400, 403), description="multipart/form-data stores the file; a JSON body gets a presigned upload."))
def upload_file() -> Response[dict]:
    return _either()


@router.post("/api/v1/uploads", **doc(
    "Upload a file", dialect=AIMS, ok=("StoredUpload", "PresignedUpload"), status=201, body=UploadRequest,
    form="UploadForm", errors=(400, 403),
    description="multipart/form-data stores the file; a JSON body gets a presigned upload."))
def upload_v1() -> Response[dict]:
    return _either()
