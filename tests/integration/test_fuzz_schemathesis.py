"""Fuzzing every operation of every dialect from the OpenAPI document the API serves (schemathesis).

The document is loaded from GET /openapi.json and each case is sent to the api function through the local
gateway's WSGI app (the same event translation as `make dev`), against the moto server. Valid and invalid
inputs (fixed seed, bounded examples) must never get a server error, every error must be in the error
shape of the route's dialect, and every response must match what the document says of it.
"""

from __future__ import annotations

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi import checks

from functions.dialects import AIMS, FAL, NATIVE, OPENAI, REPLICATE, dialect_for_path
from infra.local.gateway import Gateway, Route
from infra.local.lambda_runtime import LocalFunction
from infra.local.stack import reset_process_caches
from infra.local.template import functions, http_routes, load
from tests.integration.conftest import Tenant, make_tenant

# Per operation (36 of them); the whole run stays within a minute on two cores.
MAX_EXAMPLES = 12
SEED = 20240611
CONFIG = {
    "seed": SEED,
    # The coverage phase enumerates every boundary of every field: thousands of cases on these schemas.
    "phases": {"coverage": {"enabled": False}},
    # The key is ours (`fuzz_key`), not generated: random ones would only ever test the 401.
    "generation": {"max-examples": MAX_EXAMPLES, "mode": "all", "deterministic": True, "database": "none",
                   "with-security-parameters": False},
}


@pytest.fixture
def fuzz_key(world, monkeypatch) -> Tenant:
    # No GPU worker runs here: a synchronous call whose job is accepted answers 504 after this wait.
    monkeypatch.setenv("DARKROOM_SYNC_WAIT_SECONDS", "0.2")
    reset_process_caches()
    # POST /api/loras reads a URL's or the Hub's file header over HTTP: no test sends traffic (DNS included)
    # past loopback, so every other host is refused here as the SSRF guard refuses a private one.
    from ipaddress import ip_address
    from urllib.parse import urlsplit

    from functions.core import loras, urls

    def loopback_only(url: str, **kwargs):
        host = urlsplit(url).hostname or ""
        try:
            loopback = ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise urls.UnsafeUrl("tests reach loopback only")
        return urls.pin(url, **kwargs)

    monkeypatch.setattr(loras, "pin", loopback_only)
    from functions.core.keys import ALL_SCOPES, KeyStore

    tenant = make_tenant()
    # Every scope, and a rate limit the run cannot reach (429s would hide everything else).
    secret, _ = KeyStore().create(tenant.workspace_id, "fuzz", scopes=list(ALL_SCOPES), rate_limit=1_000_000)
    return Tenant(tenant.workspace_id, secret, {"Authorization": f"Bearer {secret}"})


def _gateway() -> Gateway:
    """The api function behind the local gateway's event translation, as the `api` fixture builds it."""
    template = load()
    fns = {lid: LocalFunction(spec) for lid, spec in functions(template).items()}
    return Gateway([Route(m, p, fns[f]) for m, p, f in http_routes(template)])


# The document as the API serves it (GET /openapi.json needs no key and no table), loaded at collection.
schema = schemathesis.openapi.from_wsgi("/openapi.json", _gateway().wsgi, config=SchemathesisConfig.from_dict(CONFIG))


def _is_timeout(body: object, dialect: str) -> bool:
    """A synchronous call that outwaited its budget: the job was accepted and goes on (documented 504)."""
    if dialect == OPENAI:
        return isinstance(body, dict) and isinstance(body.get("error"), dict) and body["error"].get("code") == "timeout"
    if dialect == FAL:  # fal's {detail}, naming the request that goes on
        return isinstance(body, dict) and isinstance(body.get("detail"), str) and bool(body.get("request_id"))
    return isinstance(body, dict) and body.get("code") == "timeout"


def no_server_error(ctx, response, case) -> None:
    """No 5xx, but the 504 of a synchronous generation accepted while no worker runs."""
    if response.status_code < 500:
        return
    body = response.json()
    if response.status_code == 504 and _is_timeout(body, dialect_for_path(case.path)):
        return
    raise AssertionError(f"{case.method} {case.path} answered {response.status_code}: {response.text[:500]}")


def _field_errors_ok(errors: object) -> bool:
    return isinstance(errors, list) and all(
        isinstance(e, dict) and {"field", "message", "code"} <= set(e) and all(isinstance(e[k], str) for k in
                                                                                 ("field", "message", "code"))
        for e in errors)


def dialect_error_shape(ctx, response, case) -> None:
    """Every 4xx/5xx is in the error format of the dialect whose route was called."""
    if response.status_code < 400:
        return
    body = response.json()
    dialect = dialect_for_path(case.path)
    if dialect == NATIVE:
        ok = isinstance(body, dict) and isinstance(body.get("message"), str) and _field_errors_ok(body.get("errors"))
    elif dialect == OPENAI:
        error = body.get("error") if isinstance(body, dict) else None
        ok = isinstance(error, dict) and isinstance(error.get("message"), str) and isinstance(error.get("type"), str) \
            and {"param", "code"} <= set(error)
    elif dialect == FAL:
        # fal's apps: {detail: "…"}, or for invalid input (422) {detail: [{loc, msg, type}]}; and the message.
        detail = body.get("detail") if isinstance(body, dict) else None
        ok = isinstance(body, dict) and isinstance(body.get("message"), str) and (isinstance(detail, str) or (
            isinstance(detail, list) and all(
                isinstance(d, dict) and isinstance(d.get("loc"), list) and isinstance(d.get("msg"), str)
                and isinstance(d.get("type"), str) for d in detail)))
    elif dialect == REPLICATE:
        # Problem details (RFC 7807), as Replicate's clients read them; invalid input names each field.
        ok = isinstance(body, dict) and all(isinstance(body.get(k), str) for k in ("type", "title", "detail")) \
            and body.get("status") == response.status_code and all(
                isinstance(f, dict) and isinstance(f.get("field"), str) for f in body.get("invalid_fields") or [])
    else:
        assert dialect == AIMS
        ok = isinstance(body, dict) and isinstance(body.get("error"), str) and isinstance(body.get("code"), str)
    assert ok, f"{case.method} {case.path} {response.status_code}: not a {dialect} error: {response.text[:500]}"


CHECKS = [
    no_server_error,
    dialect_error_shape,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    # Not negative_data_rejection: pydantic's lax mode accepts "5" for an integer and true for 1 on purpose
    # (multipart form fields are all text), which that check counts as schema-violating input accepted.
]


# One pytest item per operation, with its own node id. schemathesis's own `schema.parametrize()` gives all of
# its items one node id, and pytest-xdist (`make test` runs -n 2) keeps one item per node id: only one
# operation was fuzzed there.
OPERATIONS = [result.ok() for result in schema.get_all_operations()]


def test_every_documented_operation_is_fuzzed():
    assert len(OPERATIONS) > 30
    assert len({op.label for op in OPERATIONS}) == len(OPERATIONS)


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_every_operation_survives_fuzzing(operation, fuzz_key):
    # Valid and invalid inputs alike, as schemathesis's "all" generation mode draws them.
    cases = st.one_of([operation.as_strategy(generation_mode=mode) for mode in GenerationMode])

    @hypothesis.given(case=cases)
    @hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck))
    def survives(case) -> None:
        case.call_and_validate(headers=fuzz_key.headers, checks=CHECKS)

    survives()
