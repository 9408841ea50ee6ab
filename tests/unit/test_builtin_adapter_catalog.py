"""A catalog model may name a built-in adapter (a LoRA fused at load) and scheduler overrides: both are part of its
weights, so it is a pool of its own beside the plain model on the same repo (qwen-image-lightning beside qwen-image)."""

from __future__ import annotations

import math

import pytest

from functions.core.catalog import BuiltinAdapter, Catalog, get_catalog, weights_key


def test_the_lightning_models_are_one_pool_apart_from_qwen_image():
    catalog = get_catalog()
    plain, fast, edit = (catalog.model(m) for m in ("qwen-image", "qwen-image-lightning", "qwen-image-lightning-edit"))
    assert fast.repo == plain.repo and fast.revision == plain.revision  # Qwen-Image's own files
    assert fast.weights != plain.weights and edit.weights == fast.weights
    assert plain.adapter is None and plain.weights == weights_key(plain.repo, plain.revision)
    pool = catalog.weights_pool(fast.weights)
    assert pool.models == ("qwen-image-lightning", "qwen-image-lightning-edit")
    assert pool.family == "qwenimage" and pool.modal_class == catalog.weights_pool(plain.weights).modal_class
    assert pool.adapter == BuiltinAdapter(repo="lightx2v/Qwen-Image-Lightning",
                                          weight_name="Qwen-Image-Lightning-8steps-V2.0.safetensors")
    assert dict(pool.scheduler) == {"base_shift": pytest.approx(math.log(3)), "max_shift": pytest.approx(math.log(3)),
                                    "shift_terminal": None}
    assert "qwen-image-lightning" not in catalog.weights_pool(plain.weights).models
    assert not fast.pinned and not pool.pinned  # the adapter follows main until its commit is checked


def test_the_lightning_defaults_are_8_steps_without_guidance():
    fast = get_catalog().model("qwen-image-lightning")
    assert (fast.defaults.steps, fast.defaults.guidance) == (8, 1.0)
    assert not fast.uses_negative_prompt(None) and fast.uses_negative_prompt(4.0)  # only with real guidance
    assert fast.credits_per_image == 10  # Qwen-Image's 125 x (8 steps x 1 pass) / (50 x 2)
    assert get_catalog().capabilities(fast)["lora"]  # a request's LoRAs go on top of the fused weights
    assert get_catalog().model("qwen-image-fast") is fast


def test_the_weights_key_names_the_adapter_its_scale_and_the_scheduler():
    adapter = BuiltinAdapter(repo="o/lora", weight_name="f.safetensors")
    assert weights_key("o/base", "main", adapter) == "o/base@main+o/lora@main/f.safetensors"
    scaled = adapter.model_copy(update={"scale": 0.5})
    assert weights_key("o/base", "main", scaled).endswith("f.safetensors*0.5")
    one = weights_key("o/base", "main", adapter, {"shift": 3.0})
    assert one != weights_key("o/base", "main", adapter, {"shift": 2.0}) and "+scheduler:" in one
    assert one == weights_key("o/base", "main", adapter, {"shift": 3.0})


def _entry(**overrides) -> dict:
    return {"id": "m", "name": "M", "task": "text-to-image", "family": "qwenimage", "repo": "o/base",
            "modal_class": "C", **overrides}


def test_an_edit_model_must_have_the_same_adapter():
    adapter = {"repo": "o/lora", "weight_name": "f.safetensors"}
    models = [_entry(adapter=adapter, edit_model="m-edit"),
              _entry(id="m-edit", task="image-to-image", family="qwenimage-img2img")]
    with pytest.raises(ValueError, match="same weights"):
        Catalog.model_validate({"models": models, "tools": []})
    models[1]["adapter"] = adapter
    Catalog.model_validate({"models": models, "tools": []})
