"""Lambda artifacts, built the way `sam build` builds them (`make build-<LogicalId> ARTIFACTS_DIR=...`), once
per session: for the template's target (arm64, python3.12) and for this host, where the handlers import.

pip's own cache (~/.cache/pip) keeps the wheels between runs. Every test here is in one xdist group, so one
worker builds each artifact once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.build import artifacts

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


def _interpreter(version: str) -> str | None:
    """A working pythonX.Y: on PATH, or a pyenv install (whose shims need PYENV_VERSION to run)."""
    candidates = [shutil.which(f"python{version}"),
                  *sorted(str(p) for p in Path.home().glob(f".pyenv/versions/{version}*/bin/python{version}"))]
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; print(sys.executable)"],
                               capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            return probe.stdout.strip()
    return None


@pytest.fixture(scope="session")
def host_python(template) -> str:
    """The template's Python on this machine if it has one, else the Python running the tests."""
    runtime = template["Globals"]["Function"]["Runtime"]
    return _interpreter(runtime.removeprefix("python")) or sys.executable


@pytest.fixture(scope="session")
def host_artifacts(tmp_path_factory, template, host_python) -> dict[str, Built]:
    """The same artifacts for this machine's architecture and host_python's version, so they can run here."""
    version = subprocess.run([host_python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    machine = os.uname().machine
    architecture = next(arch for arch, name in artifacts.MACHINES.items() if name == machine)
    return _build_all(tmp_path_factory.mktemp("host"), template,
                      {artifacts.ARCHITECTURE_ENV: architecture, artifacts.RUNTIME_ENV: f"python{version}"})
