"""The job state machine: the TRANSITIONS table, terminal states, the conditional update, the stored item."""

from __future__ import annotations

import itertools
import re

import pytest

from functions.core import clock, dynamo
from functions.core.jobs import (
    ACTIVE_SHARDS,
    TERMINAL,
    TRANSITIONS,
    Job,
    JobError,
    JobKey,
    JobStatus,
    JobStore,
    Output,
    created_key,
)
from functions.core.settings import get_settings

Q, R, S, F, C = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.FAILED,
                 JobStatus.CANCELED)

# The only moves a job may make: source -> target.
ALLOWED = {(Q, R), (R, S), (Q, F), (R, F), (Q, C), (R, C)}

NOW = 1_700_000_100.0


def make_job(status: JobStatus = Q, **overrides) -> Job:
    fields = {"id": "65a1b2c3d4e5f60718293a4b", "workspace_id": "ws_1", "status": status, "model": "sdxl-turbo",
              "task": "text-to-image", "created_at": 1_700_000_000.25, "deadline": 1_700_000_300.0}
    return Job(**(fields | overrides))


@pytest.fixture
def store() -> JobStore:
    return JobStore("jobs-under-test")


@pytest.fixture(autouse=True)
def _settings(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DARKROOM_RUN_DEADLINE_SECONDS", "900")
    monkeypatch.setenv("DARKROOM_JOB_RETENTION_DAYS", "7")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


# ---------------------------------------------------------------- the table


def test_transitions_table_is_exactly_the_allowed_moves():
    actual = {(source, target) for target, sources in TRANSITIONS.items() for source in sources}
    assert actual == ALLOWED


@pytest.mark.parametrize("source,target", list(itertools.product(JobStatus, JobStatus)))
def test_every_pair_of_states(source, target):
    assert (source in TRANSITIONS.get(target, frozenset())) == ((source, target) in ALLOWED)


@pytest.mark.parametrize("source", sorted(TERMINAL))
def test_no_transition_leaves_a_terminal_state(source):
    assert all(source not in sources for sources in TRANSITIONS.values())


def test_nothing_returns_a_job_to_queued():
    assert Q not in TRANSITIONS


def test_succeeded_only_from_running():
    assert TRANSITIONS[S] == frozenset({R})


def test_terminal_property():
    assert {s for s in JobStatus if s.terminal} == {S, F, C} == set(TERMINAL)
    assert not Q.terminal and not R.terminal
    assert make_job(S).terminal and not make_job(R).terminal


# ---------------------------------------------------------------- the conditional update

_PLACEHOLDER = re.compile(r"[#:][A-Za-z0-9_]+")


def parse_update(update: dict) -> tuple[dict, list[str], set[str]]:
    """(SET attribute -> python value, REMOVEd attributes, statuses the condition accepts)."""
    names, values = update["ExpressionAttributeNames"], update["ExpressionAttributeValues"]

    def value(placeholder: str):
        return dynamo.deserialize({"v": values[placeholder]})["v"]

    m = re.fullmatch(r"SET (?P<set>.+?)(?: REMOVE (?P<remove>.+))?", update["UpdateExpression"])
    assert m, update["UpdateExpression"]
    sets: dict = {}
    for clause in m["set"].split(", "):
        name, _, placeholder = clause.partition(" = ")
        assert names[name] not in sets, f"{names[name]} set twice"
        sets[names[name]] = value(placeholder)
    removes = [names[n] for n in m["remove"].split(", ")] if m["remove"] else []

    c = re.fullmatch(r"(?P<name>#\w+) IN \((?P<values>[^)]*)\) AND (?P<ws>#\w+) = (?P<ws_value>:\w+)",
                     update["ConditionExpression"])
    assert c, update["ConditionExpression"]
    assert names[c["name"]] == "status"
    assert names[c["ws"]] == "workspace_id"
    sources = {value(p.strip()) for p in c["values"].split(",")}
    return sets, removes, sources


def _used_placeholders(update: dict) -> set[str]:
    text = update["UpdateExpression"] + " " + update["ConditionExpression"]
    return set(_PLACEHOLDER.findall(text))


@pytest.mark.parametrize("target", list(TRANSITIONS))
def test_condition_allows_exactly_the_source_states(store, target):
    _, _, sources = parse_update(store.transition_update(make_job(), target, now=NOW))
    assert sources == {s.value for s in TRANSITIONS[target]}


@pytest.mark.parametrize("target", list(TRANSITIONS))
def test_condition_pins_the_workspace_of_the_job_or_key(store, target):
    # A transition from a key alone (no read first) must not apply to a job of another workspace.
    for job in (make_job(), JobKey(make_job().id, "ws_other")):
        update = store.transition_update(job, target, now=NOW)
        placeholder = update["ConditionExpression"].rsplit(" = ", 1)[1]
        assert update["ExpressionAttributeValues"][placeholder] == {"S": job.workspace_id}


@pytest.mark.parametrize("target", list(TRANSITIONS))
def test_update_targets_the_job_and_table(store, target):
    job = make_job()
    update = store.transition_update(job, target, now=NOW)
    assert update["TableName"] == "jobs-under-test"
    assert update["Key"] == {"id": {"S": job.id}}


@pytest.mark.parametrize("target", list(TRANSITIONS))
def test_every_placeholder_is_defined_and_used(store, target):
    # DynamoDB refuses both undefined and unused ExpressionAttributeNames/Values.
    update = store.transition_update(make_job(), target, set_fields={"progress": {"step": 1, "total": 2}},
                                     now=NOW)
    defined = set(update["ExpressionAttributeNames"]) | set(update["ExpressionAttributeValues"])
    assert _used_placeholders(update) == defined


@pytest.mark.parametrize("target", list(TRANSITIONS))
def test_update_sets_status_and_index_key(store, target):
    sets, _, _ = parse_update(store.transition_update(make_job(), target, now=NOW))
    assert sets["status"] == target.value
    assert sets["workspace_status"] == f"ws_1#{target.value}"
    assert sets["updated_at"] == NOW


@pytest.mark.parametrize("target", sorted(TERMINAL))
def test_terminal_targets_leave_the_sweeper_index(store, target):
    sets, removes, _ = parse_update(store.transition_update(make_job(R), target, now=NOW))
    assert sorted(removes) == ["active_shard", "deadline", "run_deadline"]
    assert sets["finished_at"] == NOW
    assert "deadline" not in sets and "active_shard" not in sets
    assert "started_at" not in sets


def test_running_sets_start_and_run_deadline_and_stays_indexed(store):
    sets, removes, _ = parse_update(store.transition_update(make_job(Q), R, now=NOW))
    assert removes == []
    assert sets["started_at"] == NOW
    assert sets["deadline"] == NOW + 900  # DARKROOM_RUN_DEADLINE_SECONDS
    assert sets["run_deadline"] == sets["deadline"]  # what a dispatch recorded later keeps (record_dispatch)
    assert "finished_at" not in sets


def test_set_fields_are_written(store):
    error = JobError(code="boom", message="it broke").model_dump()
    outputs = [Output(key="ws_1/generations/j/0.png", content_type="image/png").model_dump()]
    sets, _, _ = parse_update(store.transition_update(make_job(R), F, set_fields={"error": error,
                                                                                   "outputs": outputs}, now=NOW))
    assert sets["error"] == error
    assert sets["outputs"] == outputs


def test_update_uses_current_time_when_now_is_omitted(store, monkeypatch):
    monkeypatch.setattr(clock, "now", lambda: 1234.5)
    sets, _, _ = parse_update(store.transition_update(make_job(), C))
    assert sets["updated_at"] == sets["finished_at"] == 1234.5


# ---------------------------------------------------------------- the stored item


@pytest.mark.parametrize("status", [Q, R])
def test_unfinished_item_carries_the_index_attributes(status):
    job = make_job(status)
    item = job.to_item()
    assert item["created_key"] == created_key(job.created_at, job.id) == f"{1_700_000_000_250:014d}#{job.id}"
    assert item["workspace_status"] == f"ws_1#{status.value}"
    assert item["status"] == status.value
    assert item["active_shard"] in {str(i) for i in range(ACTIVE_SHARDS)}


@pytest.mark.parametrize("status", sorted(TERMINAL))
def test_finished_item_has_no_active_shard(status):
    item = make_job(status).to_item()
    assert "active_shard" not in item
    assert item["workspace_status"] == f"ws_1#{status.value}"


def test_active_shards_spread_over_every_partition():
    shards = {make_job().to_item()["active_shard"] for _ in range(400)}
    assert shards == {str(i) for i in range(ACTIVE_SHARDS)}


def test_expires_at_follows_retention_days():
    job = make_job()
    assert job.to_item()["expires_at"] == int(job.created_at + 7 * 86400)


def test_expires_at_changes_with_the_setting(monkeypatch):
    monkeypatch.setenv("DARKROOM_JOB_RETENTION_DAYS", "30")
    get_settings.cache_clear()
    job = make_job()
    expires = job.to_item()["expires_at"]
    assert isinstance(expires, int)
    assert expires == int(job.created_at) + 30 * 86400


def test_created_key_sorts_by_time():
    early = created_key(999.999, "zzz")
    late = created_key(1000.0, "aaa")
    much_later = created_key(1_700_000_000.0, "aaa")
    assert early < late < much_later


def test_item_survives_dynamodb_serialization():
    job = make_job(R, outputs=[Output(key="k", content_type="image/png", width=512, height=512)],
                   params={"guidance": 0.5, "steps": 4}, progress={"step": 2, "total": 4})
    stored = dynamo.deserialize(dynamo.serialize(job.to_item()))
    assert Job.from_item(stored) == job
