"""Calling a handler the way Lambda does: resolved from its Handler string, with a context object."""

from __future__ import annotations

import importlib
import multiprocessing
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .template import ACCOUNT, REGION, FunctionSpec


def load_handler(path: str) -> Callable[[dict, Any], Any]:
    """'functions.api.handler.handler' -> the callable, as the Lambda Python runtime resolves it."""
    module_name, _, attribute = path.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


@dataclass
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


class LocalFunction:
    """One function of the template, ready to invoke."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.spec = spec
        self.handler = load_handler(spec.handler)

    def invoke(self, event: dict) -> Any:
        context = LambdaContext(self.spec.logical_id, self.spec.memory, self.spec.timeout)
        return self.handler(event, context)


# Environments per HTTP function (Lambda starts as many as requests need): above a key's cap of synchronous
# calls in flight (DARKROOM_SYNC_CALLS_PER_KEY, 10), so a key's long waits leave environments for short requests.
MAX_ENVIRONMENTS = 16


class IsolatedFunction:
    """A function served the way Lambda serves it: each execution environment (here a process) handles one
    invocation at a time, environments start on demand (a cold start) and are reused once idle.

    The HTTP functions need this locally: Powertools' resolver keeps the current event and the request
    context on the class, which is safe in Lambda (one request per environment) but not across threads.
    Concurrent calls (a long synchronous wait beside a status poll) each get an environment of their own.
    """

    def __init__(self, spec: FunctionSpec, *, max_environments: int = MAX_ENVIRONMENTS) -> None:
        self.spec = spec
        self._idle: queue.LifoQueue[_Environment] = queue.LifoQueue()
        self._all: list[_Environment] = []
        self._slots = threading.BoundedSemaphore(max_environments)
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Start one environment ahead of the first request."""
        self._idle.put(self._start())

    def invoke(self, event: dict) -> Any:
        with self._slots:
            try:
                environment = self._idle.get_nowait()
            except queue.Empty:
                environment = self._start()
            try:
                return environment.invoke(event)
            finally:
                self._idle.put(environment)

    def stop(self) -> None:
        with self._lock:
            for environment in self._all:
                environment.stop()
            self._all.clear()

    def _start(self) -> _Environment:
        environment = _Environment(self.spec)
        with self._lock:
            self._all.append(environment)
        return environment


class _Environment:
    def __init__(self, spec: FunctionSpec) -> None:
        # spawn, not fork: the stack process runs threads, and a fresh interpreter is what Lambda starts.
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(spec, child), daemon=True,
                                       name=f"lambda-{spec.logical_id}")
        self.process.start()
        child.close()

    def invoke(self, event: dict) -> Any:
        self._conn.send(event)
        outcome, value = self._conn.recv()
        if outcome == "error":
            raise RuntimeError(f"the function raised: {value}")
        return value

    def stop(self) -> None:
        self._conn.close()
        self.process.terminate()
        self.process.join(timeout=5)


def _serve(spec: FunctionSpec, conn: Any) -> None:
    """One execution environment: load the handler once, then invoke it for each event, one at a time."""
    import signal
    import traceback

    # Ctrl-C reaches the whole process group; the stack stops its environments itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    function = LocalFunction(spec)
    while True:
        try:
            event = conn.recv()
        except (EOFError, OSError):
            return
        try:
            conn.send(("ok", function.invoke(event)))
        except Exception as exc:  # noqa: BLE001 - reported to the gateway, which answers as the platform does
            traceback.print_exc()
            conn.send(("error", repr(exc)))
