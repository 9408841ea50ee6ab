"""The account (`GET /api/account`), key management and workspace administration (admin scope)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import ConfigDict, Field, field_validator

from functions.api.auth import Principal
from functions.api.openapi import doc, query
from functions.api.request import json_body, json_response
from functions.core import credits, moderation
from functions.core.errors import Conflict, NotFound
from functions.core.generation import parse_input
from functions.core.keys import ALL_SCOPES, DEFAULT_SCOPES, KeyStore
from functions.core.schema import Request
from functions.core.workspaces import WorkspaceStore

router = Router()

# Credits are kept to 6 decimal places, within what a DynamoDB number holds (1e-130 .. 1e126): a JSON float
# such as 1e-300 or 1e300 would otherwise fail the write itself, as a 500.
MAX_CREDITS = 1e12


def _credit_amount(value: float) -> float:
    return round(value, 6)

_WORKSPACE = query("workspace_id", {"type": "string"}, "Another workspace (operators only); default: yours.")


class CreateKey(Request):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] = Field(default_factory=lambda: list(DEFAULT_SCOPES))
    rate_limit: int = Field(60, ge=1, le=100_000, description="Requests per minute.")
    workspace_id: str | None = Field(None, description="Another workspace (operators only); default: yours.")

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, scopes: list[str]) -> list[str]:
        unknown = sorted(set(scopes) - set(ALL_SCOPES))
        if unknown:
            raise ValueError(f"unknown scopes {unknown}; choose from {list(ALL_SCOPES)}")
        return scopes


class CreateWorkspace(Request):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    name: str | None = Field(None, max_length=200)
    credits: float = Field(0, ge=0, le=MAX_CREDITS, description="Starting balance (6 decimal places).")

    _round = field_validator("credits")(_credit_amount)


def _nonzero_credit_amount(value: float) -> float:
    rounded = _credit_amount(value)
    if rounded == 0:  # 0, -0, 1e-7, 1e-300: a no-op, and DynamoDB has no -0
        raise ValueError("must not be zero (credits have 6 decimal places)")
    return rounded


class AddCredits(Request):
    model_config = ConfigDict(extra="forbid")
    amount: float = Field(ge=-MAX_CREDITS, le=MAX_CREDITS,
                          description="Credits to add; negative to take back (never below zero). 6 decimal places, "
                                      "not zero.")

    _round = field_validator("amount")(_nonzero_credit_amount)


def _principal() -> Principal:
    return router.context["principal"]


def _admin() -> Principal:
    return _principal()  # the admin scope is checked for these routes by functions/api/scopes.py


@router.get("/api/account", **doc("Get the account: workspace, credits, usage, key", ok="Account", errors=(403, 404)))
def account() -> Response[dict]:
    principal = _principal()
    workspace = WorkspaceStore().get(principal.workspace_id)
    if workspace is None:
        raise NotFound("Workspace not found", code="workspace_not_found")
    usage = credits.usage(principal.workspace_id)
    return json_response(200, {
        "workspace": {"id": workspace.id, "name": workspace.name},
        "credits": usage["credits"],
        "plan": "self-hosted",
        "usage": {"creditsUsed": usage["credits_used"], "creditsRefunded": usage["credits_refunded"],
                  "creditsAdded": usage["credits_added"]},
        "key": {"id": principal.key_id, "scopes": sorted(principal.scopes), "rateLimit": principal.rate_limit},
    })


@router.get("/api/keys", **doc("List API keys (admin)", ok="KeyList", errors=(403,), params=(_WORKSPACE,)))
def list_keys() -> Response[dict]:
    principal = _admin()
    workspace_id = router.current_event.get_query_string_value("workspace_id") or principal.workspace_id
    return json_response(200, {"data": [k.public() for k in KeyStore().list(workspace_id)]})


@router.post("/api/keys", **doc(
    "Create an API key (admin)", ok="CreatedKey", status=201, body=CreateKey, errors=(400, 403, 404),
    description="The response carries the secret; it is never shown again."))
def create_key() -> Response[dict]:
    principal = _admin()
    body = parse_input(CreateKey, json_body(router.current_event))
    workspace_id = body.workspace_id or principal.workspace_id
    if WorkspaceStore().get(workspace_id) is None:
        raise NotFound(f"Workspace {workspace_id} not found", code="workspace_not_found")
    secret, record = KeyStore().create(workspace_id, body.name, scopes=body.scopes, rate_limit=body.rate_limit)
    # The only time the secret is shown.
    return json_response(201, {"key": secret, **record.public()})


@router.delete("/api/keys/<key_id>", **doc("Revoke an API key (admin)", ok="Key", errors=(403, 404),
                                                params=(_WORKSPACE,)))
def revoke_key(key_id: str) -> Response[dict]:
    principal = _admin()
    workspace_id = router.current_event.get_query_string_value("workspace_id") or principal.workspace_id
    return json_response(200, KeyStore().revoke(workspace_id, key_id).public())


@router.post("/api/admin/workspaces", **doc(
    "Create a workspace (admin)", ok="WorkspaceCreated", status=201, body=CreateWorkspace, errors=(400, 403, 409)))
def create_workspace() -> Response[dict]:
    _admin()
    body = parse_input(CreateWorkspace, json_body(router.current_event))
    store = WorkspaceStore()
    if store.get(body.id) is not None:
        raise Conflict(f"Workspace {body.id} already exists", code="workspace_exists")
    workspace = store.ensure(body.id, body.name, credits=body.credits, credits_added=body.credits)
    return json_response(201, {"id": workspace.id, "name": workspace.name, "credits": workspace.credits})


@router.post("/api/admin/workspaces/<workspace_id>/credits", **doc(
    "Add (or take back) credits (admin)", ok="WorkspaceCredits", body=AddCredits, errors=(400, 403, 404, 409)))
def add_credits(workspace_id: str) -> Response[dict]:
    _admin()
    body = parse_input(AddCredits, json_body(router.current_event))
    return json_response(200, {"id": workspace_id, "credits": credits.add(workspace_id, body.amount)})


@router.get("/api/admin/workspaces/<workspace_id>/usage", **doc(
    "Get a workspace's credit usage (admin)", ok="WorkspaceUsage", errors=(403, 404)))
def workspace_usage(workspace_id: str) -> Response[dict]:
    _admin()
    return json_response(200, {"id": workspace_id, **credits.usage(workspace_id)})


class SetModeration(moderation.WorkspacePolicy, Request):
    """PUT /api/admin/workspaces/{id}/moderation: the workspace's whole policy (fields left out: their defaults)."""


def _moderation_view(workspace_id: str, policy: moderation.WorkspacePolicy) -> dict:
    from functions.core.catalog import get_catalog

    table = get_catalog().moderation
    return {"id": workspace_id,
            "policy": {"max_level": policy.effective_max(), "allow_checker_off": policy.allow_checker_off,
                       "blocked_terms": policy.blocked_terms},
            "levels": {str(level): moderation.threshold(level) for level in sorted(table.thresholds)},
            "default_level": min(table.default_level, policy.effective_max()),
            "events": moderation.blocked_events(workspace_id)}


@router.get("/api/admin/workspaces/<workspace_id>/moderation", **doc(
    "Get a workspace's moderation policy and blocked generations (admin)", ok="WorkspaceModeration",
    errors=(403, 404)))
def get_moderation(workspace_id: str) -> Response[dict]:
    _admin()
    if WorkspaceStore().get(workspace_id) is None:
        raise NotFound(f"Workspace {workspace_id} not found", code="workspace_not_found")
    return json_response(200, _moderation_view(workspace_id, moderation.workspace_policy(workspace_id, fresh=True)))


@router.put("/api/admin/workspaces/<workspace_id>/moderation", **doc(
    "Set a workspace's moderation policy (admin)", ok="WorkspaceModeration", body=SetModeration,
    errors=(400, 403, 404),
    description="The most permissive level its keys may ask for, whether they may turn the output safety checker "
                "off, and the terms a prompt may not contain (docs/fields.md: Moderation)."))
def set_moderation(workspace_id: str) -> Response[dict]:
    _admin()
    body = parse_input(SetModeration, json_body(router.current_event))
    policy = moderation.set_workspace_policy(workspace_id, moderation.WorkspacePolicy(**body.model_dump()))
    return json_response(200, _moderation_view(workspace_id, policy))
