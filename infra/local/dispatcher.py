"""The local stack's dispatcher: the same GPU worker as on Modal (gpu/worker.py), run in-process on a small
pool, behind the dispatch port of functions/dispatch/dispatchers.py."""

from __future__ import annotations

import os
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor

from functions.core import faults
from functions.core.catalog import ModelSpec
from functions.core.messages import WorkRequest
from functions.dispatch.dispatchers import CallState

# Calls remembered for call_state; finished ones beyond this are forgotten.
MAX_TRACKED_CALLS = 1000


class LocalDispatcher:
    """Runs the same gpu worker in-process, on a small pool (one job at a time suits a laptop CPU).

    `delay` (DARKROOM_WORKER_DELAY_SECONDS, a test and dev knob, local only) holds each job that long
    before the worker takes it, as a GPU cold start would; jobs wait out their delays side by side.
    DARKROOM_LOCAL_FAULTS=dispatch:N (also a test and dev knob, functions/core/faults.py) makes the next N
    spawns raise, as Modal being down would: the message is retried after its visibility timeout.
    """

    name = "local"

    def __init__(self, workers: int = 1, delay: float = 0.0) -> None:
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gpu-worker")
        self.delay = delay
        self._lock = threading.Lock()
        # call id -> the timer holding it (a simulated cold start) or the pool's future running it
        self._calls: dict[str, threading.Timer | Future] = {}

    def spawn(self, request: WorkRequest) -> str:
        from gpu import worker  # torch and diffusers load on first use, not at import of the handler

        faults.trip("dispatch")
        call_id = f"local-{uuid.uuid4().hex[:12]}"
        if self.delay > 0:
            timer = threading.Timer(self.delay, self._submit, args=(call_id, worker.run_safely, request))
            timer.daemon = True
            with self._lock:
                self._calls[call_id] = timer
            timer.start()
        else:
            self._submit(call_id, worker.run_safely, request)
        return call_id

    def _submit(self, call_id: str, *args) -> None:
        with self._lock:
            self._calls[call_id] = self.pool.submit(*args)
            if len(self._calls) > MAX_TRACKED_CALLS:  # forget finished calls (call_state: "lost" then)
                for done in [k for k, c in self._calls.items() if isinstance(c, Future) and c.done()]:
                    del self._calls[done]

    def startup_seconds(self, model: ModelSpec) -> float:
        return self.delay  # the simulated cold start; the tiny pipelines load in well under a second

    def call_state(self, call_id: str) -> CallState:
        with self._lock:
            call = self._calls.get(call_id)
        if call is None:
            return "lost"
        if isinstance(call, threading.Timer):
            return "pending" if call.is_alive() else "finished"
        return "finished" if call.done() else "pending"

    def cancel(self, call_id: str) -> None:
        with self._lock:
            call = self._calls.get(call_id)
        if isinstance(call, threading.Timer):
            call.cancel()
        elif call is not None:
            call.cancel()  # a job already running finishes: the worker's take decides whether it runs at all

    def shutdown(self) -> None:
        with self._lock:
            calls = list(self._calls.values())
        for call in calls:
            if isinstance(call, threading.Timer):
                call.cancel()
        self.pool.shutdown(wait=False, cancel_futures=True)

    @classmethod
    def from_environment(cls) -> LocalDispatcher:
        return cls(int(os.environ.get("DARKROOM_LOCAL_WORKERS", "1")),
                   delay=float(os.environ.get("DARKROOM_WORKER_DELAY_SECONDS", "0")))
