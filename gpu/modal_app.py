"""The GPU side on Modal: `modal deploy gpu/modal_app.py`.

(No `from __future__ import annotations` here: Modal reads the parameter types at class creation.)

Read top to bottom: the image, the weights Volume and secrets, one class per pipeline family, and the
`download` entry point that fills the Volume. Each class runs the same runtime-agnostic worker as the
local stack (gpu/worker.py); the dispatch function finds a class with `modal.Cls.from_name(app, class)`
and spawns `generate` for one job.
"""

from pathlib import Path

import modal

from functions.core.catalog import get_catalog

APP_NAME = "darkroom"
WEIGHTS_DIR = "/weights"

app = modal.App(APP_NAME)

# The image's Python, and the worker's packages pinned in one list: the test venv installs the same pins
# (Makefile), and tests/gpu/test_image_requirements.py resolves this list for this Python on Linux x86_64.
PYTHON_VERSION = "3.12"
REQUIREMENTS = Path(__file__).with_name("requirements.txt")
# add_local_python_source ships only .py files by default; the core package reads its catalog.yaml and
# styles.yaml at run time.
SOURCE_FILES_IGNORED = ~modal.FilePatternMatcher("**/*.py", "**/*.yaml", "**/*.json", "**/*.html")

image = (
    modal.Image.debian_slim(python_version=PYTHON_VERSION)
    .pip_install_from_requirements(str(REQUIREMENTS))
    .env({"DARKROOM_WEIGHTS": WEIGHTS_DIR, "HF_HUB_OFFLINE": "1", "POWERTOOLS_SERVICE_NAME": "darkroom-gpu"})
    .add_local_python_source("functions", "gpu", ignore=SOURCE_FILES_IGNORED)
)

weights = modal.Volume.from_name("darkroom-weights", create_if_missing=True)
# No AWS secret: each work request names the stack's worker role, which the worker assumes with the
# container's Modal OIDC identity token (template.yaml: ModalWorkerRole; functions/core/aws.py).
# HF_TOKEN, for gated weights such as FLUX.1-dev (used by `download` only).
hf_secret = modal.Secret.from_name("darkroom-hf", required_keys=["HF_TOKEN"])


def _class_gpu(modal_class: str) -> str:
    """The GPU a class runs on: the catalog's, for the models it serves (they must agree)."""
    gpus = {m.gpu for m in get_catalog().models if m.modal_class == modal_class}
    if len(gpus) != 1:
        raise ValueError(f"models served by {modal_class} must name exactly one GPU type, got {sorted(gpus)}")
    return gpus.pop()


class _Generator:
    """Loads one model per container (from the Volume, once, snapshotted) and runs jobs for it.

    Any catalog family works: an edit model (flux-img2img, sdxl-img2img, ltx-i2v) loads its base family's
    weights from the same directory and derives its pipeline from them (gpu/pipelines.py).

    Subclasses declare `model: str = modal.parameter()`: Modal reads parameters from the class itself.
    """

    model: str

    @modal.enter(snap=True)
    def load_on_cpu(self) -> None:
        # Runs before the memory snapshot: imports and weights on CPU are restored, not repeated.
        from gpu import pipelines, worker

        spec = get_catalog().model(self.model)
        self.pipe = pipelines.load_pipeline(spec.family, worker.weights_source(spec), device="cpu",
                                            dtype="bfloat16")

    @modal.enter(snap=False)
    def move_to_gpu(self) -> None:
        import torch

        from gpu import pipelines, worker

        spec = get_catalog().model(self.model)
        device, dtype = worker.device_and_dtype()  # cuda/bfloat16 on Modal; cpu/float32 under .local()
        self.pipe.to(device=device, dtype=getattr(torch, dtype))
        # The worker asks the pipeline cache for (family, source, device, dtype): hand it this one, and
        # forget the CPU entries, whose modules (shared with this pipeline) have just moved.
        pipelines.clear_cache()
        pipelines.remember(spec.family, worker.weights_source(spec), device, dtype, self.pipe)

    @modal.method()
    def generate(self, request: dict) -> dict | None:
        from functions.core.messages import WorkRequest
        from gpu import worker

        result = worker.run(WorkRequest.model_validate(request))
        return result.model_dump() if result else None


_class_options = {
    "image": image,
    "volumes": {WEIGHTS_DIR: weights},
    "scaledown_window": 300,
    "timeout": 900,
    "enable_memory_snapshot": True,
    "experimental_options": {"enable_gpu_snapshot": False},
}


@app.cls(gpu=_class_gpu("FluxGenerator"), **_class_options)
class FluxGenerator(_Generator):
    """flux-schnell, flux-dev and their edit models."""

    model: str = modal.parameter()


@app.cls(gpu=_class_gpu("SDXLGenerator"), **_class_options)
class SDXLGenerator(_Generator):
    """sdxl-turbo, playground-v2 and their edit models."""

    model: str = modal.parameter()


@app.cls(gpu=_class_gpu("LTXVideoGenerator"), **_class_options)
class LTXVideoGenerator(_Generator):
    """ltx-video (text-to-video) and ltx-video-i2v (image-to-video)."""

    model: str = modal.parameter()


@app.function(image=image, volumes={WEIGHTS_DIR: weights}, secrets=[hf_secret], timeout=3600)
def download(models: str = "") -> list[str]:
    """Fill the Volume with each catalog model's weights at its pinned revision (WEIGHTS_DIR/<repo>).

    `models` is comma-separated catalog ids (all models when empty): `modal run` can only pass plain types.
    With any image model comes the catalog's background remover (for `background: transparent`).
    """
    import os

    from huggingface_hub import snapshot_download

    model_ids = [m.strip() for m in models.split(",") if m.strip()]

    done = []
    fetched: set[tuple[str, str]] = set()
    for spec in get_catalog().models:
        if model_ids and spec.id not in model_ids:
            continue
        # Edit models share their text model's repo: download each (repo, revision) once.
        if (spec.repo, spec.revision) not in fetched:
            snapshot_download(spec.repo, revision=spec.revision, local_dir=f"{WEIGHTS_DIR}/{spec.repo}",
                              token=os.environ.get("HF_TOKEN"), allow_patterns=spec.allow_patterns,
                              ignore_patterns=["*.ckpt", "*.bin", "*.pth", "*.onnx*", "*.msgpack"])
            fetched.add((spec.repo, spec.revision))
        done.append(spec.id)
    # Image models can be asked for a transparent background: their worker needs the segmentation model.
    remover = get_catalog().background_remover
    image_models = {m.id for m in get_catalog().models if m.type == "image"}
    if remover is not None and (not model_ids or image_models & set(model_ids)):
        snapshot_download(remover.repo, revision=remover.revision, local_dir=f"{WEIGHTS_DIR}/{remover.repo}",
                          token=os.environ.get("HF_TOKEN"), allow_patterns=remover.allow_patterns)
        done.append(remover.id)
    weights.commit()
    return done
