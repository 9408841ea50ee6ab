"""The api function's resolver: one router per dialect, auth middleware, errors mapped per dialect."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

from functions.api import (
    account,
    aims,
    console,
    errors,
    native,
    openai,
    openapi,
    share,
    styles,
    uploads,
    webhooks,
)
from functions.api.auth import auth_middleware
from functions.core.errors import DarkroomError
from functions.core.observability import logger

app = APIGatewayHttpResolver()
app.use(middlewares=[auth_middleware])
app.include_router(native.router)
app.include_router(webhooks.router)
app.include_router(account.router)
app.include_router(uploads.router)
app.include_router(share.router)
app.include_router(openai.router)
app.include_router(aims.router)
app.include_router(styles.router)
app.include_router(console.router)


# The API's own description, served without a key (functions/api/auth.py); generated on first request.
@app.get("/openapi.json", include_in_schema=False)
def openapi_document() -> Response[str]:
    return openapi.openapi_response()


@app.get("/docs", include_in_schema=False)
def swagger_ui() -> Response[str]:
    return openapi.swagger_response()


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
