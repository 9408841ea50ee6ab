"""Every handler imports from its own artifact, built for this machine, in a fresh isolated interpreter
that sees nothing else: the artifact first, then the SDK layer (Lambda's /var/task, then /opt/python),
then the standard library. Nothing missing from an artifact can hide behind the project venv."""

from __future__ import annotations

import json
import shutil
import socket

import pytest

from infra.build import imports, sandbox
from infra.build.artifacts import SDK_LAYER
from infra.local import template as cfn

pytestmark = pytest.mark.xdist_group("artifacts")

PROBE = """
import importlib, json, sys, sysconfig
module = importlib.import_module({module!r})
assert callable(getattr(module, {attr!r})), {attr!r}
for name in {lazy!r}:  # imported inside functions: they must be in the artifact too
    importlib.import_module(name)
allowed = tuple(sys.path[:{shipped}]) + (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"])
strays = sorted(f"{{name}}: {{mod.__file__}}" for name, mod in list(sys.modules.items())
                if getattr(mod, "__file__", None) and not mod.__file__.startswith(allowed))
print(json.dumps({{"strays": strays, "sys_path": sys.path}}))
"""


def test_every_handler_imports_from_its_host_artifact_alone(host_artifacts, host_python, template, tmp_path):
    specs = cfn.functions(template)
    layer = host_artifacts[SDK_LAYER].site
    assert specs
    for logical_id, spec in specs.items():
        built = host_artifacts[logical_id]
        module, _, attr = spec.handler.rpartition(".")
        lazy = sorted({imp.name for imp in imports.closure(module).third_party if imp.lazy})
        code = PROBE.format(module=module, attr=attr, lazy=lazy, shipped=2)
        result = sandbox.run(host_python, code, [built.root, layer], sandbox.lambda_environment(spec, template, tmp_path),
                             cwd=built.root)
        assert result.returncode == 0, f"{logical_id} ({spec.handler}) does not import:\n{result.stderr[-3000:]}"
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert not report["strays"], f"{logical_id} imported modules from outside its artifact: {report['strays']}"
        assert not any("site-packages" in entry for entry in report["sys_path"]), report["sys_path"]



def test_the_shipped_bytecode_is_what_runs(host_artifacts, host_python, template, tmp_path):
    """The handler's source is replaced by one that fails: the import still works, from the .pyc the build
    compiled (unchecked-hash: the runtime does not compare it with its source)."""
    spec = cfn.functions(template)["ApiFunction"]
    artifact = tmp_path / "ApiFunction"
    shutil.copytree(host_artifacts["ApiFunction"].root, artifact)
    module, _, attr = spec.handler.rpartition(".")
    source = artifact.joinpath(*module.split(".")).with_suffix(".py")
    source.write_text("raise SystemExit('the source ran: the shipped bytecode was not used')\n")
    code = (f"import importlib\nmodule = importlib.import_module({module!r})\n"
            f"assert callable(module.{attr})\nprint(module.__cached__)")
    result = sandbox.run(host_python, code, [artifact, host_artifacts[SDK_LAYER].site],
                         sandbox.lambda_environment(spec, template, tmp_path), cwd=artifact)
    assert result.returncode == 0, result.stderr[-3000:]
    tag = host_artifacts["ApiFunction"].artifact.target.cpython_tag
    assert result.stdout.strip().splitlines()[-1] == str(source.parent / "__pycache__" / f"handler.{tag}.pyc")


def test_the_webhooks_artifact_alone_makes_an_asynchronous_post(host_artifacts, host_python, template, tmp_path):
    """A delivery runs on httpx's AsyncClient, whose connection backend (anyio) is imported only when a request is
    made: a POST from the artifact alone, to a closed loopback port, gets as far as the refused connection."""
    spec = cfn.functions(template)["WebhooksFunction"]
    built = host_artifacts["WebhooksFunction"]
    with socket.socket() as placeholder:  # a port nothing listens on once this closes
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    code = (
        "import sys\n"
        "from functions.webhooks import delivery\n"
        f"try:\n    delivery._loop().run(delivery._post_within(delivery.http_client(None), 'http://127.0.0.1:{port}/',"
        " b'{}', {}, {}, 5.0))\n"
        "except delivery.httpx.ConnectError as exc:\n    print('refused', type(exc).__name__)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('anyio', 'httpcore')))\n"
    )
    result = sandbox.run(host_python, code, [built.root, host_artifacts[SDK_LAYER].site],
                         sandbox.lambda_environment(spec, template, tmp_path), cwd=built.root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "refused ConnectError" in result.stdout
    assert "'anyio'" in result.stdout, result.stdout[-2000:]
