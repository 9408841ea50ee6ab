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


def test_a_video_is_priced_by_the_frames_it_makes():
    """fps changes the frames an LTX model makes in a duration; the price follows them, and at a model's default rate
    every duration costs what it did (credits per second)."""
    catalog = get_catalog()
    for model in (m for m in catalog.models if m.type == "video"):
        for duration in model.durations:
            at_default = {"duration": duration, "fps": model.defaults.fps, "frames": model.frames_for(duration)}
            assert model.price(at_default) == duration * model.credits_per_second, (model.id, duration)
    ltx = catalog.model("ltx-video")  # 2 credits a second: 97 frames in 4 s at 24 fps
    assert ltx.frames_for(4, 60) == 241
    assert ltx.price({"duration": 4, "fps": 60, "frames": 241}) == round(2 * 4 * 241 / 97, 4)
    assert ltx.price({"duration": 4, "fps": 60}) == ltx.price({"duration": 4, "fps": 60, "frames": 241})
    assert ltx.price({"duration": 6, "fps": 60, "frames": ltx.max_frames}) == round(2 * 6 * 257 / 145, 4)  # capped
    ltx2 = catalog.model("ltx-2")  # an extension: the new frames, plus the clip's end it conditions on
    clip = {"extend_video": {"upload_key": "clip.mp4"}}
    assert ltx2.price({"duration": 5, "fps": 24, "frames": 121, **clip}) == (5 + 1) * ltx2.credits_per_second
    frames = ltx2.frames_for(5, 48)
    assert ltx2.price({"duration": 5, "fps": 48, "frames": frames, **clip}) == \
        round((5 * frames / 121 + 1) * ltx2.credits_per_second, 4)
    assert "frames / frames at 24 fps" in ltx.pricing()["formula"]
    assert "frames" not in catalog.model("wan2.2-ti2v-5b").pricing()["formula"]  # one rate: frames follow seconds


@pytest.mark.parametrize("model_id, guidance, factor", [
    ("sdxl-turbo", 2.0, 2), ("sdxl-turbo", 1.0, 1),  # distilled: no guidance (one pass) by default
    ("z-image-turbo", 0.5, 2), ("qwen-image-lightning", 4.0, 2), ("qwen-image-lightning-edit", 4.0, 2),
    ("qwen-image", 1.0, 0.5), ("playground-v2", 0.0, 0.5), ("ltx-video", 1.0, 0.5),  # guided by default: two
    ("qwen-image", 7.0, 1), ("flux-dev", 10.0, 1), ("flux2-dev", 1.0, 1),  # guidance-distilled: one pass always
    ("ltx-2", 1.0, 1),  # its audio guidance runs the second pass at any guidance
])
def test_the_price_follows_the_denoiser_passes_guidance_makes(model_id, guidance, factor):
    model = get_catalog().model(model_id)
    d = model.defaults
    params = {"width": d.width, "height": d.height, "steps": d.steps, "strength": d.strength}
    assert model.price({**params, "guidance": d.guidance}) == model.price(params) == model.base_credits * (
        d.duration or 1)
    assert model.price({**params, "guidance": guidance}) == model.price(params) * factor
    assert ("passes" in model.pricing()["formula"]) == (model.negative_prompt and not model.audio)


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
