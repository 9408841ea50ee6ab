"""Shared by every test folder. Its presence also puts tests/ on sys.path, for tests/offline_aws.py."""

from __future__ import annotations

import os
from collections import Counter

import pytest

# As the local stack does (infra/local/stack.py): the tiny random weights are under no model's license, so every
# catalog model runs in tests. tests/unit/test_capabilities.py clears it to test the refusal.
os.environ.setdefault("DARKROOM_ACCEPTED_LICENSES", "*")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    # pytest-xdist (`make test` runs -n 2) keeps one item per node id and drops the rest without a word:
    # schemathesis's own parametrize gave 36 operations one id, and only one was fuzzed. Refuse such a run.
    repeated = sorted(nodeid for nodeid, n in Counter(item.nodeid for item in items).items() if n > 1)
    if repeated:
        raise pytest.UsageError(f"{len(repeated)} test ids name more than one test, e.g. {repeated[:3]}")
