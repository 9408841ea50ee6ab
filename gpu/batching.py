"""Requests that arrive together for the same pipeline and shape run as one pipeline call.

A GPU runs a batch of images in little more time than one when one image does not fill it (small models, small
sizes). So when a container takes several inputs at once (Modal's `@modal.concurrent`, the local worker's threads),
`Batcher.generate` holds the first request of a kind for a short window (`wait_s`), gathers the requests that share
its batch key (gpu/pipelines.py batch_key: size, steps, guidance, ...; never one with images, a mask or adapters),
up to `max_images` outputs, and runs them with pipelines.generate_together: one call, each request's outputs from
its own seed. This is Modal's `@modal.batched` done in the worker, because a job is more than its pipeline call
(references, progress, encoding, upload) and only the call is shared.

What a batch changes:
- Latency: the first request waits up to `wait_s` for peers (nothing when it is alone and the window is 0, or the
  batch fills). The catalog keeps the window short (tens of ms) next to a step's time.
- Pixels: each output's initial noise is exactly what it would be alone, but a batched matmul may sum in another
  order, so a batched image can differ from the unbatched one by float rounding (not visibly). A request sent twice
  with a seed may come back a few low bits apart if it shared a batch once and not the other time.
- Progress and cancel: each member's `on_step` is called after each step. A member whose job was canceled (its
  on_step raises) is dropped from reporting and gets that exception; the call goes on for the others, and stops
  only when every member is canceled.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from gpu.pipelines import GenerationRequest, GenerationResult, batch_key, generate, generate_together


@dataclass(frozen=True)
class BatchPolicy:
    """At most `max_images` outputs in one call, gathered for at most `wait_s` after the first request."""

    max_images: int = 1
    wait_s: float = 0.0

    @property
    def batches(self) -> bool:
        return self.max_images > 1


@dataclass
class _Member:
    request: GenerationRequest
    on_step: Callable[[int, int], None] | None
    result: Future = field(default_factory=Future)
    stopped: BaseException | None = None  # what its on_step raised (its job was canceled)


@dataclass
class _Batch:
    pipe: Any
    family: str
    members: list[_Member] = field(default_factory=list)
    full: threading.Event = field(default_factory=threading.Event)
    closed: bool = False

    @property
    def images(self) -> int:
        return sum(m.request.n for m in self.members)


class _AllStopped(Exception):
    """Every member of a batch was canceled: the pipeline call stops."""


class Batcher:
    """Gathers concurrent requests into batches, per pipeline and batch key. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[tuple, _Batch] = {}

    def generate(self, pipe: Any, family: str, request: GenerationRequest, policy: BatchPolicy, *,
                 on_step: Callable[[int, int], None] | None = None) -> tuple[GenerationResult, int]:
        """The request's result, and how many requests shared its pipeline call (1: it ran alone)."""
        key = batch_key(family, request)
        if not policy.batches or key is None or request.n >= policy.max_images:
            return generate(pipe, family, request, on_step=on_step), 1
        key = (id(pipe), *key)
        member = _Member(request, on_step)
        with self._lock:
            batch = self._open.get(key)
            leader = batch is None or batch.closed or batch.images + request.n > policy.max_images
            if leader:
                batch = self._open[key] = _Batch(pipe, family)
            assert batch is not None
            batch.members.append(member)
            if batch.images >= policy.max_images:
                batch.full.set()
        if leader:
            batch.full.wait(policy.wait_s)
            with self._lock:
                batch.closed = True
                if self._open.get(key) is batch:
                    del self._open[key]
            self._run(batch)
        result = member.result.result()
        return result, len(batch.members)

    @staticmethod
    def _run(batch: _Batch) -> None:
        members = batch.members

        def on_step(done: int, total: int) -> None:
            for member in members:
                if member.stopped is None and member.on_step is not None:
                    try:
                        member.on_step(done, total)
                    except Exception as exc:  # noqa: BLE001 - its job stopped (canceled): the others go on
                        member.stopped = exc
            if all(m.stopped is not None for m in members):
                raise _AllStopped

        try:
            results = generate_together(batch.pipe, batch.family, [m.request for m in members], on_step=on_step)
        except _AllStopped:
            results = None
        except BaseException as exc:  # noqa: BLE001 - the call failed: every member fails with it, none waits on
            for member in members:
                member.result.set_exception(exc)
            return
        for i, member in enumerate(members):
            if member.stopped is not None:
                member.result.set_exception(member.stopped)
            else:
                assert results is not None
                member.result.set_result(results[i])


BATCHER = Batcher()
