"""Cold-start cost of each Lambda handler: the time to import it in a fresh interpreter, next to a bare handler.

    python -m infra.bench.coldstart [--runs 7]

The handlers are every `Handler` in template.yaml. The baseline is the least a Darkroom function can import:
boto3, pydantic, the Powertools HTTP resolver and Logger. Each run starts a new interpreter per module,
alternating baseline and handlers, so a busy machine slows both alike; the median of the runs is reported,
with each handler's ratio to the baseline's median (ratios, not milliseconds, compare across machines).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from dataclasses import dataclass

from infra.local.template import functions, load

BASELINE = ("import boto3, pydantic\n"
            "from aws_lambda_powertools import Logger\n"
            "from aws_lambda_powertools.event_handler import APIGatewayHttpResolver")
BASELINE_NAME = "bare handler (boto3, pydantic, Powertools resolver and Logger)"
RUNS = 7


@dataclass
class Row:
    name: str
    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def import_seconds(code: str) -> float:
    """One fresh interpreter: the seconds `code` (imports) takes, measured inside it."""
    timed = f"import time\nt = time.perf_counter()\n{code}\nprint(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", timed], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def handler_modules() -> dict[str, str]:
    """Logical id -> handler module, from template.yaml."""
    return {lid: spec.handler.rpartition(".")[0] for lid, spec in functions(load()).items()}


def measure(runs: int = RUNS) -> tuple[Row, dict[str, Row]]:
    modules = handler_modules()
    baseline = Row(BASELINE_NAME, [])
    rows = {lid: Row(module, []) for lid, module in modules.items()}
    for _ in range(runs):
        for lid, module in modules.items():  # alternate: baseline, handler, baseline, handler...
            baseline.samples.append(import_seconds(BASELINE))
            rows[lid].samples.append(import_seconds(f"import {module}"))
    return baseline, rows


def render(baseline: Row, rows: dict[str, Row], runs: int) -> str:
    lines = [f"| function | module | import ms (median of {runs}) | × bare handler |", "|---|---|---:|---:|",
             f"| - | {baseline.name} | {baseline.median * 1000:.0f} | 1.00 |"]
    lines += [f"| {lid} | `{row.name}` | {row.median * 1000:.0f} | {row.median / baseline.median:.2f} |"
              for lid, row in rows.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args(argv)
    print(render(*measure(args.runs), args.runs))


if __name__ == "__main__":
    main()
