"""Per-key request rate limits, enforced in DynamoDB so they hold across concurrent Lambdas.

A fixed one-minute window per key: one conditional UpdateItem per request (`ADD hits 1` only while hits
is below the limit), on a counter item that expires by TTL. Over the limit, the caller gets 429 with
Retry-After; every response carries the x-ratelimit-* headers OpenAI clients read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import aws, clock, dynamo
from .errors import RateLimited
from .settings import get_settings

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Quota:
    limit: int
    remaining: int
    reset_seconds: float

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit-requests": str(self.limit),
            "x-ratelimit-remaining-requests": str(self.remaining),
            "x-ratelimit-reset-requests": f"{math.ceil(self.reset_seconds)}s",
        }


def hit(key_id: str, limit: int, *, now: float | None = None) -> Quota:
    """Count one request for `key_id`. Raises RateLimited (with headers) when the window is full."""
    now = now if now is not None else clock.now()
    window = int(now // WINDOW_SECONDS)
    reset = (window + 1) * WINDOW_SECONDS - now
    client = aws.client("dynamodb")
    try:
        resp = client.update_item(
            TableName=get_settings().rate_limits_table,
            Key={"id": {"S": f"{key_id}#{window}"}},
            UpdateExpression="ADD hits :one SET expires_at = if_not_exists(expires_at, :expires)",
            ConditionExpression="attribute_not_exists(hits) OR hits < :limit",
            ExpressionAttributeValues={":one": {"N": "1"}, ":limit": dynamo.value(limit),
                                       ":expires": dynamo.value(int(now) + 2 * WINDOW_SECONDS)},
            ReturnValues="UPDATED_NEW",
        )
    except client.exceptions.ConditionalCheckFailedException:
        quota = Quota(limit, 0, reset)
        raise RateLimited(f"Rate limit of {limit} requests per minute exceeded for this API key; "
                          f"retry in {math.ceil(reset)}s",
                          headers={**quota.headers(), "retry-after": str(math.ceil(reset))}) from None
    hits = int(resp["Attributes"]["hits"]["N"])
    return Quota(limit, max(0, limit - hits), reset)
