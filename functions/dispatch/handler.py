"""Lambda entry point for the jobs queue (template.yaml: DispatchFunction)."""

from functions.core.coldstart import imports_without_gc

with imports_without_gc():  # the import makes no garbage; collecting during it only costs time
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from functions.core.messages import JobMessage
    from functions.core.observability import logger
    from functions.dispatch.dispatchers import get_dispatcher
    from functions.dispatch.logic import dispatch


# A batch that fails whole is reported item by item too, so Lambda and the local poller treat it alike.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord) -> None:
    dispatch(JobMessage.model_validate_json(record.body), get_dispatcher(), claim=record.message_id)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
