"""OpenAI-compatible dialect (ArtAPI): /v1/images/generations, /v1/images/edits, /v1/models.

Synchronous: each call submits one job and waits for it (functions/api/sync.py). Errors come out in
OpenAI's shape from functions/dialects/openai.py, so the official SDK raises its usual classes.
"""

from __future__ import annotations

import hashlib

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from functions.api import sync
from functions.api.multipart import parse_form
from functions.api.request import json_body, json_response
from functions.core import uploads
from functions.core.errors import NotFound
from functions.core.generation import parse_input
from functions.dialects import OPENAI
from functions.dialects import openai as dialect
from functions.dialects.shared import bad_field, pick_model
from functions.core.catalog import get_catalog

router = Router()

# /v1/models has no creation dates to show: the catalog is configuration. A fixed epoch keeps the
# field an integer, as the SDK's Model type wants, and stable across deploys.
MODELS_CREATED = 1704067200
MAX_IMAGES = 10
# Multipart file fields: the image(s) to edit, and the optional mask.
IMAGE_FIELDS = ("image", "image[]")


def _refuse_unsupported(data: dict) -> None:
    found = dialect.unsupported_param(data)
    if found:
        raise bad_field(found[0], found[1], "unsupported_parameter")
    if str(data.get("stream", "")).lower() in ("true", "1"):
        raise bad_field("stream", "streaming is not supported: these calls answer once the images are ready; "
                                  "omit stream or set it to false", "unsupported_parameter")


@router.post("/v1/images/generations")
def images_generations() -> Response:
    data = json_body(router.current_event)
    if isinstance(data, dict):
        _refuse_unsupported(data)
    body = parse_input(dialect.ImagesGenerateRequest, data)
    model = pick_model(body.model, kind="image", references=False, references_field="image")
    styled = dialect.styled(body)
    job = sync.run(router, sync.SyncGeneration(
        model=model, fields=dialect.generation_input(body, model, styled), record=body.model_dump(exclude_none=True),
        dialect=OPENAI, names=dialect.PARAM_NAMES))
    return json_response(200, dialect.images_response(job, response_format=body.response_format))


@router.post("/v1/images/edits")
def images_edits() -> Response:
    caller = sync.principal(router)
    form = parse_form(router.current_event)
    images = [f for name in IMAGE_FIELDS for f in form.files.get(name, [])]
    masks = form.files.get("mask", [])
    for name in form.files:
        if name not in (*IMAGE_FIELDS, "mask"):
            reason = dialect.UNSUPPORTED.get(name, "is not a recognised file field; send image (or image[]) "
                                                   "and optionally mask")
            raise bad_field(name, reason, "unsupported_parameter")
    for name in (*IMAGE_FIELDS, "mask"):
        if name in form.fields:
            raise bad_field(name, "must be a file part (multipart/form-data with a filename)", "invalid_type")
    if not images:
        raise bad_field("image", "is required: one or more image files", "required")
    if len(images) > MAX_IMAGES:
        raise bad_field("image", f"at most {MAX_IMAGES} images, got {len(images)}", "too_many_images")
    if len(masks) > 1:
        raise bad_field("mask", "only one mask may be sent", "invalid_value")
    data = {name: values[-1] for name, values in form.fields.items()}
    _refuse_unsupported(data)
    body = parse_input(dialect.ImagesEditRequest, data)
    model = pick_model(body.model, kind="image", references=True, references_field="image")
    styled = dialect.styled(body)
    gen = sync.SyncGeneration(model=model, fields=dialect.generation_input(body, model, styled),
                              record=body.model_dump(exclude_none=True), dialect=OPENAI, names=dialect.PARAM_NAMES,
                              references_field="image")
    caller.require("image:generate")
    sync.precheck(gen)  # every 400 before anything is stored
    gen.fingerprint = {**gen.record, "image": [hashlib.sha256(f.data).hexdigest() for f in images],
                       "mask": [hashlib.sha256(f.data).hexdigest() for f in masks]}
    stored = [uploads.store(caller.workspace_id, f.filename, f.content_type, f.data, field="image") for f in images]
    gen.record["image"] = gen.fields["image_urls"] = [s["reference"] for s in stored]
    if masks:
        # Recorded with the job; the image-to-image pipelines repaint the whole image, guided by the prompt.
        mask = uploads.store(caller.workspace_id, masks[0].filename, masks[0].content_type, masks[0].data,
                             field="mask")
        gen.record["mask"] = mask["reference"]
    job = sync.run(router, gen)
    return json_response(200, dialect.images_response(job, response_format=body.response_format))


def _image_models():
    return [m for m in get_catalog().models if m.type == "image"]


@router.get("/v1/models")
def list_models() -> Response:
    return json_response(200, dialect.models_list(_image_models(), MODELS_CREATED))


@router.get("/v1/models/<model_id>")
def get_model(model_id: str) -> Response:
    model = get_catalog().model(model_id)
    if model is None or model.type != "image":
        raise NotFound(f"The model {model_id!r} does not exist; GET /v1/models lists them", code="model_not_found")
    return json_response(200, dialect.model_object(model, MODELS_CREATED))
