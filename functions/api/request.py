"""Reading the request: JSON body and query parameters, with errors that name the field."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from functions.core.errors import FieldError, ValidationFailed
from functions.core.settings import get_settings


def json_body(event: APIGatewayProxyEventV2) -> Any:
    raw = event.decoded_body if event.body is not None else None
    if not raw:
        raise ValidationFailed("Request body is required", errors=[FieldError("body", "is required", "required")])
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationFailed(f"Request body is not valid JSON: {exc}",
                               errors=[FieldError("body", f"is not valid JSON ({exc})", "invalid_json")]) from None


def optional_json_body(event: APIGatewayProxyEventV2) -> Any:
    """The JSON body, or {} when there is none (routes whose body is optional)."""
    return json_body(event) if event.body else {}


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body),
                    headers=headers)


def base_url(event: APIGatewayProxyEventV2) -> str:
    """The API's public origin, for links such as share pages (DARKROOM_PUBLIC_BASE_URL overrides it)."""
    settings = get_settings()
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")
    scheme = "http" if settings.local else "https"
    return f"{scheme}://{event.request_context.domain_name}"


def query_int(event: APIGatewayProxyEventV2, name: str, *, default: int, minimum: int, maximum: int) -> int:
    raw = (event.query_string_parameters or {}).get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed(f"{name} must be an integer",
                               errors=[FieldError(name, "must be an integer", "invalid_type")]) from None
    if not minimum <= value <= maximum:
        raise ValidationFailed(f"{name} must be between {minimum} and {maximum}",
                               errors=[FieldError(name, f"must be between {minimum} and {maximum}", "out_of_range")])
    return value
