"""What differs between AWS regions that the deploy has to know before it starts."""

from __future__ import annotations

# Regions without Lambda function URLs ("Creating and managing Lambda function URLs", AWS Lambda Developer
# Guide, checked 2026-12). template.yaml's HasFunctionUrls condition names the same regions (a test holds
# the two equal): there the stack makes no function URL, and ApiUrl is the API Gateway URL.
NO_FUNCTION_URLS = frozenset({
    "ap-south-2", "ap-southeast-4", "ap-southeast-5", "ap-southeast-6", "ap-southeast-7", "ap-east-2",
    "ca-west-1", "eu-south-2", "eu-central-2", "il-central-1", "me-central-1",
})


def has_function_urls(region: str) -> bool:
    return region not in NO_FUNCTION_URLS
