"""The one process-wide lock of the GPU side's import-heavy steps.

diffusers and transformers import their submodules lazily, on first attribute access, and two threads doing that at
once fail with ImportError. Every import-heavy step (a class lookup, a load, a tiny build, a LoRA's first load) takes
this lock; inference on loaded pipelines does not. It lives apart so that every module can take it without importing
the pipelines.
"""

from __future__ import annotations

import threading

MODEL_IO_LOCK = threading.RLock()
