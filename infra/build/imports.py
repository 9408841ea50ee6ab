"""What a handler really imports: the closure of its module within functions/, read from the source (every
import statement, lazy ones inside functions included), so that each artifact can ship only that.

A string constant that names a first-party module ("functions.api.native") counts as a lazy import of it:
that is how a module imported by name (importlib.import_module, as the api function's routers are) is
declared, so the closure still sees what it imports."""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

from infra.build.artifacts import REPO

FIRST_PARTY = "functions"
# Packages of this repository that never ship in a Lambda artifact.
LOCAL_ONLY = {"gpu", "infra", "tests"}


@dataclass(frozen=True)
class Import:
    module: str  # the top-level name, e.g. "yaml"
    name: str  # as written, e.g. "yaml" or "aws_lambda_powertools.utilities.parameters"
    source: str  # the first-party module that imports it
    lazy: bool  # inside a function body: runs only when that code runs, not at cold start


@dataclass
class Closure:
    modules: set[str] = field(default_factory=set)  # first-party modules reached, e.g. functions.core.jobs
    third_party: list[Import] = field(default_factory=list)
    local_only: list[Import] = field(default_factory=list)

    @property
    def third_party_modules(self) -> set[str]:
        return {imp.module for imp in self.third_party}


def _path(module: str) -> Path | None:
    base = REPO.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _parents(module: str) -> list[str]:
    """Importing a.b.c runs a/__init__ and a/b/__init__ first."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


class _Visitor(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool) -> None:
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.depth = 0
        self.found: list[tuple[str, bool]] = []  # (absolute name, lazy)

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and node.value.startswith(f"{FIRST_PARTY}.") and _path(node.value):
            self.found.append((node.value, True))

    def visit_Import(self, node: ast.Import) -> None:
        self.found += [(alias.name, self.depth > 0) for alias in node.names]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")[: len(self.package.split(".")) - node.level + 1]
            parent = ".".join(base + ([node.module] if node.module else []))
        else:
            parent = node.module or ""
        self.found.append((parent, self.depth > 0))
        # `from pkg import name` may import the submodule pkg.name.
        self.found += [(f"{parent}.{alias.name}", self.depth > 0) for alias in node.names
                       if parent.split(".")[0] == FIRST_PARTY and _path(f"{parent}.{alias.name}")]


def closure(module: str) -> Closure:
    """Everything `module` (e.g. functions.api.handler) imports, following first-party imports."""
    result = Closure()
    pending = [module]
    while pending:
        current = pending.pop()
        if current in result.modules:
            continue
        path = _path(current)
        if path is None:
            raise ModuleNotFoundError(f"{current}: not found under {REPO}")
        result.modules.add(current)
        pending += [parent for parent in _parents(current) if parent not in result.modules]
        visitor = _Visitor(current, path.name == "__init__.py")
        visitor.visit(ast.parse(path.read_text(), str(path)))
        for name, lazy in visitor.found:
            top = name.split(".")[0]
            if top == FIRST_PARTY:
                pending.append(name)
            elif top in LOCAL_ONLY:
                result.local_only.append(Import(top, name, current, lazy))
            elif top not in sys.stdlib_module_names and top != "__future__":
                result.third_party.append(Import(top, name, current, lazy))
    return result


def handler_module(handler: str) -> str:
    """functions.api.handler.handler -> functions.api.handler"""
    return handler.rpartition(".")[0]
