"""Lambda entry point for the webhooks queue (template.yaml: WebhooksFunction).

Placeholder until the webhooks issue builds signed delivery: every event is reported as a batch item
failure, so it stays on the queue and ends in the dead-letter queue, inspectable and replayable; none
is dropped.
"""

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.core.observability import logger


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    records = event.get("Records", [])
    logger.info("webhook delivery not built yet; keeping events queued", extra={"count": len(records)})
    return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records]}
