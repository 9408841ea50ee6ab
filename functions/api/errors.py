"""Every failure becomes a 4xx/5xx in the error format of the dialect the request came through."""

from __future__ import annotations

import importlib
import json

from aws_lambda_powertools.event_handler import Response, content_types

from functions.core.errors import DarkroomError, NotFound
from functions.dialects import dialect_for_path


def render(path: str, exc: DarkroomError) -> Response:
    # The dialect's module is imported when its first error is rendered: its router has imported it already.
    renderer = importlib.import_module(f"functions.dialects.{dialect_for_path(path)}").error_body
    return Response(
        status_code=exc.status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(renderer(exc)),
        headers=exc.headers,
    )


def route_not_found(path: str, method: str) -> Response:
    return render(path, NotFound(f"No route for {method} {path}", code="route_not_found"))
