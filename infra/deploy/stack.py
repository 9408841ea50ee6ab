"""A deployed stack, through CloudFormation: its status, parameters and outputs, and the process pointed at
its tables, and the one value the deploy writes to AWS outside CloudFormation: the Modal token."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

from .modal_account import ModalToken

MODAL_OIDC_HOST = "oidc.modal.com"
# Stack states in which `sam deploy` cannot proceed: a first create that rolled back must be deleted first.
BLOCKED = {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED", "UPDATE_ROLLBACK_FAILED"}


class MissingOutput(RuntimeError):
    pass


@dataclass
class Stack:
    name: str
    status: str
    outputs: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)

    def output(self, key: str) -> str:
        if key not in self.outputs:
            raise MissingOutput(f"stack {self.name} has no output {key} (outputs: {', '.join(sorted(self.outputs))})")
        return self.outputs[key]


def use_region(region: str) -> None:
    """One region for this process and the tools it runs: boto3 clients, the stores, sam and modal."""
    os.environ["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"] = region


def client(service: str) -> Any:
    return boto3.session.Session().client(service)


def describe(stack_name: str) -> Stack | None:
    """The stack, or None if it does not exist."""
    try:
        found = client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return Stack(
        name=stack_name, status=found["StackStatus"],
        outputs={o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])},
        parameters={p["ParameterKey"]: p.get("ParameterValue", "") for p in found.get("Parameters", [])},
    )


def require(stack_name: str) -> Stack:
    stack = describe(stack_name)
    if stack is None:
        raise LookupError(f"stack {stack_name} does not exist in {client('cloudformation').meta.region_name}")
    return stack


def use_tables(stack: Stack) -> None:
    """Point this process's settings (functions/core) at the stack's tables, for the key and workspace stores."""
    os.environ["DARKROOM_KEYS_TABLE"] = stack.output("ApiKeysTableName")
    os.environ["DARKROOM_WORKSPACES_TABLE"] = stack.output("WorkspacesTableName")
    os.environ["DARKROOM_JOBS_TABLE"] = stack.output("JobsTableName")
    from functions.core import aws, settings

    settings.get_settings.cache_clear()
    aws.reset_clients()


def write_modal_token(secret_arn: str, token: ModalToken) -> None:
    """The dispatch function's Modal token, as {"token_id", "token_secret"}: straight from memory to the secret."""
    client("secretsmanager").put_secret_value(SecretId=secret_arn, SecretString=token.secret_json())


def modal_oidc_providers() -> list[str]:
    """ARNs of the account's IAM OIDC providers for Modal's issuer (an account may hold only one)."""
    providers = client("iam").list_open_id_connect_providers()["OpenIDConnectProviderList"]
    return [p["Arn"] for p in providers if p["Arn"].endswith(f"oidc-provider/{MODAL_OIDC_HOST}")]


def oidc_client_ids(provider_arn: str) -> list[str]:
    return client("iam").get_open_id_connect_provider(OpenIDConnectProviderArn=provider_arn).get("ClientIDList", [])


def add_oidc_client_id(provider_arn: str, client_id: str = MODAL_OIDC_HOST) -> None:
    """The worker role's trust policy requires the token's audience (oidc.modal.com) among the provider's client
    ids; a provider made elsewhere may lack it, and then every AssumeRoleWithWebIdentity is refused."""
    client("iam").add_client_id_to_open_id_connect_provider(OpenIDConnectProviderArn=provider_arn, ClientID=client_id)


def resources(stack_name: str) -> list[dict[str, str]]:
    """Every resource of the stack: LogicalResourceId, ResourceType, PhysicalResourceId."""
    pages = client("cloudformation").get_paginator("list_stack_resources").paginate(StackName=stack_name)
    return [r for page in pages for r in page["StackResourceSummaries"]]


def queue_depth(queue_url: str) -> int:
    attrs = client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])
