"""Domain exceptions. Each dialect maps them to its own HTTP error shape in one place."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# A Python object's default repr (`<_io.BytesIO object at 0x7f…>`): what Pillow and others put in their errors.
_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")


def describe(exc: BaseException) -> str:
    """An exception as a caller may read it: its type and text, without object reprs (they say nothing to the
    caller and leak the process's memory layout)."""
    return f"{type(exc).__name__}: {_OBJECT_REPR.sub('the data', str(exc))}"


@dataclass
class FieldError:
    field: str
    message: str
    code: str = "invalid"


class DarkroomError(Exception):
    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, errors: list[FieldError] | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []
        if code:
            self.code = code
        self.headers = headers or {}

    @property
    def param(self) -> str | None:
        return self.errors[0].field if self.errors else None


class ValidationFailed(DarkroomError):
    status = 400
    code = "invalid_request"


class Unauthorized(DarkroomError):
    status = 401
    code = "invalid_api_key"


class Forbidden(DarkroomError):
    status = 403
    code = "forbidden"


class NotFound(DarkroomError):
    status = 404
    code = "not_found"


class Conflict(DarkroomError):
    status = 409
    code = "conflict"


class MethodNotAllowed(DarkroomError):
    status = 405
    code = "method_not_allowed"


class PayloadTooLarge(DarkroomError):
    status = 413
    code = "payload_too_large"


class ServiceUnavailable(DarkroomError):
    status = 503
    code = "service_unavailable"


@dataclass
class TransitionRejected(Exception):
    """A conditional state write found the job in a state the transition does not start from."""

    job_id: str
    target: str
    current: str | None = None
    extra: dict = field(default_factory=dict)


class PaymentRequired(DarkroomError):
    status = 402
    code = "insufficient_quota"


class RateLimited(DarkroomError):
    status = 429
    code = "rate_limit_exceeded"


class GatewayTimeout(DarkroomError):
    """A synchronous call ran out of time; the job goes on and stays pollable."""

    status = 504
    code = "timeout"

    def __init__(self, message: str, *, job_id: str, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.job_id = job_id
