"""The output safety checker (gpu/moderation.py) on its tiny twin: the real checkpoint's architecture and labels,
loaded by the same Auto classes; images and sampled video frames scored; a threshold decides."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from functions.core.catalog import get_catalog
from gpu import moderation
from gpu.tiny import ensure_tiny_classifier


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return ensure_tiny_classifier(tmp_path_factory.mktemp("models"))


def test_the_tiny_checker_is_the_catalog_checkers_architecture(tiny):
    spec = get_catalog().moderation.checker
    assert spec.repo == "Falconsai/nsfw_image_detection" and spec.license == "apache-2.0"
    config = json.loads((tiny / "config.json").read_text())
    assert config["architectures"] == ["ViTForImageClassification"] and config["model_type"] == "vit"
    assert {label.lower() for label in spec.unsafe_labels} <= set(config["id2label"].values())


def test_images_and_video_frames_are_scored_and_the_threshold_decides(tiny):
    spec = get_catalog().moderation.checker
    images = [Image.new("RGB", (96, 64), (i * 60, 90, 200)) for i in range(3)]
    report = moderation.check(spec, tiny, threshold=get_catalog().moderation.thresholds[1], level=1, images=images)
    assert report["level"] == 1 and len(report["scores"]) == 3 and "blocked" not in report
    assert all(0 <= s < 0.05 for s in report["scores"])  # the tiny twin leans to "normal"

    frames = [Image.new("RGB", (64, 64), (i, i, i)) for i in range(0, 250, 10)]
    report = moderation.check(spec, tiny, threshold=1.0, level=6, videos=[frames])
    assert report["frames_checked"] == spec.video_frames and len(report["scores"]) == 1

    with pytest.raises(moderation.OutputBlocked) as info:
        moderation.check(spec, tiny, threshold=0.0, level=2, images=images[:2])
    assert info.value.code == "moderation_blocked" and info.value.report["blocked"] == [0, 1]
    assert "image 1, 2 of 2" in str(info.value)
    assert moderation.check(spec, tiny, threshold=None, level=None, images=images) == {"checker": False}
