"""The GPU side on Modal: `modal deploy gpu/modal_app.py`.

(No `from __future__ import annotations` here: Modal reads the parameter types at class creation.)

Read top to bottom: the image, the weights Volume and secrets, one class per pipeline family, and the
`download` entry point that fills the Volume. Each class runs the same runtime-agnostic worker as the
local stack (gpu/worker.py); the dispatch function finds a class with `modal.Cls.from_name(app, class)`
and spawns `generate` for one job.
"""

import modal

from gpu.catalog import get_catalog

APP_NAME = "darkroom"
WEIGHTS_DIR = "/weights"

app = modal.App(APP_NAME)

image = (
    modal.Image.debian_slim(python_version="3.12")
    .pip_install(
        "torch==2.7.1",
        "diffusers==0.42.1",
        "transformers==5.23.0",
        "accelerate==1.15.0",
        "safetensors==0.8.0",
        "sentencepiece==0.2.1",
        "pillow==12.0.0",
        "imageio-ffmpeg==0.6.0",
        "boto3>=1.34",
        "pydantic>=2.7,<3",
        "pydantic-settings>=2.3,<3",
        "aws-lambda-powertools>=3.10,<4",
        "huggingface_hub>=0.34",
        "pyyaml>=6",
    )
    .env({"DARKROOM_WEIGHTS": WEIGHTS_DIR, "HF_HUB_OFFLINE": "1", "POWERTOOLS_SERVICE_NAME": "darkroom-gpu"})
    .add_local_python_source("functions", "gpu")
)

weights = modal.Volume.from_name("darkroom-weights", create_if_missing=True)
# AWS credentials of the template's ModalWorkerUser (S3 put, results queue send, jobs table update) and region.
aws_secret = modal.Secret.from_name("darkroom-aws")
# HF_TOKEN, for gated weights such as FLUX.1-dev (used by `download` only).
hf_secret = modal.Secret.from_name("darkroom-hf", required_keys=["HF_TOKEN"])


def _family_gpu(family: str) -> str:
    return next(m.gpu for m in get_catalog().models if m.family == family)


class _Generator:
    """Loads one model per container (from the Volume, once, snapshotted) and runs jobs for it.

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
        from gpu import pipelines, worker

        import torch

        spec = get_catalog().model(self.model)
        device, dtype = worker.device_and_dtype()  # cuda/bfloat16 on Modal; cpu/float32 under .local()
        self.pipe.to(device=device, dtype=getattr(torch, dtype))
        # The worker asks the pipeline cache for (family, source, device, dtype): hand it this one.
        pipelines.remember(spec.family, worker.weights_source(spec), device, dtype, self.pipe)

    @modal.method()
    def generate(self, request: dict) -> dict | None:
        from functions.core.messages import WorkRequest
        from gpu import worker

        result = worker.run(WorkRequest.model_validate(request))
        return result.model_dump() if result else None


_class_options = dict(
    image=image,
    volumes={WEIGHTS_DIR: weights},
    secrets=[aws_secret],
    scaledown_window=300,
    timeout=900,
    enable_memory_snapshot=True,
    experimental_options={"enable_gpu_snapshot": False},
)


@app.cls(gpu=_family_gpu("flux"), **_class_options)
class FluxGenerator(_Generator):
    model: str = modal.parameter()


@app.cls(gpu=_family_gpu("sdxl"), **_class_options)
class SDXLGenerator(_Generator):
    model: str = modal.parameter()


@app.function(image=image, volumes={WEIGHTS_DIR: weights}, secrets=[hf_secret], timeout=3600)
def download(model_ids: list[str] | None = None) -> list[str]:
    """Fill the Volume with each catalog model's weights at its pinned revision (WEIGHTS_DIR/<repo>)."""
    import os

    from huggingface_hub import snapshot_download

    done = []
    for spec in get_catalog().models:
        if model_ids and spec.id not in model_ids:
            continue
        snapshot_download(spec.repo, revision=spec.revision, local_dir=f"{WEIGHTS_DIR}/{spec.repo}",
                          token=os.environ.get("HF_TOKEN"),
                          ignore_patterns=["*.ckpt", "*.bin", "*.pth", "*.onnx*", "*.msgpack"])
        done.append(spec.id)
    weights.commit()
    return done
