"""Time and identifiers in one place, so tests and records agree on formats."""

from __future__ import annotations

import os
import secrets
import time
from datetime import UTC, datetime


def now() -> float:
    return time.time()


def iso(ts: float) -> str:
    """JavaScript-style ISO 8601 with milliseconds, as the Artificial Studio API shows `createdAt`."""
    moment = datetime.fromtimestamp(round(ts, 3), UTC)  # round once, so seconds and milliseconds agree
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def new_object_id(ts: float | None = None) -> str:
    """A 24-hex-digit id shaped like the vendor's (MongoDB ObjectId): 4 bytes of seconds, then 8 random bytes.

    The time prefix makes ids roughly sortable; the 64 random bits make them unguessable enough that an id
    alone never grants access (reads are also scoped to the workspace).
    """
    seconds = int(ts if ts is not None else time.time())
    return f"{seconds:08x}{secrets.token_hex(8)}"


def new_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def request_id() -> str:
    return os.urandom(8).hex()
