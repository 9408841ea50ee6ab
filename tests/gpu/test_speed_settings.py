"""Per-model speed settings (functions/core/catalog.py SpeedSettings, gpu/speed.py) on the tiny Flux and SDXL pipelines:
each setting runs, reports what it did or why it fell back, and keeps the image within a PSNR floor of the eager one.

Floors (gpu/quality.py, the same the CUDA benchmark holds full-size models to): settings that do not change the
math (tiling below the tile size, channels-last, fallbacks) must match to float32 noise (LOSSLESS_DB; identical or
~89 dB here). fp8 weight-only quantization is real torchao on this CPU (fp8 matmuls, "fp8", need CUDA 8.9+ and fall
back here). The caches are lossy by design; on these random weights, 4 steps at 64x64, diffusers' defaults skip or
predict little (TaylorSeer ~62 dB, MagCache ~56 dB, First Block Cache identical). LOSSY_DB still catches a hook or a
quantization that breaks the image while leaving room for the approximation. torch.compile on CPU takes 20-40 s per
pipeline here (inductor builds C++ kernels), so one family's regional compile is held to its floor.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from functions.core.catalog import Catalog, SpeedSettings
from gpu import pipelines
from gpu.quality import LOSSLESS_DB, LOSSY_DB, floor_db, psnr
from gpu.tiny import ensure_tiny_pipeline

# fp8 weights (e4m3, a scale per output row) round each weight to 3 mantissa bits: ~46 dB on the tiny FLUX, ~49 dB on
# the tiny SDXL here (LOSSY_DB: 35).


@pytest.fixture(scope="module")
def speed_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny-speed")
    for family in ("flux", "sdxl"):
        ensure_tiny_pipeline(family, root)
    return root


def _source(root: Path, family: str) -> Path:
    return root / f"tiny-{family}-v1"


def _image(pipe, family: str) -> np.ndarray:
    req = pipelines.GenerationRequest(prompt="a red fox in the snow", width=64, height=64, steps=4, seed=3)
    return np.asarray(pipelines.generate(pipe, family, req).images[0], dtype=np.float64)


@pytest.fixture(scope="module")
def eager(speed_root: Path) -> dict[str, np.ndarray]:
    return {family: _image(pipelines.load_pipeline(family, _source(speed_root, family)), family)
            for family in ("flux", "sdxl")}


CASES = [
    # family, settings, floor, what the report must say
    ("flux", {"vae_tiling": True}, LOSSLESS_DB, "AutoencoderKL.enable_tiling()"),
    ("flux", {"channels_last": True}, LOSSLESS_DB, "on vae (not transformer"),
    ("flux", {"quantize": "fp8"}, LOSSLESS_DB, "fp8 unavailable on cpu: float32 kept"),
    ("flux", {"quantize": "fp8_weight_only"}, LOSSY_DB,
     "fp8_weight_only (torchao Float8WeightOnlyConfig) on transformer (28 of 28 linear layers), computing in float32"),
    ("sdxl", {"quantize": "fp8_weight_only"}, LOSSY_DB, "Float8WeightOnlyConfig) on unet (60 of 60 linear layers)"),
    ("flux", {"attention": "flash"}, LOSSLESS_DB, ": native"),
    ("flux", {"cache": {"kind": "first_block", "threshold": 0.05}}, LOSSY_DB, "first_block (threshold=0.05) on transformer"),
    ("flux", {"cache": {"kind": "taylorseer"}}, LOSSY_DB, "taylorseer (diffusers defaults) on transformer"),
    ("flux", {"cache": {"kind": "magcache", "num_inference_steps": 4}}, LOSSY_DB, "FLUX_MAG_RATIOS, laid out for 4 steps"),
    ("sdxl", {"channels_last": True}, LOSSLESS_DB, "on unet, vae"),
    ("sdxl", {"cache": {"kind": "first_block"}}, LOSSLESS_DB, "unet (UNet2DConditionModel): no cache hooks: none"),
    ("sdxl", {"attention": "sage"}, LOSSLESS_DB, ": native"),
]


def _case_id(family: str, settings: dict) -> str:
    key, value = next(iter(settings.items()))
    return f"{family}-{key}-{value['kind'] if isinstance(value, dict) else value}"


@pytest.mark.parametrize(("family", "settings", "floor", "said"), CASES, ids=[_case_id(f, s) for f, s, *_ in CASES])
def test_setting_runs_reports_and_stays_near_eager(speed_root, eager, family, settings, floor, said):
    speed = SpeedSettings.model_validate(settings)
    pipe = pipelines.load_pipeline(family, _source(speed_root, family), speed=speed)
    report = pipelines.speed_report(pipe)
    assert set(report) == set(settings)  # every setting that is on says what it did: none skipped in silence
    assert said in next(iter(report.values()))
    if "cache" in settings and report["cache"].endswith("on transformer"):
        assert pipe.transformer.is_cache_enabled
    if settings.get("quantize") == "fp8_weight_only":  # the weights really are fp8 now
        import torch

        denoiser = pipe.transformer if family == "flux" else pipe.unet
        linears = [m for m in denoiser.modules() if isinstance(m, torch.nn.Linear)]
        assert linears and all(m.weight.qdata.dtype == torch.float8_e4m3fn for m in linears)
        # and torchao left inductor's process-wide settings alone (its tuning would slow every later compile)
        assert not torch._inductor.config.coordinate_descent_tuning
    assert floor in (LOSSLESS_DB, floor_db(speed))  # the benchmark's floor, unless the setting fell back here
    assert psnr(_image(pipe, family), eager[family]) >= floor


def test_defaults_change_nothing_and_share_the_plain_pipeline(speed_root):
    plain = pipelines.load_pipeline("flux", _source(speed_root, "flux"))
    assert pipelines.load_pipeline("flux", _source(speed_root, "flux"), speed=SpeedSettings()) is plain
    assert pipelines.speed_report(plain) == {}
    tuned = pipelines.load_pipeline("flux", _source(speed_root, "flux"), speed=SpeedSettings(vae_tiling=True))
    assert tuned is not plain and not plain.vae.use_tiling


def test_derived_pipeline_shares_its_base_settings(speed_root):
    speed = SpeedSettings(cache={"kind": "taylorseer", "cache_interval": 2})
    base = pipelines.load_pipeline("flux", _source(speed_root, "flux"), speed=speed)
    edit = pipelines.load_pipeline("flux-img2img", _source(speed_root, "flux"), speed=speed)
    assert edit.transformer is base.transformer
    assert pipelines.speed_report(edit) == pipelines.speed_report(base)
    assert "cache_interval=2" in pipelines.speed_report(edit)["cache"]


def test_worker_load_applies_the_models_settings(tmp_path, monkeypatch):
    from functions.core.catalog import get_catalog
    from gpu import worker

    monkeypatch.setenv("DARKROOM_WEIGHTS", "tiny")
    monkeypatch.setenv("DARKROOM_DATA_DIR", str(tmp_path))
    model = next(m for m in get_catalog().models if m.family == "flux")
    tuned = model.model_copy(update={"speed": SpeedSettings(quantize="fp8")})
    pipe = worker.load(tuned)
    report = pipelines.speed_report(pipe)
    assert set(report) == {"quantize", "warm_up"}
    assert report["quantize"] == "fp8 unavailable on cpu: float32 kept"
    # a model with settings runs once before its first job, so one it cannot run comes off there
    assert report["warm_up"].startswith(f"{model.defaults.width}x{model.defaults.height}, 2 steps: ")


def test_cache_settings_take_only_their_kinds_knobs():
    with pytest.raises(ValueError, match="taylorseer takes no threshold"):
        SpeedSettings.model_validate({"cache": {"kind": "taylorseer", "threshold": 0.1}})
    with pytest.raises(ValueError):
        SpeedSettings.model_validate({"compile": "max"})
    assert SpeedSettings().is_default and SpeedSettings().key == ""


def test_models_on_the_same_weights_must_agree_on_speed():
    import functions.core.catalog as catalog_module

    data = yaml.safe_load(Path(catalog_module.__file__).with_name("catalog.yaml").read_text())
    Catalog.model_validate(copy.deepcopy(data))
    text = next(m for m in data["models"] if m.get("edit_model"))
    broken = copy.deepcopy(data)
    next(m for m in broken["models"] if m["id"] == text["id"])["speed"] = {"compile": "regional"}
    with pytest.raises(ValueError, match="must agree on speed"):
        Catalog.model_validate(broken)
    agreed = copy.deepcopy(broken)
    next(m for m in agreed["models"] if m["id"] == text["edit_model"])["speed"] = {"compile": "regional"}
    pool = Catalog.model_validate(agreed).weights_pool(Catalog.model_validate(agreed).model(text["id"]).weights)
    assert pool is not None and pool.speed.compile == "regional"


def test_bench_speed_flag_overrides_the_models_settings():
    from gpu.bench import parse_speed, speed_cell

    base = SpeedSettings(cache={"kind": "first_block", "threshold": 0.1})
    speed = parse_speed("compile=regional, vae_tiling=true, cache.threshold=0.2", base)
    assert speed == SpeedSettings(compile="regional", vae_tiling=True, cache={"kind": "first_block", "threshold": 0.2})
    assert parse_speed("cache=none", base).cache is None
    assert parse_speed("cache=taylorseer,cache.cache_interval=3").cache.options() == {"cache_interval": 3}
    swapped = parse_speed("compile=full,lora_hotswap.rank=32,lora_hotswap.slots=2")
    assert swapped.lora_hotswap is not None and (swapped.lora_hotswap.rank, swapped.lora_hotswap.slots) == (32, 2)
    assert parse_speed("lora_hotswap=none", swapped).lora_hotswap is None
    for bad in ("turbo=true", "compile=max", "cache.threshold=0.1", "compile", "lora_hotswap.rank=8",
                "compile=regional,lora_hotswap.rank=0"):
        with pytest.raises(ValueError):
            parse_speed(bad)
    assert speed_cell({}) == "-"
    assert speed_cell({"compile": "a", "cache": "b"}) == "compile: a; cache: b"


# torch.compile on this CPU takes 20-40 s a tiny pipeline: the regional compile of one family runs in make test.
@pytest.mark.parametrize(("family", "mode", "said"), [("flux", "regional", "transformer regional (FluxTransformerBlock")])
def test_compile_on_cpu_stays_near_eager(speed_root, eager, family, mode, said):
    pipe = pipelines.load_pipeline(family, _source(speed_root, family), speed=SpeedSettings(compile=mode))
    assert said in pipelines.speed_report(pipe)["compile"]
    assert psnr(_image(pipe, family), eager[family]) >= floor_db(SpeedSettings(compile=mode))


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny-cache")
    for family in ("flux", "flux2-klein", "flux2-dev", "ltx"):
        ensure_tiny_pipeline(family, root)
    return root


def _request(family: str, **fields) -> pipelines.GenerationRequest:
    video = {"frames": 9, "fps": 24.0} if family == "ltx" else {}
    return pipelines.GenerationRequest(prompt="a red fox", width=64, height=64, steps=2, seed=3, **video, **fields)


@pytest.mark.parametrize(("family", "derived", "kind"), [("flux", "flux-img2img", "first_block"),
                                                         ("flux", "flux-inpaint", "taylorseer"),
                                                         ("flux2-dev", None, "taylorseer")])
def test_a_cache_runs_through_pipelines_that_name_no_cache_context(cache_root, family, derived, kind):
    """diffusers' hooks raise "No cache context is set" in a pipeline that does not name one (FLUX.1's img2img and
    inpaint, FLUX.2 [dev]); these make one pass a step, so the worker opens the one FluxPipeline would."""
    from PIL import Image

    speed = SpeedSettings(cache={"kind": kind})
    base = pipelines.load_pipeline(family, _source(cache_root, family), speed=speed)
    pipe = pipelines.load_pipeline(derived, _source(cache_root, family), speed=speed) if derived else base
    assert not pipelines.opens_cache_context(type(pipe))
    assert pipe.transformer.is_cache_enabled
    grey = Image.new("RGB", (64, 64), (128, 128, 128))
    extra = {"images": [grey], "strength": 0.6} if derived else {}
    if derived == "flux-inpaint":
        extra["mask"] = Image.new("L", (64, 64), 255)
    assert pipelines.generate(pipe, derived or family, _request(family, **extra)).images


def test_a_cache_that_diffusers_cannot_run_is_refused_and_still_fails_unguarded(cache_root):
    from diffusers.hooks import FirstBlockCacheConfig

    refused = pipelines.load_pipeline("flux2-klein", _source(cache_root, "flux2-klein"),
                                      speed=SpeedSettings(cache={"kind": "first_block"}))
    report = pipelines.speed_report(refused)["cache"]
    assert "Flux2Transformer2DModel" in report and report.endswith(": none")
    assert not refused.transformer.is_cache_enabled
    assert pipelines.generate(refused, "flux2-klein", _request("flux2-klein")).images  # runs, uncached

    # The entry stays only while diffusers still fails it (gpu/speed.py _CACHE_BREAKS): a fresh pipeline, unguarded.
    unguarded = pipelines._pipeline_class("flux2-klein").from_pretrained(_source(cache_root, "flux2-klein"))
    unguarded.transformer.enable_cache(FirstBlockCacheConfig())
    with pytest.raises(TypeError):
        pipelines.generate(unguarded, "flux2-klein", _request("flux2-klein"))


def test_a_cache_whose_hooks_fail_to_register_leaves_the_model_loadable(cache_root):
    pipe = pipelines.load_pipeline("ltx", _source(cache_root, "ltx"), speed=SpeedSettings(cache={"kind": "first_block"}))
    assert pipelines.speed_report(pipe)["cache"] == "first_block: transformer: IndexError: pop from empty list: none"
    assert pipelines.generate(pipe, "ltx", _request("ltx")).videos


def test_two_pass_pipelines_without_a_cache_context_are_named_and_refused_a_cache(cache_root):
    from gpu import speed

    assert pipelines.two_pass_without_cache_context("zimage") == ["ZImagePipeline", "ZImageImg2ImgPipeline",
                                                                  "ZImageInpaintPipeline"]
    assert pipelines.two_pass_without_cache_context("flux") == []  # one pass a step: cache_context covers them
    assert pipelines.two_pass_without_cache_context("qwenimage") == []  # two passes, each in its own context
    pipe = pipelines._pipeline_class("flux").from_pretrained(_source(cache_root, "flux"))
    report = speed.apply(pipe, "flux", SpeedSettings(cache={"kind": "taylorseer"}), "cpu", unscoped=["APipeline"])
    assert report == {"cache": "taylorseer: transformer: APipeline run two passes a step without naming the cache "
                               "context: none"}
    assert not pipe.transformer.is_cache_enabled


def test_a_setting_that_fails_at_warm_up_comes_off_and_the_model_still_serves(cache_root, monkeypatch):
    """A setting no test foresaw (here First Block Cache on FLUX.2, with its refusal taken away) fails the warm-up:
    it comes off, the report says why, and the model serves without it, instead of failing every job."""
    from functions.core.catalog import get_catalog
    from gpu import speed, worker

    monkeypatch.setattr(speed, "_CACHE_BREAKS", {})
    settings = SpeedSettings(cache={"kind": "first_block"}, vae_tiling=True)
    pipe = pipelines.load_pipeline("flux2-klein", _source(cache_root, "flux2-klein"), speed=settings)
    assert pipe.transformer.is_cache_enabled
    base = get_catalog().model("flux2-klein")
    model = base.model_copy(update={"speed": settings,
                                    "defaults": base.defaults.model_copy(update={"width": 64, "height": 64})})
    assert worker.warm_up(model, pipe, "flux2-klein", "cpu", None) is False
    report = pipelines.speed_report(pipe)
    assert report["cache"].startswith("first_block (diffusers defaults) on transformer; failed at warm-up (TypeError")
    assert report["cache"].endswith(": off") and not pipe.transformer.is_cache_enabled
    assert report["vae_tiling"] == "AutoencoderKLFlux2.enable_tiling()"  # what did not fail stays on
    assert pipelines.generate(pipe, "flux2-klein", _request("flux2-klein")).images


def test_turning_off_uncompiles_every_compiled_block(speed_root):
    from gpu import speed

    pipe = pipelines.load_pipeline("flux", _source(speed_root, "flux"), speed=SpeedSettings(compile="regional"))
    compiled = [m for m in pipe.transformer.modules() if getattr(m, "_compiled_call_impl", None) is not None]
    assert compiled  # compile is lazy: nothing has been traced yet, so this costs nothing here
    assert speed.turn_off(pipe) == ["compile"]
    assert not [m for m in pipe.transformer.modules() if getattr(m, "_compiled_call_impl", None) is not None]
    assert speed.turn_off(pipe) == []


def test_fp8_matmuls_quantize_only_the_layers_scaled_mm_takes(monkeypatch):
    """torch._scaled_mm takes dimensions that are multiples of 16: a layer of another width stays as it is, and the
    report counts both. (fp8 matmuls need CUDA 8.9+: here the weight-only config stands in for the dynamic one, to run
    the same filter through torchao's quantize_.)"""
    import torch

    from gpu import speed

    monkeypatch.setitem(speed._TORCHAO_CONFIGS, "fp8", ("Float8WeightOnlyConfig", True))
    monkeypatch.setattr(speed, "_fp8_matmul_missing", lambda device: None)
    denoiser = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(), torch.nn.Linear(64, 30))
    report = speed._quantize([("transformer", denoiser)], "fp8", "cuda")
    assert "on transformer (1 of 2 linear layers; 1 not multiples of 16 kept)" in report
    assert denoiser[0].weight.qdata.dtype == torch.float8_e4m3fn
    assert denoiser[2].weight.dtype == torch.float32
