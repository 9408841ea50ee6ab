"""multipart/form-data bodies (OpenAI's /v1/images/edits, uploads), parsed with `multipart`'s push parser.

API Gateway hands the body over base64-encoded; the payload is bounded by Lambda's 6 MB limit, so the body is
in memory. The part count and each part's header size and count are bounded while parsing, so a hostile form
(100,000 parts, a megabyte of part header) is refused at the limit, not after the whole body was parsed.
Errors name the field (`body`, or the part) and the reason.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from multipart import (
    MultipartSegment,
    ParserError,
    ParserLimitReached,
    PushMultipartParser,
    parse_options_header,
)

from functions.core.errors import FieldError, ValidationFailed
from functions.core.uploads import detect_image_type


@dataclass
class UploadedFile:
    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class Form:
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, list[UploadedFile]] = field(default_factory=dict)

    def value(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[-1] if values else None


def sniff_content_type(data: bytes, declared: str | None) -> str:
    """The declared type, unless it is generic (octet-stream, missing): then what the bytes say."""
    declared = (declared or "").split(";")[0].strip().lower()
    if declared and declared not in ("application/octet-stream", "binary/octet-stream"):
        return declared
    return detect_image_type(data) or declared or "application/octet-stream"


# OpenAI's edits take up to 16 images, a mask and a dozen fields; a form of thousands of parts is an attack.
MAX_PARTS = 64
# A part's header section: a Content-Disposition with a long file name and a Content-Type fit easily.
MAX_PART_HEADER_BYTES = 4096
MAX_PART_HEADERS = 8
_CHUNK = 64 * 1024


def _bad(message: str, field_name: str = "body", code: str = "invalid_multipart") -> ValidationFailed:
    return ValidationFailed(f"Invalid request: {field_name}: {message}",
                            errors=[FieldError(field_name, message, code)], code=code)


def _body(event: APIGatewayProxyEventV2) -> bytes:
    raw = event.body or ""
    try:
        # Not event.decoded_body: that decodes to str, which binary file parts do not survive.
        return base64.b64decode(raw, validate=True) if event.is_base64_encoded else raw.encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        raise _bad("is not valid base64 or UTF-8") from None


def _segments(boundary: str, body: bytes):
    """(segment, payload) for each part, the limits enforced as the bytes are read."""
    with PushMultipartParser(boundary, content_length=len(body), max_header_size=MAX_PART_HEADER_BYTES,
                             max_header_count=MAX_PART_HEADERS, max_segment_count=MAX_PARTS) as parser:
        segment: MultipartSegment | None = None
        payload = bytearray()
        for offset in range(0, len(body) + 1, _CHUNK):
            for event in parser.parse(body[offset:offset + _CHUNK]):  # the last, empty chunk ends the body
                if isinstance(event, MultipartSegment):
                    segment, payload = event, bytearray()
                elif event is None:
                    yield segment, bytes(payload)
                else:
                    payload += event


def _add(form: Form, segment: MultipartSegment, payload: bytes) -> None:
    name = segment.name
    if segment.disposition != "form-data" or not name:
        raise _bad("a part has no Content-Disposition name")
    declared = segment.content_type
    # A part is a file when it has a filename, or a Content-Type other than plain text.
    if segment.filename is not None or (declared is not None and declared != "text/plain"):
        form.files.setdefault(name, []).append(UploadedFile(
            field=name, filename=segment.filename or name, content_type=sniff_content_type(payload, declared),
            data=payload))
        return
    try:
        text = payload.decode(segment.charset or "utf-8")
    except (LookupError, UnicodeDecodeError):
        raise _bad("is not valid text", name) from None
    form.fields.setdefault(name, []).append(text)


def parse_form(event: APIGatewayProxyEventV2) -> Form:
    headers = {k.lower(): v for k, v in (event.headers or {}).items()}
    content_type = headers.get("content-type", "")
    mime, options = parse_options_header(content_type)
    if mime != "multipart/form-data":
        raise _bad(f"must be multipart/form-data (got {content_type or 'no Content-Type'})", "content-type",
                   "unsupported_media_type")
    if not options.get("boundary"):
        raise _bad("multipart/form-data without a boundary", "content-type")
    body = _body(event)
    if not body:
        raise _bad("is required", "body", "required")
    form = Form()
    try:
        for segment, payload in _segments(options["boundary"], body):
            _add(form, segment, payload)
    except ParserLimitReached as exc:
        code = "too_many_parts" if "segment count" in str(exc) else "part_header_too_large"
        reason = (f"has more than {MAX_PARTS} parts; at most {MAX_PARTS} are accepted" if code == "too_many_parts" else
                  f"has a part whose header exceeds {MAX_PART_HEADER_BYTES} bytes or {MAX_PART_HEADERS} lines")
        raise _bad(reason, "body", code) from None
    except ParserError as exc:
        raise _bad(f"could not be parsed as multipart/form-data ({exc})") from None
    return form
