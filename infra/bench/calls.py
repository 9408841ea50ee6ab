"""AWS calls per warm request, per route, in every dialect.

    python -m infra.bench.calls

Each request runs twice through the api function (in-process, behind the gateway's event translation, a
moto server over HTTP); the second is counted: the function is warm, its clients are made and the API
key is in the 30 s lookup cache. Counting is infra/bench_calls.py's botocore hook (the one docs/cost.md
uses), attributed to the thread that served the request, so the pollers and the GPU worker running
beside a synchronous call are not counted against it.

Synchronous routes (OpenAI, AI Media Studio) include their wait: one GetItem per poll of the job, so their
count depends on how long the job takes; the table says how many of their calls were polls.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from werkzeug.test import Client

from infra.bench_calls import Calls, count_aws_calls

from .harness import Harness, image_body, in_process_stack

API_THREAD = "invoke-ApiFunction"  # infra/local/gateway.py runs each invocation on a thread named so


@dataclass(frozen=True)
class Probe:
    dialect: str
    name: str
    method: str
    path: str  # "{id}" is the id of a job submitted beforehand
    body: dict[str, Any] | None = None
    sync: bool = False  # waits for its job (the dispatch and complete pollers must run)


SMALL = {"prompt": "a lighthouse at dusk", "size": "256x256"}
PROBES = [
    Probe("native", "submit", "POST", "/api/run", image_body()),
    Probe("native", "submit by model", "POST", "/api/generate",
          {"model": "flux-schnell", "input": {"prompt": "a lighthouse", "size": "256x256"}}),
    Probe("native", "status", "GET", "/api/generations/{id}"),
    Probe("native", "list", "GET", "/api/generations?limit=10"),
    Probe("native", "cancel", "POST", "/api/generations/{id}/cancel"),
    Probe("native", "models", "GET", "/api/models"),
    Probe("native", "tools", "GET", "/api/tools"),
    Probe("native", "account", "GET", "/api/account"),
    Probe("openai", "models", "GET", "/v1/models"),
    Probe("openai", "images.generate (sync)", "POST", "/v1/images/generations", SMALL, sync=True),
    Probe("aims", "models", "GET", "/api/v1/models"),
    Probe("aims", "images/generate (sync)", "POST", "/api/v1/images/generate", SMALL, sync=True),
]


@dataclass
class Measured:
    probe: Probe
    status: int
    ops: Counter  # (service, operation) -> calls of the counted (warm) request

    @property
    def total(self) -> int:
        return sum(self.ops.values())


def request_ops(calls: Calls, before: Counter) -> Counter:
    """The api function's calls since `before` (a copy of calls.by_thread), by (service, operation)."""
    out: Counter = Counter()
    for (thread, service, op), n in (calls.by_thread - before).items():
        if thread.startswith(API_THREAD):
            out[(service, op)] += n
    return out


def warm_ops(api: Client, calls: Calls, method: str, path: str, body: dict | None = None, *,
             headers: dict[str, str]) -> tuple[int, Counter]:
    """Send the request twice through `api` (a client of the gateway's WSGI app); the second one's status
    and calls. Only clients made inside `calls`' block report, so make the first request inside it."""
    for attempt in range(2):
        before = Counter(calls.by_thread)
        resp = api.open(path, method=method, json=body, headers=headers)
        if attempt:
            return resp.status_code, request_ops(calls, before)
    raise AssertionError("unreachable")


@contextmanager
def pollers_running(harness: Harness) -> Iterator[None]:
    """Dispatch and complete polling in the background, so synchronous calls' jobs finish."""
    running = [harness.pollers["DispatchFunction"], harness.pollers["CompleteFunction"]]
    for poller in running:
        poller.wait_seconds = 1
        poller.start()
    try:
        yield
    finally:
        for poller in running:
            poller._stop.set()
        for poller in running:
            poller.stop()
            poller._stop.clear()
            poller._threads.clear()
            poller.wait_seconds = 0


def measure(probes: list[Probe] = PROBES) -> list[Measured]:
    out = []
    with count_aws_calls() as calls, in_process_stack() as harness:
        for probe in probes:
            path = probe.path
            if "{id}" in path:
                submitted = harness.api.post("/api/run", json=image_body(), headers=harness.headers)
                assert submitted.status_code == 202, submitted.get_data(as_text=True)
                path = path.replace("{id}", submitted.json["id"])
            if probe.sync:
                with pollers_running(harness):
                    status, ops = warm_ops(harness.api, calls, probe.method, path, probe.body, headers=harness.headers)
            else:
                status, ops = warm_ops(harness.api, calls, probe.method, path, probe.body, headers=harness.headers)
            out.append(Measured(probe, status, ops))
        harness.finish_jobs()
    return out


def render(rows: list[Measured]) -> str:
    lines = ["| dialect | request | HTTP | AWS calls | operations |", "|---|---|---:|---:|---|"]
    for row in rows:
        ops = ", ".join(f"{op} x{n}" if n > 1 else op for (_service, op), n in sorted(row.ops.items()))
        note = " (GetItem: one per poll of the job while waiting)" if row.probe.sync else ""
        lines.append(f"| {row.probe.dialect} | `{row.probe.method} {row.probe.path}` {row.probe.name} | "
                     f"{row.status} | {row.total} | {ops or '-'}{note} |")
    return "\n".join(lines)


def main() -> None:
    print(render(measure()))


if __name__ == "__main__":
    main()
