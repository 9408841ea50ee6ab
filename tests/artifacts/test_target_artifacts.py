"""The artifacts `make build-<LogicalId>` produces on this machine are for the Lambda that template.yaml
declares: every ELF file for its architecture, every extension module and wheel for its Python, and no
function bigger than it needs to be."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.tags import parse_tag
from packaging.utils import canonicalize_name

from infra.build import contents, imports
from infra.build.artifacts import SDK_LAYER, SDK_REQUIREMENTS

pytestmark = pytest.mark.xdist_group("artifacts")

ROOT = Path(__file__).resolve().parents[2]
NON_MODAL_BUDGET = 40_000_000  # bytes, unzipped
EXTENSION = re.compile(r"\.(?:cpython-(?P<version>\d+)-(?P<triplet>[a-z0-9_]+-linux-gnu)|(?P<abi3>abi3))\.so$")


def _is_vendored_library(path: Path) -> bool:
    # auditwheel puts a wheel's own shared libraries in <dist>.libs/ (or names them lib*.so*); they are not
    # Python modules and carry no Python tag.
    return any(part.endswith(".libs") for part in path.parts) or path.name.startswith("lib")


def test_every_elf_file_is_for_the_template_architecture(target_artifacts):
    for logical_id, built in target_artifacts.items():
        elves = contents.elf_files(built.root)
        wrong = [f"{elf.path.relative_to(built.root)}: {elf.machine}" for elf in elves
                 if elf.machine != built.artifact.target.machine]
        assert not wrong, f"{logical_id} ({built.artifact.target.architecture}): {wrong}"
        if built.artifact.kind == "function":
            # pydantic-core is native code: a function without any ELF file would mean the check saw nothing.
            assert any(elf.path.name.startswith("_pydantic_core.") for elf in elves), logical_id


def test_every_extension_module_is_for_the_template_python(target_artifacts):
    for logical_id, built in target_artifacts.items():
        target = built.artifact.target
        for path in built.root.rglob("*.so*"):
            if _is_vendored_library(path):
                continue
            match = EXTENSION.search(path.name)
            where = f"{logical_id}: {path.relative_to(built.root)}"
            assert match, f"{where}: an extension module without a Python tag"
            if not match["abi3"]:  # abi3: the stable ABI, loadable by every later CPython; see the wheel tags
                assert f"cpython-{match['version']}" == target.cpython_tag, where
                assert match["triplet"] == f"{target.machine}-linux-gnu", where


def test_every_module_ships_bytecode_for_the_template_python(target_artifacts, target_python):
    """Lambda's /var/task is read-only: a module without its .pyc is compiled again at every cold start."""
    magic = bytes.fromhex(subprocess.run([target_python, "-c", "import importlib.util as u; print(u.MAGIC_NUMBER.hex())"],
                                         capture_output=True, text=True, check=True).stdout.strip())
    for logical_id, built in target_artifacts.items():
        tag = built.artifact.target.cpython_tag
        sources = list(built.root.rglob("*.py"))
        assert len(sources) > 100, logical_id
        missing, wrong = [], []
        for source in sources:
            cached = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
            if not cached.is_file():
                missing.append(str(source.relative_to(built.root)))
                continue
            header = cached.read_bytes()[:8]
            # PEP 552 flags 0b01: hash-based and unchecked, so no mtime lost in a zip makes Python recompile.
            if header[:4] != magic or int.from_bytes(header[4:8], "little") != 0b01:
                wrong.append(str(cached.relative_to(built.root)))
        assert not missing, f"{logical_id}: {len(missing)} modules without {tag} bytecode, e.g. {missing[:5]}"
        assert not wrong, f"{logical_id}: bytecode not for {target_python} or not unchecked-hash: {wrong[:5]}"
        strays = [str(pyc.relative_to(built.root)) for pyc in built.root.rglob("*.pyc") if f".{tag}." not in pyc.name]
        assert not strays, f"{logical_id}: bytecode for another Python: {strays[:5]}"


def _tag_fits(tag, python: str, machine: str) -> bool:
    """A wheel tag that CPython `python` (e.g. "312") on manylinux/`machine` loads."""
    version = int(python)
    if tag.interpreter.startswith("py"):
        interpreter_ok = tag.interpreter in ("py3", f"py{python}") and tag.abi == "none"
    elif tag.abi == "abi3":
        interpreter_ok = tag.interpreter.startswith("cp3") and int(tag.interpreter[2:]) <= version
    else:
        interpreter_ok = tag.interpreter == f"cp{python}" and tag.abi in (f"cp{python}", "none")
    platform_ok = tag.platform == "any" or (tag.platform.startswith("manylinux") and tag.platform.endswith(machine))
    return interpreter_ok and platform_ok


def test_every_wheel_was_built_for_the_template_python_and_platform(target_artifacts):
    for logical_id, built in target_artifacts.items():
        target = built.artifact.target
        python = target.python_version.replace(".", "")
        dists = contents.distributions(built.site)
        assert dists, logical_id
        for name, info in dists.items():
            tags = [tag for line in contents.wheel_tags(info) for tag in parse_tag(line)]
            assert tags and any(_tag_fits(tag, python, target.machine) for tag in tags), (
                f"{logical_id}: {name} was installed from a wheel for {sorted(map(str, tags))}, "
                f"not {target.runtime} on {target.architecture}")


def _talks_to_modal(built) -> bool:
    found = imports.closure(imports.handler_module(built.artifact.handler))
    return "modal" in found.third_party_modules


def test_only_a_function_that_talks_to_modal_carries_it_and_the_others_are_small(target_artifacts):
    functions = {name: built for name, built in target_artifacts.items() if built.artifact.kind == "function"}
    with_modal = {name for name, built in functions.items() if "modal" in contents.distributions(built.root)}
    assert len(with_modal) <= 1, f"more than one function carries modal: {sorted(with_modal)}"
    assert with_modal == {name for name, built in functions.items() if _talks_to_modal(built)}
    for name, built in functions.items():
        size = contents.unzipped_size(built.root)
        if name not in with_modal:
            assert size < NON_MODAL_BUDGET, f"{name}: {size / 1e6:.1f} MB unzipped (budget 40 MB)"


def test_functions_ship_their_code_and_not_the_sdk_or_the_rest_of_the_repository(target_artifacts):
    sdk = {canonicalize_name(Requirement(line).name) for line in SDK_REQUIREMENTS.read_text().splitlines()
           if line.strip() and not line.startswith("#")}
    for name, built in target_artifacts.items():
        if built.artifact.kind != "function":
            continue
        handler = built.root.joinpath(*built.artifact.handler.split(".")[:-1]).with_suffix(".py")
        assert handler.is_file(), f"{name}: {handler.relative_to(built.root)} is missing"
        assert (built.root / "functions" / "core" / "catalog.yaml").is_file(), f"{name}: the catalog is missing"
        assert not sdk & set(contents.distributions(built.root)), f"{name} ships the AWS SDK (the layer has it)"
        for absent in ("gpu", "infra", "tests", "bin"):
            assert not (built.root / absent).exists(), f"{name} ships {absent}/"
        stale = [str(p.relative_to(built.root)) for cache in built.root.rglob("__pycache__") for p in cache.iterdir()
                 if not p.name.endswith(f".{built.artifact.target.cpython_tag}.pyc")]
        assert not stale, f"{name}: caches that are not the runtime's bytecode: {stale[:5]}"
        assert not list((built.root / "functions").rglob("requirements*.txt")), name


def test_the_sdk_layer_is_laid_out_for_lambda(target_artifacts):
    layer = target_artifacts[SDK_LAYER]
    # Lambda extracts a layer to /opt and puts /opt/python on sys.path; nothing else in it is importable.
    assert [path.name for path in layer.root.iterdir()] == ["python"]
    assert {"boto3", "botocore"} <= set(contents.distributions(layer.site))


def test_docs_list_every_artifact(target_artifacts):
    doc = (ROOT / "docs" / "artifacts.md").read_text()
    missing = [name for name in target_artifacts if f"| {name} |" not in doc]
    assert not missing, f"docs/artifacts.md has no size row for {missing}: run `make artifacts-doc`"
