"""How long a synchronous call may wait on each host, and what makes two requests the same attempt chain."""

from __future__ import annotations

import pytest

from functions.api.idempotency import request_fingerprint, retry_count
from functions.core.waiting import (
    CLIENT_MARGIN_SECONDS,
    CLIENT_TIMEOUT_SECONDS,
    FUNCTION_MARGIN_SECONDS,
    Host,
    host_of,
    wait_budget,
)

# requestContext as AWS documents it for each front door (trimmed to the fields that matter here).
FUNCTION_URL_CONTEXT = {"accountId": "anonymous", "apiId": "abcdefg", "routeKey": "$default", "stage": "$default",
                        "domainName": "abcdefg.lambda-url.eu-west-1.on.aws", "domainPrefix": "abcdefg"}
# The HTTP API's one catch-all route: its events carry the routeKey "$default" too.
HTTP_API_CONTEXT = {"accountId": "123456789012", "apiId": "a1b2c3", "routeKey": "$default",
                    "stage": "$default", "domainName": "a1b2c3.execute-api.eu-west-1.amazonaws.com"}


@pytest.mark.parametrize("context,host", [
    (FUNCTION_URL_CONTEXT, Host.FUNCTION_URL),
    # Behind CloudFront the function URL's own domain is kept (CloudFront must forward that Host).
    ({**FUNCTION_URL_CONTEXT, "routeKey": None}, Host.FUNCTION_URL),
    # The local stack's function URL host: a loopback domain, but the function URL's anonymous caller.
    ({**FUNCTION_URL_CONTEXT, "domainName": "127.0.0.1:8000"}, Host.FUNCTION_URL),
    ({**HTTP_API_CONTEXT, "routeKey": "POST /v1/images/generations"}, Host.API_GATEWAY),  # a route of its own
    (HTTP_API_CONTEXT, Host.API_GATEWAY),
    ({**HTTP_API_CONTEXT, "domainName": "api.example.com"}, Host.API_GATEWAY),  # a custom domain
    ({**HTTP_API_CONTEXT, "domainName": "127.0.0.1:8001"}, Host.API_GATEWAY),
    ({}, Host.API_GATEWAY),  # unknown: the short limit, since answering early is always safe
])
def test_host_of(context, host):
    assert host_of(context) is host


def test_gateway_host_answers_before_api_gateways_30_s():
    assert wait_budget(Host.API_GATEWAY, configured=300) == 25
    assert wait_budget(Host.API_GATEWAY, configured=10) == 10
    # Time already spent (a cold start, the submit) comes out of the same 30 s.
    assert wait_budget(Host.API_GATEWAY, configured=300, elapsed=4) == 21
    assert wait_budget(Host.API_GATEWAY, configured=300, elapsed=40) == 0
    # The function's remaining time does not lengthen a gateway wait.
    assert wait_budget(Host.API_GATEWAY, configured=300, remaining=590) == 25


def test_function_url_waits_the_configured_time_within_the_function_and_client_limits():
    assert wait_budget(Host.FUNCTION_URL, configured=300, remaining=600) == 300
    # Never past the function's timeout (less the time to render the answer) ...
    assert wait_budget(Host.FUNCTION_URL, configured=300, remaining=120) == 120 - FUNCTION_MARGIN_SECONDS
    # ... nor the OpenAI SDK's default 600 s client timeout.
    assert wait_budget(Host.FUNCTION_URL, configured=570, remaining=900) == CLIENT_TIMEOUT_SECONDS - CLIENT_MARGIN_SECONDS
    assert wait_budget(Host.FUNCTION_URL, configured=570, elapsed=20, remaining=900) == 570 - 20 - 0
    assert wait_budget(Host.FUNCTION_URL, configured=300, remaining=5) == 0
    assert wait_budget(Host.FUNCTION_URL, configured=42) == 42  # no Lambda context: the configured wait


@pytest.mark.parametrize("headers,count", [
    ({}, 0), ({"x-stainless-retry-count": "0"}, 0), ({"x-stainless-retry-count": "2"}, 2),
    ({"x-stainless-retry-count": "not-a-number"}, 0), ({"x-stainless-retry-count": "-1"}, 0),
])
def test_retry_count(headers, count):
    assert retry_count(headers) == count


def test_fingerprint_is_the_key_the_route_and_the_body():
    body = {"dialect": "openai", "model": "flux-schnell", "input": {"prompt": "a fox", "n": 1}}
    same = request_fingerprint("key-1", "POST /v1/images/generations", body)
    # Key order in the body does not matter; the same request always has the same fingerprint.
    reordered = {"input": {"n": 1, "prompt": "a fox"}, "model": "flux-schnell", "dialect": "openai"}
    assert request_fingerprint("key-1", "POST /v1/images/generations", reordered) == same
    assert request_fingerprint("key-2", "POST /v1/images/generations", body) != same
    assert request_fingerprint("key-1", "POST /v1/images/edits", body) != same
    assert request_fingerprint("key-1", "POST /v1/images/generations",
                               {**body, "input": {"prompt": "a fox", "n": 2}}) != same
