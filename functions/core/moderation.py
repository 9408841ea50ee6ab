"""Moderation: the one policy table behind every dialect's safety parameter, each workspace's limits on it, and
the prompt policy. Import-light (no torch): the api Lambda runs this; the classifier runs in the GPU worker
(gpu/moderation.py).

The scale: levels 1 (strictest) to 6 (most permissive), AI Media Studio's `safety_tolerance`. The catalog's
`moderation` table gives each level a threshold; the worker blocks an output whose unsafe score is at least the
job's. Every dialect's parameter maps onto the scale (docs/fields.md): native `safety_tolerance` (1-6) and
`safety_checker` (false: no check), OpenAI `moderation` (auto, low), AI Media Studio `safety_tolerance` ("1"-"6");
fal's `enable_safety_checker` and Replicate's `disable_safety_checker` are the checker switch (`checker_input`).

Per workspace, the operator sets (PUT /api/admin/workspaces/{id}/moderation): the most permissive level its keys
may ask for, whether they may turn the checker off, and terms a prompt may not contain. A request asking for more
than its workspace allows is a 403 naming the field; a prompt with a blocked term is a 400 naming `prompt`, before
any job exists (nothing charged, no GPU time).

A blocked output (gpu/moderation.py) fails its whole job with the error code BLOCKED: none of its outputs is
stored, and the job is charged (functions/core/lifecycle.py; README: Guarantees). The job record keeps the scores,
the level and the threshold (`moderation`), never the image: GET /api/admin/workspaces/{id}/moderation lists them.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from pydantic import ConfigDict, Field, field_validator

from . import aws, dynamo
from .errors import FieldError, Forbidden, NotFound, ValidationFailed
from .observability import logger
from .schema import Schema
from .settings import get_settings

# The job error code of a job whose output the checker blocked (OpenAI's own code for it).
BLOCKED = "moderation_blocked"
# The error code of a prompt the workspace's prompt policy refused.
PROMPT_BLOCKED = "prompt_blocked"
# A request for more than the workspace allows.
NOT_ALLOWED = "moderation_not_allowed"
MAX_TERMS = 200


class WorkspacePolicy(Schema):
    """What a workspace's keys may ask of moderation; stored on the workspace item as `moderation`."""

    model_config = ConfigDict(extra="forbid")

    max_level: int | None = Field(None, ge=1, le=6, description="The most permissive level (1 strictest to 6) its "
                                                                "keys may ask for; null: the catalog's "
                                                                "workspace_max_level.")
    allow_checker_off: bool = Field(False, description="Whether its keys may turn the output checker off "
                                                       "(safety_checker: false; fal's enable_safety_checker: false; "
                                                       "Replicate's disable_safety_checker: true).")
    blocked_terms: list[str] = Field(default_factory=list, max_length=MAX_TERMS,
                                     description="Words or phrases a prompt may not contain (case-insensitive, "
                                                 "whole words): such a prompt is a 400 naming prompt, before any "
                                                 "GPU time is spent.")

    @field_validator("blocked_terms")
    @classmethod
    def _terms(cls, terms: list[str]) -> list[str]:
        cleaned = [" ".join(t.split()) for t in terms]
        if any(not t or len(t) > 100 for t in cleaned):
            raise ValueError("each term is 1 to 100 characters")
        return cleaned

    def effective_max(self) -> int:
        from .catalog import get_catalog

        return self.max_level if self.max_level is not None else get_catalog().moderation.workspace_max_level


# ---------------------------------------------------------------- the policy table


def threshold(level: int) -> float:
    """The unsafe score at or above which an output is blocked at `level` (the setting overrides every level's)."""
    from .catalog import get_catalog

    forced = get_settings().moderation_threshold
    return forced if forced is not None else get_catalog().moderation.thresholds[level]


def default_level() -> int:
    from .catalog import get_catalog

    return get_catalog().moderation.default_level


def openai_level(word: str | None) -> int | None:
    """OpenAI's `moderation` (auto, low) as a level; None (not sent): the workspace's default."""
    from .catalog import get_catalog

    return get_catalog().moderation.openai[word] if word else None  # type: ignore[index]


def checker_input(enabled: bool | None) -> dict[str, Any]:
    """GenerationInput fields for a dialect's checker switch (fal's enable_safety_checker as is, Replicate's
    disable_safety_checker negated): False turns the checker off (a 403 unless the workspace allows it), True or
    None keeps it at the workspace's default level. Name the field in the dialect's names: {"safety_checker": …}."""
    return {} if enabled is None else {"safety_checker": enabled}


# ---------------------------------------------------------------- workspaces

_cache: dict[str, tuple[float, WorkspacePolicy]] = {}
_lock = threading.Lock()


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def _read_policy(workspace_id: str) -> WorkspacePolicy:
    resp = aws.client("dynamodb").get_item(TableName=get_settings().workspaces_table,
                                           Key={"id": {"S": workspace_id}}, ProjectionExpression="moderation")
    stored = dynamo.deserialize(resp["Item"]).get("moderation") if "Item" in resp else None
    return WorkspacePolicy.model_validate(stored) if stored else WorkspacePolicy()


def workspace_policy(workspace_id: str, *, fresh: bool = False) -> WorkspacePolicy:
    """The workspace's policy, read once per key_cache_ttl_seconds in a warm container (as API keys are: an
    operator's change takes effect within that)."""
    ttl = get_settings().key_cache_ttl_seconds
    now = time.monotonic()
    with _lock:
        hit = _cache.get(workspace_id)
    if hit is not None and not fresh and now - hit[0] < ttl:
        return hit[1]
    policy = _read_policy(workspace_id)
    with _lock:
        _cache[workspace_id] = (now, policy)
    return policy


def set_workspace_policy(workspace_id: str, policy: WorkspacePolicy) -> WorkspacePolicy:
    client = aws.client("dynamodb")
    try:
        client.update_item(TableName=get_settings().workspaces_table, Key={"id": {"S": workspace_id}},
                           UpdateExpression="SET moderation = :m", ConditionExpression="attribute_exists(id)",
                           ExpressionAttributeValues={":m": dynamo.value(policy.model_dump(exclude_none=True))})
    except client.exceptions.ConditionalCheckFailedException:
        raise NotFound(f"Workspace {workspace_id} not found", code="workspace_not_found") from None
    with _lock:
        _cache.pop(workspace_id, None)
    return policy


# ---------------------------------------------------------------- at submit


def _not_allowed(field: str, message: str) -> Forbidden:
    return Forbidden(f"Not allowed: {field}: {message}", errors=[FieldError(field, message, NOT_ALLOWED)],
                     code=NOT_ALLOWED)


def check_prompt(prompt: str, policy: WorkspacePolicy, *, workspace_id: str, field: str = "prompt") -> None:
    """A 400 naming `field` when the prompt contains one of the workspace's blocked terms (whole words, any case)."""
    for index, term in enumerate(policy.blocked_terms):
        pattern = r"(?<!\w)" + r"\s+".join(re.escape(word) for word in term.split()) + r"(?!\w)"
        if re.search(pattern, prompt, re.IGNORECASE):
            # For the operator: which rule refused it, never the prompt itself.
            logger.warning("prompt refused by the workspace's prompt policy",
                           extra={"workspace_id": workspace_id, "moderation_event": "prompt_blocked",
                                  "term_index": index})
            message = "contains a term this workspace does not allow; nothing was generated or charged"
            raise ValidationFailed(f"Invalid request: {field}: {message}",
                                   errors=[FieldError(field, message, PROMPT_BLOCKED)], code=PROMPT_BLOCKED)


def resolve(prompt: str, level: int | None, checker: bool | None, *, workspace_id: str,
            prefix: str = "") -> dict[str, Any]:
    """The job's `moderation` parameters: {"level", "threshold"} (the checker runs), or {"checker": False}.
    403 naming the field for more than the workspace allows; 400 naming prompt for a blocked term."""
    policy = workspace_policy(workspace_id)
    check_prompt(prompt, policy, workspace_id=workspace_id, field=prefix + "prompt")
    maximum = policy.effective_max()
    if checker is False:
        if not policy.allow_checker_off:
            raise _not_allowed(prefix + "safety_checker", "this workspace does not allow turning the output safety "
                                                          "checker off (its operator decides)")
        if level is not None:
            raise ValidationFailed(f"Invalid request: {prefix}safety_tolerance: has no effect with the safety checker "
                                   "off; send one of them",
                                   errors=[FieldError(prefix + "safety_tolerance", "has no effect with the safety "
                                                      "checker off; send one of them", "invalid_value")])
        return {"checker": False}
    if level is None:
        level = min(default_level(), maximum)
    elif level > maximum:
        raise _not_allowed(prefix + "safety_tolerance", f"level {level} is more permissive than this workspace "
                                                        f"allows (at most {maximum}; 1 is the strictest)")
    return {"level": level, "threshold": threshold(level)}


def job_threshold(params: dict[str, Any]) -> float | None:
    """For the worker: the threshold the job runs at; None when its checker was turned off. A job submitted
    without moderation parameters (before they existed) runs at the default level."""
    moderation = params.get("moderation") or {}
    if moderation.get("checker") is False:
        return None
    if "threshold" in moderation:
        return float(moderation["threshold"])
    return threshold(int(moderation.get("level") or default_level()))


# ---------------------------------------------------------------- for the operator


def blocked_events(workspace_id: str, *, limit: int = 50) -> list[dict[str, Any]]:
    """The workspace's blocked jobs, newest first: what was asked (prompt, model, dialect, level), by which end
    user when the request named one, the scores, and when; never an image (none was stored). Read from the jobs table's failed jobs (kept job_retention_days)."""
    settings = get_settings()
    client = aws.client("dynamodb")
    query = {"TableName": settings.jobs_table, "IndexName": "by-workspace-status",
             "KeyConditionExpression": "workspace_status = :s", "FilterExpression": "#e.#c = :blocked",
             "ExpressionAttributeNames": {"#e": "error", "#c": "code"},
             "ExpressionAttributeValues": {":s": {"S": f"{workspace_id}#failed"}, ":blocked": {"S": BLOCKED}},
             "ScanIndexForward": False}
    events: list[dict[str, Any]] = []
    for page in client.get_paginator("query").paginate(**query):
        for item in page["Items"]:
            job = dynamo.deserialize(item)
            asked = job.get("input") or {}
            events.append({"job_id": job["id"], "created_at": job.get("created_at"),
                           # Which of the operator's own users asked, where the dialect names one (OpenAI's).
                           "end_user": asked.get("safety_identifier") or asked.get("user"),
                           "finished_at": job.get("finished_at"), "dialect": job.get("dialect"),
                           "model": job.get("model"), "prompt": (job.get("params") or {}).get("prompt"),
                           "moderation": job.get("moderation"), "credits_charged": job.get("cost", 0),
                           "error": (job.get("error") or {}).get("message")})
            if len(events) >= limit:
                return events
    return events
