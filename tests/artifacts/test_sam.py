"""sam itself, offline and without Docker: `sam validate --lint` accepts template.yaml, and `sam build` runs the
Makefile's build targets for every function and layer and writes a template that points at them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from infra.build import contents
from infra.local import template as cfn

pytestmark = pytest.mark.xdist_group("artifacts")

ROOT = Path(__file__).resolve().parents[2]
SAM = ROOT / ".venv-sam" / "bin" / "sam"


def _sam(*args: str, timeout: int) -> subprocess.CompletedProcess:
    assert SAM.exists(), "sam CLI is missing: `make test` installs it into .venv-sam (make .venv-sam/.installed)"
    env = os.environ | {"SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"}
    env.pop("AWS_PROFILE", None)
    return subprocess.run([str(SAM), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def test_sam_validate_lint_accepts_the_template():
    result = _sam("validate", "--lint", "--template-file", "template.yaml", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_sam_build_builds_every_function_for_its_architecture(tmp_path, target_artifacts):
    # --build-in-source: make runs in the checkout, instead of sam first copying it (venvs included) to scratch.
    build_dir = tmp_path / "sam-build"
    result = _sam("build", "--build-in-source", "--build-dir", str(build_dir), "--template-file", "template.yaml",
                  timeout=1200)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    built = cfn.load(build_dir / "template.yaml")
    for logical_id, resource in built["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        root = build_dir / resource["Properties"]["CodeUri"]
        handler = root.joinpath(*resource["Properties"]["Handler"].split(".")[:-1]).with_suffix(".py")
        assert handler.is_file(), f"{logical_id}: sam's artifact has no {handler.relative_to(root)}"
        machine = target_artifacts[logical_id].artifact.target.machine
        elves = contents.elf_files(root)
        assert elves and all(elf.machine == machine for elf in elves), logical_id
        # The same distributions as `make build-<LogicalId>` on its own: sam adds nothing and drops nothing.
        assert contents.distributions(root).keys() == contents.distributions(
            target_artifacts[logical_id].root).keys(), logical_id
