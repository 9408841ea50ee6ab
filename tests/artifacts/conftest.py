"""Lambda artifacts, built the way `sam build` builds them (`make build-<LogicalId> ARTIFACTS_DIR=...`), once
per session: for the template's target (arm64, python3.12) and for this host, where the handlers import.

pip's own cache (~/.cache/pip) keeps the wheels between runs. Every test here is in one xdist group, so one
worker builds each artifact once.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.build import artifacts, sandbox

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 600


@dataclass(frozen=True)
class Built:
    artifact: artifacts.Artifact
    root: Path

    @property
    def site(self) -> Path:
        """Where its packages are: the root for a function, python/ for a layer."""
        return self.root / "python" if self.artifact.kind == "layer" else self.root


def make_build(logical_id: str, into: Path, overrides: dict[str, str] | None = None) -> Path:
    env = {k: v for k, v in os.environ.items() if k not in (artifacts.ARCHITECTURE_ENV, artifacts.RUNTIME_ENV)}
    env.update(overrides or {})
    subprocess.run(["make", "--no-print-directory", f"build-{logical_id}", f"ARTIFACTS_DIR={into}"],
                   cwd=ROOT, env=env, check=True, timeout=BUILD_TIMEOUT)
    return into


def _build_all(base: Path, template: dict, overrides: dict[str, str] | None = None) -> dict[str, Built]:
    built = {}
    with pytest.MonkeyPatch.context() as mp:
        for name, value in (overrides or {}).items():
            mp.setenv(name, value)  # artifacts.artifact() reads the same overrides as the build
        for logical_id in [*artifacts.function_ids(template), artifacts.SDK_LAYER]:
            root = make_build(logical_id, base / logical_id, overrides)
            built[logical_id] = Built(artifacts.artifact(logical_id, template), root)
    return built


@pytest.fixture(scope="session")
def template() -> dict:
    return artifacts.load_template()


@pytest.fixture(scope="session")
def function_ids(template) -> list[str]:
    ids = artifacts.function_ids(template)
    assert ids, "template.yaml has no AWS::Serverless::Function"
    return ids


@pytest.fixture(scope="session")
def target_artifacts(tmp_path_factory, template) -> dict[str, Built]:
    """Every function and the SDK layer, for what template.yaml declares."""
    return _build_all(tmp_path_factory.mktemp("target"), template)


@pytest.fixture(scope="session")
def target_python(template) -> str:
    """The template's Python on this machine, the one the build compiles bytecode with (it needs one)."""
    version = artifacts.runtime_version(template)
    found = artifacts.interpreter(version)
    assert found, f"no Python {version} here: the build cannot compile the runtime's bytecode"
    return found


@pytest.fixture(scope="session")
def host_python(target_python) -> str:
    """The Python the host artifacts are built for and imported by: the template's."""
    return target_python


@pytest.fixture(scope="session")
def host_artifacts(tmp_path_factory, template, host_python) -> dict[str, Built]:
    """The same artifacts for this machine's architecture and host_python's version, so they can run here."""
    return _build_all(tmp_path_factory.mktemp("host"), template, sandbox.host_overrides(host_python))
