"""The Idempotency-Key header, on Powertools' idempotency utility (DynamoDB persistence).

The same key from the same workspace returns the first response instead of creating a second job. The
same key with a different body is refused (422), and a request still in flight with that key gets 409.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)

from functions.core.errors import Conflict, DarkroomError, FieldError, ValidationFailed
from functions.core.settings import get_settings

MAX_KEY_LENGTH = 255


class IdempotencyMismatch(DarkroomError):
    status = 422
    code = "idempotency_key_reused"


# The handler registers each invocation's context, so an in-progress record expires with the invocation.
config = IdempotencyConfig(
    event_key_jmespath="[workspace_id, key]",
    payload_validation_jmespath="fingerprint",
    expires_after_seconds=24 * 3600,
)


@lru_cache(maxsize=1)
def _runner() -> Callable[..., dict[str, Any]]:
    # Built on first use, so requests without the header never pay for the persistence layer.
    persistence = DynamoDBPersistenceLayer(table_name=get_settings().idempotency_table)

    @idempotent_function(data_keyword_argument="request", persistence_store=persistence, config=config)
    def submit_once(request: dict[str, Any], work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        return work()

    return submit_once


def once(key: str | None, workspace_id: str, fingerprint: Any, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run `work` once per (workspace, key); replays return its first result."""
    if key is None:
        return work()
    if not 0 < len(key) <= MAX_KEY_LENGTH:
        raise ValidationFailed("Idempotency-Key must be 1 to 255 characters",
                               errors=[FieldError("Idempotency-Key", "must be 1 to 255 characters")])
    request = {"workspace_id": workspace_id, "key": key, "fingerprint": fingerprint}
    try:
        return _runner()(request=request, work=work)
    except IdempotencyAlreadyInProgressError:
        raise Conflict("A request with this Idempotency-Key is still in progress", code="idempotency_in_progress")
    except IdempotencyValidationError:
        raise IdempotencyMismatch("This Idempotency-Key was used with a different request body")
