"""Property tests for the request validators: whatever a caller sends (sizes, aspect ratios, durations, n,
prompt lengths, URLs, multipart bodies), each either parses to values in range for the model, or raises
ValidationFailed naming a field the caller can fix; never another exception (which would be a 500)."""

from __future__ import annotations

import base64
import string

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.api.multipart import MAX_PARTS, parse_form
from functions.api.request import MAX_JSON_DEPTH, json_body
from functions.core.catalog import ModelSpec, get_catalog
from functions.core.errors import ValidationFailed
from functions.core.generation import MAX_PROMPT_CHARS, GenerationInput, parse_input, resolve_request
from functions.core.uploads import resolve_reference
from functions.dialects import aims, openai
from functions.dialects.shared import rename_fields

PROPERTY = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

MODELS = [m.id for m in get_catalog().models]
IMAGE_MODELS = [m.id for m in get_catalog().models if m.type == "image" and not m.takes_references]
VIDEO_MODELS = [m.id for m in get_catalog().models if m.type == "video" and not m.takes_references]

# Values of every JSON type, weighted towards the edges validators get wrong.
numbers = st.one_of(st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0, 1, -1, 63, 64, 4096, 4097, 2**32, 2**32 - 1, 1e-300, 1e300, 0.5]))
sizes = st.one_of(st.from_regex(r"\A\d{1,6}x\d{1,6}\Z"), st.sampled_from(["auto", "", "x", "1024X1024", "0x0"]),
                  st.text(max_size=12))
ratios = st.one_of(st.from_regex(r"\A\d{1,3}:\d{1,3}\Z"), st.sampled_from(["auto", "0:1", "1:0", "16/9"]),
                   st.text(max_size=8))
prompts = st.one_of(st.text(max_size=60), st.integers(MAX_PROMPT_CHARS - 2, MAX_PROMPT_CHARS + 2).map("p".__mul__),
                    st.just("   "))
anything = st.recursive(st.none() | st.booleans() | numbers | st.text(max_size=10),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                    max_size=3), max_leaves=6)


def _maybe(strategy):
    return st.one_of(strategy, anything)


def generation_fields(extra: dict) -> st.SearchStrategy[dict]:
    fields = {"prompt": prompts, "n": _maybe(st.integers(-2, 12)), "size": _maybe(sizes), "aspect_ratio": _maybe(ratios),
              "width": _maybe(numbers), "height": _maybe(numbers), "steps": _maybe(st.integers(-1, 210)),
              "duration": _maybe(numbers), "fps": _maybe(st.integers(-1, 70)), "guidance": _maybe(numbers),
              **extra}
    return st.fixed_dictionaries({}, optional=fields)


def assert_names_a_field(exc: ValidationFailed, allowed: set[str]) -> None:
    assert exc.status == 400 and exc.errors, exc.message
    for error in exc.errors:
        head = error.field.split(".", 1)[0]
        assert head in allowed, (error.field, exc.message)
        assert error.message and error.code


def assert_in_range(model: ModelSpec, params: dict) -> None:
    assert model.min_side <= params["width"] <= model.max_side and params["width"] % model.multiple_of == 0
    assert model.min_side <= params["height"] <= model.max_side and params["height"] % model.multiple_of == 0
    assert model.min_steps <= params["steps"] <= model.max_steps
    assert 1 <= params["n"] <= 10
    assert 0 < len(params["prompt"]) <= MAX_PROMPT_CHARS
    if model.type == "video":
        assert params["duration"] in model.durations and params["n"] == 1 and params["frames"] >= 1


CORE_FIELDS = set(GenerationInput.model_fields) | {"body"}


@PROPERTY
@given(model_id=st.sampled_from(MODELS), data=generation_fields({}))
def test_core_input_resolves_in_range_or_names_the_field(model_id, data):
    model = get_catalog().model(model_id)
    try:
        resolved, params = resolve_request(model, parse_input(GenerationInput, data), workspace_id="ws")
    except ValidationFailed as exc:
        assert_names_a_field(exc, CORE_FIELDS | set(data))
        return
    assert_in_range(resolved, params)


@PROPERTY
@given(data=anything)
def test_a_body_that_is_not_an_object_names_the_body(data):
    if isinstance(data, dict):
        return
    with pytest.raises(ValidationFailed) as info:
        parse_input(GenerationInput, data)
    assert [e.field for e in info.value.errors] == ["body"]


def _dialect_params(request_model, data, translate, model_id, names):
    body = parse_input(request_model, data)
    model = get_catalog().model(model_id)
    fields, names = translate(body, model)
    try:
        # What the synchronous routes run (functions/api/sync.py: validate).
        return resolve_request(model, parse_input(GenerationInput, fields), workspace_id="ws")
    except ValidationFailed as exc:
        raise rename_fields(exc, names) from None


@PROPERTY
@given(model_id=st.sampled_from(IMAGE_MODELS), data=generation_fields({
    "quality": _maybe(st.sampled_from(["auto", "low", "hd", "high", "ultra"])),
    "output_compression": _maybe(st.integers(-5, 105)), "style": _maybe(st.sampled_from(["vivid", "natural", "x"])),
    "response_format": _maybe(st.sampled_from(["url", "b64_json", "svg"])), "seed": _maybe(numbers)}))
def test_openai_images_resolve_in_range_or_name_the_parameter(model_id, data):
    data.pop("aspect_ratio", None), data.pop("width", None), data.pop("height", None)  # not OpenAI parameters

    def translate(body, model):
        return openai.generation_input(body, model, openai.styled(body)), openai.PARAM_NAMES

    try:
        model, params = _dialect_params(openai.ImagesGenerateRequest, data, translate, model_id, {})
    except ValidationFailed as exc:
        assert_names_a_field(exc, set(openai.ImagesGenerateRequest.model_fields) | set(data) | {"body"})
        return
    assert_in_range(model, params)


@PROPERTY
@given(model_id=st.sampled_from(IMAGE_MODELS), data=generation_fields({
    "resolution": _maybe(st.sampled_from(["0.5K", "1K", "2K", "4K", "8K"])),
    "image_urls": _maybe(st.lists(st.text(max_size=20), max_size=12)),
    "safety_tolerance": _maybe(st.sampled_from(["1", "6", "7", 3]))}))
def test_aims_images_resolve_in_range_or_name_the_field(model_id, data):
    data.pop("width", None), data.pop("height", None)

    def translate(body, model):
        return aims.image_input(body, model, aims.image_styles(body))

    try:
        model, params = _dialect_params(aims.ImagesGenerateRequest, data, translate, model_id, {})
    except ValidationFailed as exc:
        assert_names_a_field(exc, set(aims.ImagesGenerateRequest.model_fields) | set(data) | {"body"})
        return
    assert_in_range(model, params)


@PROPERTY
@given(model_id=st.sampled_from(VIDEO_MODELS), data=generation_fields({
    "resolution": _maybe(st.sampled_from(["480p", "720p", "1080p", "1K", "p", "99999p"])),
    "cfg_scale": _maybe(numbers), "audio": _maybe(st.booleans())}))
def test_aims_videos_resolve_in_range_or_name_the_field(model_id, data):
    for name in ("width", "height", "size", "n", "steps", "fps", "guidance"):
        data.pop(name, None)  # not AI Media Studio video fields

    try:
        model, params = _dialect_params(aims.VideosGenerateRequest, data, aims.video_input, model_id, {})
    except ValidationFailed as exc:
        assert_names_a_field(exc, set(aims.VideosGenerateRequest.model_fields) | set(data) | {"body"})
        return
    assert_in_range(model, params)


urls = st.one_of(
    st.text(max_size=40),
    st.builds(lambda scheme, host, path: f"{scheme}{host}{path}",
              st.sampled_from(["http://", "https://", "ftp://", "upload://", "file://", "HTTP://", ""]),
              st.one_of(st.sampled_from(["example.com", "169.254.169.254", "127.0.0.1", "[::1]", "0x7f000001",
                                         "localhost", "metadata.google.internal", "10.0.0.1", "user@evil",
                                         "example.com.", ""]),
                        st.text(alphabet=string.ascii_letters + string.digits + ".-_:@[]%", max_size=20)),
              st.text(max_size=15)))


@PROPERTY
@given(value=urls)
def test_reference_urls_resolve_or_name_the_field(value):
    try:
        ref = resolve_reference(value, "ws", "image_urls.0")
    except ValidationFailed as exc:
        assert [e.field for e in exc.errors] == ["image_urls.0"], exc.message
        return
    assert set(ref) in ({"url"}, {"upload_key"})
    if "url" in ref:
        assert ref["url"].lower().startswith(("http://", "https://"))


def _event(body: bytes, content_type: str, *, as_base64: bool = True) -> APIGatewayProxyEventV2:
    return APIGatewayProxyEventV2({
        "version": "2.0", "rawPath": "/v1/images/edits", "headers": {"content-type": content_type},
        "requestContext": {"http": {"method": "POST", "path": "/v1/images/edits"}},
        "body": base64.b64encode(body).decode() if as_base64 else body.decode("latin-1"),
        "isBase64Encoded": as_base64,
    })


def _part(name: str, value: bytes, filename: str | None, content_type: str | None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
    head = f"Content-Disposition: {disposition}\r\n" + (f"Content-Type: {content_type}\r\n" if content_type else "")
    return head.encode() + b"\r\n" + value


parts = st.lists(st.tuples(st.sampled_from(["image", "image[]", "mask", "prompt", "n", "x"]), st.binary(max_size=30),
                           st.one_of(st.none(), st.sampled_from(["a.png", "", "b"])),
                           st.one_of(st.none(), st.sampled_from(["image/png", "text/plain", "text/plain; charset=nope",
                                                                 "application/octet-stream"]))),
                 max_size=MAX_PARTS + 3)


@PROPERTY
@given(parts=parts, boundary=st.sampled_from(["b0undary", "x"]), mangle=st.sampled_from(["", "truncate", "raw"]),
       content_type=st.sampled_from(["multipart/form-data; boundary={b}", "multipart/form-data", "application/json",
                                     ""]))
def test_multipart_bodies_parse_or_name_the_part(parts, boundary, mangle, content_type):
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + _part(*p) + b"\r\n" for p in parts)
    body += b"--" + boundary.encode() + b"--\r\n"
    if mangle == "truncate":
        body = body[: len(body) // 2]
    try:
        form = parse_form(_event(body, content_type.format(b=boundary), as_base64=mangle != "raw"))
    except ValidationFailed as exc:
        assert exc.errors and all(e.field for e in exc.errors), exc.message
        return
    assert sum(map(len, form.files.values())) + sum(map(len, form.fields.values())) <= MAX_PARTS
    assert all(f.field and f.content_type for files in form.files.values() for f in files)


@PROPERTY
@given(raw=st.one_of(st.binary(max_size=40), st.integers(1, 3 * MAX_JSON_DEPTH).map(lambda d: b"[" * d + b"]" * d),
                     st.integers(1, 3 * MAX_JSON_DEPTH).map(lambda d: b'{"a":' * d + b"1" + b"}" * d)))
def test_json_bodies_parse_or_name_the_body(raw):
    event = _event(raw, "application/json")
    try:
        json_body(event)
    except ValidationFailed as exc:
        assert [e.field for e in exc.errors] == ["body"], exc.message
