"""The api function includes each router on the first request that can reach it (functions/api/app.py): every
route must be covered by its module's declared prefixes, or its requests would find no route; and a request
must import only the routers (and dialects) its path can reach. Exact, from sys.modules, not timed."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys

import pytest

import functions.api
from functions.api.app import ROUTERS


def _router_modules() -> set[str]:
    names = set()
    for info in pkgutil.iter_modules(functions.api.__path__):
        module = importlib.import_module(f"functions.api.{info.name}")
        if hasattr(module, "router"):
            names.add(f"functions.api.{info.name}")
    return names


def test_every_router_module_is_declared():
    assert _router_modules() == set(ROUTERS)


@pytest.mark.parametrize("name", sorted(ROUTERS))
def test_every_route_starts_with_one_of_its_modules_prefixes(name):
    rules = [route[0] for route in importlib.import_module(name).router._routes]
    assert rules
    for rule in rules:
        literal = rule.split("<", 1)[0]  # every path the rule matches starts with this
        assert literal.startswith(ROUTERS[name]), (name, rule)


LOADED_AFTER_REQUEST = """
import json, sys
from functions.api.handler import handler
from infra.local.lambda_runtime import LambdaContext
event = {{"version": "2.0", "routeKey": "$default", "rawPath": "{path}", "rawQueryString": "",
         "headers": {{}}, "isBase64Encoded": False,
         "requestContext": {{"http": {{"method": "{method}", "path": "{path}", "sourceIp": "127.0.0.1"}},
                            "requestId": "r", "stage": "$default", "timeEpoch": 0}}}}
response = handler(event, LambdaContext("ApiFunction", 512, 30))
print(json.dumps({{"status": response["statusCode"],
                  "modules": sorted(m for m in sys.modules if m.startswith(("functions.api.", "functions.dialects.")))}}))
"""

ROUTER_MODULES = set(ROUTERS)


@pytest.mark.parametrize("method,path,routers,dialects", [
    ("GET", "/api/generations/65f0c0ffee00000000000001", {"native", "webhooks", "share"}, {"native"}),
    ("POST", "/v1/images/generations", {"openai"}, {"openai"}),
    ("GET", "/api/v1/models", {"aims"}, {"aims"}),
    ("GET", "/fal/queue/fal-ai/flux/requests/65f0c0ffee00000000000001/status", {"fal"}, {"fal"}),
    ("GET", "/nowhere", set(), {"native"}),
])
def test_a_request_imports_only_the_routers_its_path_can_reach(method, path, routers, dialects):
    code = LOADED_AFTER_REQUEST.format(method=method, path=path)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "DARKROOM_LOCAL": "1"})
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["status"] in (401, 404)  # no key: the router was reached (or, for /nowhere, no route)
    loaded = set(report["modules"])
    assert loaded & ROUTER_MODULES == {f"functions.api.{name}" for name in routers}
    all_dialects = {"native", "openai", "aims", "fal"}
    assert {d for d in all_dialects if f"functions.dialects.{d}" in loaded} >= dialects
    assert not {f"functions.dialects.{d}" for d in all_dialects - dialects - {"native"}} & loaded
