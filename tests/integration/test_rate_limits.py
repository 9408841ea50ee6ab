"""Per-key rate limits in DynamoDB: headers on every response, 429 with Retry-After, exact under concurrency."""

from __future__ import annotations

import threading

from functions.core import ratelimit
from functions.core.errors import RateLimited
from functions.core.keys import KeyStore


def limited_key(tenant, limit: int) -> dict[str, str]:
    secret, _ = KeyStore().create(tenant.workspace_id, "limited", rate_limit=limit)
    return {"Authorization": secret}


def test_headers_on_every_response_and_429_past_the_limit(api, tenant):
    headers = limited_key(tenant, 3)
    seen = []
    for _ in range(3):
        resp = api.get("/api/models", headers=headers)
        assert resp.status_code == 200
        seen.append(int(resp.headers["x-ratelimit-remaining-requests"]))
        assert resp.headers["x-ratelimit-limit-requests"] == "3"
        assert resp.headers["x-ratelimit-reset-requests"].endswith("s")
    assert seen == [2, 1, 0]
    # Error responses carry them too.
    bad = api.get("/api/generations?limit=0", headers=limited_key(tenant, 3))
    assert bad.status_code == 400 and bad.headers["x-ratelimit-remaining-requests"] == "2"
    over = api.get("/api/models", headers=headers)
    assert over.status_code == 429
    assert 1 <= int(over.headers["retry-after"]) <= 60
    assert over.headers["x-ratelimit-remaining-requests"] == "0"
    assert "3 requests per minute" in over.json["message"]


def test_limit_holds_under_concurrency(world):
    # The exact scenario: a 10/min key under a burst of 30.
    allowed, refused = [], []
    barrier = threading.Barrier(30)

    def one() -> None:
        barrier.wait()
        try:
            allowed.append(ratelimit.hit("key_concurrent", 10, now=1_000_000.0))
        except RateLimited:
            refused.append(1)

    threads = [threading.Thread(target=one) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(allowed) == 10 and len(refused) == 20
    assert sorted(q.remaining for q in allowed) == list(range(10))
    # The next window starts afresh.
    assert ratelimit.hit("key_concurrent", 10, now=1_000_060.0).remaining == 9
