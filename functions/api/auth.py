"""Authentication: the key from any of the three header forms, looked up by hash, put on the request context."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from functions.api import scopes
from functions.core import ratelimit
from functions.core.errors import FieldError, Forbidden, RateLimited, Unauthorized
from functions.core.keys import ApiKey, KeyStore

# Requests that reach no key (public routes, and keys this container has not seen) are limited per caller address
# in this container, before anything is read: each unknown key would cost a DynamoDB read, and the public pages
# are large. Per container, like reads (functions/core/ratelimit.py): exact within one, N x the limit across N.
UNVERIFIED_KEYS_PER_MINUTE = 300
PUBLIC_REQUESTS_PER_MINUTE = 600


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
    """`Authorization: <key>`, `Authorization: <scheme> <key>` or `X-API-Key: <key>`. The schemes are the ones the
    vendors' clients send: `Bearer` (OpenAI, newer Replicate clients), `Token` (older replicate-javascript) and
    `Key` (fal's clients)."""
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    if lowered.get("x-api-key", "").strip():
        return lowered["x-api-key"].strip()
    value = lowered.get("authorization", "").strip()
    scheme, _, rest = value.partition(" ")
    if scheme.lower() in _SCHEMES:
        value = rest.strip()
    elif value.lower() in _SCHEMES:
        value = ""
    return value or None


_SCHEMES = frozenset({"bearer", "token", "key"})


def authenticate(headers: dict[str, str], store: KeyStore | None = None, *, caller: str = "",
                 fresh: bool = False) -> Principal:
    """The key's principal. A key this container has not seen costs a read: at most UNVERIFIED_KEYS_PER_MINUTE
    of those per caller address. `fresh`: read past the cache, consistently (operator routes)."""
    secret = key_from_headers(headers)
    if not secret:
        raise Unauthorized("Missing API key: send Authorization: Bearer <key> (or Token or Key <key>, or the key alone) or X-API-Key",
                           code="missing_api_key",
                           errors=[FieldError("authorization", "no API key in Authorization or X-API-Key", "required")])
    store = store or KeyStore()
    known, key = store.cached(secret)
    if fresh or not known:
        if not known:
            _limit_anonymous(caller, UNVERIFIED_KEYS_PER_MINUTE, "unverified API keys")
        key = store.lookup(secret, fresh=fresh)
    if key is None:
        raise Unauthorized("Invalid API key", code="invalid_api_key",
                           errors=[FieldError("authorization", "API key is unknown or revoked", "invalid_api_key")])
    return Principal.from_key(key)


def _limit_anonymous(caller: str, per_minute: int, what: str) -> None:
    try:
        ratelimit.anonymous.hit(f"{what}#{caller}", per_minute)
    except RateLimited as exc:
        exc.message = f"Too many requests with {what} from this address; retry in {exc.headers['retry-after']}s"
        exc.args = (exc.message,)
        raise


# The rate-limit headers of the request in flight: the handler adds them to every response, errors included.
response_headers: ContextVar[dict[str, str] | None] = ContextVar("response_headers", default=None)


def auth_middleware(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response:
    """Every request: the route's scope from the one table (functions/api/scopes.py), checked before any
    handler runs; public routes and unknown keys limited per caller address."""
    event = app.current_event
    method, path = event.http_method, event.path
    caller = event.request_context.http.source_ip or "unknown"
    scope = scopes.scope_for(method, path)
    if method == "OPTIONS" or scope in (scopes.PUBLIC, None):
        # Public pages, and paths no route serves (the resolver's 404 or 405 reads nothing and reveals nothing).
        _limit_anonymous(caller, PUBLIC_REQUESTS_PER_MINUTE, "requests without a key")
        return next_middleware(app)
    principal = authenticate(event.headers, caller=caller, fresh=scope == scopes.OPERATOR_SCOPE)
    response_headers.set({})
    # Reads against this container's bucket, writes against the shared counter (functions/core/ratelimit.py).
    quota = ratelimit.check(method, principal.key_id, principal.rate_limit)
    response_headers.set(quota.headers())
    if scope not in (scopes.ANY, scopes.GENERATE):
        principal.require(scope)
    app.append_context(principal=principal)
    return next_middleware(app)
