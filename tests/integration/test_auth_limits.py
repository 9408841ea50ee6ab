"""Requests without a valid key, and revoked operator keys (issue: each random key cost a DynamoDB read, 10,000
random keys flushed the key cache for everyone, and a revoked admin key worked for up to 30 s elsewhere)."""

from __future__ import annotations

import pytest

from functions.api import auth
from functions.core import keys, ratelimit
from functions.core.keys import KeyStore


@pytest.fixture
def reads(monkeypatch):
    """Every GetItem the key store makes."""
    made = []
    original = KeyStore.lookup

    def counted(self, secret, *, fresh=False):
        known, _ = self.cached(secret)
        if fresh or not known:
            made.append((secret, fresh))
        return original(self, secret, fresh=fresh)

    monkeypatch.setattr(KeyStore, "lookup", counted)
    return made


def test_a_string_that_cannot_be_a_key_costs_no_read(world, api, reads):
    for junk in ("x", "Bearer nothing", "dr_short", "dr_" + "a" * 44, "sk-" + "a" * 48):
        response = api.get("/api/account", headers={"Authorization": junk})
        assert response.status_code == 401 and response.json["errors"][0]["code"] == "invalid_api_key"
    assert reads == []


def test_random_keys_cannot_push_out_the_valid_ones(world, api, tenant, monkeypatch):
    monkeypatch.setattr(keys.lookup_cache.valid, "max_entries", 50)
    monkeypatch.setattr(keys.lookup_cache.unknown, "max_entries", 50)
    monkeypatch.setenv("DARKROOM_KEY_CACHE_TTL_SECONDS", "300")
    from functions.core import settings

    settings.get_settings.cache_clear()
    assert api.get("/api/account", headers=tenant.headers).status_code == 200
    for _ in range(200):  # four times what the unknown cache holds
        KeyStore().lookup(keys.generate_secret())
    known, key = KeyStore().cached(tenant.key)
    assert known and key is not None and key.workspace_id == tenant.workspace_id  # still cached: no read


def test_unverified_keys_from_one_address_are_limited_before_any_read(world, api, reads, monkeypatch):
    monkeypatch.setattr(auth, "UNVERIFIED_KEYS_PER_MINUTE", 5)
    ratelimit.anonymous.clear()
    statuses = [api.get("/api/account", headers={"Authorization": keys.generate_secret()}).status_code
                for _ in range(8)]
    assert statuses == [401] * 5 + [429] * 3
    assert len(reads) == 5  # the refused ones read nothing
    refused = api.get("/api/account", headers={"Authorization": keys.generate_secret()})
    assert "unverified API keys" in refused.json["message"] and int(refused.headers["retry-after"]) >= 1
    # Another address has its own allowance (deployed: the source IP API Gateway or the function URL sets).
    other = api.get("/api/account", headers={"Authorization": keys.generate_secret()},
                    environ_base={"REMOTE_ADDR": "127.0.0.9"})
    assert other.status_code == 401


def test_public_pages_are_limited_per_address(world, api, monkeypatch):
    monkeypatch.setattr(auth, "PUBLIC_REQUESTS_PER_MINUTE", 3)
    ratelimit.anonymous.clear()
    statuses = [api.get("/openapi.json").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]


def test_a_revoked_operator_key_stops_at_once_on_every_container(world, api, new_tenant, monkeypatch):
    """Revoked through another container (here: straight in the table, which this container's cache has not
    seen), an admin key keeps its cached reads for the TTL, but no admin route takes it: those read fresh."""
    from functions.core import settings
    from functions.core.keys import ALL_SCOPES

    monkeypatch.setenv("DARKROOM_KEY_CACHE_TTL_SECONDS", "300")
    settings.get_settings.cache_clear()
    admin = new_tenant(list(ALL_SCOPES))
    assert api.get("/api/keys", headers=admin.headers).status_code == 200  # cached as valid now
    record = KeyStore().lookup(admin.key)
    KeyStore().ddb.update_item(TableName=KeyStore().table, Key={"key_hash": {"S": record.key_hash}},
                               UpdateExpression="SET revoked_at = :now", ExpressionAttributeValues={":now": {"N": "1"}})
    assert api.get("/api/models", headers=admin.headers).status_code == 200  # a read: within the cache's TTL
    for method, path, body in (("GET", "/api/keys", None), ("POST", "/api/keys", {"name": "sneaky"}),
                               ("POST", f"/api/admin/workspaces/{admin.workspace_id}/credits", {"amount": 10})):
        response = api.open(path, method=method, json=body, headers=admin.headers)
        assert response.status_code == 401, (path, response.json)
