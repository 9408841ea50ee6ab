"""Lambda entry point for the webhooks queue (template.yaml: WebhooksFunction).

Each record is one delivery attempt. A retry is a new message delayed on the queue (up to SQS's 15
minutes; longer waits are finished by hiding the message for up to 12 hours at a time), an exhausted
event goes to the dead-letter queue with its reason, where `darkroom webhooks replay-dlq` can resend it.
"""

from functions.core.coldstart import imports_without_gc

with imports_without_gc():  # the import makes no garbage; collecting during it only costs time
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from functions.core import aws, clock, messages
    from functions.core.messages import WebhookMessage
    from functions.core.observability import logger
    from functions.core.settings import get_settings
    from functions.webhooks.delivery import process


MAX_VISIBILITY_SECONDS = 12 * 3600  # SQS visibility timeout limit
# Time a record needs besides its POST (the address check's DNS lookup, reading the job, recording the attempt,
# queueing what comes next). template.yaml's WebhooksFunction Timeout fits a whole batch of them.
RECORD_MARGIN_SECONDS = 5

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class NotYet(Exception):
    """The message's next attempt is later: it stays on the queue, hidden until then."""


def record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> None:
    message = WebhookMessage.model_validate_json(record.body)
    settings = get_settings()
    if _out_of_time(lambda_context, settings.webhook_timeout_seconds + RECORD_MARGIN_SECONDS):
        # Lambda would cut the POST off and SQS redeliver the whole batch. A new message, not a failed record:
        # its receive count starts over, so being put off never counts towards the dead-letter queue.
        messages.send_later(settings.webhooks_queue_url, message, int(message.not_before - clock.now()))
        logger.info("webhook put off: too little time left", extra={"event_id": message.event_id})
        return
    decision = process(message)
    if decision.action == "wait":
        aws.client("sqs").change_message_visibility(
            QueueUrl=settings.webhooks_queue_url, ReceiptHandle=record.receipt_handle,
            VisibilityTimeout=max(1, min(int(decision.delay) + 1, MAX_VISIBILITY_SECONDS)))
        raise NotYet(message.event_id)
    if decision.action == "retry":
        messages.send_later(settings.webhooks_queue_url, decision.next, round(decision.delay))
    elif decision.action == "dead_letter":
        logger.warning("webhook dead-lettered", extra={"event_id": message.event_id, "reason": decision.reason})
        messages.send(settings.webhooks_dlq_url, decision.next or message, MessageAttributes={
            "reason": {"DataType": "String", "StringValue": decision.reason[:1000]}})


def _out_of_time(context: LambdaContext | None, needed: float) -> bool:
    return context is not None and context.get_remaining_time_in_millis() < needed * 1000


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
