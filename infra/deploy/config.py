"""What the operator asked for, checked against template.yaml (read at run time: its parameter names,
defaults and constraints are the template's, never a copy) and against the model catalog."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from infra.local.template import TEMPLATE_PATH, load

ENV_FILE = Path(".darkroom/deploy.env")
# What `--download-weights` takes besides model ids.
ALL_MODELS = "all"


@dataclass
class DeployConfig:
    stack_name: str = "darkroom"
    region: str | None = None
    modal_workspace_id: str | None = None
    modal_environment: str | None = None  # None: the stack's current value, else the template default
    modal_app_name: str | None = None
    alarm_email: str | None = None
    oidc_provider_arn: str | None = None  # None: look for the account's provider, else the stack creates one
    parameters: dict[str, str] = field(default_factory=dict)  # any other template parameter (--parameter K=V)
    download_weights: list[str] = field(default_factory=list)
    warm: list[str] = field(default_factory=list)  # MODEL=N warm containers (infra/deploy/warm_pool.py)
    # Model licenses the operator accepts (template.yaml: AcceptedLicenses). None: keep the stack's current list.
    accepted_licenses: list[str] | None = None
    workspace: str = "default"
    env_file: Path = ENV_FILE
    template_path: Path = TEMPLATE_PATH

    @property
    def root(self) -> Path:
        """Where sam and modal run: the checkout that holds template.yaml and gpu/."""
        return self.template_path.parent

    @cached_property
    def template(self) -> dict[str, Any]:
        return load(self.template_path)

    def default(self, parameter: str) -> str:
        return str(self.template["Parameters"][parameter].get("Default", ""))

    def models_to_download(self) -> list[str]:
        from functions.core.catalog import get_catalog

        if ALL_MODELS in self.download_weights:
            return [m.id for m in get_catalog().models]
        return list(dict.fromkeys(self.download_weights))


def parse_assignments(values: list[str]) -> dict[str, str]:
    """`--parameter Key=Value`, repeated."""
    pairs = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise ValueError(f"--parameter takes Key=Value, got {value!r}")
        pairs[key.strip()] = rest
    return pairs


def parameter_errors(template: dict[str, Any], overrides: dict[str, str]) -> list[str]:
    """What CloudFormation would refuse, found before anything runs."""
    declared = template.get("Parameters", {})
    errors = []
    for name, value in overrides.items():
        spec = declared.get(name)
        if spec is None:
            errors.append(f"template.yaml has no parameter {name} (it has {', '.join(sorted(declared))})")
            continue
        if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
            errors.append(f"{name}={value!r}: {spec.get('ConstraintDescription') or 'must match ' + spec['AllowedPattern']}")
        if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
            errors.append(f"{name}={value!r}: must be one of {', '.join(str(v) for v in spec['AllowedValues'])}")
        if spec.get("Type") == "Number":
            try:
                number = float(value)
            except ValueError:
                errors.append(f"{name}={value!r}: must be a number")
                continue
            if "MinValue" in spec and number < float(spec["MinValue"]):
                errors.append(f"{name}={value}: must be at least {spec['MinValue']}")
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                errors.append(f"{name}={value}: must be at most {spec['MaxValue']}")
    values = {name: str(spec.get("Default", "")) for name, spec in declared.items()} | overrides
    return errors + [f"{rule}: {description}" for rule, description in failed_rules(template, values)]


def failed_rules(template: dict[str, Any], values: dict[str, str]) -> list[tuple[str, str]]:
    """The template's Rules whose assertions the parameter values break, with each assertion's description. The
    intrinsic functions Rules take that the template uses (Not, Equals, And, Or over Ref of parameters)."""
    failed = []
    for rule, spec in (template.get("Rules") or {}).items():
        if "RuleCondition" in spec and not _rule_value(spec["RuleCondition"], values):
            continue
        failed += [(rule, a.get("AssertDescription", "")) for a in spec.get("Assertions", [])
                   if not _rule_value(a["Assert"], values)]
    return failed


def _rule_value(node: Any, values: dict[str, str]) -> Any:
    if not isinstance(node, dict):
        return str(node)
    (function, argument), = node.items()
    if function == "Ref":
        return values[argument]
    if function == "Fn::Not":
        return not _rule_value(argument[0], values)
    if function == "Fn::Equals":
        return _rule_value(argument[0], values) == _rule_value(argument[1], values)
    if function == "Fn::And":
        return all(_rule_value(a, values) for a in argument)
    if function == "Fn::Or":
        return any(_rule_value(a, values) for a in argument)
    raise ValueError(f"a template Rule uses {function}, which darkroom's preflight does not evaluate")


def model_errors(models: list[str]) -> list[str]:
    from functions.core.catalog import get_catalog

    known = [m.id for m in get_catalog().models]
    return [f"--download-weights {m}: not a catalog model (choose from {ALL_MODELS}, {', '.join(known)})"
            for m in models if m not in known]


def license_errors(licenses: list[str]) -> list[str]:
    """`--accept-license` names a license some catalog model is under (or `*`): a typo would otherwise accept
    nothing, silently."""
    from functions.core.catalog import get_catalog

    known = sorted({m.license for m in get_catalog().models if not m.commercial_use})
    return [f"--accept-license {name}: no model in the catalog is under it; restricted licenses: "
            f"{', '.join(known) or 'none'}" for name in licenses if name != "*" and name not in known]
