"""API keys and authentication: header forms, secrets, hashing, lookup, scopes, the lookup cache."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import string

import pytest

from functions.api.auth import Principal, authenticate, key_from_headers
from functions.core import keys
from functions.core.errors import Forbidden, Unauthorized
from functions.core.keys import KEY_PREFIX, ApiKey, KeyStore, _TtlCache, generate_secret, hash_secret
from functions.core.settings import get_settings

SECRET = "dr_" + "A" * 43


def make_key(secret: str = SECRET, **overrides) -> ApiKey:
    fields = {"key_id": "key_0123456789abcdef", "key_hash": hash_secret(secret), "workspace_id": "ws_1",
              "name": "ci", "scopes": ["image:generate", "media:read"], "rate_limit": 42, "prefix": secret[:9],
              "created_at": 1_700_000_000.0}
    return ApiKey(**(fields | overrides))


class FakeStore:
    """Stands in for KeyStore: knows one secret."""

    def __init__(self, known: dict[str, ApiKey] | None = None) -> None:
        self.known = known or {}
        self.looked_up: list[str] = []

    def cached(self, secret: str) -> tuple[bool, ApiKey | None]:
        return False, None  # every lookup reads

    def lookup(self, secret: str, *, fresh: bool = False) -> ApiKey | None:
        self.looked_up.append(secret)
        return self.known.get(secret)


# ---------------------------------------------------------------- headers


@pytest.mark.parametrize("headers", [
    {"Authorization": SECRET},
    {"authorization": SECRET},
    {"AUTHORIZATION": SECRET},
    {"Authorization": f"Bearer {SECRET}"},
    {"Authorization": f"bearer {SECRET}"},
    {"Authorization": f"BEARER {SECRET}"},
    {"authorization": f"BeArEr   {SECRET}  "},
    {"Authorization": f"Token {SECRET}"},  # older replicate-javascript
    {"Authorization": f"Key {SECRET}"},  # fal's clients
    {"X-API-Key": SECRET},
    {"x-api-key": SECRET},
    {"X-Api-Key": f"  {SECRET} "},
    {"Content-Type": "application/json", "x-api-key": SECRET},
])
def test_key_from_headers_accepts_every_form(headers):
    assert key_from_headers(headers) == SECRET


@pytest.mark.parametrize("headers", [
    {}, None, {"Content-Type": "application/json"}, {"Authorization": ""}, {"Authorization": "   "},
    {"X-API-Key": ""}, {"X-API-Key": "  "}, {"Authorization": "Bearer"}, {"Authorization": "Key "},
])
def test_key_from_headers_missing(headers):
    assert key_from_headers(headers) is None


def test_x_api_key_blank_falls_back_to_authorization():
    assert key_from_headers({"X-API-Key": " ", "Authorization": f"Bearer {SECRET}"}) == SECRET


# ---------------------------------------------------------------- secrets and hashes


def _decode_body(secret: str) -> bytes:
    body = secret[len(KEY_PREFIX):]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def test_generate_secret_has_prefix_and_256_bits():
    secret = generate_secret()
    assert secret.startswith("dr_")
    body = secret[len(KEY_PREFIX):]
    assert len(body) >= 43  # 32 bytes in URL-safe base64
    assert set(body) <= set(string.ascii_letters + string.digits + "-_")
    assert len(_decode_body(secret)) >= 32


def test_generate_secret_is_unique():
    secrets_ = {generate_secret() for _ in range(2000)}
    assert len(secrets_) == 2000
    # No shared structure beyond the prefix: the first body characters vary.
    assert len({s[3:7] for s in secrets_}) > 1900


def test_hash_secret_is_sha256_hex():
    digest = hash_secret(SECRET)
    assert digest == hashlib.sha256(SECRET.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert hash_secret(SECRET) == digest
    assert hash_secret(SECRET + "x") != digest


def test_public_view_never_shows_hash_or_secret():
    key = make_key()
    public = key.public()
    assert "key_hash" not in public
    text = json.dumps(public)
    assert key.key_hash not in text
    assert SECRET not in text
    assert public["key_id"] == key.key_id and public["prefix"] == SECRET[:9]


class FakeDynamo:
    """Records writes and answers reads like the low-level DynamoDB client."""

    def __init__(self) -> None:
        self.items: dict[str, dict] = {}
        self.puts: list[dict] = []
        self.gets = 0

    def put_item(self, **kwargs):
        self.puts.append(kwargs)
        self.items[kwargs["Item"]["key_hash"]["S"]] = kwargs["Item"]
        return {}

    def get_item(self, **kwargs):
        self.gets += 1
        item = self.items.get(kwargs["Key"]["key_hash"]["S"])
        return {"Item": item} if item else {}


@pytest.fixture
def fake_store() -> KeyStore:
    store = KeyStore("keys-under-test")
    store.ddb = FakeDynamo()
    return store


def test_created_key_stores_only_the_hash(fake_store):
    secret, record = fake_store.create("ws_1", "laptop")
    assert secret.startswith(KEY_PREFIX)
    (put,) = fake_store.ddb.puts
    assert put["TableName"] == "keys-under-test"
    assert put["Item"]["key_hash"] == {"S": hash_secret(secret)}
    stored = json.dumps(put["Item"])
    assert secret not in stored
    assert secret[len(KEY_PREFIX) + 6:] not in stored  # not even the part after the shown prefix
    assert record.prefix == secret[: len(KEY_PREFIX) + 6]
    assert secret not in json.dumps(record.public())


def test_lookup_finds_the_key_and_caches_it(fake_store, monkeypatch):
    monkeypatch.setenv("DARKROOM_KEY_CACHE_TTL_SECONDS", "300")
    get_settings.cache_clear()
    secret, record = fake_store.create("ws_1", "laptop")
    assert fake_store.lookup(secret) == record
    assert fake_store.lookup(secret) == record
    assert fake_store.ddb.gets == 1
    assert fake_store.lookup(secret + "x") is None


def test_lookup_refuses_a_revoked_key(fake_store):
    secret, record = fake_store.create("ws_1", "laptop")
    item = fake_store.ddb.items[record.key_hash]
    item["revoked_at"] = {"N": "1700000000"}
    assert fake_store.lookup(secret) is None


# ---------------------------------------------------------------- authenticate


def test_authenticate_missing_key_is_401_without_lookup():
    store = FakeStore()
    with pytest.raises(Unauthorized) as info:
        authenticate({"Content-Type": "application/json"}, store)
    assert info.value.status == 401
    assert info.value.code == "missing_api_key"
    assert store.looked_up == []


@pytest.mark.parametrize("headers", [{"Authorization": "dr_wrong"}, {"X-API-Key": "nope"},
                                     {"Authorization": "Bearer dr_wrong"}])
def test_authenticate_invalid_key_is_401(headers):
    with pytest.raises(Unauthorized) as info:
        authenticate(headers, FakeStore({SECRET: make_key()}))
    assert info.value.status == 401
    assert info.value.code == "invalid_api_key"


def test_authenticate_returns_the_principal():
    store = FakeStore({SECRET: make_key()})
    principal = authenticate({"authorization": f"Bearer {SECRET}"}, store)
    assert store.looked_up == [SECRET]
    assert principal == Principal(workspace_id="ws_1", key_id="key_0123456789abcdef",
                                  scopes=frozenset({"image:generate", "media:read"}), rate_limit=42)


# ---------------------------------------------------------------- scopes


def test_require_without_scope_is_403():
    principal = Principal("ws_1", "key_1", frozenset({"media:read"}), 60)
    with pytest.raises(Forbidden) as info:
        principal.require("video:generate")
    assert info.value.status == 403
    assert info.value.code == "insufficient_scope"
    assert "video:generate" in info.value.message


def test_require_with_scope_passes():
    Principal("ws_1", "key_1", frozenset({"media:read", "video:generate"}), 60).require("video:generate")


def test_admin_has_every_scope():
    admin = Principal("ws_1", "key_1", frozenset({"admin"}), 60)
    for scope in keys.ALL_SCOPES:
        admin.require(scope)


def test_empty_scopes_grant_nothing():
    principal = Principal("ws_1", "key_1", frozenset(), 60)
    for scope in keys.DEFAULT_SCOPES:
        with pytest.raises(Forbidden):
            principal.require(scope)


# ---------------------------------------------------------------- the lookup cache


def test_ttl_cache_hit_within_ttl():
    cache = _TtlCache()
    key = make_key()
    cache.put("h", key)
    assert cache.get("h", 60) == (True, key)


def test_ttl_cache_expires_entries():
    cache = _TtlCache()
    cache.put("h", make_key())
    assert cache.get("h", 0) == (False, None)


def test_ttl_cache_remembers_misses():
    cache = _TtlCache()
    cache.put("h", None)
    assert cache.get("h", 60) == (True, None)
    assert cache.get("other", 60) == (False, None)


def test_ttl_cache_clear():
    cache = _TtlCache()
    cache.put("h", make_key())
    cache.clear()
    assert cache.get("h", 60) == (False, None)


def test_zero_ttl_means_every_lookup_reads_the_table(fake_store, monkeypatch):
    # Revocation must take effect immediately when the operator sets the cache TTL to 0.
    monkeypatch.setenv("DARKROOM_KEY_CACHE_TTL_SECONDS", "0")
    get_settings.cache_clear()
    secret, record = fake_store.create("ws_1", "laptop")
    assert fake_store.lookup(secret) == record
    fake_store.ddb.items[record.key_hash]["revoked_at"] = {"N": "1700000000"}
    assert fake_store.lookup(secret) is None
    assert fake_store.ddb.gets == 2
