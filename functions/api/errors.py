"""Every failure becomes a 4xx/5xx in the error format of the dialect the request came through."""

from __future__ import annotations

import importlib
import json

from aws_lambda_powertools.event_handler import Response, content_types

from functions.core.errors import DarkroomError, FieldError, MethodNotAllowed, NotFound
from functions.dialects import dialect_for_path


def render(path: str, exc: DarkroomError) -> Response:
    # The dialect's module is imported when its first error is rendered: its router has imported it already.
    module = importlib.import_module(f"functions.dialects.{dialect_for_path(path)}")
    # A dialect may answer a status of its own for an error (Replicate: invalid input is a 422).
    status = module.status_code(exc) if hasattr(module, "status_code") else exc.status
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(module.error_body(exc)),
        headers=exc.headers,
    )


def route_not_found(path: str, method: str) -> Response:
    """404 for a path no route serves; 405 with Allow for one served under other methods."""
    from functions.api import scopes

    allowed = scopes.methods_for(path)
    if allowed and method not in allowed:
        listed = ", ".join(allowed)
        return render(path, MethodNotAllowed(
            f"{method} is not allowed on {path}; use {listed}", code="method_not_allowed", headers={"allow": listed},
            errors=[FieldError("method", f"must be one of {listed}", "method_not_allowed")]))
    return render(path, NotFound(f"No route for {method} {path}", code="route_not_found"))
