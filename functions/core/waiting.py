"""Waiting for a job inside a synchronous call (OpenAI and AI Media Studio dialects), and how long a wait
may last on the host the call came through.

Polls the job record with a short, growing interval. On timeout it raises GatewayTimeout carrying the
job id: the job goes on, stays pollable through GET /api/generations/{id}, and nothing is lost.

The one place that knows each host's limit (docs/sync-calls.md):
- the Lambda function URL (ApiUrl, the URL the README hands out) has no gateway in front; a wait may last
  the configured DARKROOM_SYNC_WAIT_SECONDS, bounded by what is left of the function's timeout and by the
  OpenAI SDK's default 600 s client timeout;
- the API Gateway HTTP API (GatewayUrl) cuts every integration at 30 s (not raisable), so a wait there
  ends early enough for Darkroom's own 504 to answer first.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from enum import Enum
from typing import Any

from .errors import GatewayTimeout
from .jobs import Job, JobStore
from .settings import get_settings

# API Gateway HTTP API's integration timeout (a hard quota) and the time kept back to render the answer.
GATEWAY_INTEGRATION_SECONDS = 30.0
GATEWAY_MARGIN_SECONDS = 5.0
# Kept back from the function's timeout: reading outputs for base64, the balance, the response itself.
FUNCTION_MARGIN_SECONDS = 10.0
# The official OpenAI SDK gives up on a request after 600 s by default; answer well before it does.
CLIENT_TIMEOUT_SECONDS = 600.0
CLIENT_MARGIN_SECONDS = 30.0


class Host(str, Enum):
    FUNCTION_URL = "function_url"
    API_GATEWAY = "api_gateway"


def host_of(request_context: Mapping[str, Any]) -> Host:
    """Which front door a payload-v2 event came through.

    Function URL events carry the URL's own domain (<url-id>.lambda-url.<region>.on.aws, kept even behind
    CloudFront, which must forward that Host) and, with AuthType NONE (template.yaml), the accountId
    "anonymous". HTTP API events carry the execute-api or a custom domain and the account's id. The routeKey
    tells nothing: Darkroom's HTTP API has one catch-all route, whose events carry "$default" as function
    URL events do. Anything unrecognised gets the gateway's short limit: answering early is safe, being cut by
    a platform is not.
    """
    domain = str(request_context.get("domainName") or "")
    if ".lambda-url." in domain:
        return Host.FUNCTION_URL
    if ".execute-api." in domain:
        return Host.API_GATEWAY
    return Host.FUNCTION_URL if request_context.get("accountId") == "anonymous" else Host.API_GATEWAY


def wait_budget(host: Host, *, configured: float, elapsed: float = 0.0,
                remaining: float | None = None) -> float:
    """Seconds a synchronous call may still wait for its job.

    `elapsed` is how long the request has already taken (cold start, auth, submit); `remaining` is what is
    left of the function's own timeout (the Lambda context's remaining time), if known.
    """
    elapsed = max(elapsed, 0.0)
    if host is Host.API_GATEWAY:
        budget = min(configured, GATEWAY_INTEGRATION_SECONDS - GATEWAY_MARGIN_SECONDS - elapsed)
    else:
        budget = min(configured, CLIENT_TIMEOUT_SECONDS - CLIENT_MARGIN_SECONDS - elapsed)
        if remaining is not None:
            budget = min(budget, remaining - FUNCTION_MARGIN_SECONDS)
    return max(budget, 0.0)


def wait_for(job: Job, *, timeout: float | None = None, store: JobStore | None = None, hint: str = "") -> Job:
    """The job once terminal, or GatewayTimeout (with the job id, and `hint` appended) after `timeout`."""
    store = store or JobStore()
    timeout = timeout if timeout is not None else get_settings().sync_wait_seconds
    deadline = time.monotonic() + timeout
    # Short at first (a small job finishes within a few polls), growing to 1 s so a long video costs one
    # GetItem a second, not ten.
    interval = 0.05
    while True:
        current = store.get(job.id, consistent=True) or job
        if current.terminal:
            return current
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise GatewayTimeout(
                f"Generation {job.id} is still running after {timeout:.0f}s; poll GET /api/generations/{job.id}"
                f"{hint}", job_id=job.id)
        time.sleep(min(interval, remaining))
        interval = min(interval * 1.5, 1.0)
