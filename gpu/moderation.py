"""Output moderation in the worker: the catalog's image-safety classifier scores every output image, and evenly
spaced frames of every video, on the job's GPU, after generation and before anything is encoded or uploaded.

An output's score is the classifier's summed probability of the checker's `unsafe_labels`; a video's is its
highest-scoring frame's. When any output scores at or above the job's threshold (functions/core/moderation.py
resolved it at submit) the whole job fails with OutputBlocked: none of its outputs is stored, not even the ones
that passed (a batch is one request, answered whole).

The same `from_pretrained` code loads the real checkpoint and the tiny random one (gpu/tiny.py). Importing this
module is cheap: torch and transformers are imported when the classifier is loaded.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from functions.core.moderation import BLOCKED
from gpu.loaded_once import LoadedOnce, pretrained_options

if TYPE_CHECKING:
    from PIL.Image import Image

    from functions.core.catalog import SafetyCheckerSpec


class OutputBlocked(Exception):
    """An output scored at or above the job's threshold. `code` makes the worker report it as the job's error
    code, with this message (written for the caller); `report` is recorded with the job for the operator."""

    code = BLOCKED

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class Classifier:
    model: Any  # a transformers *ForImageClassification model, in eval mode
    processor: Any
    unsafe_ids: list[int]
    device: str
    lock: threading.Lock = field(default_factory=threading.Lock)


_loaded: LoadedOnce[Classifier] = LoadedOnce()


def load_classifier(source: str | Path, labels: list[str], *, device: str = "cpu") -> Classifier:
    """Load (once per process) the classifier and its processor from a local dir or a Hub repo id."""

    def build() -> Classifier:
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        local = pretrained_options(source)
        # float32 whatever the pipelines run in: the model is small, and a threshold wants the precision.
        model = AutoModelForImageClassification.from_pretrained(source, **local).to(device).eval()
        processor = AutoImageProcessor.from_pretrained(source, **local)
        id2label = {int(i): str(name).lower() for i, name in model.config.id2label.items()}
        wanted = {label.lower() for label in labels}
        ids = [i for i, name in id2label.items() if name in wanted]
        if len(ids) != len(wanted):
            raise ValueError(f"unsafe labels {labels} are not all among the classifier's labels "
                             f"{sorted(id2label.values())}")
        return Classifier(model=model, processor=processor, unsafe_ids=ids, device=device)

    return _loaded.get((str(source), device, tuple(labels)), build)


def scores(classifier: Classifier, images: list[Image]) -> list[float]:
    """Each image's unsafe probability, 0 to 1."""
    import torch

    if not images:
        return []
    inputs = classifier.processor(images=[image.convert("RGB") for image in images], return_tensors="pt")
    with classifier.lock, torch.inference_mode():
        logits = classifier.model(pixel_values=inputs["pixel_values"].to(classifier.device)).logits.float()
        probabilities = logits.softmax(dim=-1)[:, classifier.unsafe_ids].sum(dim=-1)
    return [round(float(p), 6) for p in probabilities.cpu()]


def sample_frames(frames: list, count: int) -> list:
    """`count` frames spread evenly from the first to the last (all of them when there are fewer)."""
    if len(frames) <= count:
        return list(frames)
    if count == 1:
        return [frames[0]]
    return [frames[round(i * (len(frames) - 1) / (count - 1))] for i in range(count)]


def check(spec: SafetyCheckerSpec, source: str | Path, *, threshold: float | None, level: int | None,
          images: list[Image] | None = None, videos: list[list[Image]] | None = None,
          device: str = "cpu") -> dict[str, Any]:
    """Score the outputs (images, or videos' sampled frames) and return the report for the job; raise
    OutputBlocked when one scores at or above `threshold`. `threshold` None: the checker is off (the workspace
    allowed it), nothing runs."""
    if threshold is None:
        return {"checker": False}
    classifier = load_classifier(source, spec.unsafe_labels, device=device)
    if videos is not None:
        per_output = []
        for frames in videos:
            sampled = sample_frames(frames, spec.video_frames)
            per_output.append(max(scores(classifier, sampled), default=0.0))
        frames_checked = min(spec.video_frames, max((len(v) for v in videos), default=0))
    else:
        per_output = scores(classifier, images or [])
        frames_checked = None
    report: dict[str, Any] = {"checker": spec.id, "level": level, "threshold": threshold, "scores": per_output}
    if frames_checked is not None:
        report["frames_checked"] = frames_checked
    blocked = [index for index, score in enumerate(per_output) if score >= threshold]
    if blocked:
        report["blocked"] = blocked
        what = "video" if videos is not None else "image"
        which = ", ".join(str(i + 1) for i in blocked)
        raise OutputBlocked(
            f"The output safety checker blocked this generation: {what} {which} of {len(per_output)} scored at or "
            f"above the threshold of {'moderation level ' + str(level) if level else 'this job'} ({threshold:g}). "
            "Nothing was stored; the generation is charged (it ran).", report)
    return report


def clear_cache() -> None:
    _loaded.clear()
