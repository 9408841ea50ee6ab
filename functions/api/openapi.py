"""The OpenAPI document of every route, generated from the code: GET /openapi.json, Swagger UI at GET /docs.

Powertools builds the paths from the routes themselves (summaries, path parameters, responses, security).
The handlers parse and validate their own bodies (functions/api/request.py, `parse_input`), so every error
keeps its dialect's shape and names its field, where Powertools' `enable_validation` would answer its own
422. So each route declares its body for the document only (`doc(body=...)`): the request schemas are the
pydantic models the handlers validate with, the response and error schemas are in
functions/api/openapi_schemas.py.

Cold start: at import this module only builds small dicts. The document is generated on the first request
for it and kept for the container's life; `make openapi` exports it to docs/openapi.json.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types

from functions.dialects import AIMS, FAL, NATIVE, OPENAI, REPLICATE

JSON = content_types.APPLICATION_JSON
MULTIPART = "multipart/form-data"
HTML = "text/html"
REF = "#/components/schemas/"

TAGS = {NATIVE: "Artificial Studio", OPENAI: "OpenAI-compatible", AIMS: "AI Media Studio", REPLICATE: "Replicate",
        FAL: "fal"}
TAG_DESCRIPTIONS = {
    NATIVE: "Native routes (/api/…, /files, /shared/media/…). Asynchronous: submit, then poll or take a webhook. "
            "Errors: {message, errors: [{field, message, code}]}.",
    OPENAI: "OpenAI Images-compatible routes (/v1/…), synchronous. Errors: {error: {message, type, param, code}}.",
    AIMS: "AI Media Studio routes (/api/v1/…), synchronous. Errors: {error: \"…\", code}.",
    REPLICATE: "Replicate-compatible routes (/v1/predictions…, /v1/models/{owner}/{name}…, /v1/files…), "
               "asynchronous (Prefer: wait to hold a create). Errors: problem details {type, title, status, detail}; "
               "invalid input is a 422.",
    FAL: "fal's queue API and run host (/fal/queue/…, /fal/run/…; fal-client with FAL_QUEUE_RUN_HOST and FAL_RUN_HOST) "
         "and @fal-ai/client's proxyUrl (/fal/proxy with x-fal-target-url). Errors: {detail: \"…\"}; invalid input is "
         "a 422 whose detail lists {loc, msg, type} per field, as fal's FastAPI apps answer.",
}
ERROR_MODELS = {NATIVE: "NativeError", OPENAI: "OpenAIError", AIMS: "AIMSError", REPLICATE: "ReplicateError",
                FAL: "FalError"}
# Component-name prefixes by the module a request model is in, so the dialects' same-named models stay apart.
PREFIXES = {"functions.dialects.openai": "OpenAI", "functions.dialects.aims": "AIMS",
            "functions.dialects.replicate": "Replicate"}
ERRORS = {
    400: "Invalid request: each field at fault is named",
    401: "No API key, or an unknown or revoked one",
    402: "Not enough credits for this generation",
    403: "The API key lacks the scope this route needs (media links: forged, altered or expired)",
    404: "Not found",
    409: "Conflict with the current state (finished already, in progress, exists)",
    412: "The proxy's x-fal-target-url names no fal queue or run URL",
    413: "The outputs would not fit in a response; read them by URL",
    416: "The Range asked for is outside the file",
    422: "The Idempotency-Key was used before with a different request",
    429: "Rate limit exceeded; Retry-After says when to try again",
    500: "Internal error, or the generation failed (its credits are refunded)",
    504: "The wait ran out; the generation goes on and its id is in the error",
}
# A synchronous generation's statuses besides 401, 429, 500 (a failed generation).
SYNC_ERRORS = (400, 402, 403, 409, 413, 422, 504)
# Every route can answer these: the key is checked (and rate-limited) first; unexpected errors are 500s.
COMMON_ERRORS = (401, 429, 500)
SECURITY_SCHEMES = {
    "Bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <key>"},
    "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "AuthorizationKey": {"type": "apiKey", "in": "header", "name": "Authorization",
                         "description": "Authorization: <key> (no scheme word)"},
}
DESCRIPTION = (
    "Self-hosted media generation in three dialects: Artificial Studio (native), OpenAI Images and "
    "AI Media Studio. A job made through one dialect can be read through any other "
    "(GET /api/generations/{job_id}). Errors come back in the dialect of the route that was called."
)

QUERY_KEY = "x-darkroom-query"
# The request models the routes declare, by component name; `document` adds their schemas.
_REQUEST_MODELS: dict[str, type] = {}


def _register(model: type) -> str:
    name = PREFIXES.get(model.__module__, "") + model.__name__
    if _REQUEST_MODELS.setdefault(name, model) is not model:
        raise ValueError(f"two request models are both named {name} in the OpenAPI document")
    return name


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A query parameter the handler reads itself (functions/api/request.py)."""
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def header(name: str, description: str) -> dict[str, Any]:
    """A request header the handler reads itself."""
    return {"name": name, "in": "header", "required": False, "schema": {"type": "string"}, "description": description}


def _ok_schema(ok: str | tuple[str, ...] | None) -> dict[str, Any]:
    if ok is None:
        return {"type": "string"}
    if isinstance(ok, tuple):
        return {"anyOf": [_ref(name) for name in ok]}
    return _ref(ok)


def doc(summary: str, *, dialect: str = NATIVE, ok: str | tuple[str, ...] | None = None, status: int = 200,
        body: type | None = None, form: str | None = None, body_required: bool = True,
        errors: tuple[int, ...] = (400,), params: tuple[dict[str, Any], ...] = (),
        description: str | None = None, public: bool = False, ok_media: str = JSON,
        redirect: str | None = None) -> dict[str, Any]:
    """A route's documentation, as the Powertools route decorator's keyword arguments.

    `ok` names the success body's schema (functions/api/openapi_schemas.py; a tuple: one of them), `body` is
    the pydantic model the handler validates a JSON body with, `form` a multipart/form-data schema, `params`
    its query parameters; `errors` are the statuses the route can answer besides 401, 429 and 500, each in
    the dialect's error shape; `redirect` describes a 302 the route may answer instead.
    """
    content = {ok_media: {"schema": _ok_schema(ok)}}
    responses: dict[int, Any] = {status: {"description": {200: "OK", 201: "Created", 202: "Accepted",
                                                          204: "No Content"}[status]}}
    if status != 204:
        responses[status]["content"] = content
    if redirect:
        responses[302] = {"description": redirect, "headers": {"Location": {"schema": {"type": "string"}}}}
    codes = set(errors) | ({500} if public else set(COMMON_ERRORS))
    for code in sorted(codes):
        responses[code] = {"description": ERRORS[code], "content": {JSON: {"schema": _ref(ERROR_MODELS[dialect])}}}
    extensions: dict[str, Any] = {}
    media: dict[str, Any] = {}
    if body is not None:
        media[JSON] = {"schema": _ref(_register(body))}
    if form is not None:
        media[MULTIPART] = {"schema": _ref(form)}
    if media:
        extensions["requestBody"] = {"required": body_required, "content": media}
    if public:
        extensions["security"] = []  # served without a key (functions/api/auth.py)
    if params:
        # Merged with the path parameters Powertools finds in the signature (`build`).
        extensions[QUERY_KEY] = list(params)
    return {"summary": summary, "description": description, "tags": [TAGS[dialect]], "responses": responses,
            "openapi_extensions": extensions or None}


def _components(models: list[type]) -> dict[str, Any]:
    """JSON Schemas of pydantic models, nested models hoisted beside them (refs point into components)."""
    schemas: dict[str, Any] = {}
    for name, model in models:
        schema = model.model_json_schema(ref_template=REF + "{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    return schemas


def build(app) -> dict[str, Any]:
    """The whole document: Powertools' paths for the resolver's routes, with every schema they name."""
    from functions.api import openapi_schemas

    app.include_all_routers()
    spec = app.get_openapi_schema(
        title="Darkroom", version="1.0.0", description=DESCRIPTION,
        tags=[{"name": TAGS[d], "description": TAG_DESCRIPTIONS[d]} for d in (NATIVE, OPENAI, AIMS, REPLICATE, FAL)],
        security_schemes=SECURITY_SCHEMES, security=[{name: []} for name in SECURITY_SCHEMES],
    ).model_dump(mode="json", by_alias=True, exclude_none=True)
    for operation in (op for item in spec["paths"].values() for op in item.values()):
        operation["parameters"] = operation.get("parameters", []) + operation.pop(QUERY_KEY, [])
        if not operation["parameters"]:
            del operation["parameters"]
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    # Powertools always adds the shapes of its own validation errors; validation stays in the handlers (each
    # dialect's errors), so none of them is ever served.
    for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(name, None)
    schemas.update(_components([(m.__name__, m) for m in openapi_schemas.COMPONENTS]))
    schemas.update(_components(list(_REQUEST_MODELS.items())))
    spec["components"]["schemas"] = dict(sorted(schemas.items()))
    # Routers are included in the order requests first reached them: sort, so the document never depends on it.
    spec["paths"] = {path: dict(sorted(item.items())) for path, item in sorted(spec["paths"].items())}
    return spec


@lru_cache(maxsize=1)
def document_json(app) -> str:
    """`app`'s document as served and exported (generated once per container). The app is passed in: it imports
    this module, not the other way round."""
    return json.dumps(build(app), indent=2) + "\n"


@lru_cache(maxsize=1)
def _swagger_html(app) -> str:
    # Powertools' page with the Swagger UI assets its package ships, inlined: /docs works with no CDN
    # (air-gapped and local stacks too), at the price of a 1.7 MB page (gzip-compressed when accepted).
    from aws_lambda_powertools.event_handler.openapi import swagger_ui
    from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_swagger_html

    assets = Path(swagger_ui.__file__).parent
    return generate_swagger_html(
        document_json(app).replace("</", "<\\/"),  # the spec sits in a <script>: never close it early
        (assets / "swagger-ui-bundle.min.js").read_text(encoding="utf-8"),
        (assets / "swagger-ui.min.css").read_text(encoding="utf-8"),
        # A key typed into the page stays in the tab's memory only, as the console's: not in localStorage.
        swagger_base_url="", oauth2_config=None, persist_authorization=False)


def openapi_response(app) -> Response:
    from functions.api import pages

    return pages.page(app.current_event, document_json(app), content_type=JSON,
                      csp="default-src 'none'; frame-ancestors 'none'", cache="public, max-age=300")


@lru_cache(maxsize=1)
def _swagger_csp(app) -> str:
    from functions.api import pages

    html = _swagger_html(app)
    # Swagger UI's own script is inline, allowed by its hash; its React styles elements at run time.
    return pages.content_security_policy(script=pages.inline_hashes(html, "script"),
                                         style="'self' 'unsafe-inline'", media=False)


def swagger_response(app) -> Response:
    """1.7 MB uncompressed, about 0.5 MB gzipped; cached, and revalidated for free (an ETag, then 304s)."""
    from functions.api import pages

    return pages.page(app.current_event, _swagger_html(app), content_type="text/html; charset=utf-8",
                      csp=_swagger_csp(app), cache="public, max-age=300", etag=_swagger_etag(app))


@lru_cache(maxsize=1)
def _swagger_etag(app) -> str:
    from functions.api import pages

    return pages.etag_of(_swagger_html(app))
