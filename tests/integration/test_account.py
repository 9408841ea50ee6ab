"""Account, key management and workspace administration through the API (admin scope) and the CLI."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from functions.core import credits
from functions.core.keys import KeyStore
from infra.cli import app as cli

pytestmark = pytest.mark.xdist_group("integration")


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


def test_cli_workspaces(world, tmp_path):
    (tmp_path / "dev.env").write_text(f"DARKROOM_LOCAL_AWS_ENDPOINT={world.endpoint}\n")
    runner = CliRunner()
    args = ["--local", "--data-dir", str(tmp_path)]
    assert runner.invoke(cli, ["workspaces", "create", "cli-credits", "--credits", "5", *args]).exit_code == 0
    result = runner.invoke(cli, ["workspaces", "add-credits", "cli-credits", "2.5", *args])
    assert result.exit_code == 0 and "7.5 credits" in result.output
    assert credits.balance("cli-credits") == 7.5
    assert "7.5" in runner.invoke(cli, ["workspaces", "usage", "cli-credits", *args]).output
