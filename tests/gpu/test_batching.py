"""Jobs that arrive together share one pipeline call (gpu/batching.py, pipelines.generate_together), on the tiny FLUX:
each output keeps its own request's seed and noise, a full batch runs without waiting out its window, a canceled
member drops out while the others finish, requests that cannot share (images, adapters, another size) run alone, and
the catalog's Serving settings are checked."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from functions.core.catalog import Serving
from gpu import batching, pipelines
from gpu.batching import Batcher, BatchPolicy
from gpu.loras import Adapter
from gpu.pipelines import GenerationRequest, batch_key, generate, generate_together
from gpu.quality import psnr

FAMILY = "flux"


@pytest.fixture(scope="module")
def pipe(tiny_root):
    return pipelines.load_pipeline(FAMILY, tiny_root / "tiny-flux-v1")


def _request(prompt: str, seed: int, n: int = 1, **extra) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, width=64, height=48, steps=2, seed=seed, n=n, **extra)


def _pixels(result) -> np.ndarray:
    return np.stack([np.asarray(image, dtype=np.float64) for image in result.images])


def test_requests_run_together_keep_their_own_seeds_and_noise(pipe):
    a, b = _request("a red fox", seed=11), _request("a blue whale", seed=12, n=2)
    alone = [generate(pipe, FAMILY, a), generate(pipe, FAMILY, b)]
    together = generate_together(pipe, FAMILY, [a, b])
    assert [r.seed for r in together] == [11, 12] and [len(r.images) for r in together] == [1, 2]
    for solo, batched in zip(alone, together, strict=True):
        # The same prompt and noise; a batched matmul may only round differently.
        assert psnr(_pixels(solo), _pixels(batched)) >= 40
    assert psnr(_pixels(together[0]), _pixels(together[1])[:1]) < 30  # not one image handed out twice


def test_only_requests_of_one_shape_without_inputs_run_together(pipe, tmp_path):
    plain = _request("x", 1)
    assert batch_key(FAMILY, plain) == batch_key(FAMILY, _request("y", 2, n=3))
    assert batch_key(FAMILY, plain) != batch_key(FAMILY, _request("x", 1, guidance=2.0))
    assert batch_key(FAMILY, _request("x", 1, loras=[Adapter(tmp_path / "a.safetensors", "0" * 64)])) is None
    with pytest.raises(ValueError, match="run together only when"):
        generate_together(pipe, FAMILY, [plain, GenerationRequest(prompt="x", width=64, height=64, steps=2)])


class _CountingCalls:
    def __init__(self, monkeypatch):
        self.batches: list[int] = []
        real = batching.generate_together

        def counting(pipe, family, reqs, **kwargs):
            self.batches.append(len(reqs))
            return real(pipe, family, reqs, **kwargs)

        monkeypatch.setattr(batching, "generate_together", counting)


def test_concurrent_requests_are_gathered_into_one_call(pipe, monkeypatch):
    calls = _CountingCalls(monkeypatch)
    batcher, policy = Batcher(), BatchPolicy(max_images=3, wait_s=60)
    requests = [_request(f"prompt {i}", seed=100 + i) for i in range(3)]
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(batcher.generate, pipe, FAMILY, r, policy) for r in requests]
        # The third fills the batch: it runs at once, not after the 60 s window.
        results = [f.result(timeout=120) for f in futures]
    assert calls.batches == [3]
    assert [together for _, together in results] == [3, 3, 3]
    assert [result.seed for result, _ in results] == [100, 101, 102]


def test_a_lone_request_runs_after_the_window_and_an_unbatched_policy_never_waits(pipe, monkeypatch):
    calls = _CountingCalls(monkeypatch)
    result, together = Batcher().generate(pipe, FAMILY, _request("alone", 5), BatchPolicy(max_images=4, wait_s=0.05))
    assert together == 1 and result.seed == 5 and calls.batches == [1]
    result, together = Batcher().generate(pipe, FAMILY, _request("alone", 5), BatchPolicy())
    assert together == 1 and calls.batches == [1]  # generate itself, not a batch


def test_a_canceled_member_drops_out_and_the_others_finish(pipe):
    class Canceled(Exception):
        pass

    def cancel(done: int, total: int) -> None:
        raise Canceled

    steps: list[int] = []
    batcher, policy = Batcher(), BatchPolicy(max_images=2, wait_s=60)
    start = threading.Barrier(2)

    def submit(request, on_step):
        start.wait()
        return batcher.generate(pipe, FAMILY, request, policy, on_step=on_step)

    with ThreadPoolExecutor(2) as pool:
        kept = pool.submit(submit, _request("kept", 1), lambda done, total: steps.append(done))
        dropped = pool.submit(submit, _request("dropped", 2), cancel)
        result, together = kept.result(timeout=120)
        with pytest.raises(Canceled):
            dropped.result(timeout=120)
    assert together == 2 and len(result.images) == 1 and steps == [1, 2]


def test_serving_settings_are_checked():
    assert Serving() == Serving(concurrent_inputs=1, batch_images=1, batch_wait_ms=0)
    with pytest.raises(ValueError, match="needs concurrent_inputs"):
        Serving(batch_images=4)
    with pytest.raises(ValueError, match="only matters with batch_images"):
        Serving(concurrent_inputs=2, batch_wait_ms=20)
    Serving(concurrent_inputs=4, batch_images=4, batch_wait_ms=20)
