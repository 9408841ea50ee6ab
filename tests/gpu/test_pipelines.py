"""The text-to-image pipeline code on tiny random-weight pipelines: same loader and runner as real weights,
on CPU. Image-to-image and video live in test_img2img.py and test_video.py."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from gpu_helpers import gradient, pixels
from PIL import Image

from gpu.encode import CONTENT_TYPES, encode_image, make_thumbnail
from gpu.pipelines import FAMILIES, GenerationRequest, generate, load_pipeline
from gpu.tiny import build_tiny_pipeline, ensure_tiny_pipeline

REPO_ROOT = Path(__file__).resolve().parents[2]
TEXT_TO_IMAGE = ("sdxl", "flux", "zimage", "flux2-klein")


@pytest.fixture(scope="session", params=TEXT_TO_IMAGE)
def family(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def pipe(family: str, tiny_root: Path):
    return load_pipeline(family, tiny_root / f"tiny-{family}-v1")


def _request(**overrides) -> GenerationRequest:
    fields = {"prompt": "a red fox in the snow", "width": 256, "height": 256, "steps": 4, "seed": 7}
    return GenerationRequest(**{**fields, **overrides})


def _pixels(image: Image.Image) -> np.ndarray:
    return pixels(image)


def _images(pipe, family, req, **kw) -> tuple[list[Image.Image], int]:
    result = generate(pipe, family, req, **kw)
    assert result.videos == []
    return result.images, result.seed


def test_module_imports_do_not_import_torch():
    code = ("import sys, gpu, functions.core.catalog, gpu.pipelines, gpu.tiny, gpu.encode, gpu.references, gpu.worker, gpu.bench;"
            " assert 'torch' not in sys.modules and 'diffusers' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


def test_pipeline_classes_map_families_to_diffusers_classes():
    import diffusers

    from gpu import pipelines

    assert pipelines.PIPELINE_CLASSES == {
        "sdxl": diffusers.StableDiffusionXLPipeline,
        "sdxl-img2img": diffusers.StableDiffusionXLImg2ImgPipeline,
        "sdxl-inpaint": diffusers.StableDiffusionXLInpaintPipeline,
        "flux": diffusers.FluxPipeline,
        "flux-img2img": diffusers.FluxImg2ImgPipeline,
        "flux-inpaint": diffusers.FluxInpaintPipeline,
        "ltx": diffusers.LTXPipeline,
        "ltx-i2v": diffusers.LTXImageToVideoPipeline,
        "zimage": diffusers.ZImagePipeline,
        "zimage-img2img": diffusers.ZImageImg2ImgPipeline,
        "zimage-inpaint": diffusers.ZImageInpaintPipeline,
        "flux2-klein": diffusers.Flux2KleinPipeline,
        "flux2-klein-inpaint": diffusers.Flux2KleinInpaintPipeline,
        "flux2-dev": diffusers.Flux2Pipeline,
        "qwenimage-edit-plus": diffusers.QwenImageEditPlusPipeline,
        "qwenimage": diffusers.QwenImagePipeline,
        "qwenimage-img2img": diffusers.QwenImageImg2ImgPipeline,
        "qwenimage-inpaint": diffusers.QwenImageInpaintPipeline,
        "ltx2": diffusers.LTX2Pipeline,
        "ltx2-i2v": diffusers.LTX2ImageToVideoPipeline,
        "ltx2-extend": diffusers.LTX2ConditionPipeline,
        "wan": diffusers.WanPipeline,
        "wan-i2v": diffusers.WanImageToVideoPipeline,
        "wan-flf2v": diffusers.WanImageToVideoPipeline,
        "wan-a14b": diffusers.WanPipeline,
        "wan-a14b-i2v": diffusers.WanImageToVideoPipeline,
    }


def test_every_catalog_family_is_known_and_has_a_tiny_pipeline(tiny_root):
    from functions.core.catalog import get_catalog
    from gpu.pipelines import FAMILIES

    for model in get_catalog().models:
        assert model.family in FAMILIES, model.id
        assert (ensure_tiny_pipeline(model.family, tiny_root) / "model_index.json").exists(), model.id


def test_loads_the_family_class_with_vae_scale_factor_8(pipe, family):
    assert type(pipe).__name__ == {"sdxl": "StableDiffusionXLPipeline", "flux": "FluxPipeline",
                                   "zimage": "ZImagePipeline", "flux2-klein": "Flux2KleinPipeline"}[family]
    assert pipe.vae_scale_factor == 8


@pytest.mark.parametrize("size", [(256, 256), (320, 192)])
def test_output_has_the_requested_size(pipe, family, size):
    width, height = size
    images, _ = _images(pipe, family, _request(width=width, height=height))
    assert [im.size for im in images] == [(width, height)]
    assert images[0].mode == "RGB"


def test_n_images_come_from_one_call_and_differ(pipe, family):
    calls = []
    images, _ = _images(pipe, family, _request(n=2), on_step=lambda i, total: calls.append(i))
    assert len(images) == 2
    assert calls == [1, 2, 3, 4]  # one denoising loop for the whole batch
    assert not np.array_equal(_pixels(images[0]), _pixels(images[1]))


def test_same_seed_gives_identical_pixels(pipe, family):
    first, seed_a = _images(pipe, family, _request(seed=123))
    second, seed_b = _images(pipe, family, _request(seed=123))
    assert seed_a == seed_b == 123
    assert np.array_equal(_pixels(first[0]), _pixels(second[0]))


def test_different_seed_gives_different_pixels(pipe, family):
    first, _ = _images(pipe, family, _request(seed=1))
    second, _ = _images(pipe, family, _request(seed=2))
    assert np.abs(_pixels(first[0]) - _pixels(second[0])).mean() > 1


def test_random_seed_is_returned_and_reproduces_the_image(pipe, family):
    images, seed = _images(pipe, family, _request(seed=None))
    assert isinstance(seed, int)
    again, _ = _images(pipe, family, _request(seed=seed))
    assert np.array_equal(_pixels(images[0]), _pixels(again[0]))


def test_progress_is_reported_once_per_step(pipe, family):
    calls: list[tuple[int, int]] = []
    generate(pipe, family, _request(steps=3), on_step=lambda i, total: calls.append((i, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_guidance_is_passed(pipe, family):
    # SDXL (> 1) and Z-Image (> 0): the scale turns classifier-free guidance on. Flux: accepted (schnell
    # ignores it).
    low, _ = _images(pipe, family, _request(guidance=0.0))
    high, _ = _images(pipe, family, _request(guidance=7.0))
    assert high[0].size == low[0].size
    if family in ("sdxl", "zimage"):
        assert not np.array_equal(_pixels(low[0]), _pixels(high[0]))


def test_negative_prompt_only_reaches_families_that_take_it(pipe, family):
    plain, _ = _images(pipe, family, _request(guidance=5.0))
    negative, _ = _images(pipe, family, _request(guidance=5.0, negative_prompt="blurry, dark"))
    changed = not np.array_equal(_pixels(plain[0]), _pixels(negative[0]))
    assert changed == FAMILIES[family].negative_prompt


@pytest.mark.parametrize("size", [(250, 256), (256, 100), (0, 256)])
def test_size_not_a_multiple_of_8_is_rejected(pipe, family, size):
    width, height = size
    with pytest.raises(ValueError, match="multiples of"):
        generate(pipe, family, _request(width=width, height=height))


def test_flux_needs_multiples_of_16(tiny_root):
    # Flux packs 2x2 latent patches; 264 = 33 * 8 would be silently cropped to 256 by diffusers.
    flux = load_pipeline("flux", tiny_root / "tiny-flux-v1")
    with pytest.raises(ValueError, match="multiples of 16"):
        generate(flux, "flux", _request(width=264))


def test_loading_twice_returns_the_cached_pipeline(pipe, family, tiny_root):
    assert load_pipeline(family, tiny_root / f"tiny-{family}-v1") is pipe
    assert load_pipeline(family, str(tiny_root / f"tiny-{family}-v1")) is pipe


def test_concurrent_loads_share_one_pipeline(tmp_path):
    source = build_tiny_pipeline("flux", tmp_path / "flux")
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(load_pipeline("flux", source))) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(r is results[0] for r in results)


def test_concurrent_generations_on_one_pipeline_stay_deterministic(pipe, family):
    expected, _ = _images(pipe, family, _request(seed=5))
    results: list[np.ndarray] = []

    def run() -> None:
        results.append(_pixels(generate(pipe, family, _request(seed=5)).images[0]))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and all(np.array_equal(r, _pixels(expected[0])) for r in results)


def test_unknown_family_is_rejected(tiny_root):
    with pytest.raises(ValueError, match="unknown pipeline family"):
        load_pipeline("sd15", tiny_root / "tiny-sdxl-v1")
    with pytest.raises(ValueError, match="no tiny pipeline"):
        build_tiny_pipeline("sd15", tiny_root / "nope")


def test_build_is_idempotent_and_atomic(tmp_path):
    dest = tmp_path / "sdxl"
    threads = [threading.Thread(target=build_tiny_pipeline, args=("sdxl", dest)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    index = dest / "model_index.json"
    built_at = index.stat().st_mtime_ns
    assert build_tiny_pipeline("sdxl", dest) == dest
    assert index.stat().st_mtime_ns == built_at
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sdxl"]  # no temp dirs left behind
    assert list(dest.rglob("*.safetensors")) and not list(dest.rglob("*.bin"))


# --- encoding ---------------------------------------------------------------------------------------


def _gradient(mode: str = "RGB", size: tuple[int, int] = (64, 48)) -> Image.Image:
    return gradient(size, mode)


@pytest.mark.parametrize("fmt, pil_format", [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP")])
def test_encode_round_trips(fmt, pil_format):
    data = encode_image(_gradient(), fmt)
    decoded = Image.open(io.BytesIO(data))
    assert decoded.format == pil_format
    assert decoded.size == (64, 48)
    assert CONTENT_TYPES[fmt] == f"image/{fmt}"


def test_png_is_lossless():
    image = _gradient("RGBA")
    decoded = Image.open(io.BytesIO(encode_image(image, "png")))
    assert np.array_equal(np.asarray(decoded), np.asarray(image))


def test_webp_keeps_alpha():
    decoded = Image.open(io.BytesIO(encode_image(_gradient("RGBA"), "webp")))
    assert decoded.mode == "RGBA"


def test_jpeg_of_rgba_is_flattened_onto_white():
    decoded = Image.open(io.BytesIO(encode_image(_gradient("RGBA"), "jpg", quality=95)))
    assert decoded.format == "JPEG" and decoded.mode == "RGB"
    assert np.asarray(decoded)[:, :20].min() > 240  # the transparent left half


def test_quality_changes_jpeg_size():
    image = _gradient(size=(256, 256))
    assert len(encode_image(image, "jpeg", quality=20)) < len(encode_image(image, "jpeg", quality=95))


def test_unknown_format_is_rejected():
    with pytest.raises(ValueError, match="unsupported image format"):
        encode_image(_gradient(), "gif")


@pytest.mark.parametrize(
    "size, max_side, expected",
    [((1024, 512), 512, (512, 256)), ((300, 900), 128, (43, 128)), ((64, 48), 512, (64, 48))],
)
def test_thumbnail_fits_max_side_and_keeps_aspect(size, max_side, expected):
    thumb = Image.open(io.BytesIO(make_thumbnail(_gradient("RGBA", size), max_side)))
    assert thumb.format == "JPEG"
    assert thumb.size == expected
