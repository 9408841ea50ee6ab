"""System benchmarks behind `make bench` (docs/benchmarks.md): cold imports, AWS calls per request,
orchestration overhead and webhook latency, throughput under concurrency, and a profile of the hot path.

`python -m infra.bench` runs them all and rewrites the system sections of docs/benchmarks.md; the GPU
section above them is gpu/bench.py's and is kept. Each module also runs alone (`python -m infra.bench.calls`).
"""
