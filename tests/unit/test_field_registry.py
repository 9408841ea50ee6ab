"""No request field is silently ignored: every field of every dialect's request models is in
functions/dialects/fields.py, each `mapped` one changes the work or the response through the real
translation functions (in-process), each `rejected` sample is a 400 naming the field, and docs/fields.md is
what the registry generates."""

from __future__ import annotations

import copy
import importlib
import inspect
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from functions.core.catalog import get_catalog
from functions.core.errors import DarkroomError
from functions.core.generation import GenerationInput, parse_input, resolve_request
from functions.dialects import fields as registry
from functions.dialects.shared import pick_model

REPO = Path(__file__).resolve().parents[2]
WORKSPACE = "ws_fields"
# Where dialect request models live: every BaseModel defined in these modules must be in the registry.
REQUEST_MODULES = ["functions.core.generation", "functions.api.native", "functions.api.openai", "functions.api.aims",
                   *(f"functions.dialects.{p.stem}" for p in (REPO / "functions/dialects").glob("*.py")
                     if p.stem not in ("__init__", "fields"))]


@pytest.fixture(autouse=True)
def uploads_exist(monkeypatch):
    """The samples' upload:// references as if uploaded (a PNG with alpha, 64x64): the translation checks they
    exist, which needs S3; this test is about what each field does, not about storage."""
    from functions.core import imageinfo, uploads

    monkeypatch.setattr(uploads, "upload_header", lambda key: imageinfo.ImageHeader("png", 64, 64, True))


@pytest.fixture(autouse=True)
def loras_exist(monkeypatch):
    """Any LoRA path as if it were a registered LoRA that fits the model (judging the file needs S3 or the network:
    tests/integration/test_loras_end_to_end.py does that)."""
    from functions.core import loras

    def for_job(workspace_id, path, scale, family, field, **_):
        return {"path": path, "scale": scale, "source": {"upload_key": f"{workspace_id}/loras/{path}.safetensors"}}

    monkeypatch.setattr(loras, "for_job", for_job)


@pytest.fixture(autouse=True)
def second_video_model(tmp_path, monkeypatch):
    """The catalog ships one video model (and its i2v twin): a second one, as an operator would add it, lets
    a video request's `model` show that it matters."""
    ltx = copy.deepcopy(next(m for m in yaml.safe_load((REPO / "functions/core/catalog.yaml").read_text())["models"]
                             if m["id"] == "ltx-video"))
    ltx.update(id="ltx-video-fast", aliases=[], defaults={**ltx["defaults"], "steps": 8})
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump({"models": [ltx]}))
    monkeypatch.setenv("DARKROOM_CATALOG_EXTRA", str(extra))
    get_catalog.cache_clear()
    yield
    get_catalog.cache_clear()


def _request_models() -> dict[str, type[BaseModel]]:
    found = {}
    for name in REQUEST_MODULES:
        module = importlib.import_module(name)
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseModel) and cls.__module__ == name and not cls_name.startswith("_"):
                found[f"{name}:{cls_name}"] = cls
    return found


# ---------------------------------------------------------------- translations (the routes' own steps)


def _resolve(model, gen_fields):
    chosen, params = resolve_request(model, parse_input(GenerationInput, gen_fields), workspace_id=WORKSPACE)
    return chosen.id, params


def native_input(data):
    data = dict(data)
    model = get_catalog().model(data.pop("model", "flux-schnell"))
    inp = parse_input(GenerationInput, data)
    return _resolve(model, inp.model_dump(exclude_none=True)), inp.make_public


def native_envelope(model_class):
    def translate(data):
        body = parse_input(model_class, data)
        catalog = get_catalog()
        tool = catalog.tool(getattr(body, "tool", None) or "create-image")
        model = catalog.model(body.model or tool.default_model)
        return _resolve(model, body.input), body.webhook, body.webhook_events_filter
    return translate


def openai_translator(kind: str):
    from functions.api.openai import _refuse_unsupported
    from functions.dialects import openai as dialect

    def translate(data):
        _refuse_unsupported(data)
        if kind == "variation":
            body = parse_input(dialect.ImagesVariationRequest, data)
            model = dialect.variation_model(body)
            gen_fields = dialect.variation_input(body, model)
        else:
            body = parse_input(dialect.ImagesEditRequest if kind == "edit" else dialect.ImagesGenerateRequest, data)
            model = pick_model(body.model, kind="image", references=kind == "edit", references_field="image")
            gen_fields = dialect.generation_input(body, model, dialect.styled(body))
        if kind != "generate":
            gen_fields["image_urls"] = [registry.UPLOAD]  # the uploaded file, as the route stores it
        return _resolve(model, gen_fields), body.response_format
    return translate


def aims_images(data):
    from functions.dialects import aims

    body = parse_input(aims.ImagesGenerateRequest, data)
    model = pick_model(body.model, kind="image", references=bool(body.image_urls))
    styled = aims.image_styles(body)
    gen_fields, _names = aims.image_input(body, model, styled)
    return _resolve(model, gen_fields), body.make_public, bool(body.sync_mode), styled.applied


def aims_videos(data):
    from functions.dialects import aims

    body = parse_input(aims.VideosGenerateRequest, data)
    model = pick_model(body.model, kind="video", references=bool(body.references), references_field="image_url")
    gen_fields, _names = aims.video_input(body, model)
    return _resolve(model, gen_fields), body.make_public


def fal_translator(kind: str):
    """The fal routes' steps: the endpoint id (a context key here, the path there) names the model."""
    from functions.dialects import fal

    def translate(data):
        data = dict(data)
        catalog = get_catalog()
        endpoint = data.pop("endpoint", "fal-ai/flux/schnell" if kind == "image" else "fal-ai/ltx-video")
        base = catalog.model(endpoint) or catalog.model(endpoint.split("/", 1)[1])
        request = parse_input(fal.FalVideoRequest if kind == "video" else fal.FalImageRequest, data)
        model = catalog.with_references(base) if fal.references(request) else base
        gen_fields, _names = (fal.video_input if kind == "video" else fal.image_input)(request, model)
        return _resolve(model, gen_fields), getattr(request, "sync_mode", None)
    return translate


def fal_image_size(data):
    return fal_translator("image")({"prompt": "p", "image_size": data})


def replicate_input(data, model_name="black-forest-labs/flux-schnell"):
    from functions.dialects import replicate

    data = dict(data)
    owner, _, name = data.pop("model", model_name).partition("/")
    inp = replicate.parse_prediction_input(data)
    model = replicate.pick(replicate.find_model(owner, name), inp)
    return _resolve(model, replicate.generation_input(model, inp))


def replicate_request(model_class):
    def translate(data):
        from functions.dialects import replicate

        body = parse_input(model_class, data)
        model = replicate.model_for_version(body.version) if hasattr(body, "version") else None
        ran = replicate_input(body.input, replicate.model_name(model) if model else "black-forest-labs/flux-schnell")
        return ran, replicate.webhook_of(body), replicate.webhook_events(body)
    return translate


def lora_input(data):
    return native_input({"prompt": "p", "loras": [data]})


TRANSLATORS = {
    "functions.core.generation:GenerationInput": (native_input, {"prompt": "p"}),
    "functions.core.generation:LoraInput": (lora_input, {"path": registry.LORA}),
    "functions.api.native:RunRequest": (None, {"tool": "create-image", "input": {"prompt": "p"}}),
    "functions.api.native:GenerateRequest": (None, {"model": "flux-schnell", "input": {"prompt": "p"}}),
    "functions.dialects.openai:ImagesGenerateRequest": (openai_translator("generate"), {"prompt": "p"}),
    "functions.dialects.openai:ImagesEditRequest": (openai_translator("edit"), {"prompt": "p"}),
    "functions.dialects.openai:ImagesVariationRequest": (openai_translator("variation"), {}),
    "functions.dialects.aims:ImagesGenerateRequest": (aims_images, {"prompt": "p"}),
    "functions.dialects.aims:VideosGenerateRequest": (aims_videos, {"prompt": "p"}),
    "functions.dialects.replicate:PredictionInput": (replicate_input, {"prompt": "p"}),
    "functions.dialects.replicate:PredictionRequest": (None, {"input": {"prompt": "p"}}),
    "functions.dialects.replicate:VersionedPredictionRequest": (
        None, {"version": "black-forest-labs/flux-schnell", "input": {"prompt": "p"}}),
    "functions.dialects.fal:FalImageRequest": (fal_translator("image"), {"prompt": "p"}),
    "functions.dialects.fal:ImageSize": (fal_image_size, {"width": 512, "height": 512}),
    "functions.dialects.fal:FalVideoRequest": (fal_translator("video"), {"prompt": "p"}),
}


def _translator(name: str):
    translate, base = TRANSLATORS[name]
    if translate is None and name.startswith("functions.dialects.replicate:"):
        from functions.dialects import replicate

        translate = replicate_request(getattr(replicate, name.split(":")[1]))
    elif translate is None:  # the native envelopes
        from functions.api import native

        translate = native_envelope(getattr(native, name.split(":")[1]))
    return translate, base


# ---------------------------------------------------------------- the checks


def test_every_request_field_is_in_the_registry_and_nothing_else():
    models = _request_models()
    assert set(models) == set(registry.REGISTRY), "request models and registry disagree"
    for name, cls in models.items():
        rows = registry.REGISTRY[name][1]
        assert set(cls.model_fields) - set(rows) == set(), f"{name}: fields with no entry in fields.py"
        assert set(rows) - set(cls.model_fields) == set(), f"{name}: entries for fields it does not have"


def _cases(kind):
    return [pytest.param(model, field, entry, id=f"{model.split(':')[1]}.{field}")
            for model, (_title, rows) in registry.REGISTRY.items() for field, entry in rows.items()
            if isinstance(entry, kind)]


@pytest.mark.parametrize("model, field, entry", _cases(registry.Mapped))
def test_a_mapped_field_changes_the_work_or_the_response(model, field, entry):
    translate, base = _translator(model)
    with_it = translate({**base, **entry.context, field: entry.sample})
    try:
        without = translate({**base, **entry.context})
    except DarkroomError as exc:  # required in this context (a first-last-frame model's last frame)
        assert exc.status == 400 and exc.errors[0].field == field
        return
    assert with_it != without, f"{model}.{field}={entry.sample!r} changed nothing"


@pytest.mark.parametrize("model, field, entry", _cases(registry.Rejected))
def test_a_rejected_value_is_a_400_naming_the_field(model, field, entry):
    translate, base = _translator(model)
    translate({**base, **entry.context})  # the request is fine without it
    with pytest.raises(DarkroomError) as info:
        translate({**base, **entry.context, field: entry.sample})
    assert info.value.status == 400 and info.value.errors[0].field == field


@pytest.mark.parametrize("model, field, entry", _cases(registry.Compat))
def test_a_compat_field_is_accepted_and_documented_with_a_reason(model, field, entry):
    translate, base = _translator(model)
    translate({**base, field: entry.sample})  # accepted (the compatibility promise)
    assert len(entry.reason) > 20


def test_docs_fields_md_is_what_the_registry_generates():
    assert (REPO / "docs/fields.md").read_text() == registry.markdown(), \
        "run: .venv/bin/python -m functions.dialects.fields > docs/fields.md"
