"""The dispatch port: hand a job to a GPU worker. Modal in AWS; locally, the local stack's in-process worker
pool (infra/local/dispatcher.py) behind the same port."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from functools import lru_cache
from typing import Protocol

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


# The local stack plugs its in-process worker pool in here (infra/local/dispatcher.py, registered by
# infra.local.stack.reset_process_caches): nothing under functions/ imports the GPU side itself.
_local_factory: Callable[[], Dispatcher] | None = None


def use_local(factory: Callable[[], Dispatcher]) -> None:
    """Make DARKROOM_DISPATCHER=local build its dispatcher with `factory` (the local stack's)."""
    global _local_factory
    _local_factory = factory
    get_dispatcher.cache_clear()


@lru_cache(maxsize=1)
def get_dispatcher() -> Dispatcher:
    settings = get_settings()
    if settings.dispatcher == "local":
        if _local_factory is None:
            raise RuntimeError("DARKROOM_DISPATCHER=local runs only inside the local stack (darkroom dev), which "
                               "registers its in-process worker pool (infra/local/dispatcher.py)")
        return _local_factory()
    return ModalDispatcher(settings.modal_app, settings.modal_token_secret_arn)
