"""The OpenAPI document: generated from the code, served without a key at /openapi.json with Swagger UI at
/docs, valid, covering every route of template.yaml in its dialect, and exported to docs/openapi.json."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys

import pytest
from openapi_spec_validator import validate

from functions.api import openapi
from functions.api.account import CreateKey
from functions.api.native import RunRequest
from functions.dialects import AIMS, FAL, NATIVE, OPENAI, REPLICATE, dialect_for_path
from functions.dialects import aims as aims_dialect
from functions.dialects import openai as openai_dialect
from infra.local.template import http_routes, load
from tests.integration.conftest import REPO

EXPORTED = REPO / "docs" / "openapi.json"
SERVED_ONLY = {("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/console"), ("GET", "/console/{}")}
ERROR_MODEL = {NATIVE: "NativeError", OPENAI: "OpenAIError", AIMS: "AIMSError", FAL: "FalError",
               REPLICATE: "ReplicateError"}
MULTIPART_ROUTES = {("POST", "/v1/images/edits"), ("POST", "/files"), ("POST", "/api/v1/uploads"), ("POST", "/v1/files")}


def _generated() -> dict:
    from functions.api.app import app

    return openapi.build(app)


@pytest.fixture(scope="module")
def spec() -> dict:
    return _generated()


def _operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def _shape(path: str) -> str:
    # Template paths name parameters as API Gateway does ({id}); the code names them as the handlers do.
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_served_without_a_key_and_the_same_as_the_export(api):
    resp = api.get("/openapi.json")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    served = resp.json
    validate(served)
    assert served == json.loads(EXPORTED.read_text()), "docs/openapi.json is stale: run `make openapi`"


def test_the_export_is_what_the_code_generates_now(spec):
    validate(spec)
    assert json.loads(EXPORTED.read_text()) == spec, "docs/openapi.json is stale: run `make openapi`"


def test_swagger_ui_is_served_without_a_key_with_its_assets_inlined(api):
    resp = api.get("/docs", headers={"Accept-Encoding": "gzip"})
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    html = gzip.decompress(resp.data).decode() if resp.headers.get("Content-Encoding") == "gzip" else resp.text
    assert "SwaggerUIBundle" in html  # the bundle itself, not a CDN link: no internet needed
    assert "<script src=" not in html and '"/api/v1/videos/generate"' in html
    # A key typed into the page is not kept in localStorage (the console promises session storage only).
    assert "persistAuthorization: false" in html
    csp = resp.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";")[0]
    assert resp.headers["x-content-type-options"] == "nosniff"
    # 1.86 MB on every request before: now a client that has it gets an empty 304.
    again = api.get("/docs", headers={"If-None-Match": resp.headers["etag"]})
    assert again.status_code == 304 and again.data == b""


def test_every_template_route_is_documented_and_nothing_else(spec):
    from functions.api.app import app

    # Pages left out on purpose (include_in_schema=False): the document itself, Swagger UI.
    undocumented = {(r.method, _shape(r.openapi_path)) for r in app._static_routes + app._dynamic_routes
                    if not r.include_in_schema}
    assert SERVED_ONLY <= undocumented
    template = {(m, _shape(p)) for m, p, fn in http_routes(load()) if fn == "ApiFunction"} - undocumented
    documented = {(m, _shape(p)) for m, p, _ in _operations(spec)}
    assert documented == template
    assert len(documented) > 30


def test_every_operation_has_a_summary_a_success_schema_and_its_dialects_errors(spec):
    for method, path, operation in _operations(spec):
        where = f"{method} {path}"
        assert operation["summary"] and not operation["summary"].startswith(method), where
        success = [c for c in operation["responses"] if c.startswith("2")]
        assert len(success) == 1, where
        if success[0] != "204":  # No Content: a DELETE (Replicate's files) answers no body
            assert next(iter(operation["responses"][success[0]]["content"].values()))["schema"], where
        errors = {c: r for c, r in operation["responses"].items() if c[0] in "45"}
        assert "500" in errors, where
        wanted = {"$ref": f"#/components/schemas/{ERROR_MODEL[dialect_for_path(path)]}"}
        assert all(r["content"]["application/json"]["schema"] == wanted for r in errors.values()), where
        if operation.get("security") != []:
            assert {"401", "429"} <= set(errors), where


def test_request_bodies_are_the_models_the_handlers_validate_with(spec):
    schemas = spec["components"]["schemas"]

    def schema_of(model):
        """The model's own schema; the models it nests (LoraInput) are components of their own."""
        schema = model.model_json_schema(ref_template=openapi.REF + "{model}")
        for name, definition in schema.pop("$defs", {}).items():
            assert schemas[name] == definition, name
        return schema

    assert schemas["RunRequest"] == schema_of(RunRequest)
    assert schemas["CreateKey"] == schema_of(CreateKey)
    assert schemas["OpenAIImagesGenerateRequest"] == schema_of(openai_dialect.ImagesGenerateRequest)
    assert schemas["AIMSVideosGenerateRequest"] == schema_of(aims_dialect.VideosGenerateRequest)
    body = spec["paths"]["/api/run"]["post"]["requestBody"]
    assert body["required"] is True and body["content"]["application/json"]["schema"]["$ref"].endswith("/RunRequest")
    # Optional bodies say so; GETs have none.
    assert spec["paths"]["/api/webhooks/secret/rotate"]["post"]["requestBody"]["required"] is False
    assert all("requestBody" not in op for m, _, op in _operations(spec) if m == "GET")


def test_multipart_routes_are_documented_as_form_data(spec):
    forms = {(m, p): op["requestBody"]["content"]["multipart/form-data"] for m, p, op in _operations(spec)
             if "multipart/form-data" in op.get("requestBody", {}).get("content", {})}
    assert MULTIPART_ROUTES <= set(forms)
    for form in forms.values():
        schema = spec["components"]["schemas"][form["schema"]["$ref"].rsplit("/", 1)[1]]
        assert any(p.get("format") == "binary" or p.get("items", {}).get("format") == "binary"
                   for p in schema["properties"].values()), form  # every form carries a file
    form = spec["components"]["schemas"]["OpenAIImagesEditForm"]
    assert {"prompt", "image"} <= set(form["required"])
    assert form["properties"]["image"]["items"] == {"type": "string", "format": "binary"}


def test_query_and_path_parameters_and_public_routes(spec):
    listing = spec["paths"]["/api/generations"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"limit", "offset", "status"}
    revoke = spec["paths"]["/api/keys/{key_id}"]["delete"]
    assert {(p["name"], p["in"]) for p in revoke["parameters"]} == {("key_id", "path"), ("workspace_id", "query")}
    share = spec["paths"]["/shared/media/{share_id}"]["get"]
    assert share["security"] == [] and "text/html" in share["responses"]["200"]["content"]
    assert {"Bearer", "ApiKeyHeader", "AuthorizationKey"} == set(spec["components"]["securitySchemes"])


def test_no_schema_is_generated_on_import():
    # A cold start pays for neither the document nor Powertools' schema machinery.
    code = ("import sys, functions.api.handler; "
            "print(sorted(m for m in sys.modules if m in ('functions.api.openapi_schemas', "
            "'aws_lambda_powertools.event_handler.openapi.dependant')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
