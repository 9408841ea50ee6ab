"""multipart/form-data bodies (OpenAI's /v1/images/edits, uploads), parsed with python-multipart's streaming
parser (Starlette's; the MCP SDK already brings it).

API Gateway hands the body over base64-encoded; the payload is bounded by Lambda's 6 MB limit, so the body is
in memory. The part count and each part's header size and count are bounded while parsing, so a hostile form
(100,000 parts, a megabyte of part header) is refused at the limit, not after the whole body was parsed.
Errors name the field (`body`, or the part) and the reason.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

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


def decode_data_url(url: str, field_name: str) -> UploadedFile:
    """A `data:<type>;base64,<bytes>` URL (OpenAI's JSON edits) as the file a form would have carried."""
    header, sep, payload = url.partition(",")
    if not sep or not header.startswith("data:") or not header.endswith(";base64"):
        raise _bad("must be a base64 data: URL (data:image/png;base64,...) or an http(s) URL", field_name,
                   "invalid_data_url")
    try:
        data = base64.b64decode(payload, validate=True)
    except ValueError:
        raise _bad("is not valid base64", field_name, "invalid_data_url") from None
    declared = header[len("data:"):-len(";base64")] or None
    content_type = sniff_content_type(data, declared)
    return UploadedFile(field=field_name, filename=f"{field_name.replace('.', '-')}.{content_type.rsplit('/', 1)[-1]}",
                        content_type=content_type, data=data)


def sniff_content_type(data: bytes, declared: str | None) -> str:
    """The declared type, unless it is generic (octet-stream, missing): then what the bytes say."""
    declared = (declared or "").split(";")[0].strip().lower()
    if declared and declared not in ("application/octet-stream", "binary/octet-stream"):
        return declared
    return detect_image_type(data) or declared or "application/octet-stream"


# OpenAI's edits take up to 16 images, a mask and a dozen fields; a form of thousands of parts is an attack.
MAX_PARTS = 64
# A part's header line, and lines per part: a Content-Disposition with a long file name and a Content-Type fit.
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


@dataclass
class _Part:
    headers: dict[str, bytes] = field(default_factory=dict)  # as sent: values are parsed as bytes
    data: bytearray = field(default_factory=bytearray)


class _Collector:
    """python-multipart's callbacks: the parts as they are read, refused past MAX_PARTS at once."""

    def __init__(self) -> None:
        self.parts: list[_Part] = []
        self._name = bytearray()
        self._value = bytearray()

    def callbacks(self) -> dict:
        return {"on_part_begin": self._begin, "on_part_data": self._data, "on_header_field": self._field,
                "on_header_value": self._header_value, "on_header_end": self._header_end}

    def _begin(self) -> None:
        if len(self.parts) >= MAX_PARTS:
            raise _bad(f"has more than {MAX_PARTS} parts; at most {MAX_PARTS} are accepted", "body", "too_many_parts")
        self.parts.append(_Part())

    def _data(self, data: bytes, start: int, end: int) -> None:
        self.parts[-1].data += data[start:end]

    def _field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        name = bytes(self._name).decode("latin-1").strip().lower()
        self.parts[-1].headers[name] = bytes(self._value).strip()
        self._name.clear()
        self._value.clear()


def _add(form: Form, part: _Part) -> None:
    # Bytes in, bytes out: browsers send field and file names as raw UTF-8, which a str would have to survive
    # python-multipart's latin-1 round trip (a fuzzed name outside latin-1 was a 500).
    disposition, options = parse_options_header(part.headers.get("content-disposition", b""))
    name = options.get(b"name")
    if disposition != b"form-data" or not name:
        raise _bad("a part has no Content-Disposition name")
    name_text = name.decode("utf-8", "replace")
    filename = options.get(b"filename")
    raw_type = part.headers.get("content-type")
    declared_header = raw_type.decode("latin-1") if raw_type is not None else None
    declared, type_options = parse_options_header(declared_header) if declared_header else (None, {})
    payload = bytes(part.data)
    # A part is a file when it has a filename, or a Content-Type other than plain text.
    if filename is not None or (declared is not None and declared != b"text/plain"):
        form.files.setdefault(name_text, []).append(UploadedFile(
            field=name_text, filename=filename.decode("utf-8", "replace") if filename is not None else name_text,
            content_type=sniff_content_type(payload, declared_header), data=payload))
        return
    charset = type_options.get(b"charset", b"utf-8").decode("latin-1")
    try:
        text = payload.decode(charset)
    except (LookupError, UnicodeDecodeError):
        raise _bad("is not valid text", name_text) from None
    form.fields.setdefault(name_text, []).append(text)


def parse_form(event: APIGatewayProxyEventV2) -> Form:
    headers = {k.lower(): v for k, v in (event.headers or {}).items()}
    content_type = headers.get("content-type", "")
    mime, options = parse_options_header(content_type)
    if mime != b"multipart/form-data":
        raise _bad(f"must be multipart/form-data (got {content_type or 'no Content-Type'})", "content-type",
                   "unsupported_media_type")
    boundary = options.get(b"boundary")
    if not boundary:
        raise _bad("multipart/form-data without a boundary", "content-type")
    body = _body(event)
    if not body:
        raise _bad("is required", "body", "required")
    collector = _Collector()
    try:
        parser = MultipartParser(boundary, collector.callbacks(), max_header_count=MAX_PART_HEADERS,
                                 max_header_size=MAX_PART_HEADER_BYTES)
        for offset in range(0, len(body), _CHUNK):
            parser.write(body[offset:offset + _CHUNK])
        parser.finalize()
    except FormParserError as exc:
        if "header" in str(exc).lower():
            raise _bad(f"has a part whose header exceeds {MAX_PART_HEADER_BYTES} bytes or {MAX_PART_HEADERS} lines",
                       "body", "part_header_too_large") from None
        raise _bad(f"could not be parsed as multipart/form-data ({exc})") from None
    if not collector.parts:
        raise _bad("could not be parsed as multipart/form-data (no parts)")
    form = Form()
    for part in collector.parts:
        _add(form, part)
    return form
