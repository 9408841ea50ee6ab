"""Cold start: no handler imports a heavy module it does not need. Each handler of template.yaml is imported in
a fresh interpreter and its sys.modules inspected: exact, not timed (docs/benchmarks.md has the times)."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache

import pytest

from infra.bench.coldstart import handler_modules

# Imported by no handler at import time: the GPU stack, YAML (the catalog and styles parse on first use),
# pydantic-settings (replaced by a plain model), Powertools' idempotency package (its DynamoDB persistence
# layer is built on the first request that needs it), the X-Ray SDK (active tracing needs none).
NEVER = {"modal", "torch", "diffusers", "transformers", "PIL", "numpy", "imageio_ffmpeg", "gpu", "yaml",
         "pydantic_settings", "aws_lambda_powertools.utilities.idempotency", "aws_xray_sdk", "infra"}
# httpx: only the webhooks function sends HTTP at all.
ALLOWED = {"WebhooksFunction": {"httpx"}}
HEAVY_ELSEWHERE = {"httpx"}

HANDLERS = handler_modules()


@cache
def modules_after_import(module: str) -> frozenset[str]:
    code = f"import json, sys\nimport {module}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return frozenset(json.loads(out.stdout.strip().splitlines()[-1]))


def loaded(modules: frozenset[str], name: str) -> bool:
    return name in modules or any(m.startswith(name + ".") for m in modules)


def test_every_template_handler_is_checked():
    assert set(HANDLERS) == {"ApiFunction", "DispatchFunction", "CompleteFunction", "WebhooksFunction",
                             "SweeperFunction"}


@pytest.mark.parametrize("logical_id", sorted(HANDLERS))
def test_no_heavy_module_on_the_import_path(logical_id):
    modules = modules_after_import(HANDLERS[logical_id])
    forbidden = (NEVER | HEAVY_ELSEWHERE) - ALLOWED.get(logical_id, set())
    assert sorted(name for name in forbidden if loaded(modules, name)) == []


def test_the_guard_sees_what_a_handler_does_import():
    # The check itself: the webhooks function imports httpx, and every handler imports boto3.
    assert loaded(modules_after_import(HANDLERS["WebhooksFunction"]), "httpx")
    assert all(loaded(modules_after_import(module), "boto3") for module in HANDLERS.values())


def test_first_use_still_loads_the_catalog_and_styles():
    code = ("import sys, functions.api.handler\n"
            "from functions.core.catalog import get_catalog\nfrom functions.core.styles import get_styles\n"
            "assert 'yaml' not in sys.modules\n"
            "assert get_catalog().model('flux-schnell') is not None and get_styles()\n"
            "print('yaml' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


SCHEMAS_BUILT = """
import json, sys
import {module}
from functions.core.schema import Schema

def every(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from every(sub)

models = sorted({{f"{{m.__module__}}.{{m.__qualname__}}" for m in every(Schema)}})
built = sorted({{f"{{m.__module__}}.{{m.__qualname__}}" for m in every(Schema) if m.__pydantic_complete__}})
print(json.dumps({{"models": models, "built": built}}))
"""


@pytest.mark.parametrize("logical_id", sorted(HANDLERS))
def test_no_model_schema_is_built_at_import(logical_id):
    """Every model derives from Schema (deferred build): a cold start defines the classes and builds none
    of their validators; the first request builds the ones it uses."""
    code = SCHEMAS_BUILT.format(module=HANDLERS[logical_id])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["models"], "the handler defines no Schema models: the check saw nothing"
    assert report["built"] == []


def test_every_model_in_functions_derives_from_schema():
    from pydantic import BaseModel

    code = ("import json, pkgutil, importlib, functions\n"
            "for info in pkgutil.walk_packages(functions.__path__, 'functions.'):\n"
            "    importlib.import_module(info.name)\n"
            "from pydantic import BaseModel\n"
            "def every(cls):\n"
            "    for sub in cls.__subclasses__():\n"
            "        yield sub\n"
            "        yield from every(sub)\n"
            "print(json.dumps(sorted({f'{m.__module__}.{m.__qualname__}' for m in every(BaseModel)\n"
            "    if m.__module__.startswith('functions.') and not m.model_config.get('defer_build')})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    assert BaseModel.model_config.get("defer_build") is None  # the default is untouched: Schema sets it


COLLECTIONS_DURING_IMPORT = """
import gc, json
import functions.core.coldstart  # the one module a handler imports before turning the collector off
starts = []
gc.callbacks.append(lambda phase, info: starts.append(info["generation"]) if phase == "start" else None)
import {module}
print(json.dumps({{"collections": len(starts), "enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}}))
"""


@pytest.mark.parametrize("logical_id", sorted(HANDLERS))
def test_the_cyclic_gc_never_runs_while_a_handler_imports(logical_id):
    # Without functions/core/coldstart.py the api function's import ran about 130 collections (~80 ms here).
    code = COLLECTIONS_DURING_IMPORT.format(module=HANDLERS[logical_id])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["collections"] == 0
    assert report["enabled"] and report["frozen"] > 10_000  # back on, with the import's objects frozen
