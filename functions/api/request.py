"""Reading the request: JSON body and query parameters, with errors that name the field."""

from __future__ import annotations

import binascii
import json
import math
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from functions.core.errors import FieldError, ValidationFailed

# Deeper than any request of any dialect needs; a hostile body nests thousands deep to exhaust the parser.
MAX_JSON_DEPTH = 32
# The longest number literal accepted: far beyond any field's range, far below Python's 4300-digit limit.
MAX_NUMBER_CHARS = 100


def _invalid_body(reason: str, code: str) -> ValidationFailed:
    return ValidationFailed(f"Request body {reason}", errors=[FieldError("body", reason, code)])


class _NotANumber(str):
    """A JSON number Python cannot hold as an int or a finite float (or NaN/Infinity, which JSON lacks): kept as
    its text while parsing, then refused naming where it sits."""


def _parse_int(text: str) -> int | _NotANumber:
    # Python refuses to convert integers of over 4300 digits (a ValueError, not a JSONDecodeError); no field of
    # any dialect needs more than a handful.
    return int(text) if len(text) <= MAX_NUMBER_CHARS else _NotANumber(text)


def _parse_float(text: str) -> float | _NotANumber:
    value = float(text) if len(text) <= MAX_NUMBER_CHARS else math.inf
    return value if math.isfinite(value) else _NotANumber(text)


def _check_shape(value: Any) -> None:
    """Depth and numbers, in one iterative walk (no recursion to exhaust); errors name the field's path."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, _NotANumber):
            where, shown = path or "body", node if len(node) <= 20 else node[:20] + "…"
            raise ValidationFailed(f"{where}: {shown} is not a number this API accepts",
                                   errors=[FieldError(where, "is not a representable number (too many digits, "
                                                             "or not finite)", "invalid_number")])
        if isinstance(node, dict):
            items = ((f"{path}.{key}" if path else str(key), child) for key, child in node.items())
        elif isinstance(node, list):
            items = ((f"{path}[{index}]", child) for index, child in enumerate(node))
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            raise _invalid_body(f"nests deeper than {MAX_JSON_DEPTH} levels", "too_deep")
        stack.extend((child, depth + 1, child_path) for child_path, child in items)


def json_body(event: APIGatewayProxyEventV2) -> Any:
    if not event.body:
        raise ValidationFailed("Request body is required", errors=[FieldError("body", "is required", "required")])
    try:
        # Powertools decodes base64 (binary bodies) and UTF-8 here; either can fail on hostile input.
        raw = event.decoded_body
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _invalid_body("is not valid UTF-8 text (JSON bodies must be UTF-8)", "invalid_encoding") from None
    try:
        data = json.loads(raw, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_NotANumber)
    except json.JSONDecodeError as exc:
        raise _invalid_body(f"is not valid JSON ({exc})", "invalid_json") from None
    except RecursionError:
        raise _invalid_body(f"nests deeper than {MAX_JSON_DEPTH} levels", "too_deep") from None
    _check_shape(data)
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
