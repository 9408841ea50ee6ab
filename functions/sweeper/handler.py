"""Lambda entry point for the schedule (template.yaml: SweeperFunction)."""

from functions.core.coldstart import imports_without_gc

with imports_without_gc():  # the import makes no garbage; collecting during it only costs time
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from functions.core.observability import logger
    from functions.sweeper.logic import sweep


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    return dict(sweep())
