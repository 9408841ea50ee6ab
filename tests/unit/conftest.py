"""Unit tests are pure: no AWS, no network, no state left behind for the other suites.

Every cached thing these tests can touch (boto3 clients, settings, the catalog, the key lookup cache) is
forgotten before and after each test, so a client built here against a dummy region never leaks into the
integration suite's moto server, and an environment variable set by a test never outlives it.
"""

from __future__ import annotations

import pytest

from functions.core import aws
from functions.core.keys import lookup_cache
from functions.core.settings import get_settings
from gpu.catalog import get_catalog


def _forget_caches() -> None:
    aws.reset_clients()
    get_settings.cache_clear()
    get_catalog.cache_clear()
    lookup_cache.clear()


@pytest.fixture(autouse=True)
def _offline_aws(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # A call that slips through to AWS fails at once (nothing listens on port 9) instead of leaving the machine.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("DARKROOM_CATALOG_EXTRA", raising=False)
    _forget_caches()
    yield
    _forget_caches()
