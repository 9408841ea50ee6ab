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


def test_min_steps_agree():
    """The API refuses fewer steps than the model's min_steps at submit, so it must be at least the family's (the
    worker refuses fewer than that, after the job was charged)."""
    for model in get_catalog().models:
        assert model.min_steps >= family_spec(model.family).min_steps, model.id


def _batch(args: tuple, kwargs: dict) -> int:
    """How many latents one denoiser call takes: two in one batch, or one each in two calls, with CFG."""
    latents = kwargs.get("hidden_states", kwargs.get("sample", args[0] if args else None))
    return len(latents) if isinstance(latents, (list, tuple)) else int(latents.shape[0])  # Z-Image: a list


def _passes_a_step(pipe, model, guidance: float) -> float:
    """The latents the denoiser(s) take per step of one output, at `guidance`."""
    from gpu.pipelines import GenerationRequest, generate
    from gpu.speed import denoisers

    seen: list[int] = []
    steps: list[int] = []
    hooks = [module.register_forward_pre_hook(lambda _m, args, kwargs: seen.append(_batch(args, kwargs)),
                                              with_kwargs=True) for _, module in denoisers(pipe)]
    video = {"frames": 9, "fps": 24.0} if model.type == "video" else {}
    try:
        generate(pipe, model.family, GenerationRequest(prompt="a fox", width=64, height=64, seed=1, guidance=guidance,
                                                       steps=max(2, model.min_steps), **video),
                 on_step=lambda step, _total: steps.append(step))
    finally:
        for hook in hooks:
            hook.remove()
    return sum(seen) / len(steps)


def test_the_priced_denoiser_passes_are_the_ones_that_run(tiny_root):
    """ModelSpec.denoiser_passes, whose ratio to the default's `work` prices guidance by, against the passes each text
    model's tiny pipeline makes a step, at guidances either side of its threshold and at its default (an image-taking
    model runs its base family's rule). LTX-2 makes two more a step (spatio-temporal and modality guidance) at any
    guidance: its credits hold them, and only the ratio is priced."""
    from gpu.pipelines import load_pipeline

    for model in get_catalog().models:
        if model.takes_references:
            continue
        pipe = load_pipeline(model.family, tiny_root / f"tiny-{family_spec(model.family).base}-v1")
        default = model.defaults.guidance or 0.0
        ran = {g: _passes_a_step(pipe, model, g) for g in sorted({0.0, model.cfg_above, model.cfg_above + 0.5, default})}
        for guidance, passes in ran.items():
            priced = model.denoiser_passes(guidance) / model.denoiser_passes(None)
            assert passes / ran[default] == priced, (model.id, guidance, ran)
