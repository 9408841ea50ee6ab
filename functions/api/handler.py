"""Lambda entry point for every HTTP route (template.yaml: ApiFunction)."""

from functions.core.coldstart import imports_without_gc

with imports_without_gc():  # the import makes no garbage; collecting during it only costs time
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from functions.api import idempotency
    from functions.api.app import app
    from functions.api.auth import response_headers
    from functions.core.observability import logger


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    idempotency.register_lambda_context(context)
    response_headers.set({})
    response = app.resolve(event, context)
    response.setdefault("headers", {}).update(response_headers.get() or {})
    return response
