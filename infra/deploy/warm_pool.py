"""Warm pools: keep N containers of a model's weights running on Modal, so its first call skips the GPU cold start.

Off by default (0 containers: nothing costs anything at rest). Each set of weights is one instance of its
family's Modal class (`Cls(weights=…)`, gpu/modal_app.py), which serves every model on those weights, and Modal
keeps a warm pool per instance: `modal.Cls.from_name(app, class)(weights=key).update_autoscaler(min_containers=N)`.
So `--warm flux-schnell=1` also warms flux-schnell-edit. A `modal deploy` resets every instance to the class's
static settings, so `darkroom deploy --warm` applies the pools again after it, and after the weights download:
a warm container of weights that are not on the Volume yet would fail its start again and again, billed.
"""

from __future__ import annotations

from dataclasses import dataclass

from functions.core.catalog import get_catalog
from gpu import weights as layout
from infra.prices import PRICES

# The CPU a warm container is billed for beside its GPU and memory (the class sets no cpu: Modal's default).
CONTAINER_CPU_CORES = 1.0
MAX_WARM = 10


@dataclass(frozen=True)
class Pool:
    weights: str  # ModelSpec.weights: the class instance
    model: str  # the model the operator named
    served: tuple[str, ...]  # every catalog model those weights serve
    modal_class: str
    gpu: str
    memory_gib: int  # what each container of the class reserves
    containers: int

    @property
    def cost_per_hour(self) -> float:
        """USD an hour for keeping these containers warm, idle or not (list prices, infra/prices.py)."""
        per_second = (PRICES["modal_gpu_second"][self.gpu] + CONTAINER_CPU_CORES * PRICES["modal_cpu_core_second"]
                      + self.memory_gib * PRICES["modal_memory_gib_second"])
        return round(per_second * 3600 * self.containers, 2)


def parse(values: list[str]) -> list[Pool]:
    """`MODEL=N` (repeated or comma-separated) into pools of catalog weights. Raises ValueError, naming the item.
    Two models on the same weights are one pool: the last one named wins."""
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
        if int(count) > MAX_WARM:
            raise ValueError(f"--warm {item}: at most {MAX_WARM} warm containers per model")
        pool = catalog.weights_pool(spec.weights)
        assert pool is not None
        pools.pop(spec.weights, None)  # re-inserted: the order follows the last mention
        pools[spec.weights] = Pool(spec.weights, spec.id, pool.models, spec.modal_class, spec.gpu,
                                   catalog.class_memory_gib(spec.modal_class), int(count))
    return list(pools.values())


def weights_on_volume(pool: Pool, environment: str) -> bool:
    """Whether the Volume holds a complete download of the pool's weights (gpu/weights.py's layout)."""
    import modal
    import modal.exception

    spec = get_catalog().weights_pool(pool.weights)
    assert spec is not None
    volume = modal.Volume.from_name(layout.WEIGHTS_VOLUME, environment_name=environment)

    def complete(repo: str, revision: str, file: str | None = None) -> bool:
        try:
            commit = revision
            if not layout.is_commit(commit):
                commit = b"".join(volume.read_file(str(layout.ref_path(repo, revision)))).decode().strip()
            names = {entry.path.rsplit("/", 1)[-1] for entry in volume.listdir(str(layout.commit_path(repo, commit)))}
        except modal.exception.NotFoundError:
            return False
        return layout.COMPLETE in names and (file is None or file in names)

    # A built-in adapter (a LoRA fused at load) is one file of its own repo's download.
    return complete(spec.repo, spec.revision) and (
        spec.adapter is None or complete(spec.adapter.repo, spec.adapter.revision, spec.adapter.weight_name))


def apply(pools: list[Pool], *, app_name: str, environment: str) -> list[Pool]:
    """Set each pool's minimum containers on the deployed app (the caller's Modal token). Pools whose weights
    are not on the Volume are not warmed (released to 0 instead), and returned."""
    import modal  # the deploy side's dependency; never imported by a Lambda function

    skipped = []
    for pool in pools:
        containers = pool.containers
        if containers and not weights_on_volume(pool, environment):
            skipped.append(pool)
            containers = 0
        cls = modal.Cls.from_name(app_name, pool.modal_class, environment_name=environment)
        cls(weights=pool.weights).update_autoscaler(min_containers=containers)
    return skipped


def describe(pools: list[Pool]) -> str:
    return "; ".join(f"{p.model}: {p.containers} warm {p.gpu} container(s) ({p.memory_gib} GiB), about "
                     f"${p.cost_per_hour:.2f}/h" for p in pools)
