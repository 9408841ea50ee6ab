"""Cold-start cost of each Lambda handler: the time to import it in a fresh interpreter, next to a bare handler.

    python -m infra.bench.coldstart [--runs 7] [--artifacts]

The handlers are every `Handler` in template.yaml. The baseline is the least a Darkroom function can import:
boto3, pydantic, the Powertools HTTP resolver and Logger. Each run starts a new interpreter per module,
alternating baseline and handlers, so a busy machine slows both alike; the median of the runs is reported,
with each handler's ratio to the baseline's median (ratios, not milliseconds, compare across machines).

`--artifacts` also builds every artifact for this machine (infra/build) and imports each handler from it as
Lambda does (infra/build/sandbox.py: isolated, read-only), with the bytecode the build ships and without it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

from infra.build import artifacts, sandbox
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


# ---- from the artifacts, as Lambda imports them
@dataclass
class ArtifactRow:
    name: str
    bytecode: list[float]  # as built: the runtime's .pyc shipped
    source: list[float]  # the same artifact without its __pycache__ (what the build shipped before)


def _timed_import(python: str, code: str, paths: list[Path], env: dict[str, str]) -> float:
    timed = f"import time\nt = time.perf_counter()\n{code}\nprint(time.perf_counter() - t)"
    result = sandbox.run(python, timed, paths, env, cwd=paths[0])
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return float(result.stdout.strip().splitlines()[-1])


def _without_bytecode(root: Path, into: Path) -> Path:
    shutil.copytree(root, into, ignore=shutil.ignore_patterns("__pycache__"))
    return into


def measure_artifacts(runs: int = RUNS) -> tuple[ArtifactRow, dict[str, ArtifactRow]]:
    """Each handler imported from its own artifact, built for this machine with the template's Python, in the
    isolated, read-only way Lambda imports it: with the shipped bytecode, and from source alone."""
    template = load()
    version = artifacts.runtime_version(template)
    python = artifacts.interpreter(version)
    if python is None:
        raise SystemExit(f"no Python {version} here to import the artifacts with")
    specs = functions(template)
    with tempfile.TemporaryDirectory(prefix="darkroom-coldstart-") as scratch:
        base = Path(scratch)
        with mock.patch.dict(os.environ, sandbox.host_overrides(python)):  # artifact() reads the overrides
            built = {lid: artifacts.build(artifacts.artifact(lid, template), base / lid)
                     for lid in [*specs, artifacts.SDK_LAYER]}
        bare = {lid: _without_bytecode(root, base / f"{lid}-source") for lid, root in built.items()}
        layer, bare_layer = built[artifacts.SDK_LAYER] / "python", bare[artifacts.SDK_LAYER] / "python"
        baseline = ArtifactRow(BASELINE_NAME, [], [])
        rows = {lid: ArtifactRow(spec.handler.rpartition(".")[0], [], []) for lid, spec in specs.items()}
        for _ in range(runs):
            for lid, spec in specs.items():
                env = sandbox.lambda_environment(spec, template, base)
                code = f"import {rows[lid].name}"
                # The bare handler from the api artifact (it has pydantic and Powertools), alternating with each.
                baseline.bytecode.append(_timed_import(python, BASELINE, [built["ApiFunction"], layer], env))
                rows[lid].bytecode.append(_timed_import(python, code, [built[lid], layer], env))
                baseline.source.append(_timed_import(python, BASELINE, [bare["ApiFunction"], bare_layer], env))
                rows[lid].source.append(_timed_import(python, code, [bare[lid], bare_layer], env))
    return baseline, rows


def render_artifacts(baseline: ArtifactRow, rows: dict[str, ArtifactRow], runs: int) -> str:
    def ms(samples: list[float]) -> float:
        return statistics.median(samples) * 1000

    base = ms(baseline.bytecode)
    lines = [(f"| function | with bytecode ms (median of {runs}) | × bare handler | source only ms | "
             "bytecode speed-up |"), "|---|---:|---:|---:|---:|",
             (f"| bare handler | {base:.0f} | 1.00 | {ms(baseline.source):.0f} | "
             f"{ms(baseline.source) / base:.1f}× |")]
    lines += [f"| {lid} | {ms(row.bytecode):.0f} | {ms(row.bytecode) / base:.2f} | {ms(row.source):.0f} | "
              f"{ms(row.source) / ms(row.bytecode):.1f}× |" for lid, row in rows.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--artifacts", action="store_true", help="also import each handler from its artifact")
    args = parser.parse_args(argv)
    print(render(*measure(args.runs), args.runs))
    if args.artifacts:
        print()
        print(render_artifacts(*measure_artifacts(args.runs), args.runs))


if __name__ == "__main__":
    main()
