"""Tiny LoRAs in the local stack: one for each base family the catalog runs, made with peft on its tiny pipeline
(gpu/tiny.py) and registered in the dev workspace, so `GET /api/loras` lists an adapter to try with every model and
nothing to download. Registered once (by name); the files are built once into the data directory."""

from __future__ import annotations

import threading
from pathlib import Path


def lora_name(family: str) -> str:
    return f"tiny-{family}"


def seed_dev_loras(workspace_id: str, cache_dir: Path, stopping: threading.Event | None = None) -> list[str]:
    """Register the missing tiny LoRAs in `workspace_id`; returns the ids of those registered now."""
    from functions.core import lora_files, loras
    from functions.core.catalog import get_catalog
    from functions.core.errors import DarkroomError
    from gpu.tiny import ensure_tiny_lora

    catalog = get_catalog()
    families = sorted({catalog.base_family(m) for m in catalog.models} & lora_files.lora_families())
    registered = {record.name for record in loras.list_loras(workspace_id)[0]}
    added = []
    for family in families:
        if stopping is not None and stopping.is_set():
            break
        name = lora_name(family)
        if name in registered:
            continue
        try:
            path = ensure_tiny_lora(family, cache_dir, name)
            added.append(loras.register_bytes(workspace_id, path.read_bytes(), path.name, name=name).id)
        except (DarkroomError, ValueError) as exc:  # one family's adapter must not keep the others out
            print(f"the tiny LoRA of {family} was not registered: {exc}", flush=True)
    return added
