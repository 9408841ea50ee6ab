"""The idle tail each burst of work ends with, per GPU class (docs/cost.md): the class's scale-down window from the
catalog (the longest of its models'), priced at its GPU's rate, and Modal asked for that same window."""

from __future__ import annotations

from functions.core.catalog import get_catalog
from infra import bench_calls
from infra.prices import PRICES


def test_each_class_shows_its_own_window_at_its_gpus_price():
    catalog = get_catalog()
    rows = bench_calls.idle_tails()
    classes = sorted({m.modal_class for m in catalog.models})
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == classes
    for row, modal_class in zip(rows, classes, strict=True):
        gpu = catalog.class_pools(modal_class)[0].gpu
        window = catalog.class_scaledown_window(modal_class)
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[1:3] == [gpu, f"{window} s"]
        assert float(cells[3]) >= window * PRICES["modal_gpu_second"][gpu] - 0.005
        assert cells[4] == "not measured yet"  # never estimated


def test_a_class_waits_the_longest_window_of_its_models():
    catalog = get_catalog()
    flux = catalog.model("flux-schnell")
    longer = flux.model_copy(update={"id": "flux-slow", "scaledown_window": 900})
    widened = catalog.model_copy(update={"models": [*catalog.models, longer]})
    assert widened.class_scaledown_window(flux.modal_class) == 900
    assert catalog.class_scaledown_window(flux.modal_class) == flux.scaledown_window
