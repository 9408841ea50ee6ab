"""Style presets, listed for each dialect: GET /api/v1/styles (AI Media Studio) and GET /api/styles (native)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from functions.api.openapi import doc
from functions.api.request import json_response
from functions.core.styles import get_styles
from functions.dialects import AIMS

router = Router()


@router.get("/api/v1/styles", **doc("List style presets", dialect=AIMS, ok="AIMSStyleList", errors=()))
def list_styles_aims() -> Response[dict]:
    return json_response(200, {"success": True, "styles": [s.public() for s in get_styles().styles]})


@router.get("/api/styles", **doc("List style presets", ok="StyleList", errors=()))
def list_styles() -> Response[dict]:
    return json_response(200, {"data": [s.public() for s in get_styles().styles]})
