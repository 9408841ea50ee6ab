"""The api function's resolver: a router per concern, included on the first request that can reach it; auth
middleware; errors mapped per dialect.

One function serves every dialect, but a request reaches only a few routers: a cold native status read need
not define the OpenAI and AI Media Studio request models, nor the console's or the admin routes' (about a
fifth of the api function's import here, docs/benchmarks.md). ROUTERS names each router module with the
path prefixes its routes start with; the resolver includes, before resolving, every router one of whose
prefixes the path starts with (a test checks every route is covered by its module's prefixes). The OpenAPI
document includes them all.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from functions.api import errors, openapi
from functions.api.auth import auth_middleware
from functions.core.coldstart import imports_without_gc
from functions.core.errors import DarkroomError
from functions.core.observability import logger

# Router module -> the prefixes of its routes' paths. Full module names: the build's import closure
# (infra/build/imports.py) follows them, so each router's dependencies still ship in the artifact.
ROUTERS: dict[str, tuple[str, ...]] = {
    "functions.api.native": ("/api/generate", "/api/generations", "/api/models", "/api/run", "/api/tools"),
    "functions.api.webhooks": ("/api/generations/", "/api/webhooks/"),
    "functions.api.account": ("/api/account", "/api/admin/", "/api/keys"),
    "functions.api.uploads": ("/api/uploads", "/api/v1/uploads", "/files"),
    "functions.api.share": ("/api/generations/", "/shared/"),
    "functions.api.openai": ("/v1/images/", "/v1/models"),
    "functions.api.replicate": ("/v1/predictions", "/v1/models/", "/v1/deployments/", "/v1/files", "/v1/webhooks/"),
    "functions.api.aims": ("/api/v1/images/", "/api/v1/models", "/api/v1/videos/"),
    "functions.api.fal": ("/fal/",),
    "functions.api.styles": ("/api/styles", "/api/v1/styles"),
    "functions.api.console": ("/console",),
    "functions.api.media": ("/media/",),
    "functions.api.loras": ("/api/loras",),
    "functions.api.prompts": ("/api/prompts/",),
}


class Resolver(APIGatewayHttpResolver):
    """Powertools' resolver, including the routers a request's path can reach before resolving it."""

    def __init__(self) -> None:
        super().__init__()
        self._included: set[str] = set()
        self._including = threading.Lock()

    def resolve(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.include_routers_for(str(event.get("rawPath") or "/"))
        return super().resolve(event, context)

    def include_routers_for(self, path: str) -> None:
        self._include([name for name, prefixes in ROUTERS.items() if path.startswith(prefixes)])

    def include_all_routers(self) -> None:
        self._include(list(ROUTERS))

    def _include(self, names: list[str]) -> None:
        if self._included.issuperset(names):
            return
        with self._including, imports_without_gc():  # a router's import makes no garbage either
            for name in names:
                if name not in self._included:
                    self.include_router(importlib.import_module(name).router)
                    self._included.add(name)


app = Resolver()
app.use(middlewares=[auth_middleware])


# The API's own description, served without a key (functions/api/auth.py); generated on first request.
@app.get("/openapi.json", include_in_schema=False)
def openapi_document() -> Response[str]:
    return openapi.openapi_response(app)  # built from every router (openapi.build includes them)


@app.get("/docs", include_in_schema=False)
def swagger_ui() -> Response[str]:
    return openapi.swagger_response(app)


@app.exception_handler(DarkroomError)
def _domain_error(exc: DarkroomError) -> Response:
    if exc.status >= 500:
        logger.warning("request failed", extra={"error": exc.message, "code": exc.code})
    return errors.render(app.current_event.path, exc)


@app.exception_handler(Exception)
def _unexpected(exc: Exception) -> Response:
    # Never a bare 500 page: the caller gets its dialect's error shape; the stack trace goes to the log.
    logger.exception("unhandled error")
    return errors.render(app.current_event.path, DarkroomError("Internal error; the request can be retried"))


@app.not_found
def _not_found(exc: Exception) -> Response:
    return errors.route_not_found(app.current_event.path, app.current_event.http_method)


__all__ = ["app"]
