"""Throughput and latency under concurrency: CLIENTS clients at once against the local stack's function URL.

    python -m infra.bench.load [--clients 20] [--requests 10]

Each client sends `requests` submits (`POST /api/run`), then as many status reads of its jobs, over its own
HTTP connection. The jobs are held back from the worker (DARKROOM_WORKER_DELAY_SECONDS), so the GPU
worker's CPU does not compete with the API being measured: this is the API path alone.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from infra.local.stack import LocalStack

from .orchestration import percentile


@dataclass
class Result:
    kind: str
    latencies: list[float]
    wall: float
    errors: int

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0


def _burst(url: str, headers: dict[str, str], clients: int, make_request) -> tuple[list[float], float, int]:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def client(index: int) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
            barrier.wait()
            for request in make_request(index):
                t = time.perf_counter()
                resp = request(http)
                elapsed = time.perf_counter() - t
                with lock:
                    latencies.append(elapsed)
                    errors[0] += resp.status_code >= 400

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return latencies, time.perf_counter() - start, errors[0]


def measure(clients: int = 20, requests: int = 10, data_dir: Path | None = None) -> list[Result]:
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="darkroom-bench-load-"))
    stack = LocalStack(port=0, gateway_port=0, data_dir=data_dir, warm_models=False,
                       env={"DARKROOM_WORKER_DELAY_SECONDS": "3600"})
    try:
        info = stack.start()
        headers = {"Authorization": info.api_key}
        ids: dict[int, list[str]] = {i: [] for i in range(clients)}

        def submits(index: int):
            def one(n: int):
                def send(http: httpx.Client) -> httpx.Response:
                    resp = http.post("/api/run", json={"tool": "create-image", "input": {
                        "prompt": f"client {index} job {n}", "size": "256x256"}})
                    if resp.status_code == 202:
                        ids[index].append(resp.json()["id"])
                    return resp
                return send
            return [one(n) for n in range(requests)]

        def reads(index: int):
            return [lambda http, job_id=job_id: http.get(f"/api/generations/{job_id}") for job_id in ids[index]]

        # Warm-up: one submit per client, so the function's environments exist (cold starts are measured apart).
        _burst(info.url, headers, clients, lambda index: submits(index)[:1])
        for values in ids.values():
            values.clear()
        out = []
        for kind, make in (("submit", submits), ("status read", reads)):
            latencies, wall, errors = _burst(info.url, headers, clients, make)
            out.append(Result(kind, latencies, wall, errors))
        return out
    finally:
        stack.stop()


def render(results: list[Result], clients: int) -> str:
    lines = [f"| {clients} clients | requests | errors | p50 ms | p99 ms | requests/s |", "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        ms = [x * 1000 for x in r.latencies]
        lines.append(f"| {r.kind} | {len(ms)} | {r.errors} | {percentile(ms, 50):.0f} | {percentile(ms, 99):.0f} | "
                     f"{r.throughput:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=10)
    args = parser.parse_args(argv)
    print(render(measure(args.clients, args.requests), args.clients))


if __name__ == "__main__":
    main()
