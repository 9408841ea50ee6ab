"""No record the API can be made to write approaches DynamoDB's 400 KB item limit, and no string field is
unbounded: over about 400 KB every dialect answered 500 ("the request can be retried", so SDKs retried it), and a
60 KB webhook URL filled the job as delivery records accumulated.
"""

from __future__ import annotations

import pytest

from functions.core import dynamo
from functions.core.generation import MAX_PROMPT_CHARS, MAX_REFERENCES
from functions.core.jobs import MAX_DELIVERY_RECORDS, JobStore
from functions.core.schema import MAX_STRING_CHARS
from functions.webhooks.delivery import MAX_ERROR_CHARS
from infra.bench_calls import _item_bytes

LONG = "https://127.0.0.1/" + "a" * 60_000
# Every string field a caller can send that is not a prompt, per route: each must be a 400 naming it at 60 KB.
FIELDS = {
    "/api/run": [({"webhook": LONG}, "webhook"), ({"input": {"image_urls": [LONG]}}, "input.image_urls"),
                 ({"input": {"image_url": LONG}}, "input.image_url"),
                 ({"input": {"mask_url": LONG}}, "input.mask_url"),
                 ({"input": {"first_frame_url": LONG}}, "input.first_frame_url"),
                 ({"tool": "x" * 60_000}, "tool"), ({"input": {"size": "1" * 60_000}}, "input.size")],
    "/v1/images/generations": [({"user": "u" * 60_000}, "user"), ({"model": "m" * 60_000}, "model"),
                               ({"style": "s" * 60_000}, "style")],
    "/api/v1/images/generate": [({"image_urls": [LONG]}, "image_urls"), ({"model": "m" * 60_000}, "model"),
                                ({"style_slug": "s" * 60_000}, "style_slug")],
    "/api/v1/videos/generate": [({"image_url": LONG}, "image_url"), ({"first_frame_url": LONG}, "first_frame_url"),
                                ({"last_frame_url": LONG}, "last_frame_url")],
}
BASE = {"/api/run": {"tool": "create-image", "input": {"prompt": "a fox"}},
        "/v1/images/generations": {"prompt": "a fox"}, "/api/v1/images/generate": {"prompt": "a fox"},
        "/api/v1/videos/generate": {"prompt": "a fox"}}


def merged(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) else value
    return out


@pytest.mark.parametrize("path,extra,field", [(p, e, f) for p, cases in FIELDS.items() for e, f in cases],
                         ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None)
def test_an_over_long_string_is_a_400_naming_its_field(api, tenant, path, extra, field):
    response = api.post(path, json=merged(BASE[path], extra), headers=tenant.headers)
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    text = response.get_data(as_text=True)
    assert field.split(".")[-1] in text and "at most" in text


def test_the_largest_job_the_api_accepts_stays_far_under_the_item_limit(world, api, tenant):
    url = "http://127.0.0.1/" + "r" * (MAX_STRING_CHARS - len("http://127.0.0.1/"))
    wide = "語" * MAX_PROMPT_CHARS  # 3 bytes each in UTF-8: the largest prompt in bytes
    # A model that takes a negative prompt (with guidance on) and one image per output: the most it can carry.
    body = {"tool": "create-image", "model": "sdxl-turbo", "webhook": url, "webhook_events_filter": ["start", "completed"],
            "input": {"prompt": wide, "negative_prompt": wide, "guidance": 2.0, "image_urls": [url] * MAX_REFERENCES,
                      "n": MAX_REFERENCES, "mask_url": url, "size": "512x512", "make_public": True}}
    response = api.post("/api/run", json=body, headers=tenant.headers)
    assert response.status_code == 202, response.get_data(as_text=True)[:500]
    store = JobStore()
    job = store.get(response.json["id"])
    # Then the delivery log at its longest, each record as large as one can be.
    record = {"event_id": f"evt_{job.id}_succeeded", "event": "generation.succeeded", "attempt": 10,
              "at": "2026-12-06T20:00:00.000Z", "status_code": 503, "error": "e" * MAX_ERROR_CHARS,
              "duration_ms": 10_000, "outcome": "retrying", "next_attempt_at": "2026-12-07T20:00:00.000Z"}
    for _ in range(MAX_DELIVERY_RECORDS + 3):
        store.record_delivery(job.id, record, known=store.get(job.id).deliveries)
    item = store.ddb.get_item(TableName=store.table, Key={"id": {"S": job.id}})["Item"]
    size = _item_bytes(item)
    assert len(dynamo.deserialize(item)["deliveries"]) == MAX_DELIVERY_RECORDS
    # About 106 KB today, most of it the prompts and references kept twice (as sent, and as the worker runs them).
    assert size < 200 * 1024, f"{size} bytes: half of DynamoDB's 400 KB is the budget"
