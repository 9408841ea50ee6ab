"""Transactions that meet another on the same item (a workspace's credits) are retried, not answered with a 500:
DynamoDB cancels them with a TransactionConflict reason, which botocore does not retry."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from functions.core import dynamo


class TransactionCanceled(ClientError):
    pass


def _canceled(*codes: str) -> TransactionCanceled:
    return TransactionCanceled({"Error": {"Code": "TransactionCanceledException", "Message": "canceled"},
                                "CancellationReasons": [{"Code": c} for c in codes]}, "TransactWriteItems")


class FakeDynamo:
    """Cancels its first transactions with the given reasons, then commits."""

    class exceptions:
        TransactionCanceledException = TransactionCanceled

    def __init__(self, *failures: tuple[str, ...]) -> None:
        self.failures = list(failures)
        self.calls = 0

    def transact_write_items(self, TransactItems):
        self.calls += 1
        if self.failures:
            raise _canceled(*self.failures.pop(0))
        return {"committed": len(TransactItems)}


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(dynamo.time, "sleep", lambda seconds: None)


def test_a_conflict_is_retried_until_the_transaction_commits():
    ddb = FakeDynamo(("None", "TransactionConflict"), ("TransactionConflict", "None"))
    assert dynamo.transact_write(ddb, [{"Put": {}}, {"Update": {}}]) == {"committed": 2}
    assert ddb.calls == 3


def test_a_failed_condition_is_not_retried():
    ddb = FakeDynamo(("None", "ConditionalCheckFailed"))
    with pytest.raises(TransactionCanceled) as caught:
        dynamo.transact_write(ddb, [{"Put": {}}, {"Update": {}}])
    assert ddb.calls == 1 and not dynamo.conflicted(caught.value)


def test_conflicts_past_the_retries_are_raised_as_conflicts():
    ddb = FakeDynamo(*[("TransactionConflict",)] * (dynamo.CONFLICT_RETRIES + 1))
    with pytest.raises(TransactionCanceled) as caught:
        dynamo.transact_write(ddb, [{"Update": {}}])
    assert ddb.calls == dynamo.CONFLICT_RETRIES + 1 and dynamo.conflicted(caught.value)


def test_a_submit_that_keeps_conflicting_is_a_503_and_charges_nothing(monkeypatch):
    """Past the retries, the submit answers 503 (retry), not 500: the reservation and the job were not written."""
    from functions.core import submit
    from functions.core.errors import ServiceUnavailable
    from functions.core.jobs import Job

    ddb = FakeDynamo(*[("None", "TransactionConflict")] * (dynamo.CONFLICT_RETRIES + 1))
    store = type("Store", (), {"ddb": ddb, "put_new_item": lambda self, job: {"Item": {}}})()
    monkeypatch.setattr(submit.credits, "reserve_update", lambda workspace_id, cost: {"Key": {}})
    job = Job(id="j1", workspace_id="w1", model="sdxl-turbo", task="text-to-image", params={}, created_at=0, cost=1)
    with pytest.raises(ServiceUnavailable, match="nothing was charged"):
        submit.reserve(job, store)
