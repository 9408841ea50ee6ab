"""Each function declares exactly what its handler's import closure needs; functions/requirements.txt locks
every distribution the artifacts install, at the test venv's version and within pyproject.toml's ranges. No
builds here: these read the source (tests/artifacts/test_lock.py checks the built artifacts against it)."""

from __future__ import annotations

import functools
import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from infra.build import artifacts, imports, lock
from infra.deploy.tools import MODAL_MIN_VERSION

pytestmark = pytest.mark.xdist_group("artifacts")

ROOT = Path(__file__).resolve().parents[2]


def _names(path: Path) -> list[str]:
    return [canonicalize_name(Requirement(line).name) for line in _lines(path)]


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def _lock() -> lock.Lock:
    return lock.read(artifacts.PINS)


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


def test_every_selected_distribution_is_named_without_a_version_and_locked(template):
    pins = _lock().pins
    selected = set(_names(artifacts.SDK_REQUIREMENTS))
    for art in _function_artifacts(template):
        for line in _lines(art.requirements):
            assert not Requirement(line).specifier, (
                f"{art.requirements.relative_to(ROOT)}: {line!r}: versions belong in pyproject.toml (ranges) "
                "and functions/requirements.txt (the lock, `make lock`)")
        selected |= set(_names(art.requirements))
    assert selected <= set(pins), f"not locked in functions/requirements.txt: {sorted(selected - set(pins))}"


def test_the_lock_pins_every_distribution_to_one_version_and_wheel_for_every_target(template):
    text = artifacts.PINS.read_text()
    locked = lock.parse(text)  # raises on any line that is not name==version --hash=...
    assert len(locked.pins) > 20, "the lock should hold transitive dependencies too"
    requirement_lines = [line for line in text.splitlines() if line and not line[0].isspace() and line[0] != "#"]
    assert len(requirement_lines) == len(locked.pins)
    for pin in locked.pins.values():
        assert pin.hashes and pin.via, pin
        Version(pin.version)  # a real version, not a range or a URL
    ids = {*artifacts.function_ids(template), artifacts.SDK_LAYER}
    assert {via for pin in locked.pins.values() for via in pin.via} == ids, "every artifact is locked, no other"
    for logical_id in ids:
        target = artifacts.artifact(logical_id, template).target
        for architecture in lock.ARCHITECTURES:
            assert lock.target_key(target.runtime, architecture) in locked.targets, (logical_id, locked.targets)


def test_every_locked_version_is_the_one_the_test_venv_has():
    # What ships is what the tests ran: a venv upgraded since `make lock`, or a lock edited by hand, fails here.
    locked = _lock()
    venv = {name: version for name, version in lock.venv_versions().items() if name in locked.pins}
    problems = lock.differences(venv, locked, "the test venv")
    assert not problems, "functions/requirements.txt is not what the tests run (`make lock`):\n" + "\n".join(problems)
    assert {"pydantic-core", "typing-extensions", "botocore", "modal", "grpclib"} <= venv.keys()


def _pyproject_ranges() -> dict[str, list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [Requirement(spec) for spec in project["dependencies"]]
    declared += [Requirement(spec) for extra in project["optional-dependencies"].values() for spec in extra]
    by_name: dict[str, list[Requirement]] = {}
    for req in declared:
        by_name.setdefault(canonicalize_name(req.name), []).append(req)
    return by_name


def test_pyproject_ranges_admit_every_locked_version_of_what_the_functions_name(template):
    ranges, pins = _pyproject_ranges(), _lock().pins
    direct = set(_names(artifacts.SDK_REQUIREMENTS))
    for art in _function_artifacts(template):
        direct |= set(_names(art.requirements))
    for name in sorted(direct):
        assert name in ranges, f"{name} is installed in a Lambda artifact but pyproject.toml does not depend on it"
        for req in ranges[name]:
            assert req.specifier.contains(pins[name].version, prereleases=True), (
                f"{name}: the lock pins {pins[name].version}, outside pyproject.toml's {req}")


def test_the_modal_minimum_is_one_version_everywhere():
    # `modal token info` needs 1.3.1; the snake_case --json keys infra/deploy/modal_account.py reads, 1.5.0; a
    # container whose GPU snapshot fails to restore boots without it, 1.5.1.
    assert Version(MODAL_MIN_VERSION) >= Version("1.5.1")
    (modal,) = _pyproject_ranges()["modal"]
    lower = [spec for spec in modal.specifier if spec.operator == ">="]
    assert [spec.version for spec in lower] == [MODAL_MIN_VERSION], f"pyproject.toml: {modal}"
    assert _lock().pins["modal"].version == importlib.metadata.version("modal")
    assert Version(_lock().pins["modal"].version) >= Version(MODAL_MIN_VERSION)


def test_a_distribution_the_lock_lacks_or_pins_otherwise_is_named():
    digest = "sha256:" + "0" * 64
    locked = lock.parse(f"# targets: python3.12-arm64\npydantic==2.13.5 \\\n    --hash={digest}\n    # via ApiFunction\n"
                        f"Typing_Extensions==4.16.0 --hash={digest}\n")
    assert set(locked.pins) == {"pydantic", "typing-extensions"} and locked.pins["pydantic"].via == ("ApiFunction",)
    assert lock.differences({"pydantic": "2.13.5", "typing_extensions": "4.16.0"}, locked, "ApiFunction") == []
    problems = lock.differences({"pydantic": "2.14.0", "annotated-types": "0.8.0", "typing-extensions": "4.16.0"},
                                locked, "ApiFunction")
    assert problems == ["annotated-types 0.8.0 (ApiFunction) is not pinned in the lock",
                        "pydantic: ApiFunction has 2.14.0, the lock pins 2.13.5"]
    for bad, named in ((f"pydantic>=2.7 --hash={digest}", "'pydantic>=2.7'"), ("pydantic==2.13.5", "no --hash"),
                       (f"pydantic==2.13.5 --hash={digest}\npydantic==2.13.5 --hash={digest}", "pinned twice")):
        with pytest.raises(lock.LockError, match=re.escape(named)):
            lock.parse(bad)


def test_the_sdk_layer_is_built_for_the_functions_that_use_it(template):
    # Read from the template when it declares the layer, else from Globals: either way a function and the
    # layer it loads must agree, or the layer's native code (none today, but pins change) would not load.
    layer = artifacts.artifact(artifacts.SDK_LAYER, template).target
    for art in _function_artifacts(template):
        assert art.target == layer, f"{art.logical_id} is {art.target}, {artifacts.SDK_LAYER} {layer}"
