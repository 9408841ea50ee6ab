"""template.yaml as CloudFormation sees it after `sam package` and the SAM transform, done offline.

`sam package` replaces the local CodeUri (and a layer's ContentUri) with the uploaded artifact, so the transform
is given S3 URIs (ARTIFACT_BUCKET/ARTIFACT_KEY, LAYER_KEY); the managed-policy map is empty (the template
uses inline statements only).
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path

import pytest
from cfnlint.decode import decode
from offline_aws import set_offline_aws_env
from samtranslator.translator.transform import transform

TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"
ARTIFACT_BUCKET = "darkroom-artifacts"
ARTIFACT_KEY = "darkroom.zip"
LAYER_KEY = "layer.zip"


class _NoManagedPolicies:
    def load(self) -> dict:
        return {}


def _plain(node):
    return json.loads(json.dumps(node))


def source(path: Path = TEMPLATE) -> dict:
    template, problems = decode(str(path))
    assert not problems, problems
    return _plain(template)


def transformed_from(template_source: dict) -> dict:
    template = copy.deepcopy(template_source)
    template["Globals"]["Function"]["CodeUri"] = f"s3://{ARTIFACT_BUCKET}/{ARTIFACT_KEY}"
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            resource["Properties"]["ContentUri"] = f"s3://{ARTIFACT_BUCKET}/{LAYER_KEY}"
    with pytest.MonkeyPatch.context() as mp:
        set_offline_aws_env(mp)
        return _plain(transform(template, {}, _NoManagedPolicies()))


@cache
def _transformed_json() -> str:
    return json.dumps(transformed_from(source()))


def transformed() -> dict:
    """The transformed template.yaml (computed once per process; each call gets its own copy)."""
    return json.loads(_transformed_json())
