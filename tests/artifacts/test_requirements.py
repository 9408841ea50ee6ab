"""Each function declares exactly what its handler's import closure needs; each version is pinned once, in
functions/requirements.txt, and pyproject.toml says the same. No builds here: these read the source."""

from __future__ import annotations

import functools
import importlib.metadata
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from infra.build import artifacts, imports

pytestmark = pytest.mark.xdist_group("artifacts")

ROOT = Path(__file__).resolve().parents[2]


def _names(path: Path) -> list[str]:
    return [canonicalize_name(Requirement(line).name) for line in _lines(path)]


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def _pins() -> dict[str, Requirement]:
    return {canonicalize_name(req.name): req for req in map(Requirement, _lines(artifacts.PINS))}


def _installed_with(names: list[str]) -> set[str]:
    """The distributions that installing `names` brings, read from this venv's metadata."""
    seen: set[str] = set()
    pending = list(names)
    while pending:
        name = canonicalize_name(pending.pop())
        if name in seen:
            continue
        seen.add(name)
        for requirement in map(Requirement, importlib.metadata.requires(name) or []):
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return seen


@functools.cache
def _owners() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()  # a walk over the whole venv: once


def _distribution_of(module: str) -> str:
    owners = _owners().get(module)
    assert owners, f"{module} is imported but no installed distribution provides it"
    return canonicalize_name(owners[0])


def _function_artifacts(template) -> list[artifacts.Artifact]:
    return [artifacts.artifact(name, template) for name in artifacts.function_ids(template)]


def test_each_function_declares_exactly_the_distributions_its_handler_imports(template):
    sdk = _installed_with(_names(artifacts.SDK_REQUIREMENTS))
    for art in _function_artifacts(template):
        assert art.requirements.is_file(), f"{art.logical_id}: {art.requirements} is missing"
        found = imports.closure(imports.handler_module(art.handler))
        imported = {_distribution_of(module) for module in found.third_party_modules}
        declared = set(_names(art.requirements))
        assert declared == imported - sdk, (
            f"{art.logical_id}: {art.requirements.relative_to(ROOT)} lists {sorted(declared)}; "
            f"its handler imports {sorted(imported - sdk)} besides the AWS SDK")


def test_the_sdk_layer_covers_every_sdk_import(template):
    sdk = _installed_with(_names(artifacts.SDK_REQUIREMENTS))
    assert {"boto3", "botocore"} <= sdk
    for art in _function_artifacts(template):
        found = imports.closure(imports.handler_module(art.handler))
        for module in found.third_party_modules & {"boto3", "botocore"}:
            assert _distribution_of(module) in sdk


def test_the_closure_follows_lazy_and_relative_imports(template):
    # The dispatch function imports modal inside a method; a closure that only read module-level imports
    # would let its artifact ship without it.
    dispatch = next(art for art in _function_artifacts(template) if "modal" in _names(art.requirements))
    found = imports.closure(imports.handler_module(dispatch.handler))
    assert any(imp.module == "modal" and imp.lazy for imp in found.third_party)
    assert "functions.core.settings" in found.modules


def test_the_closure_follows_the_routers_the_api_imports_by_name():
    # functions/api/app.py includes each router on first need, by module name: the closure must still see
    # each router and what it imports (the webhook admin router's standardwebhooks, say).
    from functions.api.app import ROUTERS

    found = imports.closure("functions.api.handler")
    assert set(ROUTERS) <= found.modules
    assert any(imp.module == "standardwebhooks" and imp.source.startswith("functions.") for imp in found.third_party)


def test_code_outside_functions_is_imported_only_lazily(template):
    # gpu/ and infra/ never ship; a module-level import of them would fail at every cold start.
    for art in _function_artifacts(template):
        for imp in imports.closure(imports.handler_module(art.handler)).local_only:
            assert imp.lazy, f"{imp.source} imports {imp.name} at module level; it is not in the artifact"


def test_every_selected_distribution_is_pinned_once_and_every_pin_is_used(template):
    pins = _pins()
    assert len(pins) == len(_lines(artifacts.PINS)), "a distribution is pinned twice in functions/requirements.txt"
    selected = set(_names(artifacts.SDK_REQUIREMENTS))
    for art in _function_artifacts(template):
        for line in _lines(art.requirements):
            assert not Requirement(line).specifier, (
                f"{art.requirements.relative_to(ROOT)}: {line!r}: versions belong in functions/requirements.txt")
        selected |= set(_names(art.requirements))
    assert selected <= set(pins), f"not pinned in functions/requirements.txt: {sorted(selected - set(pins))}"
    assert set(pins) <= selected, f"pinned but no function uses: {sorted(set(pins) - selected)}"


def test_pyproject_pins_the_lambda_dependencies_the_same_way():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [Requirement(spec) for spec in project["dependencies"]]
    declared += [Requirement(spec) for extra in project["optional-dependencies"].values() for spec in extra]
    by_name: dict[str, set[str]] = {}
    for req in declared:
        by_name.setdefault(canonicalize_name(req.name), set()).add(str(req.specifier))
    for name, pin in _pins().items():
        assert name in by_name, f"{name} is pinned for Lambda but pyproject.toml does not depend on it"
        assert by_name[name] == {str(pin.specifier)}, (
            f"{name}: functions/requirements.txt says {pin.specifier}, pyproject.toml {sorted(by_name[name])}")


def test_the_sdk_layer_is_built_for_the_functions_that_use_it(template):
    # Read from the template when it declares the layer, else from Globals: either way a function and the
    # layer it loads must agree, or the layer's native code (none today, but pins change) would not load.
    layer = artifacts.artifact(artifacts.SDK_LAYER, template).target
    for art in _function_artifacts(template):
        assert art.target == layer, f"{art.logical_id} is {art.target}, {artifacts.SDK_LAYER} {layer}"
