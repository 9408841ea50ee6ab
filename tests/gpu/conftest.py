"""Shared fixtures for the tiny-pipeline tests: one tiny weights directory per base family, per session."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before diffusers/huggingface_hub are imported

import pytest

from gpu.pipelines import FAMILIES
from gpu.tiny import ensure_tiny_pipeline

BASE_FAMILIES = tuple(sorted({family.base for family in FAMILIES.values()}))


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny-pipelines")
    for family in BASE_FAMILIES:
        ensure_tiny_pipeline(family, root)
    return root
