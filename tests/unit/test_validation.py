"""Request validation (errors that name the field), parameter resolution from the catalog, the catalog itself."""

from __future__ import annotations

import math

import pytest
import yaml

from functions.core.catalog import get_catalog
from functions.core.errors import ValidationFailed
from functions.core.generation import GenerationInput, parse_input, resolve_params


def fields_of(exc: ValidationFailed) -> dict[str, str]:
    return {e.field: e.code for e in exc.errors}


def parse(data, prefix="input."):
    return parse_input(GenerationInput, data, prefix=prefix)


def resolve(model_id: str, **data):
    model = get_catalog().model(model_id)
    assert model is not None, model_id
    return resolve_params(model, parse(data), prefix="input.")


def resolve_error(model_id: str, **data) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as info:
        resolve(model_id, **data)
    assert info.value.status == 400
    return info.value


# ---------------------------------------------------------------- parse_input


def test_valid_input_parses():
    inp = parse({"prompt": "  a red fox  ", "n": 2, "size": "768x512", "seed": 7})
    assert inp.prompt == "a red fox"
    assert (inp.n, inp.size, inp.seed) == (2, "768x512", 7)


def test_missing_prompt_is_required():
    with pytest.raises(ValidationFailed) as info:
        parse({})
    assert fields_of(info.value) == {"input.prompt": "required"}
    assert info.value.status == 400
    assert "input.prompt" in info.value.message
    assert info.value.param == "input.prompt"


def test_unknown_field_is_refused_not_ignored():
    with pytest.raises(ValidationFailed) as info:
        parse({"prompt": "fox", "foo": 1})
    assert fields_of(info.value) == {"input.foo": "unknown_field"}


def test_every_error_is_reported():
    with pytest.raises(ValidationFailed) as info:
        parse({"foo": 1, "n": 0})
    assert set(fields_of(info.value)) == {"input.prompt", "input.foo", "input.n"}


@pytest.mark.parametrize("n", [0, 11, -1])
def test_n_out_of_range(n):
    with pytest.raises(ValidationFailed) as info:
        parse({"prompt": "fox", "n": n})
    assert list(fields_of(info.value)) == ["input.n"]


@pytest.mark.parametrize("n", [1, 10])
def test_n_bounds_are_inclusive(n):
    assert parse({"prompt": "fox", "n": n}).n == n


@pytest.mark.parametrize("size", ["big", "1024", "1024x", "x1024", "1024*1024", "1x1", "1024x1024x3"])
def test_bad_size_string(size):
    with pytest.raises(ValidationFailed) as info:
        parse({"prompt": "fox", "size": size})
    assert list(fields_of(info.value)) == ["input.size"]
    assert "1024x1024" in info.value.errors[0].message


@pytest.mark.parametrize("ratio", ["wide", "16/9", "16:", "160:9"])
def test_bad_aspect_ratio_string(ratio):
    with pytest.raises(ValidationFailed) as info:
        parse({"prompt": "fox", "aspect_ratio": ratio})
    assert list(fields_of(info.value)) == ["input.aspect_ratio"]


def test_blank_prompt_is_refused():
    with pytest.raises(ValidationFailed) as info:
        parse({"prompt": "   "})
    assert list(fields_of(info.value)) == ["input.prompt"]


def test_prefix_is_optional():
    with pytest.raises(ValidationFailed) as info:
        parse({"prompt": "fox", "bar": 1}, prefix="")
    assert fields_of(info.value) == {"bar": "unknown_field"}


@pytest.mark.parametrize("body", [None, [], ["prompt"], "prompt", 3])
def test_non_object_body(body):
    with pytest.raises(ValidationFailed) as info:
        parse(body)
    assert info.value.status == 400
    assert fields_of(info.value) == {"input": "invalid_type"}
    with pytest.raises(ValidationFailed) as info:
        parse(body, prefix="")
    assert fields_of(info.value) == {"body": "invalid_type"}


# ---------------------------------------------------------------- resolve_params


def test_defaults_come_from_the_catalog():
    params = resolve("sdxl-turbo", prompt="fox")
    assert params == {"prompt": "fox", "n": 1, "width": 512, "height": 512, "steps": 1, "guidance": 0.0,
                      "output_format": "png"}


def test_other_model_defaults():
    params = resolve("flux-dev", prompt="fox")
    assert (params["width"], params["height"], params["steps"], params["guidance"]) == (1024, 1024, 28, 3.5)


def test_size_is_honoured():
    params = resolve("sdxl-turbo", prompt="fox", size="768x512")
    assert (params["width"], params["height"]) == (768, 512)


def test_explicit_width_and_height_win():
    params = resolve("sdxl-turbo", prompt="fox", size="768x512", width=512, height=768)
    assert (params["width"], params["height"]) == (512, 768)


def test_caller_choices_are_kept():
    params = resolve("sdxl-turbo", prompt="fox", n=3, steps=4, guidance=1.5, seed=42, output_format="webp",
                     quality=80, negative_prompt="blur")
    assert params == {"prompt": "fox", "n": 3, "width": 512, "height": 512, "steps": 4, "guidance": 1.5,
                      "seed": 42, "output_format": "webp", "quality": 80, "negative_prompt": "blur"}


@pytest.mark.parametrize("model_id", ["sdxl-turbo", "flux-schnell"])
@pytest.mark.parametrize("ratio", ["16:9", "9:16", "4:3", "1:1", "21:9"])
def test_aspect_ratio_takes_precedence_over_size(model_id, ratio):
    model = get_catalog().model(model_id)
    params = resolve(model_id, prompt="fox", size="768x512", aspect_ratio=ratio)
    width, height = params["width"], params["height"]
    rw, rh = (int(x) for x in ratio.split(":"))
    assert width % model.multiple_of == 0 and height % model.multiple_of == 0
    assert math.isclose(width / height, rw / rh, rel_tol=0.05)
    default_area = model.defaults.width * model.defaults.height
    assert math.isclose(width * height, default_area, rel_tol=0.05)
    if ratio != "1:1":
        assert (width, height) != (768, 512)


def test_sixteen_by_nine_on_sdxl_turbo():
    params = resolve("sdxl-turbo", prompt="fox", aspect_ratio="16:9")
    assert params["width"] > params["height"]
    assert (params["width"], params["height"]) == (688, 384)


def test_auto_size_and_ratio_mean_default():
    params = resolve("sdxl-turbo", prompt="fox", size="auto", aspect_ratio="auto")
    assert (params["width"], params["height"]) == (512, 512)


def test_width_not_multiple_of_16():
    exc = resolve_error("sdxl-turbo", prompt="fox", width=500)
    assert exc.code == "invalid_size"
    assert fields_of(exc) == {"input.width": "invalid_size"}
    assert "multiple of 16" in exc.errors[0].message


def test_size_not_multiple_of_16():
    exc = resolve_error("sdxl-turbo", prompt="fox", size="500x512")
    assert fields_of(exc) == {"input.size": "invalid_size"}


@pytest.mark.parametrize("size", ["128x512", "4096x512"])
def test_size_outside_model_bounds(size):
    exc = resolve_error("sdxl-turbo", prompt="fox", size=size)
    assert fields_of(exc) == {"input.size": "invalid_size"}


@pytest.mark.parametrize("data,field", [
    ({"height": 500}, "input.height"),
    ({"width": 512, "height": 500}, "input.height"),
    ({"aspect_ratio": "1:99"}, "input.aspect_ratio"),
])
def test_size_error_names_the_field_that_caused_it(data, field):
    # The caller must be told which of its own fields is wrong, not one it never sent.
    exc = resolve_error("sdxl-turbo", prompt="fox", **data)
    assert fields_of(exc) == {field: "invalid_size"}


def test_zero_aspect_ratio_side():
    exc = resolve_error("sdxl-turbo", prompt="fox", aspect_ratio="0:1")
    assert list(fields_of(exc)) == ["input.aspect_ratio"]


def test_steps_above_model_maximum():
    model = get_catalog().model("sdxl-turbo")
    exc = resolve_error("sdxl-turbo", prompt="fox", steps=model.max_steps + 1)
    assert list(fields_of(exc)) == ["input.steps"]
    assert str(model.max_steps) in exc.errors[0].message
    assert resolve("sdxl-turbo", prompt="fox", steps=model.max_steps)["steps"] == model.max_steps


@pytest.mark.parametrize("model_id", ["qwen-image", "ltx-video", "ltx-2"])
def test_steps_below_model_minimum(model_id):
    """Accepted and charged, then refused by the worker: the pipeline cannot run fewer (gpu/pipelines.py)."""
    model = get_catalog().model(model_id)
    assert model.min_steps > 1
    exc = resolve_error(model_id, prompt="fox", steps=model.min_steps - 1)
    assert fields_of(exc) == {"input.steps": "invalid_value"}
    assert f"at least {model.min_steps}" in exc.errors[0].message
    assert resolve(model_id, prompt="fox", steps=model.min_steps)["steps"] == model.min_steps


# ---------------------------------------------------------------- the catalog


@pytest.mark.parametrize("name,model_id", [
    ("sdxl-turbo", "sdxl-turbo"),
    ("SDXL-Turbo", "sdxl-turbo"),
    ("StabilityAI/SDXL-Turbo", "sdxl-turbo"),
    ("FLUX.1-SCHNELL", "flux-schnell"),
    ("black-forest-labs/FLUX-dev", "flux-dev"),
    ("playgroundai/playground-v2-1024px-aesthetic", "playground-v2"),
])
def test_models_by_id_or_alias_case_insensitively(name, model_id):
    model = get_catalog().model(name)
    assert model is not None and model.id == model_id


@pytest.mark.parametrize("name", ["dall-e-4", "gpt-image-9", "", "sdxl", "flux"])
def test_unknown_model_is_none(name):
    assert get_catalog().model(name) is None


def test_every_tool_default_model_exists_and_fits_the_tool():
    catalog = get_catalog()
    assert catalog.tools
    for tool in catalog.tools:
        model = catalog.model(tool.default_model)
        assert model is not None, tool.slug
        assert model.task == tool.task, tool.slug
        assert model.type == tool.type, tool.slug


def test_no_alias_names_two_models():
    seen: dict[str, str] = {}
    for model in get_catalog().models:
        for name in (model.id, *model.aliases):
            assert seen.setdefault(name.lower(), model.id) == model.id, name


def test_every_model_default_size_is_valid_for_itself():
    for model in get_catalog().models:
        d = model.defaults
        for side in (d.width, d.height):
            assert model.min_side <= side <= model.max_side, model.id
            assert side % model.multiple_of == 0, model.id
        assert 1 <= d.steps <= model.max_steps, model.id


@pytest.fixture
def extra_catalog(tmp_path, monkeypatch):
    path = tmp_path / "extra.yaml"
    path.write_text(yaml.safe_dump({
        "models": [{
            "id": "tiny-sd", "name": "Tiny SD", "task": "text-to-image", "family": "sd",
            "repo": "hf-internal-testing/tiny-stable-diffusion-pipe", "modal_class": "SDXLGenerator",
            "defaults": {"steps": 2, "width": 256, "height": 256}, "max_steps": 4,
        }],
        "aliases": {"dall-e-3": "sdxl-turbo", "GPT-Image-1": "flux-schnell", "dall-e-2": None},
    }))
    monkeypatch.setenv("DARKROOM_CATALOG_EXTRA", str(path))
    get_catalog.cache_clear()
    yield get_catalog()
    monkeypatch.delenv("DARKROOM_CATALOG_EXTRA")
    get_catalog.cache_clear()


def test_catalog_extra_adds_models_and_aliases(extra_catalog):
    assert extra_catalog.model("tiny-sd").defaults.width == 256
    assert extra_catalog.model("dall-e-3").id == "sdxl-turbo"
    assert extra_catalog.model("DALL-E-3").id == "sdxl-turbo"
    # An alias the operator wrote in mixed case matches in any case.
    assert extra_catalog.model("gpt-image-1").id == "flux-schnell"
    assert extra_catalog.model("GPT-IMAGE-1").id == "flux-schnell"
    # The base catalog is still all there.
    assert extra_catalog.model("stabilityai/sdxl-turbo").id == "sdxl-turbo"
    assert {"flux-schnell", "flux-dev", "sdxl-turbo", "playground-v2", "tiny-sd"} <= {
        m.id for m in extra_catalog.models}
    params = resolve_params(extra_catalog.model("dall-e-3"), parse({"prompt": "fox"}))
    assert (params["width"], params["steps"]) == (512, 1)


def test_catalog_extra_points_and_turns_off_named_aliases(extra_catalog):
    assert extra_catalog.model("dall-e-2") is None  # turned off
    assert extra_catalog.aliases["dall-e-3"] == "sdxl-turbo" and "dall-e-2" not in extra_catalog.aliases
    assert "dall-e-3" not in extra_catalog.model("z-image-turbo").aliases  # moved, not named twice


def test_openai_model_names_are_answered_by_default():
    """Open WebUI lists only OpenAI's names, n8n keeps only ids starting gpt-image or dall-e, and several
    clients default to dall-e-2: each is served by a catalog model unless the operator turns it off."""
    catalog = get_catalog()
    for name in ("dall-e-2", "dall-e-3", "gpt-image-1", "gpt-image-1.5", "gpt-image-2"):
        assert catalog.model(name) is not None and catalog.aliases[name] == catalog.model(name).id


def test_catalog_extra_does_not_outlive_its_test():
    assert get_catalog().model("dall-e-3").id == "z-image-turbo"
    assert get_catalog().model("tiny-sd") is None


def test_errors_never_show_object_reprs():
    """Pillow says "cannot identify image file <_io.BytesIO object at 0x7f…>": callers got that verbatim."""
    import io

    from PIL import Image, UnidentifiedImageError

    from functions.core.errors import describe

    try:
        Image.open(io.BytesIO(b"not an image"))
    except UnidentifiedImageError as exc:
        text = describe(exc)
    assert text.startswith("UnidentifiedImageError: cannot identify image file") and " at 0x" not in text
