"""Submitting a job at most once per request, on Powertools' idempotency utility (DynamoDB persistence).

Two ways a request is recognised as one already seen (docs/sync-calls.md has the semantics):

- The Idempotency-Key header: the same key from the same workspace returns the first response instead of
  creating a second job. The same key with a different body is refused (422), and a request still in
  flight with that key gets 409.
- SDK retries of synchronous calls (`sync_submit`). The official OpenAI SDK retries 5xx, 408, 409, 429 and
  connection errors on its own, sends `x-stainless-retry-count: N`, and no idempotency key. So every
  synchronous request also gets a fingerprint (API key, route, body): a first attempt (retry count 0 or
  absent) always starts a new job and becomes the latest attempt for its fingerprint; a retry (count >= 1)
  joins the latest attempt's job and waits for it again, instead of starting (and charging) another. Two
  deliberate identical requests are both first attempts, so they make two jobs.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from functions.core import aws
from functions.core.errors import Conflict, DarkroomError, FieldError, ValidationFailed
from functions.core.settings import get_settings

MAX_KEY_LENGTH = 255
RETRY_COUNT_HEADER = "x-stainless-retry-count"
# How long a retry can still find its first attempt: the SDK's worst case is three attempts of 600 s.
RETRY_WINDOW_SECONDS = 3600
# The attempt counters live in the idempotency table, beside Powertools' records, under their own prefix.
_ATTEMPT_PREFIX = "sync-attempt#"


class IdempotencyMismatch(DarkroomError):
    status = 422
    code = "idempotency_key_reused"


# The handler registers each invocation's context, so an in-progress record expires with the invocation.
# Powertools' idempotency package imports its DynamoDB persistence layer (and boto3's resource machinery,
# ~200 ms) whatever submodule is imported, so nothing of it is imported before a request needs it.
_lambda_context: list[Any] = [None]


def register_lambda_context(context: Any) -> None:
    _lambda_context[0] = context
    if _runner.cache_info().currsize:
        _runner().config.register_lambda_context(context)


@lru_cache(maxsize=1)
def _runner() -> Callable[..., dict[str, Any]]:
    # Built on first use, so requests that never need it never pay for the persistence layer.
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    # `kind` keeps a caller's Idempotency-Key apart from the keys derived for SDK retries.
    config = IdempotencyConfig(
        event_key_jmespath="[workspace_id, kind, key]",
        payload_validation_jmespath="fingerprint",
        expires_after_seconds=24 * 3600,
    )
    if _lambda_context[0] is not None:
        config.register_lambda_context(_lambda_context[0])
    persistence = DynamoDBPersistenceLayer(table_name=get_settings().idempotency_table)

    @idempotent_function(data_keyword_argument="request", persistence_store=persistence, config=config)
    def submit_once(request: dict[str, Any], work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        return work()

    submit_once.config = config  # type: ignore[attr-defined]
    return submit_once


def once(key: str | None, workspace_id: str, fingerprint: Any, work: Callable[[], dict[str, Any]],
         *, kind: str = "header") -> dict[str, Any]:
    """Run `work` once per (workspace, key); replays return its first result."""
    if key is None:
        return work()
    if not 0 < len(key) <= MAX_KEY_LENGTH:
        raise ValidationFailed("Idempotency-Key must be 1 to 255 characters",
                               errors=[FieldError("Idempotency-Key", "must be 1 to 255 characters")])
    request = {"workspace_id": workspace_id, "kind": kind, "key": key, "fingerprint": fingerprint}
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    try:
        return _runner()(request=request, work=work)
    except IdempotencyAlreadyInProgressError:
        raise Conflict("A request with this Idempotency-Key is still in progress", code="idempotency_in_progress")
    except IdempotencyValidationError:
        raise IdempotencyMismatch("This Idempotency-Key was used with a different request body")


# ---------------------------------------------------------------- synchronous calls and SDK retries


def retry_count(headers: Mapping[str, str]) -> int:
    """The SDK's attempt number (0 for a first attempt; anything unreadable counts as a first attempt)."""
    try:
        return max(int(str(headers.get(RETRY_COUNT_HEADER, "0")).strip()), 0)
    except ValueError:
        return 0


def request_fingerprint(key_id: str, route: str, body: Any) -> str:
    """What makes two requests the same: the API key, the route and the (translated) body."""
    canonical = json.dumps({"key": key_id, "route": route, "body": body}, sort_keys=True, separators=(",", ":"),
                           default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def attempt_key(fingerprint: str, *, retry: bool, now: float | None = None) -> str:
    """The idempotency key of this request's attempt chain: a first attempt opens a new chain (an atomic
    counter per fingerprint), a retry joins the latest one still inside the window (or opens one if the
    first attempt never got this far)."""
    now = time.time() if now is None else now
    item_id = _ATTEMPT_PREFIX + fingerprint
    dynamodb = aws.client("dynamodb")
    table = get_settings().idempotency_table
    if retry:
        found = dynamodb.get_item(TableName=table, Key={"id": {"S": item_id}}, ConsistentRead=True).get("Item")
        if found and float(found["expiration"]["N"]) > now:
            return f"{fingerprint}:{found['attempt']['N']}"
    updated = dynamodb.update_item(
        TableName=table, Key={"id": {"S": item_id}},
        UpdateExpression="ADD attempt :one SET expiration = :expires",
        ExpressionAttributeValues={":one": {"N": "1"}, ":expires": {"N": str(int(now + RETRY_WINDOW_SECONDS))}},
        ReturnValues="UPDATED_NEW")
    return f"{fingerprint}:{updated['Attributes']['attempt']['N']}"


def sync_submit(headers: Mapping[str, str], *, workspace_id: str, key_id: str, route: str, fingerprint: Any,
                work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Submit a synchronous call's job once: per Idempotency-Key when the caller sends one, else once per
    attempt chain (first attempt and its SDK retries)."""
    explicit = headers.get("idempotency-key")
    if explicit is not None:
        return once(explicit, workspace_id, fingerprint, work)
    chain = attempt_key(request_fingerprint(key_id, route, fingerprint), retry=retry_count(headers) >= 1)
    return once(chain, workspace_id, fingerprint, work, kind="sdk-retry")
