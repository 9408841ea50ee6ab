"""`make stress` at a small size against the session's `darkroom dev`: nothing lost, no credit drift."""

from __future__ import annotations

import pytest

from infra.stress import run

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


def test_twenty_jobs_from_four_clients_lose_nothing_and_drift_nothing(stack):
    report = run(stack.url, stack.api_key, jobs=20, clients=4, timeout=300)
    print("\n" + report.markdown())
    assert (report.accepted, report.rejected) == (20, 0)
    assert report.lost == 0, f"{report.lost} accepted jobs never reached a terminal state"
    assert report.succeeded == 20
    assert report.drift == 0
    assert len(report.submit_ms) == 20 and report.status_ms
