"""How many synchronous calls a key, and a workspace, may have waiting at once.

A synchronous call (OpenAI, AI Media Studio) holds a Lambda for as long as its job runs, up to SyncWaitSeconds:
a few keys could hold every environment the account may run (and locally, every environment of the api). So
each call first takes a lease: one of `cap` slot items per key and per workspace in the rate-limits table,
taken with a conditional write (`attribute_not_exists(owner) OR lease_until < now`) and given back when the
wait ends. A slot whose holder died is free again once its lease runs out, so nothing leaks; the item expires
by TTL. Over the cap: 429 with Retry-After.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from . import aws, clock, dynamo
from .errors import FieldError, RateLimited
from .settings import get_settings

# Beyond the longest wait: a lease outlives its call only if the function died holding it.
LEASE_MARGIN_SECONDS = 60
# What a refused caller is told to wait: a short sync call ends within seconds.
RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True)
class Lease:
    slot: str
    owner: str


def _slot_id(scope: str, index: int) -> str:
    return f"inflight#{scope}#{index}"


def acquire(scope: str, cap: int, *, lease_seconds: float) -> Lease | None:
    """A free slot of `scope`'s `cap`, tried in random order; None when every one is held."""
    table, client, now = get_settings().rate_limits_table, aws.client("dynamodb"), clock.now()
    owner = secrets.token_hex(8)
    until = now + lease_seconds
    for index in random.sample(range(cap), cap):
        slot = _slot_id(scope, index)
        try:
            client.update_item(
                TableName=table, Key={"id": {"S": slot}},
                UpdateExpression="SET #o = :owner, lease_until = :until, expires_at = :expires",
                ConditionExpression="attribute_not_exists(#o) OR lease_until < :now",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":owner": {"S": owner}, ":until": dynamo.value(until),
                                           ":now": dynamo.value(now),
                                           ":expires": {"N": str(int(until) + 86400)}})
            return Lease(slot, owner)
        except client.exceptions.ConditionalCheckFailedException:
            continue
    return None


def release(lease: Lease) -> None:
    """Free the slot, if it is still this call's (a lease taken over after it ran out is not touched)."""
    client = aws.client("dynamodb")
    try:
        client.update_item(
            TableName=get_settings().rate_limits_table, Key={"id": {"S": lease.slot}},
            UpdateExpression="REMOVE #o, lease_until", ConditionExpression="#o = :owner",
            ExpressionAttributeNames={"#o": "owner"}, ExpressionAttributeValues={":owner": {"S": lease.owner}})
    except client.exceptions.ConditionalCheckFailedException:
        pass


@contextmanager
def sync_call(key_id: str, workspace_id: str) -> Iterator[None]:
    """Hold a slot of the key's and of the workspace's in-flight caps for the block, or raise 429."""
    settings = get_settings()
    lease_seconds = settings.sync_wait_seconds + LEASE_MARGIN_SECONDS
    with ExitStack() as held:
        for scope, cap, what in ((f"key#{key_id}", settings.sync_calls_per_key, "API key"),
                                 (f"workspace#{workspace_id}", settings.sync_calls_per_workspace, "workspace")):
            lease = acquire(scope, cap, lease_seconds=lease_seconds)
            if lease is None:
                raise RateLimited(
                    f"This {what} already has {cap} synchronous generations waiting; wait for one to finish, or "
                    "submit asynchronously (POST /api/run) and poll",
                    errors=[FieldError("Authorization", f"the {what} has {cap} synchronous calls in flight",
                                       "too_many_inflight")],
                    code="too_many_inflight", headers={"retry-after": str(RETRY_AFTER_SECONDS)})
            held.callback(release, lease)
        yield
