"""Orchestration overhead and webhook latency in the local stack (`darkroom dev`'s own LocalStack).

    python -m infra.bench.orchestration [--jobs 30]

Jobs run one at a time, each a small native `POST /api/run` with a webhook to a loopback receiver, through
the function URL host over real HTTP. The client polls `GET /api/generations/{id}` every POLL_SECONDS.
Per job, from the client's clock and the job record (one clock: everything runs on this machine):

- gateway: a round trip through the HTTP API host to no function (its 404): the front door alone;
- submit: the client's POST round trip;
- queue wait: accepted (created_at) until the dispatch function claims it (dispatch.claimed_at);
- dispatch: claimed until the worker takes it (started_at): the spawn and the worker pool's pickup;
- worker: the worker's own time (its timings: load, fetch, inference, encode, upload);
- complete: started + worker until the terminal write (finished_at): the results queue and the complete step;
- status read: the client's last GET round trip; seen: finished_at until the client sees it (poll phase);
- overhead: submit sent until the client sees the terminal state, minus the worker's own time;
- webhook: finished_at until the receiver has the delivery.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import httpx

from infra.local.receiver import WebhookReceiver
from infra.local.stack import LocalStack

POLL_SECONDS = 0.02
WORKER_STAGES = ("fetch", "load", "inference", "encode", "upload")
STAGES = ("gateway", "submit", "queue wait", "dispatch", "worker", "complete", "status read", "seen", "overhead",
          "webhook")


def _job_id(payload: dict) -> str:
    data = payload.get("data") or payload
    return str(data.get("id") or data.get("_id") or "")


def _delivered_at(receiver: WebhookReceiver, job_id: str, timeout: float = 30) -> float | None:
    """When the job's first webhook reached the receiver (None if it never did within `timeout`)."""
    def arrived(requests: list[dict]) -> float | None:
        return next((r["at"] for r in requests if _job_id(json.loads(r["body"])) == job_id), None)

    receiver.wait_until(lambda requests: arrived(requests) is not None, timeout)
    return arrived(receiver.requests)


@dataclass
class Sample:
    stages: dict[str, float] = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): an observed value, reproducible."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


def run_job(http: httpx.Client, url: str, headers: dict[str, str], jobs_table, receiver: WebhookReceiver, i: int,
            gateway_url: str) -> Sample:
    sample = Sample()
    t0 = time.time()
    http.get(f"{gateway_url}/no-such-route")
    sample.stages["gateway"] = time.time() - t0
    body = {"tool": "create-image", "webhook": receiver.url,
            "input": {"prompt": f"a lighthouse at dusk, study {i}", "size": "256x256", "seed": i}}
    sent = time.time()
    resp = http.post(f"{url}/api/run", json=body, headers=headers)
    resp.raise_for_status()
    sample.stages["submit"] = time.time() - sent
    job_id = resp.json()["id"]
    while True:
        t = time.time()
        status = http.get(f"{url}/api/generations/{job_id}", headers=headers).json()
        seen = time.time()
        if status["status"] in ("success", "error"):
            break
        time.sleep(POLL_SECONDS)
    sample.stages["status read"] = seen - t
    delivered = _delivered_at(receiver, job_id)
    item = jobs_table.get_item(Key={"id": job_id}, ConsistentRead=True)["Item"]
    created, started, finished = (float(item[k]) for k in ("created_at", "started_at", "finished_at"))
    claimed = float(item["dispatch"]["claimed_at"])
    worker = sum(float(item.get("timings", {}).get(k, 0)) for k in WORKER_STAGES)
    sample.stages.update({
        "queue wait": claimed - created, "dispatch": started - claimed, "worker": worker,
        "complete": finished - started - worker, "seen": seen - finished, "overhead": seen - sent - worker,
        "webhook": (delivered - finished) if delivered else float("nan"),
    })
    return sample


def measure(jobs: int = 30, warmup: int = 2, data_dir: Path | None = None) -> list[Sample]:
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="darkroom-bench-orch-"))
    stack = LocalStack(port=0, gateway_port=0, data_dir=data_dir)
    receiver = WebhookReceiver()
    try:
        info = stack.start()
        headers = {"Authorization": info.api_key}
        table = boto3.resource("dynamodb", endpoint_url=info.moto_endpoint, region_name="us-east-1",
                               aws_access_key_id="local", aws_secret_access_key="local").Table(
            stack.env["DARKROOM_JOBS_TABLE"])
        with httpx.Client(timeout=60) as http:
            for i in range(warmup):  # the tiny models built and loaded, every environment warm
                run_job(http, info.url, headers, table, receiver, 10_000 + i, info.gateway_url)
            return [run_job(http, info.url, headers, table, receiver, i, info.gateway_url) for i in range(jobs)]
    finally:
        receiver.close()
        stack.stop()


def render(samples: list[Sample]) -> str:
    lines = ["| stage | p50 ms | p99 ms | mean ms |", "|---|---:|---:|---:|"]
    for stage in STAGES:
        values = [s.stages[stage] * 1000 for s in samples if s.stages.get(stage) == s.stages.get(stage)]
        if values:
            lines.append(f"| {stage} | {percentile(values, 50):.0f} | {percentile(values, 99):.0f} | "
                         f"{statistics.fmean(values):.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=30)
    args = parser.parse_args(argv)
    print(render(measure(args.jobs)))


if __name__ == "__main__":
    main()
