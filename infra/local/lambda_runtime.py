"""Calling a handler the way Lambda does: resolved from its Handler string, with a context object."""

from __future__ import annotations

import importlib
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
