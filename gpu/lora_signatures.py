"""The modules a LoRA may target in each base family's pipeline, with their dims: functions/core/lora_signatures.json.

`python -m gpu.lora_signatures` (re)writes it; tests/gpu/test_lora_signatures.py checks that regenerating gives
exactly the committed file. Layout (compact JSON, plain module names):

    {"_generated_by": "python -m gpu.lora_signatures",
     "families": {"<base family>": {"real": {"<component>.<module path>": [in, out], ...}, "tiny": {...}}}}

A key is what a LoRA file in diffusers' format prefixes `.lora_A.weight` / `.lora_B.weight` with: the component as
the pipeline's LoRA loader names it (gpu.loras.lora_components: `transformer`, `unet`, and the text encoders the
loader takes, SDXL's `text_encoder` and `text_encoder_2`, FLUX.1's `text_encoder`; LTX-2's `connectors`), then the
module's path in it. Every nn.Linear is listed as [in_features, out_features] and every nn.Conv2d (SDXL's UNet) as
[in_channels, out_channels]: lora_A is then [rank, in, ...] and lora_B [out, rank, ...].

`real` comes from each component built on the meta device from the real config.json under gpu/model_configs/
(gpu/footprint.py), for the repos the catalog's weights pools of that family name; when a family has several
(FLUX.1 schnell and dev, SDXL-Turbo and Playground v2), the modules they all have must have the same dims (asserted),
and `real` lists those common to all of them: a LoRA fitting `real` loads on every pool of the family. `tiny` comes
from gpu/tiny.py's builders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).resolve().parents[1] / "functions" / "core" / "lora_signatures.json"
GENERATED_BY = "python -m gpu.lora_signatures"

Signature = dict[str, list[int]]


def module_dims(component: str, model: Any) -> Signature:
    """`{"<component>.<module path>": [in, out]}` for every nn.Linear and nn.Conv2d of `model`."""
    from torch import nn

    dims: Signature = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            dims[f"{component}.{name}"] = [module.in_features, module.out_features]
        elif isinstance(module, nn.Conv2d):
            dims[f"{component}.{name}"] = [module.in_channels, module.out_channels]
    return dims


def lora_bases() -> list[str]:
    """The base families whose pipelines take LoRAs."""
    from gpu.pipelines import FAMILIES, lora_families

    return sorted({spec.base for spec in FAMILIES.values()} & lora_families())


def _components(family: str) -> list[str]:
    from gpu.loras import lora_components
    from gpu.pipelines import PIPELINE_CLASSES

    return lora_components(PIPELINE_CLASSES[family])


def real_signature(family: str, repos: list[str]) -> Signature:
    """The modules common to every repo of the family (their dims must agree), from the real configs."""
    from gpu import footprint

    per_repo = []
    for repo in repos:
        configs = footprint.component_configs(repo)
        dims: Signature = {}
        for component in _components(family):
            if component in configs:
                dims.update(module_dims(component, footprint.build_component(configs[component])))
        assert dims, f"{repo}: no LoRA-loadable component among {sorted(configs)}"
        per_repo.append(dims)
    common = set.intersection(*(set(d) for d in per_repo))
    for key in sorted(common):
        shapes = {tuple(d[key]) for d in per_repo}
        assert len(shapes) == 1, f"{family}: {key} differs between {repos}: {shapes}"
    return {key: per_repo[0][key] for key in sorted(common)}


def tiny_signature(family: str) -> Signature:
    from gpu.tiny import build_tiny

    pipe = build_tiny(family)
    dims: Signature = {}
    for component in _components(family):
        model = getattr(pipe, component, None)
        if model is not None:
            dims.update(module_dims(component, model))
    return dict(sorted(dims.items()))


def family_repos() -> dict[str, list[str]]:
    """Each base family's repos, from the catalog's weights pools."""
    from functions.core.catalog import get_catalog
    from gpu.pipelines import family_spec

    repos: dict[str, set[str]] = {}
    for pool in get_catalog().weights_pools().values():
        repos.setdefault(family_spec(pool.family).base, set()).add(pool.repo)
    return {family: sorted(r) for family, r in repos.items()}


def signatures() -> dict[str, Any]:
    repos = family_repos()
    families = {}
    for family in lora_bases():
        if family not in repos:  # a family no catalog model uses
            continue
        families[family] = {"real": real_signature(family, repos[family]), "tiny": tiny_signature(family)}
    return {"_generated_by": GENERATED_BY, "families": families}


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":")) + "\n"


def main() -> None:
    text = render(signatures())
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT} ({len(text)} bytes)")


if __name__ == "__main__":
    main()
