"""Per-request LoRA adapters on the tiny pipelines (gpu/loras.py, gpu.pipelines.generate): a scale of 0 is no LoRA
bit for bit, a LoRA changes the output, two combine, nothing is left on the pipeline after a job (nor after a LoRA
that does not fit), derived pipelines take their base's LoRAs; and the content-addressed LoRA file cache."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from gpu_helpers import gradient
from safetensors.torch import save_file

from gpu import loras
from gpu.loras import Adapter, LoraCache
from gpu.pipelines import (
    FAMILIES,
    GenerationRequest,
    family_spec,
    frame_multiple,
    generate,
    load_pipeline,
    lora_families,
    size_multiple,
)
from gpu.tiny import ensure_tiny_lora

# Every base family but the instruction editor (it needs a reference, which its VAE encodes at ~1 MP: slow).
LORA_BASES = sorted({spec.base for spec in FAMILIES.values()} - {"qwenimage-edit-plus"})


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny-loras")


def _pipe(tiny_root, family):
    return load_pipeline(family, tiny_root / f"tiny-{family_spec(family).base}-v1")


def _adapter(lora_dir, family, name, scale=1.0):
    return Adapter(path=ensure_tiny_lora(family, lora_dir, name), sha256="0" * 64, scale=scale)


def _request(pipe, family, **overrides) -> GenerationRequest:
    spec = family_spec(family)
    multiple = size_multiple(pipe, family)
    height = 48 if 48 % multiple == 0 else 32
    fields = {"prompt": "a lighthouse at dusk", "width": 64, "height": height, "steps": max(2, spec.min_steps),
              "seed": 7}
    if spec.output == "video":
        fields.update(frames=frame_multiple(pipe) + 1, fps=24.0)
    if spec.base == "ltx2":  # its audio VAE needs a longer clip, and a latent more than one row high
        fields.update(width=96, height=64, frames=17)
    if spec.takes_image:
        fields["images"] = [gradient((fields["width"], fields["height"]))]
    if spec.last_frame:
        fields["last_frame"] = gradient((fields["width"], fields["height"])).transpose(0)
    return GenerationRequest(**{**fields, **overrides})


def _run(pipe, family, adapters=(), **overrides) -> np.ndarray:
    result = generate(pipe, family, _request(pipe, family, loras=list(adapters), **overrides))
    frames = result.images or [frame for video in result.videos for frame in video]
    return np.stack([np.asarray(frame) for frame in frames])


def _denoiser_state(pipe):
    denoiser = pipe.unet if getattr(pipe, "unet", None) is not None else pipe.transformer
    return {name: param for name, param in denoiser.named_parameters()}


def test_every_family_takes_loras():
    assert lora_families() == set(FAMILIES)


@pytest.mark.parametrize("family", LORA_BASES)
def test_lora_scales_combine_and_leave_nothing_behind(tiny_root, lora_dir, family):
    pipe = _pipe(tiny_root, family)
    before_params = _denoiser_state(pipe)
    base = _run(pipe, family)

    zero = _run(pipe, family, [_adapter(lora_dir, family, "a", scale=0.0)])
    np.testing.assert_array_equal(zero, base)  # scale 0: no LoRA, bit for bit

    result = generate(pipe, family, _request(pipe, family, loras=[_adapter(lora_dir, family, "a")]))
    assert result.lora_load > 0
    one = _run(pipe, family, [_adapter(lora_dir, family, "a")])
    assert not np.array_equal(one, base)
    other = _run(pipe, family, [_adapter(lora_dir, family, "b")])
    both = _run(pipe, family, [_adapter(lora_dir, family, "a"), _adapter(lora_dir, family, "b", scale=0.7)])
    assert not np.array_equal(both, one) and not np.array_equal(both, other) and not np.array_equal(both, base)

    after = generate(pipe, family, _request(pipe, family))
    assert after.lora_load == 0.0
    np.testing.assert_array_equal(_run(pipe, family), base)  # no leak
    after_params = _denoiser_state(pipe)
    assert after_params.keys() == before_params.keys()  # no LoRA wrapper left (its base_layer would show)
    assert all(after_params[k] is before_params[k] for k in before_params)  # the very same parameters
    assert not any("lora" in name for name, _ in pipe.components[
        "unet" if getattr(pipe, "unet", None) is not None else "transformer"].named_modules())


@pytest.mark.parametrize(("family", "made_for"), [("sdxl", "flux"), ("flux", "zimage"), ("zimage", "flux"),
                                                  ("wan", "ltx2"), ("flux2-klein", "qwenimage")])
def test_a_lora_for_another_base_is_refused_and_leaves_the_pipeline_as_it_was(tiny_root, lora_dir, family, made_for):
    pipe = _pipe(tiny_root, family)
    base = _run(pipe, family)
    with pytest.raises(ValueError, match="does not fit"):
        _run(pipe, family, [_adapter(lora_dir, made_for, "a")])
    # A fitting LoRA first, then one that does not: the first is removed too.
    with pytest.raises(ValueError, match="does not fit"):
        _run(pipe, family, [_adapter(lora_dir, family, "a"), _adapter(lora_dir, made_for, "a")])
    np.testing.assert_array_equal(_run(pipe, family), base)


def test_a_lora_in_another_format_that_fits_nothing_is_refused(tiny_root, tmp_path):
    import torch

    pipe = _pipe(tiny_root, "flux")
    base = _run(pipe, "flux")
    path = tmp_path / "kohya.safetensors"  # kohya-style keys for modules FLUX does not have
    save_file({"lora_unet_nowhere_to_q.lora_down.weight": torch.ones(4, 32),
               "lora_unet_nowhere_to_q.lora_up.weight": torch.ones(32, 4)}, str(path))
    with pytest.raises(ValueError):
        _run(pipe, "flux", [Adapter(path, "0" * 64, 1.0)])
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="cannot read"):
        _run(pipe, "flux", [Adapter(path, "0" * 64, 1.0)])
    np.testing.assert_array_equal(_run(pipe, "flux"), base)


@pytest.mark.parametrize(("derived", "base_family"), [("flux-img2img", "flux"), ("sdxl-inpaint", "sdxl"),
                                                      ("wan-i2v", "wan")])
def test_derived_pipelines_take_their_base_loras(tiny_root, lora_dir, derived, base_family):
    pipe = _pipe(tiny_root, derived)
    base_pipe = _pipe(tiny_root, base_family)
    extra = {"mask": gradient((64, 48)).convert("L")} if family_spec(derived).mask else {}
    plain = _run(pipe, derived, **extra)
    base_plain = _run(base_pipe, base_family)
    with_lora = _run(pipe, derived, [_adapter(lora_dir, base_family, "a")], **extra)
    assert not np.array_equal(with_lora, plain)
    np.testing.assert_array_equal(_run(pipe, derived, **extra), plain)
    np.testing.assert_array_equal(_run(base_pipe, base_family), base_plain)  # the shared modules are clean


def test_a_scale_must_be_finite(tiny_root, lora_dir):
    pipe = _pipe(tiny_root, "flux")
    with pytest.raises(ValueError, match="finite"):
        _run(pipe, "flux", [_adapter(lora_dir, "flux", "a", scale=float("nan"))])


def test_a_pipeline_without_a_lora_loader_is_refused(tmp_path):
    class NoLoader:
        pass

    with pytest.raises(ValueError, match="takes no LoRA"), loras.applied(NoLoader(), "x", [
            Adapter(tmp_path / "a.safetensors", "0" * 64, 1.0)]):
        pass


def test_tiny_loras_are_in_diffusers_format(lora_dir):
    from safetensors import safe_open

    for family, prefix in [("sdxl", "unet."), ("flux", "transformer."), ("ltx2", "transformer.")]:
        with safe_open(str(ensure_tiny_lora(family, lora_dir, "a")), "pt") as f:
            keys = list(f.keys())
        assert keys and all(k.startswith(prefix) and k.endswith((".lora_A.weight", ".lora_B.weight"))
                            for k in keys)
    assert ensure_tiny_lora("flux", lora_dir, "a").read_bytes() == ensure_tiny_lora("flux-img2img", lora_dir,
                                                                                    "a").read_bytes()


# ---- the cache --------------------------------------------------------------------------------------------------


def _blob(i: int, size: int = 100) -> bytes:
    return bytes([i]) * size


def test_cache_stores_by_content_hash_atomically(tmp_path):
    import hashlib

    cache = LoraCache(tmp_path, max_bytes=1000)
    sha, path = cache.put(_blob(1))
    assert sha == hashlib.sha256(_blob(1)).hexdigest() and path == tmp_path / f"{sha}.safetensors"
    assert path.read_bytes() == _blob(1)
    assert cache.put(_blob(1)) == (sha, path)  # idempotent
    assert cache.get(sha) == path
    assert cache.get("f" * 64) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temp file left
    with pytest.raises(ValueError):
        cache.get("../etc/passwd")
    with pytest.raises(ValueError, match="does not fit"):
        cache.put(b"x" * 1001)


def test_cache_evicts_least_recently_used_within_its_bound(tmp_path):
    cache = LoraCache(tmp_path, max_bytes=300)
    a, _ = cache.put(_blob(1))
    b, _ = cache.put(_blob(2))
    c, _ = cache.put(_blob(3))
    assert cache.get(a)  # a is now the most recently used; b the least
    d, _ = cache.put(_blob(4))
    assert cache.get(b) is None
    assert all(cache.get(x) for x in (a, c, d))  # order of use now: a, c, d
    assert cache.total_bytes() <= 300
    e, _ = cache.put(_blob(5, 200))  # needs two evictions: a and c go
    assert cache.get(a) is None and cache.get(c) is None and cache.get(d) and cache.get(e)
    assert cache.total_bytes() == 300


def test_cache_never_evicts_a_pinned_file(tmp_path):
    cache = LoraCache(tmp_path, max_bytes=200)
    a, _ = cache.put(_blob(1))
    with cache.pinned(a) as path:
        b, _ = cache.put(_blob(2))
        c, _ = cache.put(_blob(3))  # a is the least recently used, but pinned: b goes
        assert path.exists() and cache.get(b) is None and cache.get(c)
        d, _ = cache.put(_blob(4))
        assert path.exists() and cache.get(c) is None
        with cache.pinned(d):
            e, _ = cache.put(_blob(5))  # everything else is pinned: over the bound until released
            assert path.exists() and cache.get(d) and cache.get(e)
            assert cache.total_bytes() == 300
    cache.put(_blob(6))  # nothing pinned now: back within the bound
    assert cache.total_bytes() <= 200
    with pytest.raises(KeyError), cache.pinned(b):
        pass


def test_cache_is_thread_safe(tmp_path):
    cache = LoraCache(tmp_path, max_bytes=1000)
    errors = []

    def work(start: int) -> None:
        try:
            for i in range(start, start + 40):
                sha, _ = cache.put(_blob(i % 25))
                cache.get(sha)
        except Exception as e:  # noqa: BLE001 - any failure in a thread is reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k * 7,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert cache.total_bytes() <= 1000
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]
