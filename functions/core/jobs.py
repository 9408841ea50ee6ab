"""The generation job: its record, its state machine, and every write to the jobs table.

State transitions are DynamoDB conditional writes, so a transition applied twice is a no-op and two
writers racing (the worker finishing while the user cancels) cannot both win. This is the only module
that changes a job's status.
"""

from __future__ import annotations

import random
from enum import StrEnum
from typing import Any, NamedTuple

from pydantic import Field

from . import aws, clock, dynamo
from .errors import Conflict, NotFound, ServiceUnavailable, TransitionRejected
from .schema import Schema
from .settings import get_settings


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})

# target state -> the states it may be entered from.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.RUNNING: frozenset({JobStatus.QUEUED}),
    JobStatus.SUCCEEDED: frozenset({JobStatus.RUNNING}),
    JobStatus.FAILED: frozenset({JobStatus.QUEUED, JobStatus.RUNNING}),
    JobStatus.CANCELED: frozenset({JobStatus.QUEUED, JobStatus.RUNNING}),
}

# Unfinished jobs are spread over a few partitions of the sweeper's sparse index.
ACTIVE_SHARDS = 4


# The delivery log keeps the newest attempts: a receiver that fails for a day makes about 20 (two events, ten
# attempts each), and the job record must stay far under DynamoDB's 400 KB item limit whatever happens.
MAX_DELIVERY_RECORDS = 25


class Output(Schema):
    key: str
    content_type: str
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    fps: float | None = None
    frames: int | None = None
    thumbnail_key: str | None = None
    # The encoded file's size: whether it fits a response inline is known without asking S3.
    bytes: int | None = None
    # A video with a soundtrack (AAC in the mp4): the dialects report it (AI Media Studio's `audio`).
    audio: bool | None = None


class JobError(Schema):
    code: str
    message: str


# Dispatches of one job (a lost or finished-but-unreported GPU call is replaced) before the sweeper fails it.
MAX_DISPATCH_ATTEMPTS = 3


class Job(Schema):
    """One generation request, whatever dialect it came through."""

    id: str
    workspace_id: str
    status: JobStatus = JobStatus.QUEUED
    dialect: str = "native"
    tool: str | None = None
    model: str
    task: str
    type: str = "image"
    # What the caller sent (shown back as `payload`) and what the worker runs (resolved defaults).
    input: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    webhook: str | None = None
    webhook_events: list[str] = Field(default_factory=lambda: ["completed"])
    created_at: float
    updated_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    deadline: float | None = None
    outputs: list[Output] = Field(default_factory=list)
    error: JobError | None = None
    progress: dict[str, int] | None = None
    # The LoRA adapters that ran (the worker's report: path, id and name, scale, sha256 of the file).
    loras: list[dict[str, Any]] | None = None
    # What the model's speed settings did on the worker that ran it, or why each fell back (gpu/speed.py).
    speed: dict[str, str] | None = None
    # What the worker did for the outputs' provenance (gpu/provenance.py): who signed their C2PA manifests, or why
    # nothing was signed ("not signed: ..."), and the invisible watermark.
    provenance: dict[str, str] | None = None
    # Prompt enhancement (enhance_prompt, POST /api/prompts/enhance; gpu/enhance.py), from the worker's result: the
    # prompt the model ran (the rewrite, or the original when the rewrite was unusable) and what the enhancer did:
    # {model, enhanced, tokens, note} (note: why the original prompt ran). None for a job that asked for none.
    revised_prompt: str | None = None
    prompt_enhancement: dict[str, Any] | None = None
    # The seed the worker ran with (the caller's, or the one it drew) and its timings in seconds (inference, load,
    # encode, ...), from its result: fal's `seed` and `timings` show them.
    seed: int | None = None
    timings: dict[str, float] | None = None
    dispatch: dict[str, Any] | None = None
    # Dispatches so far (the sweeper requeues a job whose dispatch was lost).
    attempts: int = 0
    # Why dispatching gave up (a GPU call that waited too long), for the sweeper's error.
    dispatch_failure: str | None = None
    # A terminal job whose webhook event could not be queued (lifecycle.finish): the sweeper queues it again.
    event_unsent: bool = False
    # Set by make_public at submit or by POST /api/generations/{id}/share: the outputs' keyless share page.
    share_url: str | None = None
    # Credits reserved at submit; `refunded` is set (once, with the failed/canceled transition) when returned:
    # all of it for a failure, the steps not run for a cancel (credits.cancel_refund), whose `billed_progress`
    # records the progress the charge was computed from.
    cost: float = 0
    refunded: float | None = None
    # The output safety checker's report (gpu/moderation.py): the level and threshold it ran at, each output's
    # unsafe score, and, for a job it blocked (error code moderation_blocked), which outputs; never an image.
    moderation: dict[str, Any] | None = None
    billed_progress: dict[str, int] | None = None
    # Webhook delivery attempts, newest last, the last MAX_DELIVERY_RECORDS of them; a 410 from the receiver
    # disables the endpoint for this job.
    deliveries: list[dict[str, Any]] = Field(default_factory=list)
    webhook_disabled: bool = False

    @property
    def terminal(self) -> bool:
        return self.status.terminal

    def to_item(self) -> dict[str, Any]:
        item = self.model_dump(mode="json", exclude_none=True)
        item.update(_index_attributes(self))
        item["expires_at"] = int(self.created_at + get_settings().job_retention_days * 86400)
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Job:
        return cls.model_validate(item)


def created_key(created_at: float, job_id: str) -> str:
    return f"{int(created_at * 1000):014d}#{job_id}"


def _index_attributes(job: Job) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "created_key": created_key(job.created_at, job.id),
        "workspace_status": f"{job.workspace_id}#{job.status}",
    }
    if not job.terminal:
        attrs["active_shard"] = str(random.randrange(ACTIVE_SHARDS))
    return attrs


class JobKey(NamedTuple):
    """What a transition needs of a job it has not read: the key, and the workspace its index entry names.

    A write that starts from a message (the worker taking its job, a success being applied) goes straight
    to the conditional write, saving the read before it; the condition checks the workspace too, so a key
    that names the wrong workspace changes nothing."""

    id: str
    workspace_id: str


class JobStore:
    """All reads and writes of the jobs table."""

    def __init__(self, table: str | None = None) -> None:
        self.table = table or get_settings().jobs_table
        self.ddb = aws.client("dynamodb")

    # ---- create and read
    def put_new_item(self, job: Job) -> dict[str, Any]:
        """The Put of a new job, for a transaction (credits join it in the same TransactWriteItems)."""
        return {
            "TableName": self.table,
            "Item": dynamo.serialize(job.to_item()),
            "ConditionExpression": "attribute_not_exists(id)",
        }

    def create(self, job: Job) -> None:
        self.ddb.put_item(**self.put_new_item(job))

    def get(self, job_id: str, *, consistent: bool = True) -> Job | None:
        resp = self.ddb.get_item(TableName=self.table, Key={"id": {"S": job_id}}, ConsistentRead=consistent)
        return Job.from_item(dynamo.deserialize(resp["Item"])) if "Item" in resp else None

    def get_for_workspace(self, workspace_id: str, job_id: str) -> Job:
        """A job the workspace owns. Another workspace's job is indistinguishable from a missing one."""
        job = self.get(job_id) if _plausible_id(job_id) else None
        if job is None or job.workspace_id != workspace_id:
            raise NotFound(f"Generation {job_id} not found", code="generation_not_found")
        return job

    def list_for_workspace(self, workspace_id: str, *, status: JobStatus | None = None, limit: int = 20,
                           offset: int = 0) -> tuple[list[Job], int]:
        """Newest first, with the total count for offset pagination."""
        if status is None:
            index, key_name, key_value = "by-workspace", "workspace_id", workspace_id
        else:
            index, key_name, key_value = "by-workspace-status", "workspace_status", f"{workspace_id}#{status}"
        query = {
            "TableName": self.table,
            "IndexName": index,
            "KeyConditionExpression": "#k = :v",
            "ExpressionAttributeNames": {"#k": key_name},
            "ExpressionAttributeValues": {":v": {"S": key_value}},
            "ScanIndexForward": False,
        }
        total = 0
        for page in self.ddb.get_paginator("query").paginate(**query, Select="COUNT"):
            total += page["Count"]
        jobs: list[Job] = []
        if offset < total and limit > 0:
            seen = 0
            for page in self.ddb.get_paginator("query").paginate(**query):
                for item in page["Items"]:
                    if seen >= offset:
                        jobs.append(Job.from_item(dynamo.deserialize(item)))
                        if len(jobs) == limit:
                            return jobs, total
                    seen += 1
        return jobs, total

    def page_for_workspace(self, workspace_id: str, *, limit: int,
                           before: str | None = None) -> tuple[list[Job], str | None]:
        """Newest first, `limit` at most, those created before the `before` cursor (a created_key); and the cursor
        of the next page (None on the last). One Query, whatever the page: cursor pagination (Replicate's)."""
        query: dict[str, Any] = {
            "TableName": self.table, "IndexName": "by-workspace", "ScanIndexForward": False, "Limit": limit,
            "KeyConditionExpression": "workspace_id = :w" + (" AND created_key < :c" if before else ""),
            "ExpressionAttributeValues": {":w": {"S": workspace_id}, **({":c": {"S": before}} if before else {})},
        }
        resp = self.ddb.query(**query)
        jobs = [Job.from_item(dynamo.deserialize(item)) for item in resp["Items"]]
        last = resp["Items"][-1]["created_key"]["S"] if resp.get("LastEvaluatedKey") and resp["Items"] else None
        return jobs, last

    def queued_before(self, job: Job, *, limit: int = 1000) -> int:
        """How many of the workspace's queued jobs were submitted before this one (fal's queue_position), counted
        up to `limit`: one COUNT query on the by-workspace-status index."""
        count, start = 0, None
        while count < limit:
            page = self.ddb.query(
                TableName=self.table, IndexName="by-workspace-status", Select="COUNT", Limit=limit - count,
                KeyConditionExpression="workspace_status = :s AND created_key < :k",
                ExpressionAttributeValues={":s": {"S": f"{job.workspace_id}#{JobStatus.QUEUED}"},
                                           ":k": {"S": created_key(job.created_at, job.id)}},
                **({"ExclusiveStartKey": start} if start else {}))
            count += page["Count"]
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        return min(count, limit)

    def overdue(self, now: float, *, limit: int = 100) -> list[str]:
        """Ids of unfinished jobs whose deadline has passed, from the sparse index."""
        ids: list[str] = []
        for shard in range(ACTIVE_SHARDS):
            paginator = self.ddb.get_paginator("query").paginate(
                TableName=self.table,
                IndexName="active-by-deadline",
                KeyConditionExpression="active_shard = :s AND deadline < :now",
                ExpressionAttributeValues={":s": {"S": str(shard)}, ":now": dynamo.value(now)},
            )
            for page in paginator:
                ids.extend(item["id"]["S"] for item in page["Items"])
                if len(ids) >= limit:
                    return ids[:limit]
        return ids

    # ---- state transitions
    def transition_update(self, job: Job | JobKey, target: JobStatus, *, set_fields: dict[str, Any] | None = None,
                          now: float | None = None, unchanged: bool = False) -> dict[str, Any]:
        """The conditional Update that moves `job` to `target`, for use alone or inside a transaction. With
        `unchanged`, only while the job's status and progress are still as `job` was read (what was computed
        from them, a cancel's refund, stays true)."""
        now = now if now is not None else clock.now()
        allowed = TRANSITIONS[target]
        fields: dict[str, Any] = {
            "status": target.value,
            "workspace_status": f"{job.workspace_id}#{target}",
            "updated_at": now,
            **(set_fields or {}),
        }
        remove: list[str] = []
        if target == JobStatus.RUNNING:
            fields["started_at"] = now
            # run_deadline too: a dispatch recorded after the take keeps it (record_dispatch)
            fields["deadline"] = fields["run_deadline"] = now + get_settings().run_deadline_seconds
        if target.terminal:
            fields["finished_at"] = now
            # Leaving the sweeper's sparse index: finished jobs need no watching.
            remove += ["active_shard", "deadline", "run_deadline"]
        names = {f"#f{i}": k for i, k in enumerate(fields)}
        values = {f":v{i}": dynamo.value(v) for i, v in enumerate(fields.values())}
        from_values = {f":from{i}": {"S": s.value} for i, s in enumerate(sorted(allowed))}
        expression = "SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(fields)))
        if remove:
            names.update({f"#r{i}": k for i, k in enumerate(remove)})
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove)))
        condition = f"#status_ IN ({', '.join(from_values)}) AND #workspace_ = :workspace_"
        names.update({"#status_": "status", "#workspace_": "workspace_id"})
        values.update({**from_values, ":workspace_": {"S": job.workspace_id}})
        if unchanged:
            if not isinstance(job, Job):
                raise TypeError("an unchanged-since-read transition needs the job as read")
            condition += " AND #status_ = :read_status"
            values[":read_status"] = {"S": job.status.value}
            progress = job.progress or {}
            if progress:
                condition += " AND #progress_.#step_ = :read_step AND #progress_.#total_ = :read_total"
                names.update({"#progress_": "progress", "#step_": "step", "#total_": "total"})
                values[":read_step"] = dynamo.value(progress.get("step", 0))
                values[":read_total"] = dynamo.value(progress.get("total", 0))
            else:  # no step recorded (no progress map, or one without a step)
                condition += " AND attribute_not_exists(#progress_.#step_)"
                names.update({"#progress_": "progress", "#step_": "step"})
        return {
            "TableName": self.table,
            "Key": {"id": {"S": job.id}},
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def transition(self, job: Job | JobKey, target: JobStatus, *, set_fields: dict[str, Any] | None = None,
                   together_with: list[dict[str, Any]] | None = None, unchanged: bool = False) -> tuple[Job, bool]:
        """Move the job to `target`. Returns (job as stored now, applied).

        Applying the same transition twice returns (job, False): a no-op, not an error, so every handler
        is safe to run twice on the same message. A transition from a state it does not start from (a
        canceled job that finishes anyway) raises TransitionRejected with the current state.
        `together_with` are Update items (a credit refund) committed in the same transaction, so they
        happen exactly when the transition does. With `unchanged` (transition_update), a job whose status or
        progress moved since it was read raises StaleJob with the job as it is now, to recompute and retry.
        """
        update = self.transition_update(job, target, set_fields=set_fields, unchanged=unchanged)
        try:
            if together_with:
                dynamo.transact_write(self.ddb, [{"Update": update}, *({"Update": u} for u in together_with)])
                stored = self.get(job.id)
                assert stored is not None
                return stored, True
            resp = self.ddb.update_item(**update, ReturnValues="ALL_NEW",
                                        ReturnValuesOnConditionCheckFailure="ALL_OLD")
            return Job.from_item(dynamo.deserialize(resp["Attributes"])), True
        except (self.ddb.exceptions.ConditionalCheckFailedException,
                self.ddb.exceptions.TransactionCanceledException) as exc:
            stored = self.get(job.id)
            if stored is None:
                raise NotFound(f"Generation {job.id} not found") from exc
            if stored.status == target:
                return stored, False
            if stored.status in TRANSITIONS[target]:
                if unchanged and isinstance(job, Job) and _moved(job, stored):
                    raise StaleJob(stored) from exc
                if dynamo.conflicted(exc):  # other transactions on its workspace's credits, still, after retries
                    raise ServiceUnavailable("The job is being updated by other requests; please retry") from exc
                raise  # the condition held, so something else failed in the transaction
            raise TransitionRejected(job.id, target.value, stored.status.value) from exc

    # ---- bookkeeping that does not change status
    def _update_if(self, job_id: str, expression: str, condition: str, names: dict[str, str],
                   values: dict[str, Any], *, returning: bool = False) -> dict[str, Any] | None:
        """The conditional update; None if the condition failed, else the response (with the item as it is
        now when `returning`)."""
        try:
            return self.ddb.update_item(
                TableName=self.table,
                Key={"id": {"S": job_id}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={k: dynamo.value(v) for k, v in values.items()},
                ReturnValues="ALL_NEW" if returning else "NONE",
            )
        except self.ddb.exceptions.ConditionalCheckFailedException:
            return None

    def claim_dispatch(self, job_id: str, claim: str, now: float) -> Job | None:
        """Take the right to spawn this job's GPU call, and get the job as claimed. None if the job is not
        queued (missing, canceled, running) or another delivery already took it. One write, no read first."""
        resp = self._update_if(
            job_id,
            "SET #d = :d, attempts = if_not_exists(attempts, :zero) + :one, deadline = :deadline",
            "#s = :queued AND attribute_not_exists(#d)",
            {"#d": "dispatch", "#s": "status"},
            {":d": {"claim": claim, "claimed_at": now}, ":queued": "queued", ":zero": 0, ":one": 1,
             ":deadline": now + get_settings().dispatch_deadline_seconds},
            returning=True,
        )
        return Job.from_item(dynamo.deserialize(resp["Attributes"])) if resp else None

    def record_dispatch(self, job_id: str, claim: str, dispatcher: str, call_id: str, now: float,
                        deadline: float) -> bool:
        """The call is spawned: record it. A job still queued gets the deadline by which the call must have taken
        it (its container's startup included), after which the sweeper has the call checked (sweeper/logic.py).
        A warm container may have taken the job already: it keeps its running deadline (`run_deadline`, which a
        start deadline would cut short, and the sweeper would then fail the job while it runs). One write either
        way. False when the job ended meanwhile or this claim is no longer the job's: nothing waits on the call
        then (a cancel before it was recorded could not name it), and the caller cancels it."""
        return self._update_if(
            job_id,
            "SET #d = :d, deadline = if_not_exists(run_deadline, :deadline)",
            "#d.claim = :claim AND #s IN (:queued, :running)",
            {"#d": "dispatch", "#s": "status"},
            {":d": {"claim": claim, "claimed_at": now, "dispatcher": dispatcher, "call_id": call_id,
                    "spawned_at": now},
             ":claim": claim, ":deadline": deadline, ":queued": JobStatus.QUEUED.value,
             ":running": JobStatus.RUNNING.value},
        ) is not None

    def keep_dispatch(self, job_id: str, call_id: str, now: float, deadline: float) -> bool:
        """The recorded call is still waiting (a queue, a cold start): give it until `deadline`. Only while the
        job is queued and that call is still the one recorded."""
        return self._update_if(
            job_id,
            "SET deadline = :deadline, #d.checked_at = :now",
            "#s = :queued AND #d.call_id = :call",
            {"#d": "dispatch", "#s": "status"},
            {":deadline": deadline, ":now": now, ":queued": "queued", ":call": call_id},
        ) is not None

    def mark_event_unsent(self, job: Job, now: float) -> bool:
        """A terminal job whose webhook event could not be queued goes back into the sweeper's index, due now, so
        the next sweep queues it (sent_event clears the mark). Only while the job is in that terminal state."""
        return self._update_if(
            job.id, "SET event_unsent = :yes, active_shard = :shard, deadline = :now", "#s = :status",
            {"#s": "status"},
            {":yes": True, ":shard": str(random.randrange(ACTIVE_SHARDS)), ":now": now, ":status": job.status.value},
        ) is not None

    def sent_event(self, job_id: str) -> bool:
        """The event the mark stood for is queued: out of the sweeper's index again."""
        return self._update_if(job_id, "REMOVE event_unsent, active_shard, deadline", "event_unsent = :yes", {},
                               {":yes": True}) is not None

    def release_dispatch(self, job_id: str, claim: str | None, now: float, *, give_up: str | None = None) -> bool:
        """Give up a claim (spawn failed) or a lost dispatch, so the job can be dispatched again. With `give_up`
        (the reason), it is not dispatched again: the sweeper fails it (and refunds it) at once."""
        condition = "#s = :queued" + (" AND #d.claim = :claim" if claim else "")
        values: dict[str, Any] = {":queued": "queued", ":deadline": now + get_settings().dispatch_deadline_seconds}
        expression = "REMOVE #d SET deadline = :deadline"
        names = {"#d": "dispatch", "#s": "status"}
        if give_up:
            expression += ", attempts = :max, #gu = :reason"
            names["#gu"] = "dispatch_failure"
            values.update({":deadline": now, ":max": MAX_DISPATCH_ATTEMPTS, ":reason": give_up})
        if claim:
            values[":claim"] = claim
        return self._update_if(job_id, expression, condition, names, values) is not None

    def record_delivery(self, job_id: str, attempt: dict[str, Any], *, known: list[dict[str, Any]],
                        disable: bool = False) -> None:
        """Add one webhook delivery attempt to the job's log, which keeps the last MAX_DELIVERY_RECORDS (and
        disable its endpoint on a 410). `known` is the log as last read: while it has room, one conditional
        append; once full, the log is rewritten without its oldest entries, conditional on its length, and read
        again if another attempt changed it meanwhile."""
        for _ in range(5):
            names: dict[str, str] = {"#d": "deliveries"}
            values: dict[str, Any] = {}
            if len(known) < MAX_DELIVERY_RECORDS:
                expression = "SET #d = list_append(if_not_exists(#d, :empty), :attempt)"
                condition = "attribute_not_exists(#d) OR size(#d) < :room"
                values |= {":empty": {"L": []}, ":attempt": dynamo.value([attempt]),
                           ":room": {"N": str(MAX_DELIVERY_RECORDS)}}
            else:
                expression, condition = "SET #d = :log", "size(#d) = :known"
                values |= {":log": dynamo.value([*known, attempt][-MAX_DELIVERY_RECORDS:]),
                           ":known": {"N": str(len(known))}}
            if disable:
                expression += ", webhook_disabled = :true"
                values[":true"] = {"BOOL": True}
            try:
                self.ddb.update_item(TableName=self.table, Key={"id": {"S": job_id}}, UpdateExpression=expression,
                                     ConditionExpression=condition, ExpressionAttributeNames=names,
                                     ExpressionAttributeValues=values)
                return
            except self.ddb.exceptions.ConditionalCheckFailedException:
                stored = self.get(job_id)
                if stored is None:
                    return
                known = stored.deliveries
        raise RuntimeError(f"job {job_id}: the delivery log kept changing; attempt not recorded")

    def set_share_url(self, job: Job, share_url: str | None) -> Job:
        """Make the job public with `share_url`, or private with None; returns the job as stored now.

        Idempotent both ways: a job that is shared already keeps its link (the `share_url` given is then
        unused), and unsharing removes the link for good, so the next share is a new link. Only jobs that
        can still have outputs are shared (queued ones too, as make_public does at submit); a failed or
        canceled one raises Conflict. Conditional on the workspace, so a caller never reaches another's job.
        """
        names = {"#u": "share_url", "#w": "workspace_id"}
        values: dict[str, Any] = {":w": job.workspace_id}
        if share_url is None:
            expression, condition = "REMOVE #u", "#w = :w"
        else:
            expression, condition = "SET #u = :u", "#w = :w AND attribute_not_exists(#u) AND #s IN (:q, :r, :ok)"
            names["#s"] = "status"
            values.update({":u": share_url, ":q": JobStatus.QUEUED.value, ":r": JobStatus.RUNNING.value,
                           ":ok": JobStatus.SUCCEEDED.value})
        try:
            resp = self.ddb.update_item(
                TableName=self.table, Key={"id": {"S": job.id}}, UpdateExpression=expression,
                ConditionExpression=condition, ExpressionAttributeNames=names,
                ExpressionAttributeValues={k: dynamo.value(v) for k, v in values.items()}, ReturnValues="ALL_NEW")
            return Job.from_item(dynamo.deserialize(resp["Attributes"]))
        except self.ddb.exceptions.ConditionalCheckFailedException:
            stored = self.get(job.id)
            if stored is None or stored.workspace_id != job.workspace_id:
                raise NotFound(f"Generation {job.id} not found", code="generation_not_found") from None
            if stored.share_url:
                return stored  # shared already: the same link
            raise Conflict(f"Generation {job.id} {stored.status.value}; only a generation that has or will have "
                           "outputs can be shared", code="not_shareable") from None

    def record_progress(self, job_id: str, step: int, total: int, *, deadline: float | None = None) -> bool:
        """The job's progress, while it runs (False once it does not: the worker's cancel check). With `deadline`,
        its run deadline moves there too (a heartbeat: the sweeper fails a running job that stops reporting)."""
        expression = "SET progress = :p, updated_at = :now" + (", deadline = :d, run_deadline = :d" if deadline else "")
        return self._update_if(
            job_id, expression, "#s = :running", {"#s": "status"},
            {":p": {"step": step, "total": total}, ":running": "running", ":now": clock.now(),
             **({":d": deadline} if deadline else {})},
        ) is not None


class StaleJob(Exception):
    """The job changed between its read and a transition conditioned on it; `current` is the job now."""

    def __init__(self, current: Job):
        super().__init__(f"job {current.id} changed since it was read")
        self.current = current


def _moved(read: Job, stored: Job) -> bool:
    return read.status != stored.status or (read.progress or {}) != (stored.progress or {})


def _plausible_id(job_id: str) -> bool:
    return 0 < len(job_id) <= 64 and job_id.replace("-", "").replace("_", "").isalnum()
