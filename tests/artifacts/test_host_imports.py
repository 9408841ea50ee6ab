"""Every handler imports from its own artifact, built for this machine, in a fresh isolated interpreter
that sees nothing else: the artifact first, then the SDK layer (Lambda's /var/task, then /opt/python),
then the standard library. Nothing missing from an artifact can hide behind the project venv."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from infra.build import imports
from infra.build.artifacts import SDK_LAYER
from infra.local import template as cfn

pytestmark = pytest.mark.xdist_group("artifacts")

PROBE = """
import importlib, json, sys, sysconfig
sys.path[:0] = {paths!r}
module = importlib.import_module({module!r})
assert callable(getattr(module, {attr!r})), {attr!r}
for name in {lazy!r}:  # imported inside functions: they must be in the artifact too
    importlib.import_module(name)
allowed = tuple(sys.path[:{shipped}]) + (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"])
strays = sorted(f"{{name}}: {{mod.__file__}}" for name, mod in list(sys.modules.items())
                if getattr(mod, "__file__", None) and not mod.__file__.startswith(allowed))
print(json.dumps({{"strays": strays, "sys_path": sys.path}}))
"""


def _environment(spec: cfn.FunctionSpec, template: dict, home) -> dict[str, str]:
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


def test_every_handler_imports_from_its_host_artifact_alone(host_artifacts, host_python, template, tmp_path):
    specs = cfn.functions(template)
    layer = host_artifacts[SDK_LAYER].site
    assert specs
    for logical_id, spec in specs.items():
        built = host_artifacts[logical_id]
        module, _, attr = spec.handler.rpartition(".")
        lazy = sorted({imp.name for imp in imports.closure(module).third_party if imp.lazy})
        code = PROBE.format(paths=[str(built.root), str(layer)], module=module, attr=attr, lazy=lazy, shipped=2)
        # -I: no PYTHONPATH, no user site, no script directory; -S: no site-packages of that interpreter.
        result = subprocess.run([host_python, "-I", "-S", "-c", code], cwd=built.root, capture_output=True,
                                text=True, env=_environment(spec, template, tmp_path), timeout=120, check=False)
        assert result.returncode == 0, f"{logical_id} ({spec.handler}) does not import:\n{result.stderr[-3000:]}"
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert not report["strays"], f"{logical_id} imported modules from outside its artifact: {report['strays']}"
        assert not any("site-packages" in entry for entry in report["sys_path"]), report["sys_path"]

