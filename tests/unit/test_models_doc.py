"""docs/models.md is generated from the catalog, and says what the catalog says."""

from __future__ import annotations

from pathlib import Path

from functions.core.catalog import get_catalog
from infra import models_doc
from infra.prices import PRICES

REPO = Path(__file__).resolve().parents[2]


def test_docs_models_md_is_what_the_catalog_generates():
    assert (REPO / "docs/models.md").read_text() == models_doc.markdown(), \
        "run: .venv/bin/python -m infra.models_doc > docs/models.md"


def test_every_model_and_pool_is_tabulated_with_a_priced_gpu():
    text = models_doc.markdown()
    catalog = get_catalog()
    for model in catalog.models:
        assert f"| `{model.id}` ({model.name}) | {model.task} | {model.family} |" in text, model.id
        assert model.gpu in PRICES["modal_gpu_second"], f"{model.id}: no price for {model.gpu}"
    for pool in catalog.weights_pools().values():
        assert f"| `{pool.repo}` | {pool.modal_class} | {pool.gpu} |" in text, pool.key
    for alias, target in catalog.aliases.items():
        assert f"| `{alias}` | `{target}` |" in text
