"""The native API's contract on the real handlers: auth, isolation, idempotency, listing, resources."""

from __future__ import annotations

import boto3

from functions.core.jobs import JobStore
from functions.core.keys import KeyStore

RUN = {"tool": "create-image", "input": {"prompt": "a lighthouse", "size": "256x256"}}


def test_every_header_form_authenticates(api, tenant):
    for headers in ({"Authorization": tenant.key}, {"Authorization": f"Bearer {tenant.key}"},
                    {"X-API-Key": tenant.key}):
        assert api.get("/api/models", headers=headers).status_code == 200


def test_revoked_key_is_refused(api, tenant):
    assert api.get("/api/models", headers=tenant.headers).status_code == 200
    store = KeyStore()
    key = store.list(tenant.workspace_id)[0]
    store.revoke(tenant.workspace_id, key.key_id)
    resp = api.get("/api/models", headers=tenant.headers)
    assert resp.status_code == 401 and resp.json["errors"][0]["field"] == "authorization"


def test_keys_are_stored_only_as_hashes(world, tenant):
    ddb = boto3.client("dynamodb", endpoint_url=world.endpoint, region_name="us-east-1")
    items = ddb.scan(TableName=world.physical["ApiKeysTable"].ref)["Items"]
    assert items and all(tenant.key not in str(item) for item in items)


def test_other_workspace_gets_404(api, tenant, new_tenant):
    job_id = api.post("/api/run", json=RUN, headers=tenant.headers).json["id"]
    other = new_tenant()
    resp = api.get(f"/api/generations/{job_id}", headers=other.headers)
    assert resp.status_code == 404 and resp.json["message"] == f"Generation {job_id} not found"
    assert api.post(f"/api/generations/{job_id}/cancel", headers=other.headers).status_code == 404
    listed = api.get("/api/generations", headers=other.headers).json
    assert listed["data"] == [] and listed["pagination"]["total"] == 0


def test_scope_is_enforced(api, world, new_tenant):
    reader = new_tenant(scopes=["media:read"])
    resp = api.post("/api/run", json=RUN, headers=reader.headers)
    assert resp.status_code == 403 and "image:generate" in resp.json["message"]


def test_idempotency_key_returns_the_first_job(api, tenant, new_tenant):
    headers = {**tenant.headers, "Idempotency-Key": "order-42"}
    first = api.post("/api/run", json=RUN, headers=headers)
    second = api.post("/api/run", json=RUN, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json["id"] == second.json["id"]
    assert JobStore().list_for_workspace(tenant.workspace_id)[1] == 1
    changed = api.post("/api/run", json={**RUN, "input": {"prompt": "something else"}}, headers=headers)
    assert changed.status_code == 422 and "Idempotency-Key" in changed.json["message"]
    # The same key in another workspace is a different request.
    other = new_tenant()
    assert api.post("/api/run", json=RUN, headers={**other.headers, "Idempotency-Key": "order-42"}).json["id"] \
        != first.json["id"]


def test_listing_paginates_newest_first_and_filters(api, tenant):
    ids = [api.post("/api/run", json=RUN, headers=tenant.headers).json["id"] for _ in range(3)]
    page = api.get("/api/generations?limit=2&offset=0", headers=tenant.headers).json
    assert [g["id"] for g in page["data"]] == ids[::-1][:2]
    assert page["pagination"] == {"total": 3, "limit": 2, "offset": 0, "hasMore": True}
    rest = api.get("/api/generations?limit=2&offset=2", headers=tenant.headers).json
    assert [g["id"] for g in rest["data"]] == [ids[0]] and rest["pagination"]["hasMore"] is False
    assert api.get("/api/generations?status=pending", headers=tenant.headers).json["pagination"]["total"] == 3
    assert api.get("/api/generations?status=success", headers=tenant.headers).json["data"] == []
    bad = api.get("/api/generations?status=done", headers=tenant.headers)
    assert bad.status_code == 400 and bad.json["errors"][0]["field"] == "status"


def test_malformed_requests_get_400_naming_the_field(api, tenant):
    cases = [
        ({"tool": "create-image", "input": {"prompt": "x"}, "colour": "red"}, "colour", "unknown_field"),
        ({"tool": "no-such-tool", "input": {"prompt": "x"}}, "tool", "tool_not_found"),
        ({"tool": "create-image", "input": {}}, "input.prompt", "required"),
        ({"tool": "create-image", "input": {"prompt": "x", "size": "100x100"}}, "input.size", "invalid_size"),
        ({"tool": "create-image", "input": {"prompt": "x", "n": 50}}, "input.n", "less_than_equal"),
        ({"tool": "create-image", "input": {"prompt": "x"}, "webhook": "http://10.0.0.1/x"}, "webhook",
         "invalid_webhook"),
    ]
    for body, field, code in cases:
        resp = api.post("/api/run", json=body, headers=tenant.headers)
        assert resp.status_code == 400, body
        assert resp.json["errors"][0]["field"] == field and resp.json["errors"][0]["code"] == code, resp.json
    resp = api.post("/api/generate", json={"model": "dall-e-9", "input": {"prompt": "x"}}, headers=tenant.headers)
    assert resp.status_code == 400 and resp.json["errors"][0]["field"] == "model"
    resp = api.post("/api/run", data="{nope", headers={**tenant.headers, "Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.json["errors"][0]["field"] == "body"
    assert api.get("/api/nowhere", headers=tenant.headers).status_code == 404


def test_local_resources_follow_the_template(world):
    from infra.local.template import load

    template = load()
    ddb = boto3.client("dynamodb", endpoint_url=world.endpoint, region_name="us-east-1")
    sqs = world.sqs()
    for logical_id, res in template["Resources"].items():
        if res["Type"] == "AWS::DynamoDB::Table":
            table = ddb.describe_table(TableName=world.physical[logical_id].ref)["Table"]
            declared = {g["IndexName"] for g in res["Properties"].get("GlobalSecondaryIndexes", [])}
            assert {g["IndexName"] for g in table.get("GlobalSecondaryIndexes", [])} == declared
            if "TimeToLiveSpecification" in res["Properties"]:
                ttl = ddb.describe_time_to_live(TableName=world.physical[logical_id].ref)
                assert ttl["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED"
        if res["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in res["Properties"]:
            attrs = sqs.get_queue_attributes(QueueUrl=world.physical[logical_id].ref,
                                             AttributeNames=["RedrivePolicy", "VisibilityTimeout"])["Attributes"]
            dlq = res["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
            assert world.physical[dlq].attrs["Arn"] in attrs["RedrivePolicy"]
            assert attrs["VisibilityTimeout"] == str(res["Properties"]["VisibilityTimeout"])
