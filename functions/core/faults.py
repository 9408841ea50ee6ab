"""Failures on purpose, for tests and for trying things out locally: DARKROOM_LOCAL_FAULTS.

Honoured only in the local stack (settings.local); a deployed function or the Modal worker never trips one.
The value is a comma-separated list:
- `dispatch:N`: the next N spawns of the local dispatcher raise, as a Modal outage would;
- `upload:N`: the next N uploads of generation outputs raise, as an S3 outage would (that job fails);
- any non-empty value also turns on the gateway's lost-response header (infra/local/gateway.py).
Counts are per process: the dispatcher and the worker run in the `darkroom dev` process itself.
"""

from __future__ import annotations

import os
import threading

from .settings import get_settings

_lock = threading.Lock()
_remaining: dict[str, int] | None = None


class InjectedFault(RuntimeError):
    """Raised where a DARKROOM_LOCAL_FAULTS entry says a call fails."""


def parse(value: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in value.split(","):
        name, _, count = entry.strip().partition(":")
        if name and count.strip().isdigit():
            counts[name.strip().lower()] = int(count)
    return counts


def trip(name: str) -> None:
    """Raise InjectedFault if a fault named `name` is still due; each trip uses one up."""
    global _remaining
    if not get_settings().local:
        return
    with _lock:
        if _remaining is None:
            _remaining = parse(os.environ.get("DARKROOM_LOCAL_FAULTS", ""))
        left = _remaining.get(name, 0)
        if left <= 0:
            return
        _remaining[name] = left - 1
    raise InjectedFault(f"injected fault: {name} ({left - 1} more to come; DARKROOM_LOCAL_FAULTS)")


def reset() -> None:
    """Read DARKROOM_LOCAL_FAULTS again on the next trip (tests, and a stack started twice in one process)."""
    global _remaining
    with _lock:
        _remaining = None
