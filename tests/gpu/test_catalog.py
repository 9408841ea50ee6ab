"""The catalog's image-to-image and video entries: edit counterparts, durations, frame rules, validation."""

from __future__ import annotations

import copy

import pytest
import yaml
from pydantic import ValidationError

from functions.core.catalog import Catalog, get_catalog
from gpu.pipelines import FAMILIES


def _data() -> dict:
    from pathlib import Path

    import functions.core.catalog

    return yaml.safe_load(Path(functions.core.catalog.__file__).with_name("catalog.yaml").read_text())


def test_every_text_model_finds_its_edit_counterpart_on_the_same_weights():
    catalog = get_catalog()
    for model in catalog.models:
        counterpart = catalog.with_references(model)
        if model.task in ("text-to-image", "text-to-video") and model.edit_model is None:
            # Its image-taking model is other weights (Wan 2.2 A14B's I2V repo): a request names that by id.
            assert counterpart is None, model.id
        elif model.task in ("text-to-image", "text-to-video"):
            assert counterpart is not None and counterpart.id == model.edit_model, model.id
            assert counterpart.task == {"text-to-image": "image-to-image",
                                        "text-to-video": "image-to-video"}[model.task]
            assert (counterpart.repo, counterpart.revision) == (model.repo, model.revision)
            # Same weights directory: the derived family's base is the text model's family.
            assert FAMILIES[counterpart.family].base == model.family
            assert counterpart.modal_class == model.modal_class
        else:
            assert counterpart is model


def test_tools_cover_every_task():
    catalog = get_catalog()
    assert {t.slug: t.default_model for t in catalog.tools} == {
        "create-image": "flux2-klein", "edit-image": "flux2-klein-edit",
        "create-video": "wan2.2-ti2v-5b", "image-to-video": "wan2.2-ti2v-5b-i2v",
    }


def test_wan_frames_follow_its_vae():
    wan = get_catalog().model("wan2.2-ti2v-5b")
    assert [wan.frames_for(d) for d in wan.durations] == [49, 73, 121]  # 4k+1 at 24 fps
    assert wan.frames_for(60) == wan.max_frames == 121


def test_ltx_frames_durations_and_credits():
    ltx = get_catalog().model("ltx-video")
    assert ltx.type == "video" and ltx.durations == [2, 4, 6]
    assert [ltx.frames_for(d) for d in ltx.durations] == [49, 97, 145]  # 8k+1 at 24 fps
    assert ltx.frames_for(4, fps=8) == 33
    assert ltx.frames_for(60) == ltx.max_frames == 257
    assert all(ltx.valid_frames(f) for f in (9, 49, 97, 257)) and not any(ltx.valid_frames(f) for f in (0, 48, 265))
    assert ltx.defaults.frames == ltx.frames_for(ltx.defaults.duration)
    assert [ltx.snap_duration(s) for s in (0.5, 2.9, 3, 3.1, 5, 100)] == [2, 2, 2, 4, 4, 6]
    assert ltx.price({"duration": 4}) == 4 * ltx.credits_per_second  # at its default size and steps
    assert ltx.audio is False and ltx.min_steps == 2


def test_the_price_follows_pixels_steps_and_outputs():
    dev = get_catalog().model("flux-dev")  # 3 credits an image at 1024x1024 and 28 steps
    assert dev.price({"n": 2}) == 6
    assert dev.price({"n": 1, "width": 2048, "height": 2048, "steps": 28}) == 12  # 4x the pixels
    assert dev.price({"n": 10, "width": 2048, "height": 2048, "steps": 50}) == round(3 * 10 * 4 * 50 / 28, 4)
    assert dev.price({"n": 10, "width": 256, "height": 256, "steps": 4}) == 3 * 10 * 0.25  # the floor
    edit = get_catalog().model("sdxl-turbo-edit")  # img2img: the steps that run are steps x strength
    at_default = {"width": edit.defaults.width, "height": edit.defaults.height, "steps": edit.defaults.steps,
                  "strength": edit.defaults.strength}
    assert edit.price(at_default) == edit.credits_per_image
    assert edit.price({**at_default, "strength": 1.0}) == edit.credits_per_image * 1.0 / edit.defaults.strength
    video = get_catalog().model("ltx-video")
    d = video.defaults
    assert video.price({"duration": 4, "width": d.width * 2, "height": d.height, "steps": d.steps}) == \
        4 * video.credits_per_second * 2
    assert dev.pricing()["formula"].startswith("credits × n × max(0.25, width × height / (1024 × 1024)")


def test_image_credits_and_edit_strength():
    catalog = get_catalog()
    assert catalog.model("sdxl-turbo-edit").defaults.strength == 0.5
    with pytest.raises(ValueError, match="not a video model"):
        catalog.model("flux-schnell").snap_duration(4)


def _broken(mutate) -> ValidationError:
    data = copy.deepcopy(_data())
    mutate({m["id"]: m for m in data["models"]})
    with pytest.raises(ValidationError) as info:
        Catalog.model_validate(data)
    return info.value


@pytest.mark.parametrize("mutate, match", [
    (lambda m: m["flux-schnell"].update(edit_model="nope"), "edit_model 'nope' is not in the catalog"),
    (lambda m: m["flux-schnell"].update(edit_model="ltx-video-i2v"), "is a image-to-video model"),
    (lambda m: m["flux-schnell"].update(edit_model="flux-dev-edit"), "must use the same weights"),
    (lambda m: m["ltx-video"].pop("durations"), "needs durations"),
    (lambda m: m["ltx-video"].pop("credits_per_second"), "credits_per_second"),
    (lambda m: m["ltx-video"]["defaults"].update(frames=96), "does not match"),
    (lambda m: m["ltx-video"]["defaults"].update(steps=1), "min_steps"),
    (lambda m: m["flux-schnell-edit"]["defaults"].update(strength=1.5), "less than or equal to 1"),
])
def test_inconsistent_entries_are_refused_when_the_catalog_loads(mutate, match):
    assert match in str(_broken(mutate))
