"""A cold start as a caller sees it: the handler's import, then its first request, then a warm one.

    python -m infra.bench.first_request [--runs 7]

A fresh interpreter per run imports the api handler and serves one route's event twice, against a moto
server holding template.yaml's resources (infra/bench/harness.py). The first request pays what the import
left for later (the schemas of the models it validates, the clients it makes, the key lookup); the second is
the warm cost. The events are the local gateway's own (infra/local/gateway.py), as API Gateway sends them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, field

from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from .harness import Harness, image_body, in_process_stack

RUNS = 7
CHILD = """
import json, sys, time
events = json.load(sys.stdin)
started = time.perf_counter()
import functions.api.handler as api
imported = time.perf_counter()
from infra.local.lambda_runtime import LambdaContext
times, statuses = [], []
for event in events:
    t = time.perf_counter()
    response = api.handler(event, LambdaContext("ApiFunction", 1024, 30))
    times.append(time.perf_counter() - t)
    statuses.append(response["statusCode"])
print(json.dumps({"import": imported - started, "requests": times, "statuses": statuses}))
"""


@dataclass
class RouteRow:
    name: str
    imports: list[float] = field(default_factory=list)
    first: list[float] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)


def _event(harness: Harness, method: str, path: str, **kwargs) -> dict:
    request = Request(EnvironBuilder(method=method, path=path, headers=harness.headers, **kwargs).get_environ())
    route, params = harness.gateway.match(method, path)
    assert route is not None, (method, path)
    return harness.gateway.to_event(request, route, params)


def measure(runs: int = RUNS) -> dict[str, RouteRow]:
    with in_process_stack() as harness:
        submitted = harness.api.post("/api/run", json=image_body(), headers=harness.headers)
        assert submitted.status_code == 202, submitted.get_data(as_text=True)
        job_id = submitted.get_json()["id"]
        harness.finish_jobs()
        routes = {
            "`GET /api/generations/{id}` status read": _event(harness, "GET", f"/api/generations/{job_id}"),
            "`POST /api/run` submit": _event(harness, "POST", "/api/run", json=image_body(1)),
            "`GET /v1/models` (OpenAI SDK)": _event(harness, "GET", "/v1/models"),
            "`GET /api/v1/models` (AI Media Studio)": _event(harness, "GET", "/api/v1/models"),
        }
        rows = {name: RouteRow(name) for name in routes}
        for _ in range(runs):
            for name, event in routes.items():  # alternating, so a busy moment slows every route alike
                out = subprocess.run([sys.executable, "-c", CHILD], input=json.dumps([event, event]),
                                     capture_output=True, text=True, env=dict(os.environ), check=True)
                result = json.loads(out.stdout.strip().splitlines()[-1])
                assert all(200 <= s < 300 for s in result["statuses"]), (name, result, out.stderr[-2000:])
                rows[name].imports.append(result["import"])
                rows[name].first.append(result["requests"][0])
                rows[name].warm.append(result["requests"][1])
    return rows


def render(rows: dict[str, RouteRow], runs: int) -> str:
    def ms(samples: list[float]) -> str:
        return f"{statistics.median(samples) * 1000:.0f}"

    lines = [(f"| api function, route | import ms | first request ms | import + first ms | warm request ms "
             f"| (medians of {runs}) |"), "|---|---:|---:|---:|---:|---|"]
    for row in rows.values():
        cold = [i + f for i, f in zip(row.imports, row.first, strict=True)]
        lines.append(f"| {row.name} | {ms(row.imports)} | {ms(row.first)} | {ms(cold)} | {ms(row.warm)} | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args(argv)
    print(render(measure(args.runs), args.runs))


if __name__ == "__main__":
    main()
