"""The dispatch port: hand a job to a GPU worker. Modal in AWS; locally, the local stack's in-process worker
pool (infra/local/dispatcher.py) behind the same port."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import lru_cache
from typing import Literal, Protocol, TypeVar

from functions.core.catalog import ModelSpec, get_catalog
from functions.core.messages import WorkRequest
from functions.core.settings import get_settings

T = TypeVar("T")

# What Dispatcher.call_state says of a call made earlier: still waiting or running (in the queue, or in a
# container's startup), finished (it returned, failed or timed out), or unknown to the platform.
CallState = Literal["pending", "finished", "lost"]


class Dispatcher(Protocol):
    name: str

    def spawn(self, request: WorkRequest) -> str:
        """Start the work without waiting for it; return an id for the call."""

    def call_state(self, call_id: str) -> CallState:
        """Where a call made by `spawn` stands now."""

    def cancel(self, call_id: str) -> None:
        """Stop a call that is no longer wanted (a no-op if it finished)."""

    def startup_seconds(self, model: ModelSpec) -> float:
        """How long a call for `model` may take to start before it takes its job (a cold container's load)."""


class ModalDispatcher:
    """Spawns `generate` on the deployed Modal class instance that serves the job's weights (gpu/modal_app.py)."""

    name = "modal"

    def __init__(self, app_name: str, token_secret_arn: str, environment: str = "main") -> None:
        self.app_name = app_name
        self.token_secret_arn = token_secret_arn
        self.environment = environment
        self._lock = threading.Lock()
        self._classes: dict[str, object] = {}
        self._client: object | None = None
        self._stale_token = False

    def _modal_client(self):
        """A Modal client with the stack's token (Secrets Manager), made once; None without a secret (the local
        stack and tests): the modal client's own configuration then applies."""
        if self._client is None and self.token_secret_arn:
            import modal
            from aws_lambda_powertools.utilities.parameters import get_secret

            token = get_secret(self.token_secret_arn, transform="json", max_age=300, force_fetch=self._stale_token)
            self._client = modal.Client.from_credentials(token["token_id"], token["token_secret"])
            self._stale_token = False
        return self._client

    def _cls(self, class_name: str):
        with self._lock:
            if class_name not in self._classes:
                import modal  # lazily: only the dispatch function pays for the import

                # The app is found in its own environment: without environment_name, the profile's default
                # one is searched, and an app deployed elsewhere is NotFoundError on every spawn.
                self._classes[class_name] = modal.Cls.from_name(self.app_name, class_name,
                                                                environment_name=self.environment,
                                                                client=self._modal_client())
            return self._classes[class_name]

    def _retrying_a_rotated_token(self, call: Callable[[], T]) -> T:
        """`darkroom deploy` rewrites the token's secret when the operator rotates it: a warm function still holds
        the old one, now refused. Read the secret again (past its cache) and try once more."""
        import modal.exception

        try:
            return call()
        except modal.exception.AuthError:
            if not self.token_secret_arn:
                raise
            with self._lock:
                self._client, self._stale_token = None, True
                self._classes.clear()
            return call()

    def startup_seconds(self, model: ModelSpec) -> float:
        # The class's startup_timeout (gpu/modal_app.py): Modal gives a container that long to load and snapshot.
        return get_catalog().class_startup_timeout(model.modal_class)

    def spawn(self, request: WorkRequest) -> str:
        model = get_catalog().model(request.model)
        assert model is not None, request.model

        def call() -> str:
            instance = self._cls(model.modal_class)(weights=model.weights)
            return instance.generate.spawn(request.model_dump()).object_id

        return self._retrying_a_rotated_token(call)

    def _call(self, call_id: str):
        import modal

        with self._lock:
            client = self._modal_client()
        return modal.FunctionCall.from_id(call_id, client=client)

    def call_state(self, call_id: str) -> CallState:
        import modal.exception

        def ask() -> CallState:
            try:
                self._call(call_id).get(timeout=0)
            except modal.exception.NotFoundError:
                return "lost"
            except modal.exception.AuthError:
                raise
            except TimeoutError:
                # FunctionCall.get(timeout=0) raises the builtin TimeoutError while the input has no output yet.
                # Modal's own timeouts (FunctionTimeoutError, OutputExpiredError) are not builtin ones: over.
                return "pending"
            except Exception:  # noqa: BLE001 - the call ended in an error (or timed out): it is over
                return "finished"
            return "finished"

        return self._retrying_a_rotated_token(ask)

    def cancel(self, call_id: str) -> None:
        import modal.exception

        def stop() -> None:
            try:
                self._call(call_id).cancel()
            except modal.exception.NotFoundError:
                pass  # gone already: nothing to stop

        self._retrying_a_rotated_token(stop)


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
    return ModalDispatcher(settings.modal_app, settings.modal_token_secret_arn, settings.modal_environment)
