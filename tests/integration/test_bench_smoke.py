"""`make bench`'s system benchmarks run, at tiny sizes: every stage measured, the page's sections replaced
and the GPU section kept. No timing is asserted."""

from __future__ import annotations

import math

from infra.bench import __main__ as bench
from infra.bench import coldstart, first_request, orchestration


def test_orchestration_measures_every_stage_of_a_job(tmp_path):
    (sample,) = orchestration.measure(jobs=1, warmup=0, data_dir=tmp_path)
    assert set(sample.stages) == set(orchestration.STAGES)
    assert all(not math.isnan(v) and v >= 0 for k, v in sample.stages.items() if k != "complete")
    assert sample.stages["worker"] > 0  # the worker's own timings reached the job record
    table = orchestration.render([sample])
    assert all(f"| {stage} |" in table for stage in orchestration.STAGES)


def test_the_system_section_is_replaced_and_the_gpu_section_kept(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Results\n\n| gpu table |\n")
    bench.write(f"{bench.SYSTEM_MARKER}\n\nfirst\n", doc)
    bench.write(f"{bench.SYSTEM_MARKER}\n\nsecond\n", doc)
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\n## Results\n\n| gpu table |\n")
    assert text.count(bench.SYSTEM_MARKER) == 1 and "second" in text and "first" not in text


def test_percentiles_are_observed_values():
    values = [float(v) for v in range(1, 101)]
    assert orchestration.percentile(values, 50) == 50
    assert orchestration.percentile(values, 99) == 99
    assert orchestration.percentile([7.0], 99) == 7


def test_cold_imports_cover_every_template_handler():
    baseline, rows = coldstart.measure(runs=1)
    assert set(rows) == set(coldstart.handler_modules()) and len(baseline.samples) == len(rows)
    assert all(row.samples[0] > 0 for row in rows.values())
    table = coldstart.render(baseline, rows, 1)
    assert all(f"| {lid} |" in table for lid in rows)


def test_first_requests_are_served_cold_and_warm():
    rows = first_request.measure(runs=1)  # every response is checked to be a 2xx inside
    assert rows and all(len(r.imports) == len(r.first) == len(r.warm) == 1 for r in rows.values())
    assert all(r.imports[0] > 0 and r.first[0] > 0 and r.warm[0] > 0 for r in rows.values())
    table = first_request.render(rows, 1)
    assert all(f"| {name} |" in table for name in rows)
