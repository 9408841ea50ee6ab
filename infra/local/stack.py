"""`darkroom dev`: the whole system on one machine, built from template.yaml, with no cloud account.

State survives a restart, clean or killed: the moto server keeps it in .darkroom/moto (a journal of
acknowledged writes plus snapshots, infra/local/moto_server.py), resources are created only where missing,
and the developer's API key and webhook secret are the ones in .darkroom/dev.env. If the moto server dies
under a running stack, the stack starts it again on the same port from that state.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import resources
from .gateway import FUNCTION_URL, HTTP_API, Gateway, Route
from .lambda_runtime import IsolatedFunction, LocalFunction
from .moto_server import MotoServer
from .pollers import Schedule, SqsPoller, parse_rate
from .template import REGION, TEMPLATE_PATH, Resolver, function_url_target, functions, gateway_routes, load

DEV_WORKSPACE = "dev"
DEV_RATE_LIMIT = 6000
DEV_CREDITS = 1_000_000
# A GPU dispatch on a laptop is cheap; more pollers than this only contend for the CPU.
MAX_LOCAL_POLLERS = 2


@dataclass
class StackInfo:
    # The function URL host (the URL the README hands out) and the API Gateway host, as deployed.
    url: str
    gateway_url: str
    api_key: str
    webhook_secret: str
    moto_endpoint: str
    env_file: Path
    # Who signs the outputs' C2PA manifests: the data directory's test certificate, or the developer's own.
    provenance: str = ""


def read_env_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}

LOOPBACK = "127.0.0.1"


class LocalStack:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 8000, gateway_port: int = 8001,
                 data_dir: Path = Path(".darkroom"),
                 template_path: Path = TEMPLATE_PATH, env: dict[str, str] | None = None,
                 sweep_interval: float | None = None, poll_wait_seconds: int = 1, warm_models: bool = True) -> None:
        self.host, self.port, self.gateway_port = host, port, gateway_port
        self.data_dir = data_dir.resolve()
        self.template_path = template_path
        self.extra_env = env or {}
        # DARKROOM_LOCAL_SWEEP_SECONDS (a test and dev knob) runs the sweeper more often than the template says.
        self.sweep_interval = sweep_interval or float(os.environ.get("DARKROOM_LOCAL_SWEEP_SECONDS") or 0) or None
        self.poll_wait_seconds = poll_wait_seconds
        self.warm_models = warm_models
        # Loopback always, whatever address the API listens on (--host 0.0.0.0): the moto server checks no
        # credential or signature, so whoever reaches it reads every secret and every output.
        self.moto = MotoServer(LOOPBACK, state_dir=self.data_dir / "moto")
        self._moto_watch: threading.Thread | None = None
        self.function_url: Gateway | None = None
        self.gateway: Gateway | None = None
        self.pollers: list[SqsPoller] = []
        self.schedules: list[Schedule] = []
        self.functions: dict[str, LocalFunction] = {}
        self.physical: dict[str, Any] = {}
        self.env: dict[str, str] = {}
        self._stopping = threading.Event()

    # ---- start
    def start(self) -> StackInfo:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Messages held by the consumers of a previous run (which died with it) are delivered again now.
        endpoint = self.moto.start(release_inflight=True)
        try:
            info = self._start(endpoint)
            self._moto_watch = threading.Thread(target=self._keep_moto_running, name="moto-watch", daemon=True)
            self._moto_watch.start()
            return info
        except BaseException:
            self.stop()
            raise

    def _start(self, endpoint: str) -> StackInfo:
        template = load(self.template_path)
        self.physical = resources.create_all(template, endpoint)
        resolver = Resolver(template, self.physical)
        specs = functions(template)
        self.env = local_environment(resolver, specs, endpoint, self.data_dir) | self.extra_env
        provenance = _signing_certificate(self.env, self.data_dir)
        os.environ.update(self.env)
        os.environ.pop("AWS_PROFILE", None)  # the moto server takes any credentials; a profile may not exist
        reset_process_caches()

        api_key, webhook_secret = self._bootstrap_dev_workspace()
        url_target = function_url_target(template)
        http_functions = {fid for _, _, fid in gateway_routes(template)} | {url_target}
        for logical_id, spec in specs.items():
            # HTTP functions get Lambda's isolation (one request per environment), so concurrent calls
            # never share the resolver's per-request state; queue consumers run in-process.
            self.functions[logical_id] = IsolatedFunction(spec) if logical_id in http_functions else LocalFunction(spec)
        for function in self.functions.values():
            if isinstance(function, IsolatedFunction):
                function.warm()

        # The HTTP API's own routes (one catch-all, as deployed): the function answers 404 for unknown paths.
        routes = [Route(method, path, self.functions[fid]) for method, path, fid in gateway_routes(template)]
        # Test-only: lets a test lose one response on purpose (infra/local/gateway.py, FAULT_HEADER).
        faults = os.environ.get("DARKROOM_LOCAL_FAULTS", "").lower() not in ("", "0", "false")
        self.function_url = Gateway(routes, host=FUNCTION_URL, target=self.functions[url_target],
                                    faults=faults)
        self.gateway = Gateway(routes, host=HTTP_API, faults=faults)
        self.port = self.function_url.start(self.host, self.port)
        self.gateway_port = self.gateway.start(self.host, self.gateway_port)
        url = f"http://{self.host}:{self.port}"
        gateway_url = f"http://{self.host}:{self.gateway_port}"
        # The links the API hands out name the function URL, as deployed (ApiUrl), never a request's Host.
        resources.publish_public_base_url(template, endpoint, url)

        for logical_id, spec in specs.items():
            for props in spec.events_of("SQS").values():
                queue = props["Queue"]["Fn::GetAtt"][0]
                concurrency = int(resolver.resolve(props.get("ScalingConfig", {}).get("MaximumConcurrency", 2)))
                self.pollers.append(SqsPoller(
                    self.functions[logical_id], self.physical[queue].ref, self.physical[queue].attrs["Arn"],
                    batch_size=int(props.get("BatchSize", 10)), concurrency=min(concurrency, MAX_LOCAL_POLLERS),
                    endpoint=endpoint, wait_seconds=self.poll_wait_seconds))
            for props in spec.events_of("Schedule").values():
                interval = self.sweep_interval or parse_rate(props["Schedule"])
                self.schedules.append(Schedule(self.functions[logical_id], interval))
        for runner in (*self.pollers, *self.schedules):
            runner.start()

        env_file = self.data_dir / "dev.env"
        env_file.write_text(f"DARKROOM_URL={url}\nDARKROOM_GATEWAY_URL={gateway_url}\nDARKROOM_API_KEY={api_key}\n"
                            f"DARKROOM_WEBHOOK_SECRET={webhook_secret}\nDARKROOM_LOCAL_AWS_ENDPOINT={endpoint}\n")
        if self.warm_models:
            # On the GPU worker pool itself, ahead of any job: model code is never imported or built by two
            # threads at once (diffusers' first import is not thread-safe), and the first job finds it warm.
            from functions.dispatch.dispatchers import get_dispatcher

            get_dispatcher().pool.submit(_warm_models, self._stopping)
        return StackInfo(url=url, gateway_url=gateway_url, api_key=api_key, webhook_secret=webhook_secret, moto_endpoint=endpoint,
                         env_file=env_file, provenance=provenance)

    def _bootstrap_dev_workspace(self) -> tuple[str, str]:
        """The developer keeps one API key and one webhook secret across restarts: both are kept in the saved
        state, and registered again from dev.env when the state is new (a deleted .darkroom/moto)."""
        from botocore.exceptions import ClientError

        from functions.core.keys import ALL_SCOPES, KeyStore
        from functions.core.workspaces import WorkspaceStore

        previous = read_env_file(self.data_dir / "dev.env")
        workspace = WorkspaceStore().ensure(DEV_WORKSPACE, "Local development", credits=DEV_CREDITS,
                                            webhook_secret=previous.get("DARKROOM_WEBHOOK_SECRET") or None)
        keys = KeyStore()
        # The developer's own key: every scope, and a limit high enough for polling loops and test suites.
        try:
            secret, _ = keys.create(DEV_WORKSPACE, "dev", scopes=list(ALL_SCOPES), rate_limit=DEV_RATE_LIMIT,
                                    secret=previous.get("DARKROOM_API_KEY") or None)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            secret = previous["DARKROOM_API_KEY"]  # already in the saved state
            if keys.lookup(secret) is None:  # revoked since: a new one
                secret, _ = keys.create(DEV_WORKSPACE, "dev", scopes=list(ALL_SCOPES), rate_limit=DEV_RATE_LIMIT)
        return secret, workspace.webhook_secrets[0].secret

    def _keep_moto_running(self) -> None:
        """The moto server died under us (killed, crashed): start it again on the same port, from its saved
        state. Clients see refused connections meanwhile, which boto3 and the pollers retry."""
        while not self._stopping.wait(0.5):
            if not self.moto.alive() and not self._stopping.is_set():
                print("moto server exited; restarting it from its saved state", flush=True)
                try:
                    self.moto.start()
                except (RuntimeError, TimeoutError) as exc:
                    print(f"moto server did not restart: {exc}", flush=True)

    # ---- stop
    def stop(self) -> None:
        self._stopping.set()
        for runner in (*self.schedules, *self.pollers):
            runner._stop.set()
        for runner in (*self.schedules, *self.pollers):
            runner.stop()
        for front in (self.function_url, self.gateway):
            if front:
                front.stop()
        for function in self.functions.values():
            if isinstance(function, IsolatedFunction):
                function.stop()
        _shutdown_local_dispatcher()
        self.moto.close()


def local_environment(resolver: Resolver, specs: dict, endpoint: str, data_dir: Path) -> dict[str, str]:
    """One process hosts every function, so their template environments are merged (they agree on every
    shared name), then pointed at the moto server and the in-process GPU worker."""
    env: dict[str, str] = {}
    for spec in specs.values():
        for key, value in resolver.resolve(spec.environment).items():
            env[key] = str(value)
    env.update({
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "DARKROOM_DISPATCHER": "local",
        "DARKROOM_LOCAL": "true",
        "DARKROOM_MODAL_TOKEN_SECRET_ARN": "",
        # The in-process worker reaches moto with the local keys above, not by web identity.
        "DARKROOM_WORKER_ROLE_ARN": "",
        "DARKROOM_DATA_DIR": str(data_dir),
        # Model loading is logged by the worker; library progress bars only clutter the dev console.
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
        "TRANSFORMERS_VERBOSITY": "error",
        "DIFFUSERS_VERBOSITY": "error",
        "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    })
    # The tiny random weights the local stack runs are under no model's license: every model runs, unless a
    # developer sets the variable to try the refusal.
    env["DARKROOM_ACCEPTED_LICENSES"] = os.environ.get("DARKROOM_ACCEPTED_LICENSES", "*")
    # The synchronous wait is the template's (SyncWaitSeconds), cut per host as deployed; a developer may
    # still set it in their own environment.
    if os.environ.get("DARKROOM_SYNC_WAIT_SECONDS"):
        env["DARKROOM_SYNC_WAIT_SECONDS"] = os.environ["DARKROOM_SYNC_WAIT_SECONDS"]
    # Provenance: the developer's own signing certificate (else `darkroom dev` makes a test one) and the watermark.
    for name in ("DARKROOM_PROVENANCE_CERT_FILE", "DARKROOM_PROVENANCE_KEY_FILE", "DARKROOM_PROVENANCE_WATERMARK"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    return env


def _signing_certificate(env: dict[str, str], data_dir: Path) -> str:
    """The local stack signs its outputs as a deployment does (gpu/provenance.py): with the developer's
    certificate when DARKROOM_PROVENANCE_CERT_FILE and _KEY_FILE are set, else with a test chain made once in the
    data directory (infra/local/signing_cert.py). Sets `env`; says which, for the startup output."""
    if env.get("DARKROOM_PROVENANCE_CERT_FILE") or env.get("DARKROOM_PROVENANCE_KEY_FILE"):
        return f"your certificate {env.get('DARKROOM_PROVENANCE_CERT_FILE', '')} (DARKROOM_PROVENANCE_CERT_FILE)"
    from infra.local.signing_cert import ensure_dev_certificate

    cert = ensure_dev_certificate(data_dir)
    env["DARKROOM_PROVENANCE_CERT_FILE"], env["DARKROOM_PROVENANCE_KEY_FILE"] = str(cert.chain), str(cert.key)
    made = "made a local test certificate" if cert.created else "using the local test certificate"
    return f"{made} in {cert.chain.parent} (untrusted: for development only; its root CA is {cert.root.name})"


def reset_process_caches() -> None:
    from functions.core import aws, faults, links, ratelimit, settings
    from functions.dispatch import dispatchers
    from infra.local.dispatcher import LocalDispatcher

    settings.get_settings.cache_clear()
    faults.reset()
    aws.reset_clients()
    links.reset()
    ratelimit.anonymous.clear()
    dispatchers.use_local(LocalDispatcher.from_environment)  # also forgets the cached dispatcher


def _shutdown_local_dispatcher() -> None:
    from functions.dispatch import dispatchers
    from infra.local.dispatcher import LocalDispatcher

    if dispatchers.get_dispatcher.cache_info().currsize:
        dispatcher = dispatchers.get_dispatcher()
        if isinstance(dispatcher, LocalDispatcher):
            dispatcher.shutdown()
        dispatchers.get_dispatcher.cache_clear()


def _warm_models(stopping: threading.Event) -> None:
    """Build (once) and load the tiny pipelines in the background, so the first job does not wait for it; then
    register a tiny LoRA per base family in the dev workspace (infra/local/dev_loras.py).
    A stop in the meantime ends it after the model being loaded: the process exits only once it returns."""
    try:
        from functions.core.catalog import get_catalog
        from gpu import worker
        seen = set()
        for model in get_catalog().models:
            if stopping.is_set():
                return
            if model.family not in seen:
                seen.add(model.family)
                worker.load(model)
        from infra.local.dev_loras import seed_dev_loras

        seed_dev_loras(DEV_WORKSPACE, Path(os.environ.get("DARKROOM_DATA_DIR", ".darkroom")) / "models", stopping)
    except Exception:  # noqa: BLE001 - warming is an optimisation; the job path reports real errors
        import traceback

        traceback.print_exc()
