"""DynamoDB (de)serialization shared by every store: plain Python in, attribute values out."""

from __future__ import annotations

import json
import random
import time
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


# The smallest magnitude a DynamoDB number holds; a valid float such as 1e-166 (a guidance, a cfg_scale)
# would fail the whole write (decimal.Underflow) and the request with it.
_SMALLEST = Decimal("1e-130")


def _decimal(text: str) -> Decimal:
    number = Decimal(text)
    return number if abs(number) >= _SMALLEST else Decimal(0)


def _to_dynamo_numbers(value: Any) -> Any:
    # DynamoDB refuses floats; a JSON round trip turns every float into a Decimal in one pass.
    return json.loads(json.dumps(value), parse_float=_decimal)


def _from_dynamo_numbers(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo_numbers(v) for v in value]
    return value


def serialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in _to_dynamo_numbers(item).items() if v is not None}


def value(v: Any) -> dict[str, Any]:
    return _serializer.serialize(_to_dynamo_numbers(v))


def deserialize(item: dict[str, Any]) -> dict[str, Any]:
    return _from_dynamo_numbers({k: _deserializer.deserialize(v) for k, v in item.items()})


def is_conditional_failure(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return code in {"ConditionalCheckFailedException", "TransactionCanceledException"}


# DynamoDB cancels a transaction that meets another one in flight on the same item (a CancellationReason of
# "TransactionConflict"), and botocore does not retry that: to it, it is neither throttling nor a transient error.
# Jobs of one workspace meet on its credits item (a submit's reservation, another job's refund), so a busy workspace
# would see 500s. Nothing of a canceled transaction was written, so it is retried, with jitter, a few times.
CONFLICT_RETRIES = 4


def conflicted(exc: Exception) -> bool:
    """Whether a TransactionCanceledException was (only) another transaction in the way."""
    reasons = {r.get("Code") for r in getattr(exc, "response", {}).get("CancellationReasons", [])} - {"None", None}
    return bool(reasons) and reasons <= {"TransactionConflict"}


def transact_write(ddb: Any, items: list[dict[str, Any]], *, retries: int = CONFLICT_RETRIES) -> dict[str, Any]:
    """TransactWriteItems, retried while it conflicts with another transaction; the last conflict is raised."""
    for attempt in range(retries):
        try:
            return ddb.transact_write_items(TransactItems=items)
        except ddb.exceptions.TransactionCanceledException as exc:
            if not conflicted(exc):
                raise
        time.sleep(random.uniform(0.5, 1.0) * 0.025 * 2 ** attempt)  # 12-25 ms, doubling: about 0.4 s at most
    return ddb.transact_write_items(TransactItems=items)
