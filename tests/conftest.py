"""Shared by every test folder. Its presence also puts tests/ on sys.path, for tests/offline_aws.py."""

from __future__ import annotations

import os
from collections import Counter

import pytest


def _torch_threads_per_worker() -> None:
    """Give each pytest-xdist worker its share of the cores for torch's (OpenMP's) thread pool, before anything
    imports torch. Each pool is as large as the machine by default, and OpenMP threads spin while they wait:
    two workers on two cores, each with two threads, ran the tiny pipelines' tests about 4x slower (measured:
    tests/gpu/test_loras.py and test_pipelines.py, 200 s against 49 s). The stacks the e2e tests start inherit it."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))  # set in the workers only
    if not workers:
        return  # one process: torch's default, the whole machine
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cores // workers)))


_torch_threads_per_worker()

# As the local stack does (infra/local/stack.py): the tiny random weights are under no model's license, so every
# catalog model runs in tests. tests/unit/test_capabilities.py clears it to test the refusal.
os.environ.setdefault("DARKROOM_ACCEPTED_LICENSES", "*")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    # pytest-xdist (`make test` runs -n 2) keeps one item per node id and drops the rest without a word:
    # schemathesis's own parametrize gave 36 operations one id, and only one was fuzzed. Refuse such a run.
    repeated = sorted(nodeid for nodeid, n in Counter(item.nodeid for item in items).items() if n > 1)
    if repeated:
        raise pytest.UsageError(f"{len(repeated)} test ids name more than one test, e.g. {repeated[:3]}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    # `--dist loadgroup` keeps each xdist_group on one worker (one build of the Lambda artifacts, one stack
    # for a module's e2e tests) by suffixing node ids with "@group" at collection. Where pytest ignores
    # that (9.2: pytest-dev/pytest-xdist#1386) the groups are silently spread over the workers: fail instead.
    if (getattr(item.config.option, "loadgroup", False) and item.get_closest_marker("xdist_group")
            and "@" not in item.nodeid.rpartition("]")[2]):
        pytest.fail("--dist loadgroup lost this test's xdist_group (pytest-dev/pytest-xdist#1386): pyproject.toml "
                    "pins a pytest that keeps it", pytrace=False)
