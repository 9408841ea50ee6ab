"""AI Media Studio dialect: /api/v1/images/generate, /api/v1/videos/generate (POST to generate, GET to
discover models), /api/v1/models.

Synchronous: each POST submits one job and waits for it (functions/api/sync.py); credits_used is the
job's reservation and credits_remaining the workspace balance after it.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from functions.api import sync
from functions.api.openapi import SYNC_ERRORS, doc, query
from functions.api.request import json_body, json_response
from functions.core import credits
from functions.core.catalog import ModelSpec, get_catalog
from functions.core.generation import parse_input
from functions.core.settings import get_settings
from functions.dialects import AIMS
from functions.dialects import aims as dialect
from functions.dialects.shared import DEFAULT_TOOLS, bad_field, pick_model

router = Router()


def _entries(kind: str | None) -> list[dict]:
    """The models of `kind` (None: all) as the discovery routes list them, with the catalog's facts."""
    catalog, accepted = get_catalog(), get_settings().accepted_licenses
    return [dialect.model_entry(m, catalog.facts(m, accepted)) for m in catalog.models if kind in (None, m.type)]


def _default_model(kind: str) -> ModelSpec | None:
    catalog = get_catalog()
    tool = catalog.tool(DEFAULT_TOOLS[(kind, False)])
    return catalog.model(tool.default_model) if tool else None


@router.post("/api/v1/images/generate", **doc(
    "Generate images", dialect=AIMS, ok="AIMSImagesResponse", body=dialect.ImagesGenerateRequest, errors=SYNC_ERRORS,
    description="Synchronous: answers once the images are ready (504 with the job id if the wait runs out)."))
def generate_images() -> Response[dict]:
    caller = sync.principal(router)
    body = parse_input(dialect.ImagesGenerateRequest, json_body(router.current_event))
    model = pick_model(body.model, kind="image", references=bool(body.image_urls))
    styled = dialect.image_styles(body)
    fields, names = dialect.image_input(body, model, styled)
    job = sync.run(router, sync.SyncGeneration(model=model, fields=fields, record=body.model_dump(exclude_none=True),
                                               dialect=AIMS, names=names, make_public=body.make_public))
    return json_response(200, dialect.images_response(
        job, credits_remaining=credits.balance(caller.workspace_id), style_applied=styled.applied,
        data_uris=bool(body.sync_mode)))


@router.post("/api/v1/videos/generate", **doc(
    "Generate a video", dialect=AIMS, ok="AIMSVideoResponse", body=dialect.VideosGenerateRequest, errors=SYNC_ERRORS,
    description="Synchronous: answers once the video is ready (504 with the job id if the wait runs out)."))
def generate_video() -> Response[dict]:
    caller = sync.principal(router)
    body = parse_input(dialect.VideosGenerateRequest, json_body(router.current_event))
    refs = body.references
    model = pick_model(body.model, kind="video", references=bool(refs), references_field="image_url")
    fields, names = dialect.video_input(body, model)
    job = sync.run(router, sync.SyncGeneration(model=model, fields=fields, record=body.model_dump(exclude_none=True),
                                               dialect=AIMS, names=names, make_public=body.make_public,
                                               references_field=refs[0][0] if refs else "image_url"))
    return json_response(200, dialect.video_response(job, credits_remaining=credits.balance(caller.workspace_id)))


@router.get("/api/v1/images/generate", **doc("Discover image models and defaults", dialect=AIMS, ok="AIMSDiscovery",
                                                 errors=()))
def image_models() -> Response[dict]:
    default = _default_model("image")
    return json_response(200, {
        "success": True,
        "available_models": _entries("image"),
        "defaults": {"model": default.id if default else None, "n": 1,
                     "size": f"{default.defaults.width}x{default.defaults.height}" if default else None,
                     "output_format": "png", "quality": "auto", "background": "auto"},
    })


@router.get("/api/v1/videos/generate", **doc("Discover video models and defaults", dialect=AIMS, ok="AIMSDiscovery",
                                                 errors=()))
def video_models() -> Response[dict]:
    default = _default_model("video")
    return json_response(200, {
        "success": True,
        "available_models": _entries("video"),
        "defaults": {"model": default.id if default else None,
                     "duration": dialect.number(default.defaults.duration) if default else None,
                     "aspect_ratio": dialect.ratio(default.defaults.width, default.defaults.height) if default
                     else None, "audio": False},
    })


@router.get("/api/v1/models", **doc(
    "List models", dialect=AIMS, ok="AIMSModelList",
    params=(query("type", {"type": "string", "enum": ["image", "video"]}, "Only models of this type."),)))
def list_models() -> Response[dict]:
    kind = (router.current_event.query_string_parameters or {}).get("type")
    if kind not in (None, "", "image", "video"):
        raise bad_field("type", "must be image or video")
    return json_response(200, {"success": True, "models": _entries(kind or None)})
