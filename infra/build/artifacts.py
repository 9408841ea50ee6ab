"""Builds one Lambda artifact (a function or the SDK layer) for the runtime and architecture that
template.yaml declares for it, whatever machine runs the build.

`sam build` runs it through the Makefile's build-<LogicalId> targets (Metadata: BuildMethod: makefile):

    python -m infra.build.artifacts <LogicalId> <ARTIFACTS_DIR>

A function ships the functions/ package and the distributions its handler imports, listed in
functions/<package>/requirements.txt, and their dependencies, each at the version and wheel that
functions/requirements.txt locks (infra/build/lock.py writes it; pip installs under it with
--require-hashes, so nothing else gets in). The AWS SDK is not in
any function: it comes from the AwsSdkLayer (functions/requirements-sdk.txt), or the runtime's own copy
while the template has no such layer. See docs/artifacts.md for the why.

Every module is compiled to bytecode by an interpreter of the runtime's version (the build's own, or
pythonX.Y on PATH or in pyenv; DARKROOM_BUILD_PYTHON names one): /var/task is read-only, so a Lambda
that finds no .pyc compiles every module it imports at every cold start, and keeps none.

DARKROOM_BUILD_ARCHITECTURE (arm64 | x86_64) and DARKROOM_BUILD_RUNTIME (python3.X) override the template,
so that a test can build for the host and import the handlers there.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.build import contents, lock
from infra.local import template as cfn

REPO = Path(__file__).resolve().parents[2]
FUNCTIONS = REPO / "functions"
PINS = FUNCTIONS / "requirements.txt"
SDK_REQUIREMENTS = FUNCTIONS / "requirements-sdk.txt"
SDK_LAYER = "AwsSdkLayer"

ARCHITECTURE_ENV = "DARKROOM_BUILD_ARCHITECTURE"
RUNTIME_ENV = "DARKROOM_BUILD_RUNTIME"
PYTHON_ENV = "DARKROOM_BUILD_PYTHON"

# Lambda's name for an architecture -> the machine name in wheel tags and ELF headers.
MACHINES = {"arm64": "aarch64", "x86_64": "x86_64"}
# The newest glibc each runtime's OS has (python3.12+ run on Amazon Linux 2023, older ones on Amazon Linux 2):
# a manylinux wheel for a newer glibc would fail to load there.
AL2023_GLIBC_MINOR = 34
AL2_GLIBC_MINOR = 26
OLDEST_MANYLINUX_MINOR = 17  # manylinux2014

# What a function artifact never ships: tests, caches, and the requirement files themselves.
CODE_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "requirements*.txt", "tests")


@dataclass(frozen=True)
class Target:
    """What the artifact is built for."""

    runtime: str  # e.g. python3.12
    architecture: str  # arm64 | x86_64

    @property
    def python_version(self) -> str:
        return self.runtime.removeprefix("python")

    @property
    def machine(self) -> str:
        return MACHINES[self.architecture]

    @property
    def cpython_tag(self) -> str:
        """The tag every extension module's file name carries, e.g. cpython-312."""
        return "cpython-" + self.python_version.replace(".", "")

    @property
    def platforms(self) -> list[str]:
        """Every manylinux tag this runtime's OS can load, newest first. pip needs them all spelled out:
        it expands manylinux2014 to the older legacy tags, but not to the manylinux_2_x ones."""
        major, minor = (int(part) for part in self.python_version.split("."))
        newest = AL2023_GLIBC_MINOR if (major, minor) >= (3, 12) else AL2_GLIBC_MINOR
        tags = [f"manylinux_2_{glibc}_{self.machine}" for glibc in range(newest, OLDEST_MANYLINUX_MINOR - 1, -1)]
        return tags + [f"manylinux2014_{self.machine}"]


@dataclass(frozen=True)
class Artifact:
    logical_id: str
    kind: str  # "function" | "layer"
    target: Target
    handler: str | None = None

    @property
    def package(self) -> Path:
        """The function's own package under functions/, from its handler (functions.api.handler.handler)."""
        assert self.handler, self.logical_id
        return REPO.joinpath(*self.handler.split(".")[:2])

    @property
    def requirements(self) -> Path:
        return SDK_REQUIREMENTS if self.kind == "layer" else self.package / "requirements.txt"


def load_template() -> dict[str, Any]:
    return cfn.load()


def function_ids(template: dict[str, Any]) -> list[str]:
    return [name for name, res in template["Resources"].items() if res["Type"] == "AWS::Serverless::Function"]


def _override(target: Target) -> Target:
    return Target(runtime=os.environ.get(RUNTIME_ENV) or target.runtime,
                  architecture=os.environ.get(ARCHITECTURE_ENV) or target.architecture)


def artifact(logical_id: str, template: dict[str, Any] | None = None) -> Artifact:
    """The artifact `logical_id` names: a function in template.yaml, or the SDK layer (which may not be in
    the template yet; then it is built for the functions' Globals)."""
    template = template or load_template()
    globals_ = template.get("Globals", {}).get("Function", {})
    resource = template["Resources"].get(logical_id)
    if resource is None and logical_id != SDK_LAYER:
        raise SystemExit(f"{logical_id}: no such resource in template.yaml")
    props = (resource or {}).get("Properties", {})
    if logical_id == SDK_LAYER:
        metadata = (resource or {}).get("Metadata", {})
        runtime = (props.get("CompatibleRuntimes") or [globals_["Runtime"]])[0]
        architecture = metadata.get("BuildArchitecture") or (
            props.get("CompatibleArchitectures") or globals_.get("Architectures") or ["x86_64"])[0]
        return Artifact(logical_id, "layer", _override(Target(runtime, architecture)))
    if resource["Type"] != "AWS::Serverless::Function":
        raise SystemExit(f"{logical_id}: not an AWS::Serverless::Function")
    runtime = props.get("Runtime") or globals_["Runtime"]
    architecture = (props.get("Architectures") or globals_.get("Architectures") or ["x86_64"])[0]
    return Artifact(logical_id, "function", _override(Target(runtime, architecture)), handler=props["Handler"])


def pip_command(requirements: Path, target: Target, into: Path, constraints: Path) -> list[str]:
    """pip install, wheels only, for the target's platform and Python, whatever runs pip (infra/build/lock.py
    resolves the lock with the same command)."""
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--no-compile",  # the host's .pyc would be for the host's Python, not the runtime's
               "--no-warn-conflicts",  # pip compares with the build venv, which the artifact never sees
               "--only-binary=:all:", "--implementation", "cp", "--python-version", target.python_version,
               "--target", str(into), "-r", str(requirements), "-c", str(constraints)]
    for platform in target.platforms:
        command += ["--platform", platform]
    return command


def pip_install(requirements: Path, target: Target, into: Path, pins: Path = PINS) -> None:
    """Under the lock, in pip's hash-checking mode: every distribution pip installs, the requested ones and
    their dependencies, must be pinned there (==) with the hash of the very wheel, or pip installs nothing."""
    try:
        locked = lock.read(pins)
    except lock.LockError as exc:
        raise SystemExit(str(exc)) from exc
    key = lock.target_key(target.runtime, target.architecture)
    if key not in locked.targets:
        raise SystemExit(f"{pins.relative_to(REPO) if pins.is_relative_to(REPO) else pins} is locked for "
                         f"{', '.join(locked.targets)}, not {key}: `make lock` locks the runtime template.yaml "
                         f"declares, on {' and '.join(lock.ARCHITECTURES)}")
    subprocess.run([*pip_command(requirements, target, into, pins), "--require-hashes"], check=True)
    problems = lock.differences(contents.versions(into), locked, f"{target.runtime}/{target.architecture} build")
    if problems:
        raise SystemExit("the artifact is not what the lock pins (`make lock`?):\n  " + "\n  ".join(problems))


def runtime_version(template: dict[str, Any] | None = None) -> str:
    """The functions' Python version, e.g. 3.12, from the template's Globals."""
    return (template or load_template())["Globals"]["Function"]["Runtime"].removeprefix("python")


def interpreter(version: str) -> str | None:
    """A working Python `version` (3.12): this one if it is that version, else DARKROOM_BUILD_PYTHON,
    pythonX.Y on PATH, or a pyenv install (probed directly: pyenv's shims need PYENV_VERSION to run)."""
    if sys.version_info[:2] == tuple(int(part) for part in version.split(".")):
        return sys.executable
    candidates = [os.environ.get(PYTHON_ENV), shutil.which(f"python{version}"),
                  *sorted(str(p) for p in Path.home().glob(f".pyenv/versions/{version}*/bin/python{version}"))]
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2], sys.executable)"],
                               capture_output=True, text=True, check=False)
        found, _, executable = probe.stdout.strip().partition(" ")
        if probe.returncode == 0 and found == version:
            return executable
    return None


def compile_bytecode(root: Path, target: Target) -> None:
    """Every module under `root` to __pycache__/*.cpython-3XY.pyc, for the target's Python.

    unchecked-hash: the runtime loads the .pyc without comparing it to its source's mtime, which a zip
    round trip does not keep exactly (an mtime mismatch would mean compiling again, at every cold start).
    The artifact is immutable, so there is nothing to check."""
    python = interpreter(target.python_version)
    if python is None:
        raise SystemExit(f"no Python {target.python_version} to compile the artifact's bytecode with: install "
                         f"python{target.python_version} (sam build needs it too), or name one in {PYTHON_ENV}")
    subprocess.run([python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
                    str(root)], check=True)


def strip(root: Path) -> None:
    """Drop what Lambda never uses. Console scripts (bin/) have the build host's interpreter in their
    shebang; *.dist-info stays, importlib.metadata reads it (pydantic, powertools and others do). Any
    bytecode a wheel carried goes too: compile_bytecode writes it for the runtime."""
    shutil.rmtree(root / "bin", ignore_errors=True)
    for cache in sorted(root.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache, ignore_errors=True)


def build(art: Artifact, artifacts_dir: Path, pins: Path = PINS) -> Path:
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    if any(artifacts_dir.iterdir()):
        raise SystemExit(f"{artifacts_dir} is not empty: build into a fresh directory")
    if art.kind == "layer":
        # Lambda puts a layer in /opt; /opt/python is on the runtime's sys.path.
        site = artifacts_dir / "python"
        pip_install(art.requirements, art.target, site, pins)
    else:
        site = artifacts_dir
        pip_install(art.requirements, art.target, site, pins)
        shutil.copytree(FUNCTIONS, artifacts_dir / "functions", ignore=CODE_IGNORED)
    strip(site)
    compile_bytecode(artifacts_dir, art.target)
    return artifacts_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m infra.build.artifacts", description=__doc__.split("\n")[0])
    parser.add_argument("logical_id", help="a function's logical id in template.yaml, or " + SDK_LAYER)
    parser.add_argument("artifacts_dir", type=Path, help="where to build (sam build's ARTIFACTS_DIR)")
    args = parser.parse_args(argv)
    art = artifact(args.logical_id)
    print(f"{art.logical_id}: {art.kind} for {art.target.runtime} on {art.target.architecture}", file=sys.stderr)
    build(art, args.artifacts_dir.resolve())


if __name__ == "__main__":
    main()
