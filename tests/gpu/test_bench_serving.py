"""gpu/bench_serving.py, the serving benchmark of batching: the rule that turns its figures into the catalog's Serving
values (`recommend`, on synthetic rows), the docs section it writes between its own marker and the next section's,
and one small real run on the tiny FLUX on the CPU: batched clients share calls, unbatched ones never do, and the
CPU run says it is tiny and writes nothing into docs/benchmarks.md. No timing is asserted."""

from __future__ import annotations

import pytest

from functions.core.catalog import Serving, get_catalog
from gpu import bench, bench_serving
from gpu.bench_serving import ServingResult, recommend

MODEL = "flux-schnell"


def _row(images: int, wait: int, clients: int, p50: float, throughput: float, *, model: str = MODEL,
         failed: int = 0) -> ServingResult:
    return ServingResult(model=model, scale="full", max_images=images, wait_ms=wait, clients=clients,
                         requests=8 * clients, failed=failed, wall_s=8 * clients / throughput, throughput=throughput,
                         p50=p50, p95=p50 * 1.1, mean_batch=1.0 if images == 1 else min(images, clients),
                         width=1024, height=1024, steps=4, run="r1")


def _unbatched(lone: float = 1.0) -> list[ServingResult]:
    # Closed loop, unbatched: the device is saturated from 1 client on, queueing grows the latency.
    return [_row(1, 0, 1, lone, 1 / lone), _row(1, 0, 2, 2 * lone, 1 / lone), _row(1, 0, 4, 4 * lone, 1 / lone)]


def _policy(images: int, wait: int, lone_p50: float, gains: tuple[float, float], p50s: tuple[float, float] = (1.6, 2.8),
            ) -> list[ServingResult]:
    return [_row(images, wait, 1, lone_p50, 1 / lone_p50), _row(images, wait, 2, p50s[0], gains[0]),
            _row(images, wait, 4, p50s[1], gains[1])]


def test_the_best_throughput_at_the_highest_load_among_policies_a_lone_request_barely_notices():
    rows = _unbatched() + _policy(2, 0, 1.0, (1.2, 1.3)) + _policy(2, 50, 1.05, (1.25, 1.4)) \
        + _policy(4, 50, 1.06, (1.25, 1.6))
    choice = recommend(rows)
    assert choice == {"concurrent_inputs": 4, "batch_images": 4, "batch_wait_ms": 50}
    Serving(**choice)  # the catalog takes it


def test_a_window_that_costs_a_lone_request_over_10_percent_is_out_however_fast_under_load():
    rows = _unbatched() + _policy(4, 120, 1.12, (1.8, 2.5)) + _policy(2, 0, 1.01, (1.1, 1.2))
    assert recommend(rows) == {"concurrent_inputs": 4, "batch_images": 2, "batch_wait_ms": 0}
    assert recommend(_unbatched() + _policy(4, 120, 1.12, (1.8, 2.5))) is None
    # Exactly 10 % is still within it.
    assert recommend(_unbatched() + _policy(4, 100, 1.10, (1.8, 2.5)))["batch_images"] == 4


def test_no_batching_when_no_policy_beats_unbatched_throughput_by_more_than_5_percent():
    assert recommend(_unbatched() + _policy(2, 0, 1.0, (1.02, 1.05)) + _policy(4, 10, 1.01, (0.9, 1.04))) is None
    assert recommend(_unbatched()) is None
    assert recommend([]) is None


def test_a_policy_slower_under_load_or_not_measured_everywhere_does_not_qualify():
    slower = _policy(2, 10, 1.0, (1.3, 1.5), p50s=(2.3, 2.8))  # at 2 clients: 2.3 > 1.1 x unbatched's 2.0
    assert recommend(_unbatched() + slower) is None
    partial = [r for r in _policy(2, 10, 1.0, (1.3, 1.5)) if r.clients != 2]
    assert recommend(_unbatched() + partial) is None
    failed = _policy(2, 10, 1.0, (1.3, 1.5))
    failed[2].failed = 1  # out of memory at 4 clients
    assert recommend(_unbatched() + failed) is None
    # Without the unbatched lone row there is nothing to hold a policy to.
    assert recommend(_unbatched()[1:] + _policy(2, 10, 1.0, (1.3, 1.5))) is None


def test_ties_go_to_the_smaller_batch_and_shorter_wait_and_models_are_not_mixed():
    rows = _unbatched() + _policy(4, 10, 1.0, (1.3, 1.5)) + _policy(2, 10, 1.0, (1.3, 1.5)) \
        + _policy(2, 0, 1.0, (1.3, 1.5))
    assert recommend(rows) == {"concurrent_inputs": 4, "batch_images": 2, "batch_wait_ms": 0}
    with pytest.raises(ValueError, match="one model"):
        recommend(rows + [_row(1, 0, 1, 1.0, 1.0, model="sdxl-turbo")])


def test_the_docs_section_goes_between_full_size_and_system_and_is_replaced_in_place(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Benchmarks\n\ntiny table\n\n{bench.FULL_SIZE_MARKER}\n\nfull size\n\n"
                   f"{bench.SYSTEM_MARKER}\n\nsystem\n")
    rows = _unbatched() + _policy(2, 10, 1.0, (1.3, 1.5))
    section = bench_serving.section_markdown(rows)
    assert "| flux-schnell | full | 1024x1024 | 4 | batch ≤2, wait 10 ms | 4 | 32 |" in section
    assert "defaults these figures choose: concurrent_inputs 4, batch_images 2, batch_wait_ms 10" in section
    bench_serving.write_section(doc, section)
    text = doc.read_text()
    assert text.index("full size") < text.index(bench_serving.SERVING_MARKER) < text.index(bench.SYSTEM_MARKER)
    bench_serving.write_section(doc, bench_serving.section_markdown([]))
    again = doc.read_text()
    assert again.count(bench_serving.SERVING_MARKER) == 1 and "batch ≤2" not in again
    assert bench.NOT_MEASURED in again and "tiny table" in again and again.rstrip().endswith("system")
    bench_serving.write_section(doc, bench_serving.section_markdown([]))
    assert doc.read_text() == again


@pytest.mark.timeout(300)
def test_a_tiny_run_on_the_cpu_batches_clients_together_and_writes_nothing(tmp_path, capsys):
    from gpu import full_size
    from gpu.batching import BatchPolicy

    model = get_catalog().model(MODEL)
    pipe = full_size.tiny_pipeline(model).pipe
    shape = {"size": (64, 64), "steps": 2, "clients": 2, "requests": 2, "device": "cpu"}
    batched = bench_serving.measure(pipe, model, policy=BatchPolicy(max_images=2, wait_s=5.0), **shape)
    alone = bench_serving.measure(pipe, model, policy=BatchPolicy(), **shape)
    assert batched.requests == alone.requests == 4 and batched.failed == alone.failed == 0
    assert batched.mean_batch > 1 and alone.mean_batch == 1
    assert batched.scale == "tiny" and batched.p50 is not None and batched.p95 >= batched.p50

    out, jsonl = tmp_path / "benchmarks.md", tmp_path / "serving.jsonl"
    args = ["--models", MODEL, "--sizes", "64x64", "--steps", "2", "--clients", "1,2", "--requests", "1",
            "--batch-sizes", "2", "--wait-ms", "0", "--jsonl", str(jsonl), "--out", str(out)]
    assert bench_serving.main(args) == 0
    captured = capsys.readouterr()
    assert bench_serving.TINY_NOTICE in captured.err and "defaults these figures choose" in captured.out
    assert not out.exists()  # tiny rows never go into docs/benchmarks.md
    rows = bench_serving.read_results(jsonl)
    assert {(r.max_images, r.clients) for r in rows} == {(1, 1), (1, 2), (2, 1), (2, 2)}
    assert all(r.scale == "tiny" and r.requests == r.clients for r in rows)
    assert bench_serving.main(["--report-only", "--jsonl", str(jsonl), "--out", str(out)]) == 0
    assert bench.NOT_MEASURED in out.read_text()  # no full-size rows: nothing measured yet
