"""Cold-start cost of each Lambda handler: the time to import it in a fresh interpreter.

`python -m infra.bench_coldstart` prints a table and writes docs/cold-start.md. Each handler is imported in
a new process several times; the median is reported, with the ratio to a bare `import boto3` measured in
the same run (boto3 is the floor every function pays), so figures from a busy machine still compare.
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HANDLERS = ["functions.api.handler", "functions.dispatch.handler", "functions.complete.handler",
            "functions.webhooks.handler", "functions.sweeper.handler"]
RUNS = 7
DOC = Path(__file__).resolve().parents[1] / "docs" / "cold-start.md"


def import_seconds(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    samples = []
    for _ in range(RUNS):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        samples.append(float(out.stdout.strip()))
    return statistics.median(samples)


def main() -> None:
    floor = import_seconds("boto3")
    rows = [(module, import_seconds(module)) for module in HANDLERS]
    lines = [f"| handler | import (ms, median of {RUNS}) | × import boto3 |", "|---|---:|---:|",
             f"| boto3 alone | {floor * 1000:.0f} | 1.0 |"]
    lines += [f"| {module} | {seconds * 1000:.0f} | {seconds / floor:.1f} |" for module, seconds in rows]
    table = "\n".join(lines)
    print(table)
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(
        "# Lambda cold start: handler import time\n\n"
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, Python {platform.python_version()}, "
        f"{subprocess.run(['nproc'], capture_output=True, text=True, check=True).stdout.strip()} cores, "
        "with `python -m infra.bench_coldstart`. Lambda's init adds the runtime's own start to these.\n\n"
        f"{table}\n\n"
        "What is kept off the path: modal (imported by the dispatch function on first spawn only), torch and "
        "diffusers (never in a Lambda), the X-Ray SDK (active tracing needs no SDK), the Powertools idempotency "
        "persistence layer (built on the first request that sends Idempotency-Key).\n")


if __name__ == "__main__":
    main()
