"""Account, key management and workspace administration through the API (admin scope) and the CLI."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from functions.core import credits
from functions.core.keys import KeyStore
from infra.cli import app as cli


def test_account_shows_credits_and_the_key(api, tenant):
    body = api.get("/api/account", headers=tenant.headers).json
    assert body["workspace"]["id"] == tenant.workspace_id and body["credits"] == 1000
    assert body["plan"] == "self-hosted" and "admin" in body["key"]["scopes"]


def test_key_management_needs_admin(api, new_tenant):
    plain = new_tenant(scopes=["image:generate", "media:read"])
    resp = api.post("/api/keys", json={"name": "x"}, headers=plain.headers)
    assert resp.status_code == 403 and resp.json["errors"][0]["field"] == "authorization"


def test_create_list_revoke_keys(api, tenant):
    created = api.post("/api/keys", json={"name": "ci", "scopes": ["media:read"], "rate_limit": 5},
                       headers=tenant.headers)
    assert created.status_code == 201
    body = created.json
    assert body["key"].startswith("dr_") and body["scopes"] == ["media:read"] and body["rate_limit"] == 5
    assert "key_hash" not in body
    listed = api.get("/api/keys", headers=tenant.headers).json["data"]
    assert body["key_id"] in {k["key_id"] for k in listed}
    assert all("key_hash" not in k and "key" not in k for k in listed)
    assert api.get("/api/account", headers={"X-API-Key": body["key"]}).status_code == 200
    assert api.delete(f"/api/keys/{body['key_id']}", headers=tenant.headers).status_code == 200
    assert api.get("/api/account", headers={"X-API-Key": body["key"]}).status_code == 401
    bad = api.post("/api/keys", json={"name": "x", "scopes": ["root"]}, headers=tenant.headers)
    assert bad.status_code == 400 and bad.json["errors"][0]["field"] == "scopes"


def test_admin_workspaces_and_credits(api, tenant):
    ws = f"{tenant.workspace_id}-child"
    assert api.post("/api/admin/workspaces", json={"id": ws, "credits": 7}, headers=tenant.headers).status_code == 201
    assert api.post("/api/admin/workspaces", json={"id": ws}, headers=tenant.headers).status_code == 409
    added = api.post(f"/api/admin/workspaces/{ws}/credits", json={"amount": 3}, headers=tenant.headers).json
    assert added["credits"] == 10
    usage = api.get(f"/api/admin/workspaces/{ws}/usage", headers=tenant.headers).json
    assert usage["credits"] == 10 and usage["credits_added"] == 10
    key = api.post("/api/keys", json={"name": "child", "workspace_id": ws}, headers=tenant.headers).json
    assert KeyStore().lookup(key["key"]).workspace_id == ws


@pytest.mark.parametrize("amount", ["0", "-0", "0.0", "1e-7", "-4e-7", "1e-300"])
def test_an_amount_of_zero_or_that_rounds_to_zero_is_a_400_naming_it(api, tenant, amount):
    response = api.post(f"/api/admin/workspaces/{tenant.workspace_id}/credits", data='{"amount": ' + amount + "}",
                        headers={**tenant.headers, "Content-Type": "application/json"})
    assert response.status_code == 400, response.json
    assert response.json["errors"][0]["field"] == "amount" and "zero" in response.json["errors"][0]["message"]


def test_taking_back_more_than_the_balance_is_a_409_and_an_unknown_workspace_a_404(api, tenant):
    ws = f"{tenant.workspace_id}-small"
    api.post("/api/admin/workspaces", json={"id": ws, "credits": 5}, headers=tenant.headers)
    too_much = api.post(f"/api/admin/workspaces/{ws}/credits", json={"amount": -6}, headers=tenant.headers)
    assert too_much.status_code == 409 and too_much.json["errors"][0]["field"] == "amount"
    assert "has 5" in too_much.json["message"] and credits.balance(ws) == 5
    exact = api.post(f"/api/admin/workspaces/{ws}/credits", json={"amount": -5}, headers=tenant.headers)
    assert exact.status_code == 200 and exact.json["credits"] == 0
    missing = api.post("/api/admin/workspaces/no-such-ws/credits", json={"amount": -1}, headers=tenant.headers)
    assert missing.status_code == 404


def test_cli_workspaces(world, tmp_path):
    (tmp_path / "dev.env").write_text(f"DARKROOM_LOCAL_AWS_ENDPOINT={world.endpoint}\n")
    runner = CliRunner()
    args = ["--local", "--data-dir", str(tmp_path)]
    assert runner.invoke(cli, ["workspaces", "create", "cli-credits", "--credits", "5", *args]).exit_code == 0
    result = runner.invoke(cli, ["workspaces", "add-credits", "cli-credits", "2.5", *args])
    assert result.exit_code == 0 and "7.5 credits" in result.output
    assert credits.balance("cli-credits") == 7.5
    assert "7.5" in runner.invoke(cli, ["workspaces", "usage", "cli-credits", *args]).output


def test_a_workspaces_starting_credits_count_as_added(world):
    """The dev workspace showed 1,000,000 credits and creditsAdded 1,000 (the default, not what it started with)."""
    from functions.core.workspaces import WorkspaceStore

    WorkspaceStore().ensure("ws-starting-credits", credits=1_000_000)
    assert credits.usage("ws-starting-credits")["credits_added"] == 1_000_000
