"""Per-key request rate limits: writes exact across every Lambda, reads per warm container.

Writes (every method but GET and HEAD: submits, cancels, uploads, key and webhook changes) go through a
fixed one-minute window per key in DynamoDB, so they hold across concurrent Lambdas: one conditional
UpdateItem per request (`ADD hits 1` only while hits is below the limit), on a counter item that expires
by TTL.

Reads (GET, HEAD: status polls, listings, models) are limited by a token bucket in the container's memory
(`ReadLimiter`): `limit` tokens, refilled at limit/60 per second. A status read then costs one GetItem,
not a GetItem and a DynamoDB write. The price is accuracy across containers: each warm api container
holds its own bucket, so a key polling through N containers at once can read up to N x limit per minute
(exact within one container; a fresh container starts with a full bucket). Reads are cheap and never
spend credits; everything that does is a write, limited exactly.

Over the limit, the caller gets 429 with Retry-After; every response carries the x-ratelimit-* headers
OpenAI clients read.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

from . import aws, clock, dynamo
from .errors import RateLimited
from .settings import get_settings

WINDOW_SECONDS = 60
READ_METHODS = frozenset({"GET", "HEAD"})


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
        raise _refused(limit, reset, reset) from None
    hits = int(resp["Attributes"]["hits"]["N"])
    return Quota(limit, max(0, limit - hits), reset)


def _refused(limit: int, reset: float, retry_after: float) -> RateLimited:
    quota = Quota(limit, 0, reset)
    return RateLimited(f"Rate limit of {limit} requests per minute exceeded for this API key; "
                       f"retry in {math.ceil(retry_after)}s",
                       headers={**quota.headers(), "retry-after": str(max(1, math.ceil(retry_after)))})


@dataclass
class _Bucket:
    tokens: float
    updated: float


class ReadLimiter:
    """A token bucket per key in this container: `limit` requests at once, refilled at limit/60 per second.

    Bounded: past `max_keys` keys, the least recently seen one is forgotten (it comes back with a full bucket).
    """

    def __init__(self, max_keys: int = 10_000) -> None:
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, key_id: str, limit: int, *, now: float | None = None) -> Quota:
        """Take one token for `key_id`. Raises RateLimited (with headers) when the bucket is empty."""
        now = now if now is not None else clock.now()
        rate = limit / WINDOW_SECONDS
        with self._lock:
            bucket = self._buckets.pop(key_id, None) or _Bucket(float(limit), now)
            # A key's limit may have changed since: the bucket never holds more than the current one.
            bucket.tokens = min(float(limit), bucket.tokens + max(0.0, now - bucket.updated) * rate)
            bucket.updated = now
            self._buckets[key_id] = bucket
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            if bucket.tokens < 1:
                raise _refused(limit, (limit - bucket.tokens) / rate, (1 - bucket.tokens) / rate)
            bucket.tokens -= 1
            # Reset: until the bucket is full again, as OpenAI's x-ratelimit-reset-requests means it.
            return Quota(limit, int(bucket.tokens), (limit - bucket.tokens) / rate)

    def clear(self) -> None:
        with self._lock:
            self._buckets.clear()


# One per container (a Lambda execution environment serves one request at a time).
reads = ReadLimiter()
# Requests that reach no key (public routes, keys not seen yet), per caller address (functions/api/auth.py).
anonymous = ReadLimiter()


def check(method: str, key_id: str, limit: int, *, now: float | None = None) -> Quota:
    """Count one request: reads against this container's bucket, everything else against DynamoDB."""
    if method.upper() in READ_METHODS:
        return reads.hit(key_id, limit, now=now)
    return hit(key_id, limit, now=now)
