"""Workspaces: the unit of ownership. Jobs, keys and outputs all belong to one."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from . import aws, clock, dynamo, signing
from .errors import NotFound
from .schema import Schema
from .settings import get_settings


class WebhookSecret(Schema):
    secret: str
    created_at: float
    # Set on the previous secret when it is rotated out: it keeps signing until then.
    expires_at: float | None = None


class Workspace(Schema):
    id: str
    name: str
    created_at: float
    webhook_secrets: list[WebhookSecret] = Field(default_factory=list)
    credits: float = 0
    credits_used: float = 0

    def active_webhook_secrets(self, now: float | None = None) -> list[str]:
        now = now if now is not None else clock.now()
        return [s.secret for s in self.webhook_secrets if s.expires_at is None or s.expires_at > now]


class WorkspaceStore:
    def __init__(self, table: str | None = None) -> None:
        self.table = table or get_settings().workspaces_table
        self.ddb = aws.client("dynamodb")

    def get(self, workspace_id: str) -> Workspace | None:
        resp = self.ddb.get_item(TableName=self.table, Key={"id": {"S": workspace_id}}, ConsistentRead=True)
        return Workspace.model_validate(dynamo.deserialize(resp["Item"])) if "Item" in resp else None

    def ensure(self, workspace_id: str, name: str | None = None, *, webhook_secret: str | None = None,
               **extra: Any) -> Workspace:
        """Create the workspace if it does not exist; return it either way (safe to run twice).

        `webhook_secret` is for the local stack only, which keeps the developer's secret across restarts.
        """
        now = clock.now()
        secret = WebhookSecret(secret=webhook_secret or signing.new_secret(), created_at=now)
        # A workspace's starting credits count as added, whatever they are (the dev workspace showed 1,000,000
        # credits and 1,000 added).
        starting = extra.get("credits", get_settings().default_credits)
        item = {"id": workspace_id, "name": name or workspace_id, "created_at": now,
                "webhook_secrets": [secret.model_dump(exclude_none=True)],
                "credits": starting, "credits_added": starting, **extra}
        try:
            self.ddb.put_item(TableName=self.table, Item=dynamo.serialize(item),
                              ConditionExpression="attribute_not_exists(id)")
        except self.ddb.exceptions.ConditionalCheckFailedException:
            pass
        workspace = self.get(workspace_id)
        assert workspace is not None
        return workspace

    def with_webhook_secret(self, workspace_id: str) -> Workspace:
        """The workspace (made if new) with a signing secret (made if it has none): what its webhooks are signed
        with, shown to its admin keys in every dialect."""
        workspace = self.get(workspace_id) or self.ensure(workspace_id)
        if not workspace.webhook_secrets:
            workspace = self.rotate_webhook_secret(workspace_id, grace_seconds=0)
        return workspace

    def rotate_webhook_secret(self, workspace_id: str, *, grace_seconds: int) -> Workspace:
        """A new signing secret; the current ones keep signing (both signatures sent) for `grace_seconds`."""
        workspace = self.get(workspace_id)
        if workspace is None:
            raise NotFound(f"Workspace {workspace_id} not found")
        now = clock.now()
        kept = [WebhookSecret(secret=s.secret, created_at=s.created_at,
                              expires_at=min(s.expires_at or now + grace_seconds, now + grace_seconds))
                for s in workspace.webhook_secrets if s.expires_at is None or s.expires_at > now]
        secrets = [WebhookSecret(secret=signing.new_secret(), created_at=now), *kept]
        self.ddb.update_item(
            TableName=self.table, Key={"id": {"S": workspace_id}},
            UpdateExpression="SET webhook_secrets = :s",
            ExpressionAttributeValues={":s": dynamo.value([s.model_dump(exclude_none=True) for s in secrets])},
        )
        workspace.webhook_secrets = secrets
        return workspace
