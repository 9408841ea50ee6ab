"""The dispatch port: hand a job to a GPU worker. Modal in AWS; an in-process worker pool locally."""

from __future__ import annotations

import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Protocol

from functions.core import faults
from functions.core.catalog import get_catalog
from functions.core.messages import WorkRequest
from functions.core.settings import get_settings


class Dispatcher(Protocol):
    name: str

    def spawn(self, request: WorkRequest) -> str:
        """Start the work without waiting for it; return an id for the call."""


class ModalDispatcher:
    """Spawns the deployed Modal class that serves the job's model (gpu/modal_app.py)."""

    name = "modal"

    def __init__(self, app_name: str, token_secret_arn: str) -> None:
        self.app_name = app_name
        self.token_secret_arn = token_secret_arn
        self._lock = threading.Lock()
        self._classes: dict[str, object] = {}

    def _authenticate(self) -> None:
        if os.environ.get("MODAL_TOKEN_ID") or not self.token_secret_arn:
            return
        from aws_lambda_powertools.utilities.parameters import get_secret

        token = get_secret(self.token_secret_arn, transform="json", max_age=300)
        os.environ["MODAL_TOKEN_ID"] = token["token_id"]
        os.environ["MODAL_TOKEN_SECRET"] = token["token_secret"]

    def _cls(self, class_name: str):
        with self._lock:
            if class_name not in self._classes:
                import modal  # lazily: only the dispatch function pays for the import

                self._authenticate()
                self._classes[class_name] = modal.Cls.from_name(self.app_name, class_name)
            return self._classes[class_name]

    def spawn(self, request: WorkRequest) -> str:
        model = get_catalog().model(request.model)
        assert model is not None, request.model
        call = self._cls(model.modal_class)(model=model.id).generate.spawn(request.model_dump())
        return call.object_id


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


@lru_cache(maxsize=1)
def get_dispatcher() -> Dispatcher:
    settings = get_settings()
    if settings.dispatcher == "local":
        return LocalDispatcher(int(os.environ.get("DARKROOM_LOCAL_WORKERS", "1")),
                               delay=float(os.environ.get("DARKROOM_WORKER_DELAY_SECONDS", "0")))
    return ModalDispatcher(settings.modal_app, settings.modal_token_secret_arn)
