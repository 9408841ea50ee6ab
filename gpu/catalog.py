"""The model catalog: data (catalog.yaml, plus an operator's extra file), validated with pydantic."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, model_validator

Task = Literal["text-to-image", "image-to-image", "text-to-video", "image-to-video"]
TASK_TYPES: dict[str, str] = {
    "text-to-image": "image", "image-to-image": "image", "text-to-video": "video", "image-to-video": "video",
}


class Defaults(BaseModel):
    model_config = {"extra": "forbid"}
    steps: int = 4
    guidance: float | None = None
    width: int = 1024
    height: int = 1024
    fps: int | None = None
    frames: int | None = None


class ModelSpec(BaseModel):
    model_config = {"extra": "forbid"}
    id: str
    name: str
    task: Task
    family: str
    repo: str
    revision: str = "main"
    gated: bool = False
    gpu: str = "H100"
    modal_class: str
    credits_per_image: float = 1
    credits_per_second: float | None = None
    defaults: Defaults = Field(default_factory=Defaults)
    max_steps: int = 50
    # Pixel bounds and granularity: diffusion VAEs downscale by 8 and FLUX packs 2x2 latents, hence 16.
    min_side: int = 256
    max_side: int = 2048
    multiple_of: int = 16
    aliases: list[str] = Field(default_factory=list)
    description: str = ""

    @property
    def type(self) -> str:
        return TASK_TYPES[self.task]


class ToolSpec(BaseModel):
    model_config = {"extra": "forbid"}
    slug: str
    name: str
    description: str = ""
    task: Task
    type: str
    default_model: str


class Catalog(BaseModel):
    models: list[ModelSpec]
    tools: list[ToolSpec]

    @model_validator(mode="after")
    def _check_references(self) -> "Catalog":
        ids = {m.id for m in self.models}
        for tool in self.tools:
            if tool.default_model not in ids:
                raise ValueError(f"tool {tool.slug}: default_model {tool.default_model!r} is not in the catalog")
        return self

    def model(self, name: str) -> ModelSpec | None:
        """A model by id or alias (case-insensitive)."""
        return self._index().get(name.lower())

    def tool(self, slug: str) -> ToolSpec | None:
        return next((t for t in self.tools if t.slug == slug), None)

    def models_for(self, task: str) -> list[ModelSpec]:
        return [m for m in self.models if m.task == task]

    def _index(self) -> dict[str, ModelSpec]:
        index: dict[str, ModelSpec] = {}
        for model in self.models:
            for name in (model.id, *model.aliases):
                index[name.lower()] = model
        return index


def _merge(base: dict, extra: dict) -> dict:
    """An operator's file adds models and tools, or replaces those with the same id/slug."""
    merged = dict(base)
    for section, key in (("models", "id"), ("tools", "slug")):
        by_key = {entry[key]: entry for entry in base.get(section, [])}
        for entry in extra.get(section) or []:
            by_key[entry[key]] = entry
        merged[section] = list(by_key.values())
    for alias, target in (extra.get("aliases") or {}).items():
        entry = next((m for m in merged["models"] if m["id"] == target), None)
        if entry is None:
            raise ValueError(f"alias {alias!r} points at {target!r}, which is not in the catalog")
        entry.setdefault("aliases", []).append(alias)
    return merged


@lru_cache(maxsize=1)
def get_catalog() -> Catalog:
    data = yaml.safe_load((Path(__file__).with_name("catalog.yaml")).read_text())
    extra_path = os.environ.get("DARKROOM_CATALOG_EXTRA")
    if extra_path:
        data = _merge(data, yaml.safe_load(Path(extra_path).read_text()) or {})
    return Catalog.model_validate(data)
