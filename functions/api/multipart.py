"""multipart/form-data bodies (OpenAI's /v1/images/edits, uploads), parsed with the standard library.

API Gateway hands the body over base64-encoded; the payload is bounded by Lambda's 6 MB limit, so parsing
in memory is fine. Errors name the field (`body`, or the part) and the reason.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

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


def _bad(message: str, field_name: str = "body", code: str = "invalid_multipart") -> ValidationFailed:
    return ValidationFailed(f"Invalid request: {field_name}: {message}",
                            errors=[FieldError(field_name, message, code)], code=code)


def parse_form(event: APIGatewayProxyEventV2) -> Form:
    headers = {k.lower(): v for k, v in (event.headers or {}).items()}
    content_type = headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise _bad(f"must be multipart/form-data (got {content_type or 'no Content-Type'})", "content-type",
                   "unsupported_media_type")
    if "boundary=" not in content_type:
        raise _bad("multipart/form-data without a boundary", "content-type")
    raw = event.body or ""
    try:
        # Not event.decoded_body: that decodes to str, which binary file parts do not survive.
        body = base64.b64decode(raw, validate=True) if event.is_base64_encoded else raw.encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        raise _bad("is not valid base64 or UTF-8") from None
    if not body:
        raise _bad("is required", "body", "required")
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n" + body)
    if not message.is_multipart():
        raise _bad("could not be parsed as multipart/form-data")
    form = Form()
    parts = message.get_payload()
    if len(parts) > MAX_PARTS:
        raise _bad(f"has {len(parts)} parts; at most {MAX_PARTS} are accepted", "body", "too_many_parts")
    for part in parts:
        disposition = part.get("content-disposition", "")
        name = part.get_param("name", header="content-disposition")
        if not disposition or name is None:
            raise _bad("a part has no Content-Disposition name")
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        declared = part.get("content-type")
        # A part is a file when it has a filename, or a Content-Type other than plain text.
        if filename is not None or (declared is not None and part.get_content_type() != "text/plain"):
            form.files.setdefault(name, []).append(UploadedFile(
                field=name, filename=filename or name, content_type=sniff_content_type(payload, declared),
                data=payload))
        else:
            charset = part.get_content_charset() or "utf-8"
            try:
                text = payload.decode(charset)
            except (LookupError, UnicodeDecodeError):
                raise _bad("is not valid text", name) from None
            form.fields.setdefault(name, []).append(text)
    return form
