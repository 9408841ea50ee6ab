"""Warm pools: keep N containers of a model running on Modal, so its first call skips the GPU cold start.

Off by default (0 containers: nothing costs anything at rest). Each deployed model is one instance of its
family's Modal class (`Cls(model=…)`), and Modal keeps a warm pool per instance:
`modal.Cls.from_name(app, class)(model=id).update_autoscaler(min_containers=N)`. A `modal deploy` resets every
instance to the class's static settings, so `darkroom deploy --warm` applies the pools again right after it.
"""

from __future__ import annotations

from dataclasses import dataclass

from functions.core.catalog import get_catalog
from infra.prices import PRICES

# What a warm container is billed for beside its GPU (the image's CPU and memory reservation, Modal's defaults).
CONTAINER_CPU_CORES = 1.0
CONTAINER_MEMORY_GIB = 16.0


@dataclass(frozen=True)
class Pool:
    model: str
    modal_class: str
    gpu: str
    containers: int

    @property
    def cost_per_hour(self) -> float:
        """USD an hour for keeping these containers warm, idle or not (list prices, infra/prices.py)."""
        per_second = (PRICES["modal_gpu_second"][self.gpu] + CONTAINER_CPU_CORES * PRICES["modal_cpu_core_second"]
                      + CONTAINER_MEMORY_GIB * PRICES["modal_memory_gib_second"])
        return round(per_second * 3600 * self.containers, 2)


def parse(values: list[str]) -> list[Pool]:
    """`MODEL=N` (repeated or comma-separated) into pools of catalog models. Raises ValueError, naming the item."""
    catalog = get_catalog()
    pools: dict[str, Pool] = {}
    for item in (part.strip() for value in values for part in value.split(",")):
        if not item:
            continue
        model_id, sep, count = item.partition("=")
        if not sep or not count.strip().isdigit():
            raise ValueError(f"--warm takes MODEL=N (N containers, 0 to release), got {item!r}")
        spec = catalog.model(model_id.strip())
        if spec is None:
            raise ValueError(f"--warm: {model_id.strip()!r} is not a catalog model (darkroom models lists them)")
        if int(count) > 10:
            raise ValueError(f"--warm {item}: at most 10 warm containers per model")
        pools[spec.id] = Pool(spec.id, spec.modal_class, spec.gpu, int(count))
    return list(pools.values())


def apply(pools: list[Pool], *, app_name: str, environment: str) -> None:
    """Set each model's minimum containers on the deployed app (the caller's Modal token)."""
    import modal  # the deploy side's dependency; never imported by a Lambda function

    for pool in pools:
        cls = modal.Cls.from_name(app_name, pool.modal_class, environment_name=environment)
        cls(model=pool.model).update_autoscaler(min_containers=pool.containers)


def describe(pools: list[Pool]) -> str:
    return "; ".join(f"{p.model}: {p.containers} warm {p.gpu} container(s), about ${p.cost_per_hour:.2f}/h"
                     for p in pools)
