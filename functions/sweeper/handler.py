"""Lambda entry point for the schedule (template.yaml: SweeperFunction)."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.core.observability import logger
from functions.sweeper.logic import sweep


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context: LambdaContext) -> dict:
    return dict(sweep())
