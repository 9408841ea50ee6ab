"""OpenAI-compatible dialect (ArtAPI): /v1/images/generations, /v1/images/edits, /v1/images/variations,
/v1/models.

Synchronous: each call submits one job and waits for it (functions/api/sync.py). Errors come out in
OpenAI's shape from functions/dialects/openai.py, so the official SDK raises its usual classes.
"""

from __future__ import annotations

import hashlib
import re

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from functions.api import sync
from functions.api.multipart import UploadedFile, decode_data_url, parse_form
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
# How the OpenAI SDKs put a list of objects (extra_body's `loras`) in a form: loras[][path], or loras[0][path].
_LORA_PART = re.compile(r"^loras\[(\d*)\]\[([a-z_]+)\]$")


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


def _form_loras(fields: dict[str, list[str]]) -> list[dict[str, str]] | None:
    """`loras` from a form: one JSON-encoded field, or the SDKs' bracketed parts (qs's "brackets" format:
    loras[][path]=a, loras[][scale]=0.8, loras[][path]=b, …; the n-th of each key belongs to the n-th adapter)."""
    parts: dict[str, dict[str, str]] = {}
    for name, values in fields.items():
        if match := _LORA_PART.match(name):
            index, key = match.groups()
            for position, value in enumerate(values):
                parts.setdefault(index or str(position), {})[key] = value
    if not parts:
        return fields["loras"][-1] if "loras" in fields else None  # type: ignore[return-value]
    return [parts[index] for index in sorted(parts, key=int)]


@router.post("/v1/images/edits", **doc(
    "Edit images", dialect=OPENAI, ok="ImagesResponse", form="OpenAIImagesEditForm", body=dialect._ImagesEditJson,
    errors=SYNC_ERRORS,
    description="Synchronous image-to-image from one or more images: multipart/form-data (`image`, `image[]`, "
                "`mask` files, as the SDKs send them), or a JSON body with `images: [{image_url}]` and "
                "`mask: {image_url}` (data: URLs, or http(s) URLs the worker fetches). The mask applies to the "
                "first image."))
def images_edits() -> Response[dict]:
    caller = sync.principal(router)
    event = router.current_event
    if (event.headers or {}).get("content-type", "").lower().startswith("application/json"):
        data, images, mask = _json_edit(json_body(event))
        strict = True
    else:
        form = parse_form(event)
        _file_parts(form, (*IMAGE_FIELDS, "mask"), "image (or image[]) and optionally mask")
        images = [f for name in IMAGE_FIELDS for f in form.files.get(name, [])]
        masks = form.files.get("mask", [])
        if len(masks) > 1:
            raise bad_field("mask", "only one mask may be sent", "invalid_value")
        mask = masks[0] if masks else None
        data = {name: values[-1] for name, values in form.fields.items() if not _LORA_PART.match(name)}
        if (loras := _form_loras(form.fields)) is not None:
            data["loras"] = loras
        strict = False  # a form: every field is a string
    if not images:
        raise bad_field("image", "is required: one or more images", "required")
    if len(images) > MAX_IMAGES:
        raise bad_field("image", f"at most {MAX_IMAGES} images, got {len(images)}", "too_many_images")
    if isinstance(mask, UploadedFile) and isinstance(images[0], UploadedFile):
        _check_mask(mask.data, images[0].data)  # OpenAI applies the mask to the first image
    _refuse_unsupported(data)
    body = parse_input(dialect.ImagesEditRequest, data, strict=strict)
    model = pick_model(body.model, kind="image", references=True, references_field="image")
    styled = dialect.styled(body)
    gen = sync.SyncGeneration(model=model, fields=dialect.generation_input(body, model, styled),
                              record=body.model_dump(exclude_none=True), dialect=OPENAI, names=dialect.PARAM_NAMES,
                              references_field="image")
    sync.precheck(gen)  # every 400 before anything is stored
    gen.fingerprint = {**gen.record, "image": [_digest(i) for i in images], "mask": [_digest(mask)] if mask else []}
    gen.record["image"] = gen.fields["image_urls"] = [_reference(caller.workspace_id, i, "image") for i in images]
    if mask is not None:
        # Inpainting: the transparent region is repainted, the rest of the first image kept as it is.
        gen.record["mask"] = gen.fields["mask_url"] = _reference(caller.workspace_id, mask, "mask")
    job = sync.run(router, gen)
    return json_response(200, dialect.images_response(job, response_format=body.response_format))


def _json_edit(data) -> tuple[dict, list, UploadedFile | str | None]:
    """OpenAI's JSON edit body: `images: [{image_url}]` and `mask: {image_url}` out of it, each a data: URL
    (decoded here, as a multipart file would be) or an http(s) URL (fetched by the worker, SSRF-guarded)."""
    if not isinstance(data, dict):
        raise bad_field("body", "must be a JSON object", "invalid_type")
    data = dict(data)
    listed = data.pop("images", None)
    if not isinstance(listed, list) or not all(isinstance(i, dict) for i in listed):
        raise bad_field("images", 'must be a list of {"image_url": "..."} objects', "invalid_type")
    images = [_json_image(item, f"images.{index}") for index, item in enumerate(listed)]
    mask = data.pop("mask", None)
    if mask is not None and not isinstance(mask, dict):
        raise bad_field("mask", 'must be {"image_url": "..."}', "invalid_type")
    return data, images, _json_image(mask, "mask") if mask is not None else None


def _json_image(item: dict, field: str) -> UploadedFile | str:
    unknown = set(item) - {"image_url"}
    if unknown:
        raise bad_field(f"{field}.{min(unknown)}", "is not supported; send image_url (file_id is OpenAI's "
                                                         "Files API, which Darkroom does not have)", "unsupported_parameter")
    url = item.get("image_url")
    if not isinstance(url, str) or not url:
        raise bad_field(f"{field}.image_url", "is required: a data: URL or an http(s) URL", "required")
    if url.startswith("data:"):
        return decode_data_url(url, f"{field}.image_url")
    if len(url) > 2048:
        raise bad_field(f"{field}.image_url", "is longer than 2048 characters", "string_too_long")
    return url


def _digest(image: UploadedFile | str) -> str:
    return hashlib.sha256(image.data if isinstance(image, UploadedFile) else image.encode()).hexdigest()


def _reference(workspace_id: str, image: UploadedFile | str, field: str) -> str:
    """An upload reference for bytes (stored now, in the caller's workspace), or the URL as it was given."""
    if isinstance(image, str):
        return image
    return uploads.store(workspace_id, image.filename, image.content_type, image.data, field=field)["reference"]


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
    model = dialect.variation_model(body)
    gen = sync.SyncGeneration(model=model, fields=dialect.variation_input(body, model),
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
