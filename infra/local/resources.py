"""Creating template.yaml's tables, queues and bucket on the moto server: the template is the only list."""

from __future__ import annotations

import json
import secrets
from typing import Any

import boto3

from .template import ACCOUNT, REGION, Physical, Resolver

# Properties CreateTable accepts as they are written in the template.
_TABLE_KEYS = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "LocalSecondaryIndexes",
               "BillingMode", "ProvisionedThroughput", "StreamSpecification")
# SQS attributes the template may set, by their CloudFormation names.
_QUEUE_ATTRS = ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds",
                "MaximumMessageSize", "FifoQueue", "ContentBasedDeduplication")


# template.yaml's SSM parameter holding the API's public origin (functions/core/links.py reads it).
PUBLIC_BASE_URL_PARAMETER = "PublicBaseUrlParameter"


def physical_name(prefix: str, logical_id: str) -> str:
    return f"{prefix}-{logical_id}"


def _session(endpoint: str) -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name=REGION)


def create_all(template: dict[str, Any], endpoint: str, prefix: str = "darkroom",
               public_base_url: str | None = None) -> dict[str, Physical]:
    """Create every table, queue, bucket and generated secret (queues in dependency order, for redrive), return
    their Physicals; with `public_base_url`, also publish it (a stack that binds its port later publishes then)."""
    session = _session(endpoint)
    ddb = session.client("dynamodb", endpoint_url=endpoint)
    sqs = session.client("sqs", endpoint_url=endpoint)
    s3 = session.client("s3", endpoint_url=endpoint)
    resources = template["Resources"]
    physical: dict[str, Physical] = {}
    resolver = Resolver(template, physical)

    for logical_id, res in resources.items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::DynamoDB::Table":
            name = props.get("TableName") or physical_name(prefix, logical_id)
            kwargs = {k: resolver.resolve(props[k]) for k in _TABLE_KEYS if k in props}
            try:
                ddb.create_table(TableName=name, **kwargs)
            except ddb.exceptions.ResourceInUseException:
                pass
            ttl = props.get("TimeToLiveSpecification")
            if ttl and ttl.get("Enabled"):
                ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={
                    "AttributeName": ttl["AttributeName"], "Enabled": True})
            physical[logical_id] = Physical(name, {"Arn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"})
        elif res["Type"] == "AWS::S3::Bucket":
            name = props.get("BucketName") or physical_name(prefix, logical_id).lower()
            try:
                s3.create_bucket(Bucket=name)
            except s3.exceptions.BucketAlreadyOwnedByYou:
                pass
            if "LifecycleConfiguration" in props:
                rules = resolver.resolve(props["LifecycleConfiguration"]["Rules"])
                s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": [
                    _lifecycle_rule(rule) for rule in rules]})
            if "CorsConfiguration" in props:
                s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": [
                    _cors_rule(rule) for rule in props["CorsConfiguration"]["CorsRules"]]})
            physical[logical_id] = Physical(name, {"Arn": f"arn:aws:s3:::{name}"})

    # Queues: dead-letter queues first, so a redrive policy can point at an existing ARN.
    queues = {lid: res for lid, res in resources.items() if res["Type"] == "AWS::SQS::Queue"}
    for logical_id in sorted(queues, key=lambda lid: "RedrivePolicy" in queues[lid].get("Properties", {})):
        props = queues[logical_id].get("Properties", {})
        name = props.get("QueueName") or physical_name(prefix, logical_id)
        attributes = {k: str(resolver.resolve(props[k])).lower() if isinstance(props[k], bool) else
                      str(resolver.resolve(props[k])) for k in _QUEUE_ATTRS if k in props}
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(resolver.resolve(props["RedrivePolicy"]))
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        physical[logical_id] = Physical(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})

    # Secrets the template generates a value for (MediaSigningSecret): made once, then kept in the saved state,
    # so links handed out before a restart keep working.
    secrets_manager = session.client("secretsmanager", endpoint_url=endpoint)
    for logical_id, res in resources.items():
        generate = res.get("Properties", {}).get("GenerateSecretString") if res["Type"] == \
            "AWS::SecretsManager::Secret" else None
        if generate is None:
            continue
        name = physical_name(prefix, logical_id)
        try:
            secrets_manager.describe_secret(SecretId=name)
        except secrets_manager.exceptions.ResourceNotFoundException:
            value = secrets.token_urlsafe(int(generate.get("PasswordLength", 32)))
            secrets_manager.create_secret(Name=name, SecretString=value)
        # Ref is the name, which GetSecretValue takes as well as the ARN: moto gives a secret a new ARN suffix
        # when its journal replays the creation after a crash, while the name stays.
        physical[logical_id] = Physical(name, {"Id": name})

    # Everything else only needs a name for Ref/GetAtt (secrets, IAM users, the HTTP API).
    for logical_id, res in resources.items():
        if logical_id not in physical:
            name = physical_name(prefix, logical_id)
            physical[logical_id] = Physical(name, {"Arn": f"arn:aws:local:{REGION}:{ACCOUNT}:{name}"})
    if public_base_url:
        publish_public_base_url(template, endpoint, public_base_url)
    return physical


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"ID": rule.get("Id", "rule"), "Status": rule["Status"], "Filter": {"Prefix": ""}}
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "AbortIncompleteMultipartUpload" in rule:
        out["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])}
    return out


def _cors_rule(rule: dict[str, Any]) -> dict[str, Any]:
    # CloudFormation spells two keys differently from the S3 API.
    renames = {"MaxAge": "MaxAgeSeconds", "Id": "ID"}
    return {renames.get(k, k): v for k, v in rule.items()}


def publish_public_base_url(template: dict[str, Any], endpoint: str, url: str) -> None:
    """Write the stack's public origin where the functions read it (the SSM parameter PublicBaseUrlParameter),
    as CloudFormation writes ApiUrl there deployed."""
    name = Resolver(template, {}).resolve(template["Resources"][PUBLIC_BASE_URL_PARAMETER]["Properties"]["Name"])
    _session(endpoint).client("ssm", endpoint_url=endpoint).put_parameter(
        Name=name, Value=url, Type="String", Overwrite=True)
