"""`python -m gpu.bench --full-size`: the catalog's models at their real size with random weights (gpu/full_size.py).

On this CPU-only machine nothing runs at full size; what is checked here is what the CUDA run relies on:
- the builder makes each must-have model's real architecture from gpu/model_configs (on the meta device: shapes,
  no memory) with its published parameter count, within 5%: published counts are rounded to two or three
  significant figures ("3.9B", "20.4B", "5B"), and a wrong config (another variant, a missing block) is off by
  far more (the same tolerance as tests/gpu/test_footprint.py);
- the whole pipeline is assembled around those components (meta device), and the same assembly, given small
  configs, runs on the CPU: the random init fills every parameter, nothing is left on the meta device;
- without CUDA, --full-size runs the tiny pipelines at batch sizes 1, 2 and 4 and says so, writing nothing to
  docs/benchmarks.md; the report says that outputs are noise, and "not measured yet" until a CUDA run.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from functions.core.catalog import get_catalog
from gpu import bench, footprint, full_size, pipelines, quality

TOLERANCE = 0.05
# (component, published parameters, source): the must-haves' denoisers and the text encoders whose size is published.
PUBLISHED = {
    "flux2-klein": [("transformer", 3.9e9, "MODELS.md: FLUX.2 [klein] 3.9 B"),
                    ("text_encoder", 4.0e9, "Qwen3-4B model card: 4.0B")],
    "z-image-turbo": [("transformer", 6.15e9, "MODELS.md: Z-Image 6.15 B"),
                      ("text_encoder", 4.0e9, "Qwen3-4B model card: 4.0B")],
    "qwen-image": [("transformer", 20.4e9, "MODELS.md: Qwen-Image 20.4 B"),
                   ("text_encoder", 8.29e9, "Qwen2.5-VL-7B-Instruct on the Hub: 8.29B")],
    "wan2.2-ti2v-5b": [("transformer", 5e9, "MODELS.md: Wan 2.2 TI2V-5B 5 B")],
}
CATALOG = get_catalog()


def test_the_must_haves_are_the_issues():
    assert set(full_size.MUST_HAVE) == set(PUBLISHED)


@pytest.mark.parametrize("model_id", full_size.MUST_HAVE)
def test_the_full_size_pipeline_has_the_real_architecture(model_id):
    model = CATALOG.model(model_id)
    built = full_size.pipeline(model, device="meta")
    pipe = built.pipe
    assert type(pipe) is pipelines._pipeline_class(pipelines.family_spec(model.family).base)
    configs = footprint.component_configs(model.repo)
    assert set(built.parameters) == set(configs)
    for name, config in configs.items():
        module = getattr(pipe, name)
        assert type(module).__name__ == config.get("_class_name", (config.get("architectures") or [""])[0])
        assert all(p.dtype in (torch.bfloat16, torch.float32) for p in module.parameters())
    for name, published, source in PUBLISHED[model_id]:
        params = built.parameters[name]
        assert abs(params - published) <= TOLERANCE * published, (
            f"{model_id} {name}: {params / 1e9:.3f}B, not within {TOLERANCE:.0%} of {published / 1e9:g}B ({source})")
    # Derived attributes come from the real components: the VAE's compression, not the tiny one's.
    if model.type == "video":
        assert pipe.vae_scale_factor_spatial == 16 and pipe.vae_scale_factor_temporal == 4
    else:
        assert pipe.vae_scale_factor == 8


def test_buffers_are_computed_and_weights_kept_in_float32_where_the_class_says():
    config = footprint.component_configs("Wan-AI/Wan2.2-TI2V-5B-Diffusers")["transformer"]
    module = footprint.build_component(config, buffers=True, dtype=torch.bfloat16)
    assert all(p.is_meta for p in module.parameters())  # 5B parameters: no memory
    rope = dict(module.named_buffers())["rope.freqs_cos"]
    assert not rope.is_meta and torch.isfinite(rope).all()  # the class's own rotary table, not random
    full_size.materialize(module, device="meta", dtype=torch.bfloat16)
    dtypes = {name: p.dtype for name, p in module.named_parameters()}
    assert dtypes["scale_shift_table"] == torch.float32  # WanTransformer3DModel._keep_in_fp32_modules
    assert dtypes["blocks.0.attn1.to_q.weight"] == torch.bfloat16


def test_tied_embeddings_stay_one_parameter():
    config = footprint.component_configs("black-forest-labs/FLUX.2-klein-4B")["text_encoder"]
    module = footprint.build_component(config, buffers=True, dtype=torch.bfloat16)
    assert module.lm_head.weight is module.model.embed_tokens.weight  # Qwen3-4B: tie_word_embeddings
    full_size.materialize(module, device="meta", dtype=torch.bfloat16)
    assert module.lm_head.weight is module.model.embed_tokens.weight


def test_random_init_fills_every_parameter_of_a_real_component():
    # FLUX.2's real VAE (84M parameters) on the CPU, in bfloat16: the path the GPU takes, on a small component.
    config = footprint.component_configs("black-forest-labs/FLUX.2-klein-4B")["vae"]
    vae = full_size.materialize(footprint.build_component(config, buffers=True), device="cpu", dtype=torch.bfloat16,
                                seed=3)
    assert full_size.unmaterialized(vae) == []
    weight = vae.decoder.conv_in.weight
    assert weight.dtype == torch.bfloat16 and torch.isfinite(weight).all()
    assert weight.float().std().item() == pytest.approx(weight[0].numel() ** -0.5, rel=0.1)
    again = full_size.materialize(footprint.build_component(config, buffers=True), device="cpu",
                                  dtype=torch.bfloat16, seed=3)
    assert torch.equal(again.decoder.conv_in.weight, weight)  # seeded
    # The random bfloat16 weights decode to finite pixels. Decoded in float32: bfloat16 has float32's exponent range,
    # so what overflows in one overflows in the other, and this CPU's bfloat16 convolutions take 80 s (0.6 s so).
    with torch.inference_mode():
        latents = torch.randn(1, vae.config.latent_channels, 8, 8)
        image = vae.float().decode(latents).sample
    assert image.shape == (1, 3, 64, 64) and torch.isfinite(image).all()


def _tiny_configs(family):
    """The tiny pipeline's components as config dicts, in gpu/model_configs' form (diffusers `_class_name`, or
    transformers `architectures`)."""
    from gpu.tiny import build_tiny

    configs = {}
    for name, module in build_tiny(family).components.items():
        if not isinstance(module, torch.nn.Module):
            continue
        if hasattr(module.config, "to_dict"):
            configs[name] = {**module.config.to_dict(), "architectures": [type(module).__name__]}
        else:
            configs[name] = {**dict(module.config), "_class_name": type(module).__name__}
    return configs


def test_the_full_size_assembly_runs_on_small_configs(monkeypatch):
    # The same builder, given the tiny pipeline's own configs in place of the real ones: built, randomly
    # initialised on the CPU and run at batch sizes 1 and 2. Nothing is left on the meta device.
    model = CATALOG.model("flux2-klein")
    configs = _tiny_configs(model.family)
    monkeypatch.setattr(full_size.footprint, "component_configs", lambda repo: configs)
    built = full_size.pipeline(model, device="cpu", dtype="float32", seed=1)
    for name in configs:
        assert full_size.unmaterialized(getattr(built.pipe, name)) == []
        # as from_pretrained leaves it: no dropout drawing fresh noise (one seed, one output)
        assert not any(m.training for m in getattr(built.pipe, name).modules())
    assert not any(m.training for m in full_size.tiny_pipeline(model).pipe.transformer.modules())
    for n in (1, 2):
        req = pipelines.GenerationRequest(prompt="a lighthouse", n=n, width=64, height=64, steps=1, seed=1)
        assert len(pipelines.generate(built.pipe, model.family, req).images) == n


def test_full_size_without_cuda_runs_tiny_batches_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    sizes = []
    generate = pipelines.generate

    def counting(pipe, family, req, **kwargs):
        result = generate(pipe, family, req, **kwargs)
        sizes.append((req.n, len(result.images)))
        return result

    monkeypatch.setattr(pipelines, "generate", counting)
    doc, rows = tmp_path / "benchmarks.md", tmp_path / "rows.jsonl"
    assert bench.main(["--full-size", "--models", "flux2-klein", "--variant", "eager", "--steps", "1",
                       "--jsonl", str(rows), "--out", str(doc), "--references", str(tmp_path / "refs")]) == 0
    err = capsys.readouterr().err
    assert full_size.TINY_NOTICE in err and full_size.NOISE in err
    assert not doc.exists()  # tiny figures never reach docs/benchmarks.md
    written = [json.loads(line) for line in rows.read_text().splitlines()]
    assert [r["n"] for r in written] == [1, 2, 4]
    assert all(r["scale"] == "tiny" and r["inference"] > 0 and r["encode"] > 0 and not r["note"] for r in written)
    # The processor's post-processing is timed on its own, and neither it nor the decode counts as denoising.
    assert all(0 < r["postprocess"] < r["inference"] - r["vae_decode"] for r in written)
    assert (bench.TINY_IMAGE[0], bench.TINY_IMAGE[1]) == (written[0]["width"], written[0]["height"])
    assert {(n, images) for n, images in sizes if n == images} >= {(1, 1), (2, 2), (4, 4)}  # warm-up + measured

    # Past its budget, a model's rows are noted skipped, not run.
    assert bench.main(["--full-size", "--models", "flux2-klein", "--variant", "compile=regional", "--budget",
                       "1e-9", "--jsonl", str(rows), "--no-write"]) == 0
    skipped = [json.loads(line) for line in rows.read_text().splitlines()][3:]
    assert [r["n"] for r in skipped] == [1, 2, 4] and all(r["note"].startswith("skipped") for r in skipped)


@pytest.mark.parametrize("argv", [["--speed", "compile=regional"], ["--compile"], ["--weights", "/models"],
                                  ["--variant", "compile=sometimes"], ["--batch-sizes", "0,2"]])
def test_full_size_refuses_what_it_cannot_honour(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--full-size", "--models", "flux2-klein", *argv])
    assert exit_.value.code == 2
    assert "error" in capsys.readouterr().err


def test_the_report_says_noise_and_not_measured_until_a_cuda_run(tmp_path):
    empty = bench.full_size_markdown([])
    assert full_size.NOISE in empty
    for model_id in full_size.MUST_HAVE:
        assert f"| {model_id} |" in empty
    assert empty.count(bench.NOT_MEASURED) >= len(full_size.MUST_HAVE)
    tiny = bench.FullRow(model="flux2-klein", scale="tiny", variant="eager", width=256, height=256, n=1, steps=2,
                         inference=0.5)
    assert bench.full_size_markdown([tiny]) == empty  # tiny rows are never reported as GPU figures
    measured = bench.FullRow(model="flux2-klein", scale="full", variant="eager", width=1024, height=1024, n=1,
                             steps=4, build=3.0, warmup=2.0, text_encode=0.05, vae_decode=0.1, inference=0.65,
                             encode=0.2, machine={"accelerator": "NVIDIA H100 80GB HBM3"})
    text = bench.full_size_markdown([measured])
    assert "0.65 s at 1024x1024, 4 steps (0.125 s/step), NVIDIA H100 80GB HBM3" in text
    assert full_size.NOISE in text and "| z-image-turbo | sub-second" in text


def test_the_sections_of_docs_benchmarks_are_kept_apart(tmp_path):
    from infra.bench import __main__ as system_bench

    assert bench.SYSTEM_MARKER == system_bench.SYSTEM_MARKER
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Benchmarks\n\ntiny table\n\n{bench.SYSTEM_MARKER}\n\nsystem\n")
    bench.write_full_size_section(doc, bench.full_size_markdown([]))
    bench.write_full_size_section(doc, bench.FULL_SIZE_MARKER + "\n\nsecond\n")
    text = doc.read_text()
    assert text.index("tiny table") < text.index("second") < text.index("system")
    assert text.count(bench.FULL_SIZE_MARKER) == 1 and bench.NOT_MEASURED not in text
    # The tiny table's rewrite (gpu.bench without --full-size) keeps both sections below it.
    assert bench._kept_sections(doc).lstrip().startswith(bench.FULL_SIZE_MARKER)
    assert "system" in bench._kept_sections(doc)


def test_report_only_renders_a_cuda_runs_rows(tmp_path):
    rows, doc = tmp_path / "rows.jsonl", tmp_path / "benchmarks.md"
    full = bench.FullRow(model="qwen-image", scale="full", variant="eager", width=1024, height=1024, n=1, steps=10,
                         inference=12.5, machine={"accelerator": "NVIDIA H200"})
    tiny = bench.FullRow(model="qwen-image", scale="tiny", variant="eager", width=256, height=256, n=1, steps=2,
                         inference=0.25)
    rows.write_text("".join(json.dumps(dataclasses.asdict(r)) + "\n" for r in (full, tiny)))
    assert bench.main(["--full-size", "--report-only", "--jsonl", str(rows), "--out", str(doc)]) == 0
    text = doc.read_text()
    assert "12.50 s at 1024x1024, 10 steps" in text and "| 0.250 |" not in text
    with pytest.raises(SystemExit):
        bench.main(["--full-size", "--report-only", "--jsonl", str(tmp_path / "none.jsonl")])


def test_each_variant_is_held_to_its_floor_against_eager(tmp_path, monkeypatch):
    """At batch size 1 every variant's first output is compared with the eager one's (kept on disk, as the CUDA script
    runs variants in separate processes): the tiny pipelines here, so real settings against real eager pixels."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rows, refs = tmp_path / "rows.jsonl", tmp_path / "refs"
    for variant in ("eager", "vae_tiling=true", "quantize=fp8_weight_only"):
        assert bench.main(["--full-size", "--models", "flux2-klein", "--variant", variant, "--steps", "1",
                           "--batch-sizes", "1", "--jsonl", str(rows), "--references", str(refs),
                           "--no-write"]) == 0
    eager, tiled, fp8 = bench.read_rows(rows)
    assert (eager.psnr, eager.floor) == (None, None) and len(list(refs.glob("flux2-klein-*.npy"))) == 1
    # Eager's own rounding drift (the math attention kernel here), kept beside its output for the other variants.
    assert eager.rounding_db is not None and len(list(refs.glob("flux2-klein-*.rounding.json"))) == 1
    assert bench.psnr_cell(eager).startswith("rounding drift ")
    assert tiled.floor == quality.held_floor(40.0, eager.rounding_db) and not tiled.below_floor
    assert fp8.floor == quality.held_floor(35.0, eager.rounding_db) and not fp8.below_floor
    assert fp8.psnr < float("inf")  # real fp8 weights: lossy
    assert f"(floor {fp8.floor:g})" in bench.psnr_cell(fp8)
    chosen, against = bench.chosen_defaults([eager, tiled, fp8])["flux2-klein"]
    faster = [r for r in (tiled, fp8) if r.inference * bench.MIN_SPEEDUP <= eager.inference]
    assert against is eager and chosen is min(faster or [eager], key=lambda r: r.inference)


def test_floors_allow_for_the_models_own_rounding_drift():
    assert quality.held_floor(40.0, None) == 40.0  # not measured: the floor as it is
    assert quality.held_floor(40.0, 55.0) == 40.0  # a drift smaller than the floor changes nothing
    assert quality.held_floor(40.0, 31.5) == 31.5  # random weights drifting further: held to the drift
    assert quality.held_floor(35.0, 9.0) == quality.BROKEN_DB  # but never down to noise


def test_the_defaults_chosen_are_the_fastest_within_their_floor():
    def row(variant, inference, psnr=None, floor=None, n=1):
        return bench.FullRow(model="flux2-klein", scale="full", variant=variant, width=1024, height=1024, n=n,
                             steps=4, inference=inference, psnr=psnr, floor=floor)

    eager = row("eager", 1.0)
    broken = row("cache=first_block", 0.4, psnr=21.0, floor=35.0)  # fastest, but below its floor
    unchecked = row("attention=sage", 0.5)  # never compared with eager
    compiled = row("compile=regional", 0.6, psnr=44.2, floor=40.0)
    batch = row("compile=regional", 0.1, psnr=44.2, floor=40.0, n=2)  # other batch sizes do not choose
    rows = [eager, broken, unchecked, compiled, batch]
    assert bench.chosen_defaults(rows) == {"flux2-klein": (compiled, eager)}
    # A setting within timing noise of eager (one that fell back, say) is not chosen over it.
    noise = row("vae_tiling=true", 0.97, psnr=99.0, floor=40.0)
    assert bench.chosen_defaults([eager, noise]) == {"flux2-klein": (eager, eager)}
    assert "< 35: not a default" in bench.psnr_cell(broken)
    text = "\n".join(bench.defaults_markdown(rows))
    assert "- flux2-klein: compile=regional (0.600 s against eager 1.000 s, 1.67x, PSNR 44.2 (floor 40))" in text
    assert 'catalog.yaml has eager: change it' in text
    assert bench.chosen_defaults([compiled]) == {}  # no eager row: nothing to choose against
    assert bench.NOT_MEASURED in "\n".join(bench.defaults_markdown([]))


def test_gpu_time_per_image_comes_from_the_chosen_variant_at_the_default_steps():
    model = get_catalog().model("flux2-klein")
    machine = {"accelerator": "NVIDIA H100 80GB HBM3"}
    eager = bench.FullRow(model=model.id, scale="full", variant="eager", width=1024, height=1024, n=1, steps=2,
                          text_encode=0.05, vae_decode=0.1, postprocess=0.08, inference=0.63, encode=0.2,
                          machine=machine)
    compiled = bench.FullRow(model=model.id, scale="full", variant="compile=regional", width=1024, height=1024, n=1,
                             steps=2, text_encode=0.05, vae_decode=0.1, postprocess=0.08, inference=0.43, encode=0.2,
                             psnr=45.0, floor=40.0, machine=machine)
    tiny = dataclasses.replace(eager, model="z-image-turbo", scale="tiny")  # never priced
    times = bench.gpu_time_per_output([eager, compiled, tiny])
    assert set(times) == {model.id}
    # (0.43 - 0.05 - 0.1 - 0.08) over the row's 2 steps, scaled to the model's default steps; the fixed costs once
    per_step = 0.2 / 2
    assert times[model.id].seconds == pytest.approx(0.05 + per_step * model.defaults.steps + 0.1 + 0.08 + 0.2)
    assert times[model.id].variant == "compile=regional" and "H100" in times[model.id].accelerator


def test_cost_page_prices_gpu_time_from_the_kept_rows(tmp_path, monkeypatch):
    from infra import bench_calls

    assert all("not measured yet" in row for row in bench_calls.gpu_time_rows({}))
    rows = tmp_path / "rows.jsonl"
    h100 = {"accelerator": "NVIDIA H100 80GB HBM3"}
    row = bench.FullRow(model="flux-schnell", scale="full", variant="eager", width=1024, height=1024, n=1, steps=4,
                        text_encode=0.1, vae_decode=0.1, inference=1.0, encode=0.1, machine=h100)
    # flux2-klein's catalog GPU is an L40S: its H100 seconds are priced at the H100's rate, and the row says so.
    klein = dataclasses.replace(row, model="flux2-klein")
    rows.write_text(json.dumps(dataclasses.asdict(row)) + "\n" + json.dumps(dataclasses.asdict(klein)) + "\n")
    times = bench_calls.measured_gpu_times(rows)
    table = bench_calls.gpu_time_rows(times)
    priced = next(r for r in table if r.startswith("| flux-schnell |"))
    seconds = 0.1 + 0.8 / 4 * get_catalog().model("flux-schnell").defaults.steps + 0.1 + 0.1
    assert f"| {seconds:.3f} | {1000 * seconds * bench_calls.PRICES['modal_gpu_second']['H100']:.2f} |" in priced
    assert "not measured" not in priced
    priced = next(r for r in table if r.startswith("| flux2-klein | L40S |"))
    seconds = 0.1 + 0.8 / 4 * get_catalog().model("flux2-klein").defaults.steps + 0.1 + 0.1
    assert f"| {1000 * seconds * bench_calls.PRICES['modal_gpu_second']['H100']:.2f} |" in priced
    assert "at H100's rate: its L40S's time is not measured" in priced

    # --report-only of a run's rows into the repo's page keeps those rows for the cost page.
    monkeypatch.setattr(bench, "FULL_SIZE_ROWS", tmp_path / "kept.jsonl")
    monkeypatch.setattr(bench, "DEFAULT_OUT", tmp_path / "benchmarks.md")
    assert bench.main(["--full-size", "--report-only", "--jsonl", str(rows), "--out", str(tmp_path / "benchmarks.md")
                       ]) == 0
    assert bench.read_rows(tmp_path / "kept.jsonl") == [row, klein]
