"""API keys: random, shown once, stored only as a hash, named, tied to a workspace, revocable."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from typing import Any

from pydantic import Field

from . import aws, clock, dynamo
from .errors import NotFound
from .schema import Schema
from .settings import get_settings

KEY_PREFIX = "dr_"
ALL_SCOPES = ("image:generate", "video:generate", "media:read", "media:write", "admin")
DEFAULT_SCOPES = ("image:generate", "video:generate", "media:read", "media:write")
DEFAULT_RATE_LIMIT = 60


def generate_secret() -> str:
    # 32 random bytes (256 bits), URL-safe: the key needs no slow hash, a SHA-256 cannot be reversed.
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKey(Schema):
    """A key as stored: never the secret itself."""

    key_id: str
    key_hash: str
    workspace_id: str
    name: str
    scopes: list[str] = Field(default_factory=lambda: list(DEFAULT_SCOPES))
    rate_limit: int = DEFAULT_RATE_LIMIT
    prefix: str
    created_at: float
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def public(self) -> dict[str, Any]:
        return self.model_dump(exclude={"key_hash"})


# What generate_secret makes: anything else cannot be a key, and is refused without a read.
_KEY_SHAPE = re.compile(rf"^{KEY_PREFIX}[A-Za-z0-9_-]{{43}}$")


def looks_like_a_key(secret: str) -> bool:
    return bool(_KEY_SHAPE.match(secret))


class _TtlCache:
    """Key lookups cached in the warm Lambda, least recently used out first past `max_entries`; revocation
    takes effect within the TTL."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, ApiKey | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key_hash: str, ttl: float) -> tuple[bool, ApiKey | None]:
        with self._lock:
            entry = self._entries.get(key_hash)
            if entry and time.monotonic() - entry[0] < ttl:
                self._entries.move_to_end(key_hash)
                return True, entry[1]
        return False, None

    def put(self, key_hash: str, value: ApiKey | None) -> None:
        with self._lock:
            self._entries[key_hash] = (time.monotonic(), value)
            self._entries.move_to_end(key_hash)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def forget(self, key_hash: str) -> None:
        with self._lock:
            self._entries.pop(key_hash, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class LookupCache:
    """Known keys and unknown ones in two bounded caches: a flood of random keys (each one a miss) can push out
    only other unknown keys, never the valid keys of real callers (one cache of 10,000 was cleared by it)."""

    def __init__(self) -> None:
        self.valid = _TtlCache()
        self.unknown = _TtlCache()

    def get(self, key_hash: str, ttl: float) -> tuple[bool, ApiKey | None]:
        hit, value = self.valid.get(key_hash, ttl)
        return (hit, value) if hit else self.unknown.get(key_hash, ttl)

    def put(self, key_hash: str, value: ApiKey | None) -> None:
        (self.valid if value is not None else self.unknown).put(key_hash, value)
        (self.unknown if value is not None else self.valid).forget(key_hash)

    def clear(self) -> None:
        self.valid.clear()
        self.unknown.clear()


lookup_cache = LookupCache()


class KeyStore:
    def __init__(self, table: str | None = None) -> None:
        self.table = table or get_settings().keys_table
        self.ddb = aws.client("dynamodb")

    def create(self, workspace_id: str, name: str, *, scopes: list[str] | None = None,
               rate_limit: int = DEFAULT_RATE_LIMIT, secret: str | None = None) -> tuple[str, ApiKey]:
        """Store a new key and return (secret, record). The secret is never stored or shown again.

        `secret` is for the local stack only, which re-registers the developer's existing key after a restart.
        """
        secret = secret or generate_secret()
        record = ApiKey(
            key_id="key_" + secrets.token_hex(8),
            key_hash=hash_secret(secret),
            workspace_id=workspace_id,
            name=name,
            scopes=list(scopes if scopes is not None else DEFAULT_SCOPES),
            rate_limit=rate_limit,
            prefix=secret[: len(KEY_PREFIX) + 6],
            created_at=clock.now(),
        )
        self.ddb.put_item(TableName=self.table, Item=dynamo.serialize(record.model_dump()),
                          ConditionExpression="attribute_not_exists(key_hash)")
        return secret, record

    def cached(self, secret: str) -> tuple[bool, ApiKey | None]:
        """(whether this container knows the answer without a read, the key if it is a valid one)."""
        if not looks_like_a_key(secret):
            return True, None
        return lookup_cache.get(hash_secret(secret), get_settings().key_cache_ttl_seconds)

    def lookup(self, secret: str, *, fresh: bool = False) -> ApiKey | None:
        """The active key for this secret, or None. Cached for key_cache_ttl_seconds; `fresh` reads the table
        with a consistent read, past the cache (the operator's routes: a revocation counts at once)."""
        if not looks_like_a_key(secret):
            return None
        key_hash = hash_secret(secret)
        if not fresh:
            hit, cached = lookup_cache.get(key_hash, get_settings().key_cache_ttl_seconds)
            if hit:
                return cached
        resp = self.ddb.get_item(TableName=self.table, Key={"key_hash": {"S": key_hash}}, ConsistentRead=fresh)
        record = ApiKey.model_validate(dynamo.deserialize(resp["Item"])) if "Item" in resp else None
        # Compare in constant time anyway: the item was found by hash, but this keeps the check explicit.
        if record is not None and (not record.active or not hmac.compare_digest(record.key_hash, key_hash)):
            record = None
        lookup_cache.put(key_hash, record)
        return record

    def list(self, workspace_id: str) -> list[ApiKey]:
        keys: list[ApiKey] = []
        for page in self.ddb.get_paginator("query").paginate(
            TableName=self.table, IndexName="by-workspace", KeyConditionExpression="workspace_id = :w",
            ExpressionAttributeValues={":w": {"S": workspace_id}},
        ):
            keys.extend(ApiKey.model_validate(dynamo.deserialize(i)) for i in page["Items"])
        return keys

    def revoke(self, workspace_id: str, key_id: str) -> ApiKey:
        match = next((k for k in self.list(workspace_id) if k.key_id == key_id), None)
        if match is None:
            raise NotFound(f"API key {key_id} not found", code="key_not_found")
        if match.active:
            now = clock.now()
            self.ddb.update_item(
                TableName=self.table, Key={"key_hash": {"S": match.key_hash}},
                UpdateExpression="SET revoked_at = if_not_exists(revoked_at, :now)",
                ExpressionAttributeValues={":now": dynamo.value(now)},
            )
            match.revoked_at = now
        lookup_cache.put(match.key_hash, None)
        return match
