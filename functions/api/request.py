"""Reading the request: JSON body and query parameters, with errors that name the field."""

from __future__ import annotations

import binascii
import json
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from functions.core.errors import FieldError, ValidationFailed

# Deeper than any request of any dialect needs; a hostile body nests thousands deep to exhaust the parser.
MAX_JSON_DEPTH = 32


def _invalid_body(reason: str, code: str) -> ValidationFailed:
    return ValidationFailed(f"Request body {reason}", errors=[FieldError("body", reason, code)])


def _depth(value: Any) -> int:
    """How deeply arrays and objects nest in a parsed JSON value (iteratively: no recursion to exhaust)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children)
    return deepest


def json_body(event: APIGatewayProxyEventV2) -> Any:
    if not event.body:
        raise ValidationFailed("Request body is required", errors=[FieldError("body", "is required", "required")])
    try:
        # Powertools decodes base64 (binary bodies) and UTF-8 here; either can fail on hostile input.
        raw = event.decoded_body
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _invalid_body("is not valid UTF-8 text (JSON bodies must be UTF-8)", "invalid_encoding") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _invalid_body(f"is not valid JSON ({exc})", "invalid_json") from None
    except RecursionError:
        raise _invalid_body(f"nests deeper than {MAX_JSON_DEPTH} levels", "too_deep") from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise _invalid_body(f"nests deeper than {MAX_JSON_DEPTH} levels", "too_deep")
    return data


def optional_json_body(event: APIGatewayProxyEventV2) -> Any:
    """The JSON body, or {} when there is none (routes whose body is optional)."""
    return json_body(event) if event.body else {}


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body),
                    headers=headers)


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
