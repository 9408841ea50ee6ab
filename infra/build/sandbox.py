"""Running a built artifact on this machine the way Lambda runs it: an isolated interpreter of the runtime's
version that sees only the artifact (/var/task), then the SDK layer (/opt/python), then the standard library,
and writes no bytecode (both are read-only on Lambda). The artifact tests and the cold-start benchmark use it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from infra.build import artifacts
from infra.local import template as cfn

# -I: no PYTHONPATH, no user site, no script directory; -S: no site-packages of that interpreter; -B: no
# bytecode written, as on Lambda's read-only file systems.
ISOLATED = ("-I", "-S", "-B")


def host_overrides(python: str) -> dict[str, str]:
    """The build overrides that make artifacts for this machine's architecture and `python`'s version."""
    version = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    machine = os.uname().machine
    architecture = next(arch for arch, name in artifacts.MACHINES.items() if name == machine)
    return {artifacts.ARCHITECTURE_ENV: architecture, artifacts.RUNTIME_ENV: f"python{version}"}


def lambda_environment(spec: cfn.FunctionSpec, template: dict[str, Any], home: Path) -> dict[str, str]:
    """The function's variables from the template, its intrinsics made harmless strings (nothing is reached)."""
    parameters = {name: str(p.get("Default", "")) for name, p in template.get("Parameters", {}).items()}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_LAMBDA_FUNCTION_NAME": spec.logical_id}
    for name, value in spec.environment.items():
        if isinstance(value, dict) and "Ref" in value and value["Ref"] in parameters:
            value = parameters[value["Ref"]]
        env[name] = value if isinstance(value, str) else f"placeholder-{name.lower()}"
    return env


def run(python: str, code: str, paths: list[Path], env: dict[str, str], cwd: Path,
        timeout: float = 120) -> subprocess.CompletedProcess:
    """`code` in an isolated `python`, with `paths` (artifact, layer) first on sys.path."""
    prelude = f"import sys\nsys.path[:0] = {[str(p) for p in paths]!r}\n"
    return subprocess.run([python, *ISOLATED, "-c", prelude + code], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=timeout, check=False)
