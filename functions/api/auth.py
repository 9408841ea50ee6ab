"""Authentication: the key from any of the three header forms, looked up by hash, put on the request context."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from functions.core import ratelimit
from functions.core.errors import FieldError, Forbidden, Unauthorized
from functions.core.keys import ApiKey, KeyStore

# Served without a key: CORS preflight, share pages of media made public, the OpenAPI document and its UI,
# the web console's static files (it signs in with a key of its own, in the browser), and media links (their
# signature is the access check: functions/core/links.py).
PUBLIC_METHODS = {"OPTIONS"}
PUBLIC_PATH_PREFIXES = ("/shared/media/", "/console/", "/media/")
PUBLIC_PATHS = {"/openapi.json", "/docs", "/console"}


@dataclass(frozen=True)
class Principal:
    workspace_id: str
    key_id: str
    scopes: frozenset[str]
    rate_limit: int

    @classmethod
    def from_key(cls, key: ApiKey) -> Principal:
        return cls(key.workspace_id, key.key_id, frozenset(key.scopes), key.rate_limit)

    def require(self, scope: str) -> None:
        if scope not in self.scopes and "admin" not in self.scopes:
            raise Forbidden(f"This API key lacks the {scope} scope", code="insufficient_scope",
                            errors=[FieldError("authorization", f"key lacks the {scope} scope", "insufficient_scope")])


def key_from_headers(headers: dict[str, str]) -> str | None:
    """`Authorization: <key>`, `Authorization: Bearer <key>` or `X-API-Key: <key>`."""
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    if lowered.get("x-api-key", "").strip():
        return lowered["x-api-key"].strip()
    value = lowered.get("authorization", "").strip()
    if value.lower() == "bearer" or value.lower().startswith("bearer "):
        value = value[6:].strip()
    return value or None


def authenticate(headers: dict[str, str], store: KeyStore | None = None) -> Principal:
    secret = key_from_headers(headers)
    if not secret:
        raise Unauthorized("Missing API key: send Authorization: <key>, Authorization: Bearer <key> or X-API-Key",
                           code="missing_api_key",
                           errors=[FieldError("authorization", "no API key in Authorization or X-API-Key", "required")])
    key = (store or KeyStore()).lookup(secret)
    if key is None:
        raise Unauthorized("Invalid API key", code="invalid_api_key",
                           errors=[FieldError("authorization", "API key is unknown or revoked", "invalid_api_key")])
    return Principal.from_key(key)


# The rate-limit headers of the request in flight: the handler adds them to every response, errors included.
response_headers: ContextVar[dict[str, str] | None] = ContextVar("response_headers", default=None)


def is_public(method: str, path: str) -> bool:
    return method in PUBLIC_METHODS or (
        method == "GET" and (path.startswith(PUBLIC_PATH_PREFIXES) or path in PUBLIC_PATHS))


def auth_middleware(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response:
    event = app.current_event
    if not is_public(event.http_method, event.path):
        principal = authenticate(event.headers)
        response_headers.set({})
        # Reads against this container's bucket, writes against the shared counter (functions/core/ratelimit.py).
        quota = ratelimit.check(event.http_method, principal.key_id, principal.rate_limit)
        response_headers.set(quota.headers())
        app.append_context(principal=principal)
    return next_middleware(app)
