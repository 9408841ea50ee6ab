"""OpenAI-compatible dialect (ArtAPI): /v1/images/generations, /v1/images/edits, /v1/images/variations,
/v1/models.

Synchronous: each call submits one job and waits for it (functions/api/sync.py). Errors come out in
OpenAI's shape from functions/dialects/openai.py, so the official SDK raises its usual classes.
"""

from __future__ import annotations

import hashlib

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from functions.api import sync
from functions.api.multipart import parse_form
from functions.api.openapi import SYNC_ERRORS, doc
from functions.api.request import json_body, json_response
from functions.core import imageinfo, uploads
from functions.core.catalog import get_catalog
from functions.core.errors import NotFound
from functions.core.generation import parse_input
from functions.dialects import OPENAI
from functions.dialects import openai as dialect
from functions.dialects.shared import bad_field, pick_model

router = Router()

# /v1/models has no creation dates to show: the catalog is configuration. A fixed epoch keeps the
# field an integer, as the SDK's Model type wants, and stable across deploys.
MODELS_CREATED = 1704067200
MAX_IMAGES = 10
# Multipart file fields: the image(s) to edit, and the optional mask.
IMAGE_FIELDS = ("image", "image[]")


def _check_mask(mask: bytes, image: bytes) -> None:
    """OpenAI's rules for a mask, before anything is stored or paid for: a PNG with an alpha channel, the
    size of the (first) image. The worker decodes both and checks again."""
    problem = imageinfo.mask_problem(imageinfo.read_header(mask), imageinfo.read_header(image))
    if problem:
        raise bad_field("mask", problem, "invalid_mask")


def _file_parts(form, allowed: tuple[str, ...], hint: str) -> None:
    """Refuse file parts other than `allowed`, and `allowed` names sent as plain fields."""
    for name in form.files:
        if name not in allowed:
            raise bad_field(name, dialect.UNSUPPORTED.get(name, f"is not a recognised file field; send {hint}"),
                            "unsupported_parameter")
    for name in allowed:
        if name in form.fields:
            raise bad_field(name, "must be a file part (multipart/form-data with a filename)", "invalid_type")


def _refuse_unsupported(data: dict) -> None:
    found = dialect.unsupported_param(data)
    if found:
        raise bad_field(found[0], found[1], "unsupported_parameter")
    if str(data.get("stream", "")).lower() in ("true", "1"):
        raise bad_field("stream", "streaming is not supported: these calls answer once the images are ready; "
                                  "omit stream or set it to false", "unsupported_parameter")


@router.post("/v1/images/generations", **doc(
    "Create images", dialect=OPENAI, ok="ImagesResponse", body=dialect.ImagesGenerateRequest, errors=SYNC_ERRORS,
    description="Synchronous: answers once the images are ready (504 with the job id if the wait runs out)."))
def images_generations() -> Response[dict]:
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


@router.post("/v1/images/edits", **doc(
    "Edit images", dialect=OPENAI, ok="ImagesResponse", form="OpenAIImagesEditForm", errors=SYNC_ERRORS,
    description="Synchronous image-to-image from one or more uploaded images (multipart/form-data)."))
def images_edits() -> Response[dict]:
    caller = sync.principal(router)
    form = parse_form(router.current_event)
    images = [f for name in IMAGE_FIELDS for f in form.files.get(name, [])]
    masks = form.files.get("mask", [])
    _file_parts(form, (*IMAGE_FIELDS, "mask"), "image (or image[]) and optionally mask")
    if not images:
        raise bad_field("image", "is required: one or more image files", "required")
    if len(images) > MAX_IMAGES:
        raise bad_field("image", f"at most {MAX_IMAGES} images, got {len(images)}", "too_many_images")
    if len(masks) > 1:
        raise bad_field("mask", "only one mask may be sent", "invalid_value")
    if masks:
        _check_mask(masks[0].data, images[0].data)  # OpenAI applies the mask to the first image
    data = {name: values[-1] for name, values in form.fields.items()}
    _refuse_unsupported(data)
    body = parse_input(dialect.ImagesEditRequest, data, strict=False)  # a form: every field is a string
    model = pick_model(body.model, kind="image", references=True, references_field="image")
    styled = dialect.styled(body)
    gen = sync.SyncGeneration(model=model, fields=dialect.generation_input(body, model, styled),
                              record=body.model_dump(exclude_none=True), dialect=OPENAI, names=dialect.PARAM_NAMES,
                              references_field="image")
    sync.precheck(gen)  # every 400 before anything is stored
    gen.fingerprint = {**gen.record, "image": [hashlib.sha256(f.data).hexdigest() for f in images],
                       "mask": [hashlib.sha256(f.data).hexdigest() for f in masks]}
    stored = [uploads.store(caller.workspace_id, f.filename, f.content_type, f.data, field="image") for f in images]
    gen.record["image"] = gen.fields["image_urls"] = [s["reference"] for s in stored]
    if masks:
        # Inpainting: the transparent region is repainted, the rest of the first image kept as it is.
        mask = uploads.store(caller.workspace_id, masks[0].filename, masks[0].content_type, masks[0].data,
                             field="mask")
        gen.record["mask"] = gen.fields["mask_url"] = mask["reference"]
    job = sync.run(router, gen)
    return json_response(200, dialect.images_response(job, response_format=body.response_format))


@router.post("/v1/images/variations", **doc(
    "Create image variations", dialect=OPENAI, ok="ImagesResponse", form="OpenAIImagesVariationForm",
    errors=SYNC_ERRORS,
    description="Synchronous: image-to-image of the uploaded image at strength 0.7 with a generic prompt "
                "(multipart/form-data)."))
def images_variations() -> Response[dict]:
    caller = sync.principal(router)
    form = parse_form(router.current_event)
    _file_parts(form, ("image",), "image")
    images = form.files.get("image", [])
    if len(images) != 1:
        raise bad_field("image", "is required: exactly one image file", "required" if not images else "invalid_value")
    data = {name: values[-1] for name, values in form.fields.items()}
    _refuse_unsupported(data)
    body = parse_input(dialect.ImagesVariationRequest, data, strict=False)  # a form
    model = pick_model(body.model, kind="image", references=True, references_field="image")
    gen = sync.SyncGeneration(model=model, fields=dialect.variation_input(body),
                              record=body.model_dump(exclude_none=True), dialect=OPENAI, names=dialect.PARAM_NAMES,
                              references_field="image")
    sync.precheck(gen)
    gen.fingerprint = {**gen.record, "image": [hashlib.sha256(images[0].data).hexdigest()]}
    stored = uploads.store(caller.workspace_id, images[0].filename, images[0].content_type, images[0].data,
                           field="image")
    gen.record["image"] = stored["reference"]
    gen.fields["image_urls"] = [stored["reference"]]
    job = sync.run(router, gen)
    return json_response(200, dialect.images_response(job, response_format=body.response_format))


def _image_models():
    return [m for m in get_catalog().models if m.type == "image"]


@router.get("/v1/models", **doc("List image models", dialect=OPENAI, ok="OpenAIModelList", errors=()))
def list_models() -> Response[dict]:
    return json_response(200, dialect.models_list(_image_models(), MODELS_CREATED, get_catalog().aliases))


@router.get("/v1/models/<model_id>", **doc("Get a model", dialect=OPENAI, ok="OpenAIModel", errors=(404,)))
def get_model(model_id: str) -> Response[dict]:
    model = get_catalog().model(model_id)
    if model is None or model.type != "image":
        raise NotFound(f"The model {model_id!r} does not exist; GET /v1/models lists them", code="model_not_found")
    name = model_id if model_id.lower() != model.id else None  # an alias is shown under the name asked for
    return json_response(200, dialect.model_object(model, MODELS_CREATED, name=name))
