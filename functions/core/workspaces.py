"""Workspaces: the unit of ownership. Jobs, keys and outputs all belong to one."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from . import aws, clock, dynamo
from .settings import get_settings


class Workspace(BaseModel):
    id: str
    name: str
    created_at: float


class WorkspaceStore:
    def __init__(self, table: str | None = None) -> None:
        self.table = table or get_settings().workspaces_table
        self.ddb = aws.client("dynamodb")

    def get(self, workspace_id: str) -> Workspace | None:
        resp = self.ddb.get_item(TableName=self.table, Key={"id": {"S": workspace_id}}, ConsistentRead=True)
        return Workspace.model_validate(dynamo.deserialize(resp["Item"])) if "Item" in resp else None

    def ensure(self, workspace_id: str, name: str | None = None, **extra: Any) -> Workspace:
        """Create the workspace if it does not exist; return it either way (safe to run twice)."""
        item = {"id": workspace_id, "name": name or workspace_id, "created_at": clock.now(), **extra}
        try:
            self.ddb.put_item(TableName=self.table, Item=dynamo.serialize(item),
                              ConditionExpression="attribute_not_exists(id)")
        except self.ddb.exceptions.ConditionalCheckFailedException:
            pass
        workspace = self.get(workspace_id)
        assert workspace is not None
        return workspace
