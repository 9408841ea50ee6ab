"""Workspace credits: reserved with the job in one DynamoDB transaction, refunded exactly once.

The balance lives on the workspace item. A reservation is a conditional decrement (`credits >= cost`) in
the same TransactWriteItems that writes the job, so a job never exists without its reservation, the
balance never goes negative, and concurrent submits cannot overspend. A refund rides in the same
transaction as the job's failed/canceled transition, whose condition makes it happen once.
"""

from __future__ import annotations

from typing import Any

from functions.core.catalog import ModelSpec
from functions.core.jobs import Job, JobStatus

from . import aws, dynamo
from .errors import Conflict, FieldError, NotFound, PaymentRequired
from .settings import get_settings


def cost_of(model: ModelSpec, params: dict[str, Any]) -> float:
    """The catalog's price rule for the job's resolved parameters: outputs × base credits × work (pixels and
    steps against the model's defaults; ModelSpec.price), plus the prompt enhancer's credits when the job rewrites
    its prompt (enhance_prompt); a rewrite alone (POST /api/prompts/enhance, enhance_only) costs only those."""
    from functions.core.catalog import get_catalog

    rewrite = params.get("enhance_prompt") or params.get("enhance_only")
    enhancer = get_catalog().prompt_enhancer if rewrite else None
    extra = enhancer.credits if enhancer is not None else 0.0
    if params.get("enhance_only"):
        return extra
    return round(model.price(params) + extra, 6) if extra else model.price(params)


def cancel_refund(job: Job) -> float:
    """What a cancel gives back. A job canceled before it ran: all of it. A running one is charged the share
    of its denoising steps done when the cancel was accepted, as the worker last recorded them (it records
    each step: gpu/worker.CancelWatch), the way hosted APIs bill running time; loading the model is not
    charged, and the step or two the GPU runs before it sees the cancel are the operator's."""
    progress = job.progress or {}
    step, total = progress.get("step", 0), progress.get("total", 0)
    if job.status != JobStatus.RUNNING or not total or step <= 0:
        return job.cost
    used = job.cost * min(step, total) / total
    return round(job.cost - used, 6)


def _key(workspace_id: str) -> dict[str, Any]:
    return {"id": {"S": workspace_id}}


def reserve_update(workspace_id: str, cost: float) -> dict[str, Any]:
    return {
        "TableName": get_settings().workspaces_table,
        "Key": _key(workspace_id),
        "UpdateExpression": "SET credits = credits - :cost, credits_used = if_not_exists(credits_used, :zero) + :cost",
        "ConditionExpression": "attribute_exists(id) AND credits >= :cost",
        "ExpressionAttributeValues": {":cost": dynamo.value(cost), ":zero": {"N": "0"}},
    }


def refund_update(workspace_id: str, cost: float) -> dict[str, Any]:
    return {
        "TableName": get_settings().workspaces_table,
        "Key": _key(workspace_id),
        "UpdateExpression": "SET credits = credits + :cost, credits_used = credits_used - :cost, "
                            "credits_refunded = if_not_exists(credits_refunded, :zero) + :cost",
        "ExpressionAttributeValues": {":cost": dynamo.value(cost), ":zero": {"N": "0"}},
    }


def balance(workspace_id: str) -> float:
    resp = aws.client("dynamodb").get_item(TableName=get_settings().workspaces_table, Key=_key(workspace_id),
                                           ConsistentRead=True, ProjectionExpression="credits")
    if "Item" not in resp:
        raise NotFound(f"Workspace {workspace_id} not found", code="workspace_not_found")
    return dynamo.deserialize(resp["Item"]).get("credits", 0)


def usage(workspace_id: str) -> dict[str, float]:
    resp = aws.client("dynamodb").get_item(TableName=get_settings().workspaces_table, Key=_key(workspace_id),
                                           ConsistentRead=True)
    if "Item" not in resp:
        raise NotFound(f"Workspace {workspace_id} not found", code="workspace_not_found")
    item = dynamo.deserialize(resp["Item"])
    return {k: item.get(k, 0) for k in ("credits", "credits_used", "credits_refunded", "credits_added")}


def add(workspace_id: str, amount: float) -> float:
    """Top up (or, with a negative amount, take back — never below zero). Returns the new balance."""
    client = aws.client("dynamodb")
    condition = "attribute_exists(id)" + (" AND credits >= :neg" if amount < 0 else "")
    values = {":amount": dynamo.value(amount), ":zero": {"N": "0"}}
    if amount < 0:
        values[":neg"] = dynamo.value(-amount)
    try:
        resp = client.update_item(
            TableName=get_settings().workspaces_table, Key=_key(workspace_id),
            UpdateExpression="SET credits = credits + :amount, "
                             "credits_added = if_not_exists(credits_added, :zero) + :amount",
            ConditionExpression=condition, ExpressionAttributeValues=values, ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD")
    except client.exceptions.ConditionalCheckFailedException as exc:
        old = exc.response.get("Item")
        if not old:
            raise NotFound(f"Workspace {workspace_id} not found", code="workspace_not_found") from None
        have = dynamo.deserialize(old).get("credits", 0)
        raise Conflict(f"Cannot take back {-amount:g} credits: the workspace has {have:g}",
                       errors=[FieldError("amount", f"is more than the balance ({have:g})", "insufficient_balance")],
                       code="insufficient_balance") from None
    return dynamo.deserialize(resp["Attributes"])["credits"]


def insufficient(workspace_id: str, cost: float) -> PaymentRequired:
    try:
        have = balance(workspace_id)
    except NotFound:
        have = 0
    return PaymentRequired(f"Insufficient credits: this request costs {cost:g}, the workspace has {have:g}",
                           code="insufficient_quota")
