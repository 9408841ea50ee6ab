"""Capabilities and licenses are catalog data: the listings report them and validation reads the same data, so the
API never accepts what the worker cannot do, and never runs a model whose license the operator has not accepted."""

from __future__ import annotations

import pytest

from functions.core.catalog import get_catalog
from functions.core.errors import ValidationFailed
from functions.core.generation import GenerationInput, parse_input, resolve_request
from functions.core.settings import get_settings
from functions.dialects.shared import Styled, generation_fields, style_prompt

URL = "https://example.com/{}.png"
CAPABILITIES = {"references", "mask", "last_frame", "extend", "audio", "lora", "negative_prompt"}


def _resolve(model_id: str, **fields):
    inp = parse_input(GenerationInput, {"prompt": "a fox", **fields})
    return resolve_request(get_catalog().model(model_id), inp, workspace_id="ws")


def _refused(model_id: str, **fields) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as info:
        _resolve(model_id, **fields)
    assert info.value.status == 400
    return info.value


@pytest.fixture
def licenses(monkeypatch):
    """Set the operator's accepted licenses for one test."""
    def accept(value: str) -> None:
        monkeypatch.setenv("DARKROOM_ACCEPTED_LICENSES", value)
        get_settings.cache_clear()
    yield accept
    get_settings.cache_clear()


# ---------------------------------------------------------------- licenses


def test_a_model_not_free_for_commercial_use_is_refused_until_its_license_is_accepted(licenses):
    licenses("")
    error = _refused("flux-dev")
    assert error.errors[0].field == "model" and error.code == "license_not_accepted"
    assert "flux-1-dev-non-commercial" in error.message and "--accept-license" in error.message
    assert "flux-schnell" in error.message and "flux2-klein" in error.message  # what runs instead
    _resolve("flux-schnell")  # Apache-2.0: always
    licenses("stabilityai-community")  # another license accepted: flux-dev still refused
    _refused("flux-dev")
    licenses("stabilityai-community, flux-1-dev-non-commercial")
    assert _resolve("flux-dev")[0].id == "flux-dev"
    licenses("*")
    assert _resolve("playground-v2")[0].id == "playground-v2"


def test_the_edit_model_a_request_switches_to_is_gated_too(licenses):
    licenses("")
    error = _refused("flux-dev-edit", image_urls=[URL.format(1)])
    assert error.code == "license_not_accepted"


def test_listings_report_license_and_whether_this_deployment_runs_the_model():
    catalog = get_catalog()
    for model in catalog.models:
        facts = catalog.facts(model, accepted_licenses="")
        assert facts["license"] != "unspecified" and facts["license_url"].startswith("https://"), model.id
        assert facts["enabled"] == facts["commercial_use"], model.id
        assert catalog.facts(model, accepted_licenses="*")["enabled"], model.id
    assert not catalog.model("flux-dev").commercial_use and catalog.model("flux2-klein").commercial_use


def test_every_default_and_every_vendor_name_is_free_for_commercial_use():
    """A fresh deploy (no license accepted) serves a request that names no model, or OpenAI's or AI Media Studio's
    names; only the video tier waits for an Apache-licensed video model. Replicate's owner/name and fal's endpoint
    ids name one model exactly (FLUX.1 [dev] is black-forest-labs/flux-dev and fal-ai/flux/dev): they run it under
    its own license, refused with a 400 until the operator accepts it, like its Darkroom id."""
    catalog = get_catalog()
    for tool in catalog.tools:
        model = catalog.model(tool.default_model)
        assert model.commercial_use or model.type == "video", tool.slug
    for name, target in catalog.aliases.items():
        model = catalog.model(target)
        if "/" in name:  # a Replicate or fal name of the model itself
            assert model.license, name
            continue
        assert model.commercial_use or model.type == "video", name


# ---------------------------------------------------------------- capabilities


def test_listings_report_every_capability_and_task():
    catalog = get_catalog()
    for model in catalog.models:
        facts = catalog.facts(model, accepted_licenses="*")
        assert set(facts["capabilities"]) == CAPABILITIES, model.id
        assert facts["tasks"][0] == model.task
    klein = catalog.facts(catalog.model("flux2-klein"), "*")
    assert klein["capabilities"]["references"] == 4 and klein["capabilities"]["mask"]
    assert {"text-to-image", "image-to-image", "multi-reference-editing", "inpainting"} <= set(klein["tasks"])
    assert catalog.facts(catalog.model("flux-schnell"), "*")["capabilities"]["references"] == 1
    video = catalog.facts(catalog.model("wan2.2-ti2v-5b"), "*")
    assert video["durations"] == [2, 3, 5] and video["frame_rates"] == [24] and "image-to-video" in video["tasks"]
    assert catalog.facts(catalog.model("ltx-video"), "*")["frame_rates"] == []  # any: LTX conditions on it
    flf = catalog.facts(catalog.model("wan2.1-flf2v-14b"), "*")
    assert flf["capabilities"]["last_frame"] and "first-last-frame-to-video" in flf["tasks"]


def test_a_negative_prompt_a_model_would_not_use_is_refused_naming_the_models_that_would():
    error = _refused("flux2-klein", negative_prompt="blurry")
    assert error.errors[0].field == "negative_prompt" and "z-image-turbo" in error.message
    # Z-Image runs classifier-free guidance only above 0, and the turbo model's default is 0.
    error = _refused("z-image-turbo", negative_prompt="blurry")
    assert "guidance above 0" in error.message
    assert _resolve("z-image-turbo", negative_prompt="blurry", guidance=1.5)[1]["negative_prompt"] == "blurry"
    _refused("sdxl-turbo", negative_prompt="blurry", guidance=1.0)  # SDXL: only above 1
    assert _resolve("playground-v2", negative_prompt="blurry")[1]["negative_prompt"] == "blurry"  # default 3.0


def test_a_presets_negative_prompt_goes_only_where_the_model_uses_it():
    styled = style_prompt("a fox", None, [("photorealistic", "style")])
    assert styled.negative_prompt and styled.own_negative_prompt is None
    catalog = get_catalog()
    assert "negative_prompt" not in generation_fields(catalog.model("flux-schnell"), styled, {})
    assert generation_fields(catalog.model("playground-v2"), styled, {})["negative_prompt"] == styled.negative_prompt
    # The caller's own goes through, so that a model that cannot use it refuses it.
    own = generation_fields(catalog.model("flux-schnell"), Styled("a fox", "blurry"), {})
    assert own["negative_prompt"] == "blurry"


def test_an_edit_model_takes_one_image_per_output_and_names_the_models_that_compose_more():
    images = [URL.format(i) for i in range(3)]
    error = _refused("flux-schnell", image_urls=images)
    assert error.errors[0].field == "image_urls" and error.code == "too_many_references"
    assert "flux2-klein-edit" in error.message
    model, params = _resolve("flux-schnell", image_urls=images, n=3)  # one each, in turn
    assert model.id == "flux-schnell-edit" and len(params["references"]) == 3
    assert len(_resolve("flux2-klein", image_urls=images)[1]["references"]) == 3  # composed


def test_an_image_to_video_model_takes_one_first_frame():
    error = _refused("ltx-video", image_urls=[URL.format(1), URL.format(2)])
    assert error.errors[0].field == "image_urls" and "first frame" in error.message
    assert _resolve("ltx-video", image_urls=[URL.format(1)])[0].id == "ltx-video-i2v"


def test_able_lists_the_models_a_request_may_name_for_a_capability():
    catalog = get_catalog()
    assert "flux2-klein" in catalog.able("image", "references", 3)
    assert "flux-schnell" not in catalog.able("image", "references", 3)
    assert set(catalog.able("image", "mask")) >= {"flux-schnell", "flux2-klein", "z-image-turbo"}


# ---------------------------------------------------------------- video capabilities


def test_audio_runs_on_a_model_that_makes_it_and_is_refused_elsewhere():
    model, params = _resolve("ltx-2", audio=True)
    assert model.id == "ltx-2" and params["audio"] is True
    error = _refused("wan2.2-ti2v-5b", audio=True)
    assert error.errors[0].field == "audio" and "ltx-2" in error.message


def test_a_last_frame_needs_a_model_that_takes_one_and_a_first_frame():
    model, params = _resolve("wan2.1-flf2v-14b", first_frame_url=URL.format(1), last_frame_url=URL.format(2))
    assert model.id == "wan2.1-flf2v-14b" and params["last_frame"] == {"url": URL.format(2)}
    assert len(params["references"]) == 1 and params["frames"] == 81 and params["fps"] == 16
    error = _refused("wan2.2-ti2v-5b", first_frame_url=URL.format(1), last_frame_url=URL.format(2))
    assert error.errors[0].field == "last_frame_url" and "wan2.1-flf2v-14b" in error.message
    assert _refused("wan2.1-flf2v-14b", first_frame_url=URL.format(1)).errors[0].field == "last_frame_url"
    assert _refused("wan2.1-flf2v-14b", last_frame_url=URL.format(2)).errors[0].field == "image_urls"


def test_a_model_that_takes_no_frame_rate_refuses_another():
    error = _refused("wan2.2-ti2v-5b", fps=12)
    assert error.errors[0].field == "fps" and "24" in error.message
    assert _resolve("ltx-video", fps=12)[1]["fps"] == 12  # LTX conditions on it


def test_qwen_image_takes_a_negative_prompt_with_its_default_guidance_and_edits_with_strength():
    assert _resolve("qwen-image", negative_prompt="blurry")[1]["negative_prompt"] == "blurry"  # guidance 4
    model, params = _resolve("qwen-image", image_urls=[URL.format(1)], strength=0.5)
    assert model.id == "qwen-image-edit" and params["strength"] == 0.5
    assert not get_catalog().model("wan2.2-t2v-a14b").edit_model  # its image-to-video model is other weights
    assert _resolve("wan2.2-i2v-a14b", image_urls=[URL.format(1)])[1]["frames"] == 81
