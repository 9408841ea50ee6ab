"""Unit tests are pure: no AWS, no network, no state left behind for the other suites.

Every cached thing these tests can touch (boto3 clients, settings, the catalog, the key lookup cache) is
forgotten before and after each test, so a client built here against a dummy region never leaks into the
integration suite's moto server, and an environment variable set by a test never outlives it.
"""

from __future__ import annotations

import pytest
from offline_aws import set_offline_aws_env

from functions.core import aws
from functions.core.catalog import get_catalog
from functions.core.keys import lookup_cache
from functions.core.settings import get_settings


def _forget_caches() -> None:
    aws.reset_clients()
    get_settings.cache_clear()
    get_catalog.cache_clear()
    lookup_cache.clear()


@pytest.fixture(autouse=True)
def _open_moderation_policy(monkeypatch: pytest.MonkeyPatch):
    """Every workspace's moderation policy as the most open one an operator can set (levels up to 6, the checker
    may be turned off), without DynamoDB: these tests translate requests; the integration suite checks the
    policy's refusals (tests/integration/test_moderation.py)."""
    from functions.core import moderation

    monkeypatch.setattr(moderation, "_read_policy",
                        lambda workspace_id: moderation.WorkspacePolicy(max_level=6, allow_checker_off=True))
    moderation.clear_cache()
    yield
    moderation.clear_cache()


@pytest.fixture(autouse=True)
def _offline_aws(monkeypatch: pytest.MonkeyPatch):
    set_offline_aws_env(monkeypatch)
    monkeypatch.delenv("DARKROOM_CATALOG_EXTRA", raising=False)
    _forget_caches()
    yield
    _forget_caches()
