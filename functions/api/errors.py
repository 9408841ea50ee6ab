"""Every failure becomes a 4xx/5xx in the error format of the dialect the request came through."""

from __future__ import annotations

import json

from aws_lambda_powertools.event_handler import Response, content_types

from functions.core.errors import DarkroomError, NotFound
from functions.dialects import AIMS, NATIVE, OPENAI, aims, dialect_for_path, native, openai

RENDERERS = {NATIVE: native.error_body, OPENAI: openai.error_body, AIMS: aims.error_body}


def render(path: str, exc: DarkroomError) -> Response:
    renderer = RENDERERS.get(dialect_for_path(path), native.error_body)
    return Response(
        status_code=exc.status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(renderer(exc)),
        headers=exc.headers,
    )


def route_not_found(path: str, method: str) -> Response:
    return render(path, NotFound(f"No route for {method} {path}", code="route_not_found"))
