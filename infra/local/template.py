"""Reading template.yaml: CloudFormation short tags, SAM Globals, and intrinsic functions resolved
against the local stack's physical resources."""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "template.yaml"
REGION = "us-east-1"
ACCOUNT = "123456789012"


# libyaml's parser where PyYAML has it (its wheels do): about 8x faster on template.yaml than the pure-Python one.
class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    pass


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_Loader.add_multi_constructor("!", lambda loader, suffix, node: _tag(loader, suffix, node))


def load(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as data: a copy of its one parse per version of the file (callers may change theirs)."""
    stat = path.stat()
    return copy.deepcopy(_parse(path, stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=8)
def _parse(path: Path, mtime_ns: int, size: int) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_Loader)


@dataclass
class Physical:
    """What Ref and GetAtt give for one resource in the local stack."""

    ref: str
    attrs: dict[str, str] = field(default_factory=dict)


class Resolver:
    def __init__(self, template: dict[str, Any], physical: dict[str, Physical],
                 parameters: dict[str, str] | None = None) -> None:
        self.template = template
        self.physical = physical
        self.parameters = {
            name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()
        } | (parameters or {})
        self.pseudo = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::URLSuffix": "amazonaws.com",
                       "AWS::StackName": "darkroom-local", "AWS::Partition": "aws"}

    def ref(self, name: str) -> str:
        if name in self.physical:
            return self.physical[name].ref
        if name in self.parameters:
            return self.parameters[name]
        if name in self.pseudo:
            return self.pseudo[name]
        raise KeyError(f"!Ref {name}: no such resource or parameter in the local stack")

    def get_att(self, name: str, attr: str) -> str:
        try:
            return self.physical[name].attrs[attr]
        except KeyError:
            raise KeyError(f"!GetAtt {name}.{attr}: not available in the local stack") from None

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                return self.get_att(*(arg if isinstance(arg, list) else arg.split(".", 1)))
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
                return re.sub(r"\$\{([^}!]+)\}", lambda m: self._sub(m.group(1), variables), text)
            if key == "Fn::Join":
                return arg[0].join(str(v) for v in self.resolve(arg[1]))
        return {k: self.resolve(v) for k, v in value.items()}

    def _sub(self, name: str, variables: dict[str, Any]) -> str:
        if name in variables:
            return str(variables[name])
        if "." in name:
            return self.get_att(*name.split(".", 1))
        return self.ref(name)


@dataclass
class FunctionSpec:
    logical_id: str
    handler: str
    timeout: int
    memory: int
    environment: dict[str, Any]
    events: dict[str, dict[str, Any]]

    def events_of(self, kind: str) -> dict[str, dict[str, Any]]:
        return {name: ev.get("Properties", {}) for name, ev in self.events.items() if ev.get("Type") == kind}


def functions(template: dict[str, Any]) -> dict[str, FunctionSpec]:
    """Every AWS::Serverless::Function with Globals merged in, as SAM does."""
    globals_ = template.get("Globals", {}).get("Function", {})
    specs = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        env = dict(globals_.get("Environment", {}).get("Variables", {}))
        env.update(props.get("Environment", {}).get("Variables", {}))
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id,
            handler=props["Handler"],
            timeout=int(props.get("Timeout", globals_.get("Timeout", 3))),
            memory=int(props.get("MemorySize", globals_.get("MemorySize", 128))),
            environment=env,
            events=props.get("Events", {}),
        )
    return specs


def http_routes(template: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(method, path, function logical id) for every route a function declares it serves: its Metadata's
    `Routes` ({name: "METHOD /path"}). The HTTP API reaches them through its own routes (gateway_routes)."""
    routes = []
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for route in (resource.get("Metadata") or {}).get("Routes", {}).values():
            method, path = route.split(" ", 1)
            routes.append((method.upper(), path, logical_id))
    return routes


DEFAULT_ROUTE = "$default"


def gateway_routes(template: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(method, path, function logical id) for every route of the HTTP API, as SAM writes them from HttpApi
    events: an event without Path and Method is the catch-all $default route (method ANY)."""
    routes = []
    for spec in functions(template).values():
        for props in spec.events_of("HttpApi").values():
            if "Path" not in props and "Method" not in props:
                routes.append(("ANY", DEFAULT_ROUTE, spec.logical_id))
            else:
                routes.append((props.get("Method", "ANY").upper(), props.get("Path", DEFAULT_ROUTE), spec.logical_id))
    return routes


def function_url_target(template: dict[str, Any]) -> str:
    """The function behind the template's function URL (its AWS::Lambda::Url); it serves every path."""
    found = []
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Lambda::Url":
            target = resource["Properties"]["TargetFunctionArn"]  # !Ref (the name) or !GetAtt .Arn
            found.append(target.get("Ref") or target["Fn::GetAtt"][0] if isinstance(target, dict) else target)
    if len(found) != 1:
        raise ValueError(f"template.yaml should have exactly one AWS::Lambda::Url, found {found}")
    return found[0]
