"""A warm status read is one AWS call (GetItem); a warm submit stays at three; reads are rate-limited per
container (a token bucket) and writes by the shared DynamoDB counter. Counts are exact, from botocore's
hooks on the real handlers against the moto server; the clock is passed in, never waited on."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from functions.core import aws, ratelimit
from functions.core.errors import RateLimited
from functions.core.keys import KeyStore
from functions.core.settings import get_settings
from infra.bench.calls import warm_ops
from infra.bench.harness import image_body
from infra.bench_calls import count_aws_calls


@pytest.fixture
def warm_keys(world, monkeypatch):
    """The deployed key cache (30 s): a warm function has the key in memory."""
    monkeypatch.setenv("DARKROOM_KEY_CACHE_TTL_SECONDS", "30")
    get_settings.cache_clear()
    ratelimit.reads.clear()


@pytest.fixture
def counted(warm_keys):
    with count_aws_calls() as calls:
        aws.reset_clients()  # clients made from here on report their calls
        yield calls
    aws.reset_clients()


def test_a_warm_status_read_is_one_get_item(api, tenant, counted):
    submitted = api.post("/api/run", json=image_body(), headers=tenant.headers)
    assert submitted.status_code == 202
    status, ops = warm_ops(api, counted, "GET", f"/api/generations/{submitted.json['id']}", headers=tenant.headers)
    assert status == 200
    assert ops == Counter({("dynamodb", "GetItem"): 1})


def test_a_warm_submit_is_three_calls(api, tenant, counted):
    status, ops = warm_ops(api, counted, "POST", "/api/run", image_body(), headers=tenant.headers)
    assert status == 202
    # The job with its credit reservation, the shared rate-limit counter, the jobs queue.
    assert ops == Counter({("dynamodb", "TransactWriteItems"): 1, ("dynamodb", "UpdateItem"): 1,
                           ("sqs", "SendMessage"): 1})


def test_catalog_reads_cost_no_call_in_any_dialect(api, tenant, counted):
    for path in ("/api/models", "/v1/models", "/api/v1/models"):
        status, ops = warm_ops(api, counted, "GET", path, headers=tenant.headers)
        assert (status, ops) == (200, Counter()), path


def test_reads_past_the_limit_get_429_without_a_write(api, tenant, counted):
    secret, _ = KeyStore().create(tenant.workspace_id, "limited", rate_limit=3)
    headers = {"Authorization": secret}
    remaining = []
    for _ in range(3):
        resp = api.get("/api/models", headers=headers)
        assert resp.status_code == 200
        remaining.append(int(resp.headers["x-ratelimit-remaining-requests"]))
    assert remaining == [2, 1, 0]
    before = Counter(counted.by_thread)
    over = api.get("/api/models", headers=headers)
    assert over.status_code == 429 and over.headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(over.headers["retry-after"]) <= 20  # one token of 3/min comes back within 20 s
    assert not counted.by_thread - before  # the key was cached and the bucket is in memory
    # Writes are counted apart, in DynamoDB: the same key can still submit.
    assert api.post("/api/run", json=image_body(), headers=headers).status_code == 202


def test_the_read_bucket_under_a_burst():
    limiter = ratelimit.ReadLimiter()
    now = 1_000_000.0
    allowed, refused = [], []
    barrier = threading.Barrier(30)

    def one() -> None:
        barrier.wait()
        try:
            allowed.append(limiter.hit("key", 10, now=now))
        except RateLimited as exc:
            refused.append(exc)

    threads = [threading.Thread(target=one) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(allowed) == 10 and len(refused) == 20
    assert sorted(q.remaining for q in allowed) == list(range(10))
    assert {e.headers["retry-after"] for e in refused} == {"6"}  # 10/min: a token every 6 s
    # Refill at limit/60 per second: nothing after 5.9 s, one token after 6 s, never more than the limit.
    with pytest.raises(RateLimited):
        limiter.hit("key", 10, now=now + 5.9)
    assert limiter.hit("key", 10, now=now + 6.0).remaining == 0
    with pytest.raises(RateLimited):
        limiter.hit("key", 10, now=now + 6.1)
    assert limiter.hit("key", 10, now=now + 3600).remaining == 9
    # Keys are apart, and a lowered limit caps what the bucket holds.
    assert limiter.hit("other", 10, now=now).remaining == 9
    assert limiter.hit("other", 2, now=now).remaining == 1


def test_the_read_bucket_forgets_the_least_recent_key_past_its_bound():
    limiter = ratelimit.ReadLimiter(max_keys=2)
    for key in ("a", "b", "c"):
        limiter.hit(key, 1, now=0.0)
    assert limiter.hit("a", 1, now=0.0).remaining == 0  # "a" was forgotten: a full bucket again
    with pytest.raises(RateLimited):
        limiter.hit("c", 1, now=0.0)


def test_methods_pick_the_limiter():
    limiter_calls = []

    class Recorder(ratelimit.ReadLimiter):
        def hit(self, key_id, limit, *, now=None):
            limiter_calls.append(key_id)
            return ratelimit.Quota(limit, limit - 1, 60)

    saved = ratelimit.reads
    ratelimit.reads = Recorder()
    try:
        ratelimit.check("GET", "k1", 5)
        ratelimit.check("head", "k2", 5)
    finally:
        ratelimit.reads = saved
    assert limiter_calls == ["k1", "k2"]
