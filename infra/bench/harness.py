"""The in-process stack the call counts and the profile run on: a moto server with template.yaml's resources,
the gateway's event translation without a socket, the SQS pollers driven by hand, the in-process GPU worker.

The same building blocks as `darkroom dev` and the integration tests; nothing here is a mock.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from werkzeug.test import Client

from infra.local import resources
from infra.local.gateway import Gateway, Route
from infra.local.lambda_runtime import LocalFunction
from infra.local.moto_server import MotoServer
from infra.local.pollers import SqsPoller
from infra.local.stack import local_environment, reset_process_caches
from infra.local.template import Resolver, functions, http_routes, load

WORKSPACE = "bench"
# The origin the links it hands out name: werkzeug's test client's default host.
PUBLIC_BASE_URL = "http://localhost"
QUEUES = (("DispatchFunction", "JobsQueue"), ("CompleteFunction", "ResultsQueue"), ("WebhooksFunction", "WebhooksQueue"))


@dataclass
class Harness:
    api: Client
    gateway: Gateway
    headers: dict[str, str]
    pollers: dict[str, SqsPoller]
    functions: dict[str, LocalFunction]

    def drain(self, function_logical_id: str) -> None:
        while self.pollers[function_logical_id].poll_once():
            pass

    def finish_jobs(self) -> None:
        """Every queued job through dispatch, the worker and the complete step, and its webhooks sent."""
        from functions.dispatch.dispatchers import get_dispatcher

        self.drain("DispatchFunction")
        get_dispatcher().pool.submit(lambda: None).result()  # one worker: earlier jobs have finished
        self.drain("CompleteFunction")
        self.drain("WebhooksFunction")


@contextmanager
def in_process_stack(data_dir: Path | None = None, env: dict[str, str] | None = None) -> Iterator[Harness]:
    """A fresh moto server and the process pointed at it; a workspace with a high limit and an all-scope key.
    The process environment and caches are restored afterwards."""
    from functions.core.keys import ALL_SCOPES, KeyStore
    from functions.core.workspaces import WorkspaceStore

    template = load()
    specs = functions(template)
    own_dir = data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="darkroom-bench-")) if own_dir else data_dir
    saved_env = dict(os.environ)
    server = MotoServer()
    try:
        endpoint = server.start()
        physical = resources.create_all(template, endpoint, public_base_url=PUBLIC_BASE_URL)
        os.environ.update(local_environment(Resolver(template, physical), specs, endpoint, data_dir))
        os.environ["DARKROOM_LOCAL_WORKERS"] = "1"
        os.environ.update(env or {})
        os.environ.pop("AWS_PROFILE", None)
        reset_process_caches()
        WorkspaceStore().ensure(WORKSPACE, "Benchmarks", credits=1_000_000)
        secret, _ = KeyStore().create(WORKSPACE, "bench", scopes=list(ALL_SCOPES), rate_limit=1_000_000)
        fns = {lid: LocalFunction(spec) for lid, spec in specs.items()}
        gateway = Gateway([Route(m, p, fns[f]) for m, p, f in http_routes(template)])
        pollers = {lid: SqsPoller(fns[lid], physical[q].ref, physical[q].attrs["Arn"], batch_size=10,
                                  endpoint=endpoint, wait_seconds=0) for lid, q in QUEUES}
        yield Harness(Client(gateway.wsgi), gateway, {"Authorization": secret}, pollers, fns)
    finally:
        from functions.dispatch import dispatchers

        if dispatchers.get_dispatcher.cache_info().currsize:
            dispatchers.get_dispatcher().shutdown()
        server.close()
        os.environ.clear()
        os.environ.update(saved_env)
        reset_process_caches()
        if own_dir:
            shutil.rmtree(data_dir, ignore_errors=True)


def image_body(i: int = 0, **extra: Any) -> dict[str, Any]:
    """A small native job: the API's defaults, 256x256 (the size changes no call and keeps the worker fast)."""
    return {"tool": "create-image", "input": {"prompt": f"a lighthouse at dusk, study {i}", "size": "256x256",
                                              "seed": i}, **extra}
