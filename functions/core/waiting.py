"""Waiting for a job inside a synchronous call (OpenAI and AI Media Studio dialects).

Polls the job record with a short, growing interval. On timeout it raises GatewayTimeout carrying the
job id: the job goes on, stays pollable through GET /api/generations/{id}, and nothing is lost.
"""

from __future__ import annotations

import time

from .errors import GatewayTimeout
from .jobs import Job, JobStore
from .settings import get_settings


def wait_for(job: Job, *, timeout: float | None = None, store: JobStore | None = None) -> Job:
    store = store or JobStore()
    timeout = timeout if timeout is not None else get_settings().sync_wait_seconds
    deadline = time.monotonic() + timeout
    interval = 0.1
    while True:
        current = store.get(job.id, consistent=True) or job
        if current.terminal:
            return current
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise GatewayTimeout(
                f"Generation {job.id} is still running after {timeout:g}s; poll GET /api/generations/{job.id}",
                job_id=job.id)
        time.sleep(min(interval, remaining))
        interval = min(interval * 1.5, 1.0)
