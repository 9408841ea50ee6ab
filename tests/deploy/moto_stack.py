"""The transformed template.yaml as a stack in moto's CloudFormation, over HTTP.

moto's CloudFormation creates what it has a model for (tables, queues, the bucket, roles, functions, event
source mappings, log groups, rules, topics). For other resource types it creates nothing: a Ref to one gives
"None", and an output that GetAtts one makes CreateStack fail with an internal error. So, honestly:
- the resources moto cannot create are taken out of the template, and listed (`MotoStack.not_created`);
- the Secrets Manager secret (the one the deploy writes to) is made through Secrets Manager's own API instead,
  and its ARN stands where the template says `!Ref ModalToken`;
- every other Ref/GetAtt of a removed resource becomes a marked placeholder (the function URL, for one,
  becomes an https URL naming the resource; there is no real function URL behind it).
Every resource of a type moto supports is created from the template as written.
"""

from __future__ import annotations

import io
import json
import re
import uuid
import zipfile
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto.cloudformation.parsing import resource_class_from_type
from sam_template import ARTIFACT_BUCKET, ARTIFACT_KEY, LAYER_KEY, transformed

REGION = "us-east-1"
# What moto 5's CloudFormation cannot create, of the types template.yaml uses. A new unsupported type in the
# template fails the stack test until it is looked at and added here.
KNOWN_UNSUPPORTED = {
    "AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Stage", "AWS::Lambda::Url", "AWS::S3::BucketPolicy",
    "AWS::SecretsManager::Secret", "AWS::IAM::OIDCProvider", "AWS::CloudWatch::Alarm", "AWS::SNS::Subscription",
}


@dataclass
class MotoStack:
    name: str
    outputs: dict[str, str]
    not_created: dict[str, str] = field(default_factory=dict)  # logical id -> type
    standins: dict[str, str] = field(default_factory=dict)  # logical id -> what its Ref gives instead


def clients(endpoint: str, service: str, region: str = REGION):
    return boto3.client(service, endpoint_url=endpoint, region_name=region, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def _standin_attribute(logical_id: str, resource_type: str, attribute: str) -> str:
    if resource_type == "AWS::Lambda::Url" and attribute == "FunctionUrl":
        return f"https://{logical_id.lower()}-not-created-by-moto.lambda-url.on.aws/"
    return f"{logical_id}.{attribute}-not-created-by-moto"


def _substitute(node: Any, removed: dict[str, str], refs: dict[str, str]) -> Any:
    if isinstance(node, list):
        return [_substitute(n, removed, refs) for n in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"} and node["Ref"] in removed:
        return refs[node["Ref"]]
    if set(node) == {"Fn::GetAtt"}:
        target = node["Fn::GetAtt"]
        logical_id, attribute = target if isinstance(target, list) else target.split(".", 1)
        if logical_id in removed:
            return _standin_attribute(logical_id, removed[logical_id], attribute)
    if set(node) == {"Fn::Sub"}:
        body = node["Fn::Sub"]
        text, variables = (body, {}) if isinstance(body, str) else body

        def replace(match: re.Match) -> str:
            name, _, attribute = match.group(1).partition(".")
            if name not in removed:
                return match.group(0)
            return _standin_attribute(name, removed[name], attribute) if attribute else refs[name]

        text = re.sub(r"\$\{([A-Za-z0-9.]+)\}", replace, text)
        return {"Fn::Sub": text if isinstance(body, str) else [text, _substitute(variables, removed, refs)]}
    out = {}
    for key, value in node.items():
        if key == "DependsOn":
            kept = [d for d in ([value] if isinstance(value, str) else value) if d not in removed]
            if kept:
                out[key] = kept
            continue
        out[key] = _substitute(value, removed, refs)
    return out


def create(endpoint: str, stack_name: str, parameters: dict[str, str], region: str = REGION) -> MotoStack:
    """The stack in `region` (conditions on AWS::Region are moto's to evaluate, as CloudFormation would)."""
    template = transformed()
    s3 = clients(endpoint, "s3")
    # What `sam deploy --resolve-s3` would have uploaded: moto's Lambda reads the code and layer objects.
    if ARTIFACT_BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=ARTIFACT_BUCKET)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("functions/__init__.py", "")
        for key in (ARTIFACT_KEY, LAYER_KEY):
            s3.put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=buffer.getvalue())

    removed = {lid: r["Type"] for lid, r in template["Resources"].items() if resource_class_from_type(r["Type"]) is None}
    refs = {}
    for logical_id, type_ in removed.items():
        if type_ == "AWS::SecretsManager::Secret":
            props = template["Resources"][logical_id].get("Properties", {})
            created = clients(endpoint, "secretsmanager", region).create_secret(
                Name=f"{logical_id}-{uuid.uuid4().hex[:12]}", Description=props.get("Description", ""))
            refs[logical_id] = created["ARN"]
        else:
            refs[logical_id] = f"{logical_id}-not-created-by-moto"
    kept = {lid: r for lid, r in template["Resources"].items() if lid not in removed}
    template["Resources"] = _substitute(kept, removed, refs)
    template["Outputs"] = _substitute(template.get("Outputs", {}), removed, refs)

    cfn = clients(endpoint, "cloudformation", region)
    cfn.create_stack(StackName=stack_name, TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_IAM"],
                     Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()])
    described = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    assert described["StackStatus"] == "CREATE_COMPLETE", described
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    return MotoStack(stack_name, outputs, removed, refs)
