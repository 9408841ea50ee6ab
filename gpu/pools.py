"""The cap on each GPU pool's containers, as `modal deploy` sets it (gpu/modal_app.py) and `darkroom deploy`
passes it (infra/deploy/plan.py). Import-light: the deploy plan reads it without loading the Modal app."""

from __future__ import annotations

import os

# Read when `modal deploy` imports gpu/modal_app.py: `darkroom deploy` sets it from the stack's MaxGpuConcurrency,
# so the template parameter is what caps each pool (inside a container the deployed value applies, not this).
MAX_CONTAINERS_ENV = "DARKROOM_MAX_GPU_CONTAINERS"
DEFAULT_MAX_CONTAINERS = 10  # template.yaml's MaxGpuConcurrency default


def max_containers() -> int:
    return int(os.environ.get(MAX_CONTAINERS_ENV) or DEFAULT_MAX_CONTAINERS)
