"""API keys: stored only as hashes, compared in constant time, and revoked within the documented cache TTL.

The key cache's clock is replaced by one the test moves, so "30 seconds later" takes no time. A revocation
from another process (another warm Lambda, or `darkroom keys revoke`) is a real second Python process
writing to the same moto server; this process only sees it when its cached lookup expires.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys
from types import SimpleNamespace

import boto3
import pytest

from functions.core import keys
from functions.core.keys import KEY_PREFIX, KeyStore
from functions.core.settings import get_settings

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def clock(monkeypatch):
    """The key cache's monotonic clock, moved by hand; the default 30 s TTL."""
    now = SimpleNamespace(t=1000.0)
    monkeypatch.setattr(keys, "time", SimpleNamespace(monotonic=lambda: now.t))
    monkeypatch.delenv("DARKROOM_KEY_CACHE_TTL_SECONDS")  # the world fixture sets 0; the default applies
    get_settings.cache_clear()
    keys.lookup_cache.clear()
    assert get_settings().key_cache_ttl_seconds == 30
    yield now
    keys.lookup_cache.clear()
    get_settings.cache_clear()


def _revoke_in_another_process(world, workspace_id: str, key_id: str) -> None:
    code = ("import sys; from functions.core.keys import KeyStore; "
            "KeyStore().revoke(sys.argv[1], sys.argv[2])")
    subprocess.run([sys.executable, "-c", code, workspace_id, key_id], cwd=REPO, check=True, timeout=120,
                   env={**os.environ, **world.env})


def test_a_key_revoked_elsewhere_works_until_the_ttl_then_gets_401(world, api, tenant, clock):
    secret, record = KeyStore().create(tenant.workspace_id, "backend")
    headers = {"Authorization": secret}
    assert api.get("/api/account", headers=headers).status_code == 200  # cached from now on

    _revoke_in_another_process(world, tenant.workspace_id, record.key_id)
    assert KeyStore().list(tenant.workspace_id) and next(
        k for k in KeyStore().list(tenant.workspace_id) if k.key_id == record.key_id).revoked_at

    clock.t += 29.9  # inside the TTL, this warm process may still accept it (and does: the lookup is cached)
    assert api.get("/api/account", headers=headers).status_code == 200
    clock.t += 0.1  # the TTL has passed: looked up again, refused
    resp = api.get("/api/account", headers=headers)
    assert resp.status_code == 401 and resp.json["errors"][0]["code"] == "invalid_api_key"
    clock.t += 3600  # and it stays refused
    assert api.get("/api/account", headers=headers).status_code == 401


def test_a_key_revoked_through_the_api_stops_at_once_in_the_revoking_process(world, api, tenant, clock):
    secret, record = KeyStore().create(tenant.workspace_id, "backend")
    headers = {"Authorization": secret}
    assert api.get("/api/account", headers=headers).status_code == 200
    resp = api.delete(f"/api/keys/{record.key_id}", headers=tenant.headers)  # tenant's key is an admin key
    assert resp.status_code == 200 and resp.json["revoked_at"]
    # Same clock reading: no TTL has passed, and yet the revoking process refuses it.
    assert api.get("/api/account", headers=headers).status_code == 401


def test_an_unknown_key_is_cached_as_unknown_for_the_ttl_only(world, api, tenant, clock):
    # A negative answer is cached too; a key created in the meantime works after the TTL at the latest.
    secret = keys.generate_secret()
    assert api.get("/api/account", headers={"Authorization": secret}).status_code == 401
    KeyStore().create(tenant.workspace_id, "late", secret=secret)
    clock.t += 30
    assert api.get("/api/account", headers={"Authorization": secret}).status_code == 200


def test_keys_are_stored_only_as_their_sha256(world, api, tenant):
    created = api.post("/api/keys", json={"name": "ci", "scopes": ["media:read"]}, headers=tenant.headers)
    assert created.status_code == 201
    secret = created.json["key"]
    assert secret.startswith(KEY_PREFIX) and len(secret) > 40
    ddb = boto3.client("dynamodb", endpoint_url=world.endpoint, region_name="us-east-1",
                       aws_access_key_id="local", aws_secret_access_key="local")
    items = ddb.scan(TableName=world.physical["ApiKeysTable"].ref)["Items"]
    mine = [i for i in items if i["key_id"]["S"] == created.json["key_id"]]
    assert len(mine) == 1
    (item,) = mine
    assert item["key_hash"]["S"] == hashlib.sha256(secret.encode()).hexdigest()
    # Only the display prefix (dr_ + 6 characters) is kept; nothing longer of the secret, in any attribute.
    displayed = len(KEY_PREFIX) + 6
    assert item["prefix"]["S"] == secret[:displayed]
    for stored in items:
        text = str(stored)
        assert secret not in text
        assert not any(secret[i:i + 12] in text for i in range(displayed - 5, len(secret) - 11))
    # The listing never shows it or its hash either.
    listed = api.get("/api/keys", headers=tenant.headers).json["data"]
    assert all(secret not in str(k) and "key_hash" not in k for k in listed)


def test_the_stored_hash_is_compared_in_constant_time(world, tenant, monkeypatch):
    """The lookup is by hash (a DynamoDB key: no secret is compared in Python); the one comparison the code
    does make is hmac.compare_digest, never ==."""
    keys.lookup_cache.clear()
    seen: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a, b):
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(keys.hmac, "compare_digest", spy)
    assert KeyStore().lookup(tenant.key) is not None
    assert seen == [(keys.hash_secret(tenant.key),) * 2]
    keys.lookup_cache.clear()
    assert KeyStore().lookup(KEY_PREFIX + "x" * 43) is None  # unknown: not found by hash, nothing compared
    assert len(seen) == 1
