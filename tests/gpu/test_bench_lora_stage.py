"""`make bench` times a LoRA adapter's load as its own stage (gpu/bench.py): a tiny LoRA on tiny weights."""

from __future__ import annotations

import argparse

from functions.core.catalog import get_catalog
from gpu import bench
from gpu.pipelines import GenerationRequest, load_pipeline


def test_the_bench_times_loading_a_lora_and_shows_it(tiny_root, tmp_path, monkeypatch):
    monkeypatch.setenv("DARKROOM_WEIGHTS", "tiny")
    monkeypatch.setenv("DARKROOM_DATA_DIR", str(tmp_path))
    model = get_catalog().model("flux-schnell")
    pipe = load_pipeline("flux", tiny_root / "tiny-flux-v1")
    req = GenerationRequest(prompt="a lighthouse", width=64, height=64, steps=1, seed=1)
    args = argparse.Namespace(lora=None, repeat=2)
    seconds = bench._lora_load(model, pipe, req, args)
    assert seconds is not None and seconds > 0
    assert req.loras == []  # the request itself is left without the adapter
    row = bench.Row(model="flux-schnell", task="text-to-image", width=64, height=64, n=1, steps=1, frames=None,
                    fps=None, load=0.1, warmup=0.1, inference=0.2, vae_decode=0.01, encode=0.01, upload=0.01,
                    output_bytes=1, lora_load=seconds)
    cells = dict(zip(bench.HEADERS, bench.row_cells(row), strict=True))
    assert cells["LoRA load s"] == f"{seconds:.3f}"
    monkeypatch.setenv("DARKROOM_WEIGHTS", "/nowhere")
    assert bench._lora_load(model, pipe, req, args) is None  # real weights and no --lora: not measured
