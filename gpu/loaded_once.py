"""The small models beside the pipelines (the background remover, the safety checker, the prompt enhancer), each
loaded once per process and key, from a local directory or a Hub repo id.

Importing this module is cheap: what loads imports transformers inside the `build` it is given.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, Generic, TypeVar

from gpu.model_io import MODEL_IO_LOCK

T = TypeVar("T")


class LoadedOnce(Generic[T]):
    """A per-process cache of loaded models: concurrent callers of one key wait for one load."""

    def __init__(self) -> None:
        self._cache: dict[Hashable, T] = {}
        self._guard = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        with self._guard:
            if key in self._cache:
                return self._cache[key]

        with MODEL_IO_LOCK:  # transformers imports lazily; one import-heavy step at a time
            with self._guard:
                if key in self._cache:
                    return self._cache[key]
            value = build()
            with self._guard:
                self._cache[key] = value
        return value

    def clear(self) -> None:
        with self._guard:
            self._cache.clear()


def pretrained_options(source: str | Path) -> dict[str, Any]:
    """from_pretrained's options for `source`: a local directory loads offline, never reaching for the Hub."""
    return {"local_files_only": True} if Path(source).is_dir() else {}
