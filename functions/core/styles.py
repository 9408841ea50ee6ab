"""Style presets: a prompt template, an optional negative prompt and optional defaults, usable from every
dialect. Data in styles.yaml (plus an operator's DARKROOM_STYLES_EXTRA file), validated with pydantic."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, field_validator

from functions.core.catalog import ModelSpec, load_yaml

from .errors import FieldError, ValidationFailed
from .schema import Schema


class StyleDefaults(Schema):
    model_config = ConfigDict(extra="forbid")
    steps: int | None = Field(None, ge=1, le=200)
    guidance: float | None = Field(None, ge=0, le=30)


class Style(Schema):
    model_config = ConfigDict(extra="forbid")
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str
    description: str = ""
    prompt: str
    negative_prompt: str | None = None
    defaults: StyleDefaults = Field(default_factory=StyleDefaults)

    @field_validator("prompt")
    @classmethod
    def _has_placeholder(cls, value: str) -> str:
        if value.count("{prompt}") != 1:
            raise ValueError("the template must contain {prompt} exactly once")
        return value

    def render(self, prompt: str) -> str:
        # str.replace, not str.format: a caller's prompt with braces must never be interpreted.
        return self.prompt.replace("{prompt}", prompt)

    def public(self) -> dict[str, Any]:
        """The preset as GET /api/v1/styles and GET /api/styles list it."""
        return {"slug": self.slug, "name": self.name, "description": self.description,
                "prompt_template": self.prompt, "negative_prompt": self.negative_prompt,
                "defaults": self.defaults.model_dump(exclude_none=True)}


class StyleCatalog(Schema):
    styles: list[Style]

    def get(self, slug: str) -> Style | None:
        return next((s for s in self.styles if s.slug == slug.strip().lower()), None)

    @property
    def slugs(self) -> list[str]:
        return [s.slug for s in self.styles]


@lru_cache(maxsize=1)
def get_styles() -> StyleCatalog:
    data = load_yaml(Path(__file__).with_name("styles.yaml"))
    extra_path = os.environ.get("DARKROOM_STYLES_EXTRA")
    if extra_path:
        extra = load_yaml(Path(extra_path)) or {}
        by_slug = {s["slug"]: s for s in data["styles"]}
        for entry in extra.get("styles") or []:
            by_slug[entry["slug"]] = entry
        data = {"styles": list(by_slug.values())}
    return StyleCatalog.model_validate(data)


def get_style(slug: str, field: str = "style_slug") -> Style:
    """The preset, or a 400 naming `field` and listing the presets there are."""
    catalog = get_styles()
    style = catalog.get(slug) if isinstance(slug, str) else None
    if style is None:
        known = ", ".join(catalog.slugs)
        raise ValidationFailed(
            f"Invalid request: {field}: unknown style {slug!r}; available styles: {known}",
            errors=[FieldError(field, f"unknown style {slug!r}; one of {known}", "style_not_found")],
            code="style_not_found")
    return style


def _join_negative(*parts: str | None) -> str | None:
    """The negative prompts joined, each comma-separated term once (first occurrence kept)."""
    terms: list[str] = []
    for part in parts:
        for term in (part or "").split(","):
            term = term.strip()
            if term and term.lower() not in (t.lower() for t in terms):
                terms.append(term)
    return ", ".join(terms) or None


def apply_style(slug: str | None, prompt: str, negative_prompt: str | None = None, *,
                field: str = "style_slug") -> tuple[str, str | None, Style | None]:
    """(prompt, negative prompt, style) after the preset `slug`; the inputs unchanged when slug is None.

    The caller's negative prompt is kept and the preset's is appended to it.
    """
    if slug is None:
        return prompt, negative_prompt, None
    style = get_style(slug, field)
    return style.render(prompt), _join_negative(negative_prompt, style.negative_prompt), style


def style_defaults(styles: list[Style], model: ModelSpec) -> dict[str, Any]:
    """GenerationInput fields the presets ask for, fitted to the model: steps capped at its max_steps,
    guidance only for models that use classifier-free guidance (a distilled model's default is 0 or None).
    Later presets win. The caller's own values are applied over these by the dialect."""
    out: dict[str, Any] = {}
    for style in styles:
        if style.defaults.steps is not None:
            out["steps"] = min(style.defaults.steps, model.max_steps)
        if style.defaults.guidance is not None and model.defaults.guidance:
            out["guidance"] = style.defaults.guidance
    return out
