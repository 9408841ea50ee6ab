"""Hostile and malformed bodies on every route that takes one: always a 4xx in the route's dialect, naming
the field and the reason; never a 500, and nothing stored.

The routes come from template.yaml, so a new POST route joins these tests without anyone adding it here.
"""

from __future__ import annotations

import base64
import json

import pytest

from functions.api.request import MAX_JSON_DEPTH, json_body
from functions.core.errors import ValidationFailed
from functions.dialects import AIMS, FAL, OPENAI, REPLICATE, dialect_for_path
from infra.local.template import http_routes, load

BODY_ROUTES = sorted({path for method, path, _ in http_routes(load()) if method in ("POST", "PUT")})
# Routes that take multipart/form-data only: OpenAI's variations (its edits also take a JSON body, as OpenAI's
# API allows).
MULTIPART_ONLY = {"/v1/images/variations", "/v1/files"}
PATH_VALUES = {"{id}": "job-that-does-not-exist", "{key_id}": "key_x", "{workspace_id}": "ws-x",
               "{share_id}": "share-x", "{slug}": "create-image", "{model}": "flux-schnell"}


# fal's routes: an endpoint id that names a model, and the proxy's target (else it answers 400 before any body).
FAL_VALUES = {"{owner}": "fal-ai", "{app}": "flux", "{path+}": "schnell"}
FAL_PROXY = {"x-fal-target-url": "https://queue.fal.run/fal-ai/flux/schnell"}


# Replicate's owner/name: a model (a catalog alias).
REPLICATE_VALUES = {"{owner}": "black-forest-labs", "{name}": "flux-schnell"}


def concrete(path: str) -> str:
    extra = FAL_VALUES if path.startswith("/fal/") else REPLICATE_VALUES if path.startswith("/v1/") else {}
    for placeholder, value in {**PATH_VALUES, **extra}.items():
        path = path.replace(placeholder, value)
    return path


def headers_for(path: str, base: dict[str, str]) -> dict[str, str]:
    return {**base, **(FAL_PROXY if path == "/fal/proxy" else {})}


def assert_dialect_error(path: str, response) -> str:
    """The error in the dialect's own format; returns its message."""
    assert 400 <= response.status_code < 500, (path, response.status_code, response.get_data(as_text=True))
    body = response.json
    dialect = dialect_for_path(path)
    if dialect == OPENAI:
        assert set(body["error"]) >= {"message", "type", "code"}, body
        return body["error"]["message"]
    if dialect == AIMS:
        assert isinstance(body["error"], str) and body["error"], body
        return body["error"]
    if dialect == REPLICATE:  # problem details {type, title, status, detail}
        assert body["status"] == response.status_code and isinstance(body["detail"], str) and body["title"], body
        return body["detail"]
    if dialect == FAL:  # {detail: "…" | [{loc, msg, type}], message}
        assert "detail" in body and isinstance(body["message"], str) and body["message"], body
        return body["message"]
    assert isinstance(body["message"], str) and isinstance(body["errors"], list), body
    return body["message"]


@pytest.fixture
def admin(world, new_tenant):
    from functions.core.keys import ALL_SCOPES

    return new_tenant(list(ALL_SCOPES))


@pytest.mark.parametrize("path", BODY_ROUTES)
def test_a_body_that_is_not_utf8_is_a_4xx_in_the_dialect(api, admin, path):
    response = api.post(concrete(path), data=b'{"prompt": "\xff\xfe\xfa"}',
                        headers=headers_for(path, {**admin.headers, "Content-Type": "application/json"}))
    assert_dialect_error(path, response)


@pytest.mark.parametrize("path", BODY_ROUTES)
def test_a_body_that_is_not_json_is_a_4xx_in_the_dialect(api, admin, path):
    response = api.post(concrete(path), data="prompt=a fox",
                        headers=headers_for(path, {**admin.headers, "Content-Type": "application/json"}))
    assert_dialect_error(path, response)


@pytest.mark.parametrize("path", ["/api/run", "/v1/images/generations", "/api/v1/images/generate"])
def test_json_nested_too_deep_is_refused(api, admin, path):
    hostile = '{"prompt": "x", "input": ' + "[" * 5000 + "]" * 5000 + "}"
    response = api.post(path, data=hostile, headers={**admin.headers, "Content-Type": "application/json"})
    message = assert_dialect_error(path, response)
    assert response.status_code == 400 and f"deeper than {MAX_JSON_DEPTH}" in message


@pytest.mark.parametrize("path", BODY_ROUTES)
@pytest.mark.parametrize("number", ["9" * 5000, "-" + "1" * 4301, "1e999", "NaN", "-Infinity"])
def test_a_number_python_cannot_hold_is_a_400_naming_its_field(api, admin, path, number):
    """Over 4300 digits, Python's int() raises a ValueError the JSON parser does not turn into a decode error:
    every JSON route answered 500 ("Internal error; the request can be retried", so SDKs retried it)."""
    hostile = '{"prompt": "x", "amount": 1, "input": {"prompt": "x", "n": ' + number + '}}'
    response = api.post(concrete(path), data=hostile,
                        headers=headers_for(path, {**admin.headers, "Content-Type": "application/json"}))
    message = assert_dialect_error(path, response)  # never a 500, on any route that takes a body
    # Invalid input is a 422 in fal's dialect (its FastAPI apps'), a 400 elsewhere.
    invalid = 422 if dialect_for_path(path) in (FAL, REPLICATE) else 400
    if path in MULTIPART_ONLY:
        assert response.status_code == invalid and "multipart/form-data" in message
    elif response.status_code not in (404, 405):  # a cancel of a job that does not exist is a 404 before its body
        # is read; fal's cancel (a PUT) posted to is a 405
        assert response.status_code == invalid and "input.n" in message and "not a number" in message


def test_the_non_utf8_error_names_the_body_and_the_reason(api, admin):
    response = api.post("/api/run", data=b"\xff\xfe", headers={**admin.headers, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json["errors"] == [{"field": "body", "code": "invalid_encoding",
                                        "message": "is not valid UTF-8 text (JSON bodies must be UTF-8)"}]


class _Event:
    """Just what json_body reads of an API Gateway v2 event."""

    def __init__(self, body: str, is_base64: bool) -> None:
        from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

        self.event = APIGatewayProxyEventV2({"body": body, "isBase64Encoded": is_base64, "headers": {},
                                             "requestContext": {"http": {"method": "POST"}}})


@pytest.mark.parametrize("body,is_base64,code", [
    ("!!not base64!!", True, "invalid_encoding"),
    (base64.b64encode(b"\xc3\x28").decode(), True, "invalid_encoding"),
    ("[" * 100_000, False, "too_deep"),
    ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), False, "too_deep"),
])
def test_json_body_refuses_hostile_encodings(body, is_base64, code):
    with pytest.raises(ValidationFailed) as caught:
        json_body(_Event(body, is_base64).event)
    assert caught.value.status == 400 and caught.value.errors[0].code == code


def test_json_at_the_depth_limit_is_accepted():
    nested = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert json_body(_Event(nested, False).event) is not None


def _multipart(parts: list[tuple[str, str | None, str, bytes]], boundary: str = "b0undary") -> tuple[bytes, str]:
    chunks = []
    for name, filename, content_type, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        chunks.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: {content_type}\r\n\r\n"
                      .encode() + data + b"\r\n")
    return b"".join(chunks) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _uploads_in(world, workspace_id: str) -> list[str]:
    import boto3

    s3 = boto3.client("s3", endpoint_url=world.endpoint, region_name="us-east-1", aws_access_key_id="local",
                      aws_secret_access_key="local")
    listing = s3.list_objects_v2(Bucket=world.physical["OutputsBucket"].ref, Prefix=f"{workspace_id}/uploads/")
    return [o["Key"] for o in listing.get("Contents", [])]


@pytest.mark.parametrize("path", ["/files", "/api/v1/uploads"])
@pytest.mark.parametrize("declared,data", [
    ("image/png", b"<html><script>alert(1)</script></html>"),
    ("image/png", b"\xff\xd8\xff\xe0 a jpeg header, declared as png"),
    ("image/jpeg", b"GIF89a not a jpeg"),
])
def test_an_upload_whose_bytes_are_not_the_declared_image_is_refused_and_not_stored(
        api, world, tenant, path, declared, data):
    body, content_type = _multipart([("file", "cat.png", declared, data)])
    response = api.post(path, data=body, headers={**tenant.headers, "Content-Type": content_type})
    message = assert_dialect_error(path, response)
    assert response.status_code == 400 and f"not a valid {declared}" in message
    assert _uploads_in(world, tenant.workspace_id) == []


def test_a_real_png_upload_is_still_stored(api, world, tenant):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, "PNG")
    body, content_type = _multipart([("file", "red.png", "image/png", buffer.getvalue())])
    response = api.post("/files", data=body, headers={**tenant.headers, "Content-Type": content_type})
    assert response.status_code == 201, response.json
    assert len(_uploads_in(world, tenant.workspace_id)) == 1


@pytest.mark.parametrize("path", ["/v1/images/edits", "/files"])
def test_multipart_with_too_many_parts_is_refused(api, tenant, path):
    from functions.api.multipart import MAX_PARTS

    body, content_type = _multipart([(f"f{i}", None, "text/plain", b"x") for i in range(MAX_PARTS + 1)])
    response = api.post(path, data=body, headers={**tenant.headers, "Content-Type": content_type})
    message = assert_dialect_error(path, response)
    assert response.status_code == 400 and f"at most {MAX_PARTS}" in message
    if dialect_for_path(path) == OPENAI:
        assert json.dumps(response.json)  # the SDK's BadRequestError parses this body


@pytest.mark.parametrize("path", ["/v1/images/edits", "/files"])
def test_a_form_of_100000_parts_is_refused_at_the_limit_not_after_parsing_it(api, tenant, path, monkeypatch):
    from functions.api import multipart

    seen = []
    begin = multipart._Collector._begin
    monkeypatch.setattr(multipart._Collector, "_begin", lambda self: seen.append(1) or begin(self))
    part = b'--b\r\nContent-Disposition: form-data; name="f"\r\n\r\n\r\n'
    body = part * 100_000 + b"--b--\r\n"  # 5 MB: under the platform's 6 MB, so the function sees it
    response = api.post(path, data=body, headers={**tenant.headers, "Content-Type": "multipart/form-data; boundary=b"})
    message = assert_dialect_error(path, response)
    assert response.status_code == 400 and f"at most {multipart.MAX_PARTS}" in message
    assert len(seen) == multipart.MAX_PARTS + 1  # the parser stopped at the first part past the limit


@pytest.mark.parametrize("path", ["/v1/images/edits", "/files"])
def test_a_part_with_a_huge_header_is_refused(api, tenant, path):
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"prompt\"\r\nX-Padding: {'a' * 1_000_000}"
            f"\r\n\r\nhello\r\n--{boundary}--\r\n").encode()
    response = api.post(path, data=body, headers={**tenant.headers,
                                                   "Content-Type": f"multipart/form-data; boundary={boundary}"})
    message = assert_dialect_error(path, response)
    assert response.status_code == 400 and "header" in message


@pytest.mark.parametrize("path", ["/api/run", "/v1/images/generations", "/api/v1/images/generate", "/files"])
def test_a_body_over_the_lambda_payload_limit_is_413(api, tenant, path):
    from infra.local.gateway import MAX_PAYLOAD

    response = api.post(path, data=b"x" * (MAX_PAYLOAD + 1), headers={**tenant.headers,
                                                                       "Content-Type": "application/json"})
    # The platform answers this one, before any function runs, as API Gateway and Lambda do.
    assert response.status_code == 413 and response.json == {"message": "Request Entity Too Large"}


def test_pillow_refuses_what_the_reference_limit_refuses():
    from PIL import Image

    from gpu.references import DEFAULT_LIMITS

    assert Image.MAX_IMAGE_PIXELS == DEFAULT_LIMITS.max_pixels


@pytest.mark.parametrize("path", ["/v1/images/edits", "/files"])
def test_a_part_name_outside_latin1_is_a_4xx_not_a_500(api, tenant, path):
    """The fuzzer's case: a field name of UTF-8 bytes python-multipart's header parser cannot take as latin-1."""
    body = ('--b\r\nContent-Disposition: form-data; name="\U000f65c0名"\r\n\r\nfalse\r\n'
            '--b\r\nContent-Disposition: form-data; name="file"; filename="file"\r\n\r\nb\xff\r\n--b--\r\n')
    response = api.post(path, data=body.encode("utf-8", "surrogateescape"),
                        headers={**tenant.headers, "Content-Type": "multipart/form-data; boundary=b"})
    assert_dialect_error(path, response)


@pytest.mark.parametrize("path,body,field", [
    ("/v1/images/generations", {"prompt": "x", "n": True}, "n"),
    ("/v1/images/generations", {"prompt": "x", "n": "2"}, "n"),
    ("/v1/images/generations", {"prompt": "x", "n": 2.5}, "n"),
    ("/api/run", {"tool": "create-image", "input": {"prompt": "x", "make_public": "yes"}}, "input.make_public"),
    ("/api/run", {"tool": "create-image", "input": {"prompt": "x", "make_public": 1}}, "input.make_public"),
    ("/api/run", {"tool": "create-image", "input": {"prompt": "x", "steps": "4"}}, "input.steps"),
    ("/api/v1/images/generate", {"prompt": "x", "make_public": "true"}, "make_public"),
    ("/api/v1/images/generate", {"prompt": "x", "n": False}, "n"),
])
def test_json_types_are_strict_in_every_dialect(api, admin, path, body, field):
    """OpenAI refuses a boolean where an integer belongs; `{"n": true}` was n=1 and `"yes"` a true."""
    response = api.post(path, json=body, headers=admin.headers)
    message = assert_dialect_error(path, response)
    assert response.status_code == 400 and field.split(".")[-1] in message


def test_a_form_field_is_a_string_and_is_read_as_its_type(api, admin):
    """Multipart forms (OpenAI's edits) carry every field as text: "2" is n=2 there, and only there."""
    import io

    from PIL import Image

    png = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 20, 30)).save(png, format="PNG")
    response = api.post("/v1/images/edits", data={"prompt": "x", "n": "2", "size": "nonsense",
                                                  "image": (io.BytesIO(png.getvalue()), "a.png", "image/png")},
                        headers=admin.headers, content_type="multipart/form-data")
    assert response.status_code == 400 and response.json["error"]["param"] == "size"  # n passed, size did not


@pytest.mark.parametrize("method,path,allow,dialect_error", [
    ("DELETE", "/api/generations/65f0c0ffee00000000000001", "GET", "message"),
    ("GET", "/v1/images/generations", "POST", "error"),
    ("PUT", "/api/v1/images/generate", "GET, POST", "error"),
])
def test_a_wrong_method_is_a_405_with_allow(api, admin, method, path, allow, dialect_error):
    response = api.open(path, method=method, headers=admin.headers)
    assert response.status_code == 405 and response.headers["allow"] == allow
    assert dialect_error in response.json
    assert api.open("/api/no-such-thing", method=method, headers=admin.headers).status_code == 404
