"""The local stack's dispatcher: the same GPU worker as on Modal (gpu/worker.py), run in-process on a small
pool, behind the dispatch port of functions/dispatch/dispatchers.py."""

from __future__ import annotations

import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from functions.core import faults
from functions.core.messages import WorkRequest


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
        self._timers: list[threading.Timer] = []

    def spawn(self, request: WorkRequest) -> str:
        from gpu import worker  # torch and diffusers load on first use, not at import of the handler

        faults.trip("dispatch")
        if self.delay > 0:
            timer = threading.Timer(self.delay, self.pool.submit, args=(worker.run_safely, request))
            timer.daemon = True
            self._timers = [t for t in self._timers if t.is_alive()] + [timer]
            timer.start()
        else:
            self.pool.submit(worker.run_safely, request)
        return f"local-{uuid.uuid4().hex[:12]}"

    def shutdown(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self.pool.shutdown(wait=False, cancel_futures=True)

    @classmethod
    def from_environment(cls) -> LocalDispatcher:
        return cls(int(os.environ.get("DARKROOM_LOCAL_WORKERS", "1")),
                   delay=float(os.environ.get("DARKROOM_WORKER_DELAY_SECONDS", "0")))
