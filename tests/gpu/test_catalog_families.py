"""The catalog's capabilities (what the API accepts) agree with the pipeline families (what the worker runs): a
model never claims what its family cannot do, nor hides what it can."""

from __future__ import annotations

from functions.core.catalog import get_catalog
from gpu.pipelines import FAMILIES, family_spec


def test_references_agree():
    for model in get_catalog().models:
        family = FAMILIES[model.family]
        if model.references:
            assert family.references >= model.references, model.id
        elif model.takes_references and model.type == "image":
            assert family.takes_image and not family.references, model.id  # one init image per output


def test_mask_agrees():
    for model in get_catalog().models:
        family = family_spec(model.family)
        can = family.mask or family.inpaint is not None
        assert model.mask == (can and model.takes_references), model.id


def test_negative_prompt_agrees():
    for model in get_catalog().models:
        assert model.negative_prompt == family_spec(model.family).negative_prompt, model.id


def test_video_capabilities_agree():
    for model in get_catalog().models:
        family = family_spec(model.family)
        extends = family.extend or (family.extends is not None and not model.takes_references)
        assert (model.audio, model.last_frame, model.extend) == (family.audio, family.last_frame, extends), model.id
