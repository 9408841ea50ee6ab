"""Importing a handler without the cyclic garbage collector.

A handler's import allocates about a hundred thousand long-lived objects (modules, classes, the SDK's
service models) and next to no garbage, yet the collector runs on allocation counts: about 130 times
during the api function's import, a full collection among them, some 80 ms of a ~700 ms cold start on this
machine. Handlers import with it off, then `gc.freeze()` what they imported (later collections skip it,
so warm requests do not rescan it either) and turn it back on. The price: cyclic garbage made during
the import is never freed, a few KB.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def imports_without_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
