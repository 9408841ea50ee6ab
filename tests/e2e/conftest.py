"""End-to-end fixtures: the real `darkroom dev` stack, run as a subprocess and spoken to over HTTP.

Nothing here imports the product: the tests see exactly what a user following the quick start sees, a URL,
an API key in dev.env and presigned output URLs served by the moto server.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
FINISHED = ("success", "error")


def read_env(path: Path) -> dict[str, str]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def _restore_sigint() -> None:
    # A shell that runs pytest in the background leaves SIGINT ignored, and an ignored signal stays ignored
    # across exec; then Python never installs its KeyboardInterrupt handler and Ctrl-C would do nothing.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class RunningStack:
    """One `darkroom dev` process. url/api_key come from the dev.env it wrote on this start."""

    process: subprocess.Popen
    data_dir: Path
    log_path: Path
    url: str = ""
    # The API Gateway host (deployed GatewayUrl); `url` is the function URL host the README hands out.
    gateway_url: str = ""
    api_key: str = ""
    moto_endpoint: str = ""
    ready_seconds: float = 0.0
    _log: object = field(default=None, repr=False)

    @property
    def env_file(self) -> Path:
        return self.data_dir / "dev.env"

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "<no log>"

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """Ctrl-C, as a developer would; SIGKILL the whole process group (moto server included) if it hangs.

        Returns the exit code of a clean stop, None if it had to be killed."""
        code: int | None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                code = self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                code = None
        else:
            code = self.process.returncode
        if code is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code


def launch_stack(data_dir: Path, port: int | None = None, timeout: float = READY_TIMEOUT,
                 extra_env: dict[str, str] | None = None) -> RunningStack:
    """Start `python -m infra.cli dev` (with `extra_env` added to its environment) and wait until it answers
    GET /api/models with its key."""
    data_dir.mkdir(parents=True, exist_ok=True)
    # Port 0 by default: the stack binds a port the OS picks and writes it to dev.env. A port chosen here and
    # bound there could be taken in between (by any connection's local port, on a busy parallel run).
    port = port or 0
    env_file = data_dir / "dev.env"
    # On a restart dev.env is already there (it keeps the key): wait for this start's rewrite of it.
    before = env_file.stat().st_mtime_ns if env_file.exists() else None
    log_path = data_dir / f"stack-{int(time.time() * 1000)}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - the stack outlives this function; RunningStack.stop closes it
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "dev", "--port", str(port), "--gateway-port", "0",
         "--data-dir", str(data_dir)],
        cwd=REPO_ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200", **(extra_env or {})},
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        # No threads run in this process while it forks, so preexec_fn is safe here.
        start_new_session=True, preexec_fn=_restore_sigint,  # noqa: PLW1509
    )
    running = RunningStack(process=process, data_dir=data_dir, log_path=log_path, _log=log)
    deadline = started + timeout
    last_error = "dev.env not written yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            running.stop()
            pytest.fail(f"darkroom dev exited with {process.returncode} before it was ready; log tail:\n"
                        f"{running.log_tail()}")
        fresh = env_file.exists() and env_file.stat().st_mtime_ns != before
        env = read_env(env_file) if fresh else {}
        if all(env.get(k) for k in ("DARKROOM_URL", "DARKROOM_API_KEY", "DARKROOM_LOCAL_AWS_ENDPOINT")):
            try:
                response = httpx.get(f"{env['DARKROOM_URL']}/api/models",
                                     headers={"Authorization": env["DARKROOM_API_KEY"]}, timeout=2)
                if response.status_code == 200:
                    running.url = env["DARKROOM_URL"]
                    running.gateway_url = env.get("DARKROOM_GATEWAY_URL", "")
                    running.api_key = env["DARKROOM_API_KEY"]
                    running.moto_endpoint = env["DARKROOM_LOCAL_AWS_ENDPOINT"]
                    running.ready_seconds = time.monotonic() - started
                    return running
                last_error = f"GET /api/models answered {response.status_code}: {response.text[:300]}"
            except httpx.HTTPError as exc:
                last_error = f"GET /api/models failed: {exc!r}"
        time.sleep(0.1)
    running.stop()
    pytest.fail(f"darkroom dev was not ready within {timeout:.0f}s ({last_error}); log tail:\n{running.log_tail()}")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory):
    running = launch_stack(tmp_path_factory.mktemp("darkroom"))
    print(f"\nlocal stack ready in {running.ready_seconds:.1f}s at {running.url} (log {running.log_path})")
    yield running
    code = running.stop()
    assert code == 0, f"darkroom dev did not stop cleanly (exit {code}); log tail:\n{running.log_tail()}"


@pytest.fixture(scope="session")
def launch() -> Callable[..., RunningStack]:
    """launch_stack itself, for a module's own stack with its own environment (its fixture stops it)."""
    return launch_stack


@pytest.fixture
def stack_launcher():
    """Start extra, short-lived stacks (not the session one); any still running at teardown are stopped."""
    launched: list[RunningStack] = []

    def launch(data_dir: Path, port: int | None = None) -> RunningStack:
        running = launch_stack(data_dir, port)
        launched.append(running)
        return running

    yield launch
    for running in launched:
        if running.process.poll() is None:
            running.stop()


@pytest.fixture
def client(stack: RunningStack):
    with httpx.Client(base_url=stack.url, timeout=30) as c:
        yield c


@pytest.fixture
def auth(stack: RunningStack) -> dict[str, str]:
    """The quick start's header: the raw key in Authorization."""
    return {"Authorization": stack.api_key}


def _wait_for(client: httpx.Client, key: str, gen_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        response = client.get(f"/api/generations/{gen_id}", headers={"Authorization": key})
        assert response.status_code == 200, f"GET /api/generations/{gen_id}: {response.status_code} {response.text}"
        body = response.json()
        if body["status"] in FINISHED:
            return body
        time.sleep(0.25)
    pytest.fail(f"generation {gen_id} did not finish within {timeout}s; last body: {body}")


@pytest.fixture
def wait_for() -> Callable[..., dict]:
    """wait_for(client, key, gen_id, timeout=60): poll GET /api/generations/{id} until success or error."""
    return _wait_for


def _download_image(url: str) -> tuple[Image.Image, bytes]:
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200, f"GET {url}: {response.status_code} {response.text[:300]}"
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image, response.content


@pytest.fixture
def download_image() -> Callable[[str], tuple[Image.Image, bytes]]:
    """download_image(url) -> (decoded Pillow image, raw bytes), for presigned output URLs."""
    return _download_image


class Cli:
    """`darkroom …` in-process against the session stack, with its URL and key as flags (tests/e2e/test_cli_*.py)."""

    def __init__(self, stack) -> None:
        from typer.testing import CliRunner

        self.stack = stack
        self.runner = CliRunner()

    def __call__(self, *args: str, auth: bool = True, code: int = 0):
        from infra.cli import app

        flags = ["--url", self.stack.url, "--api-key", self.stack.api_key] if auth else []
        result = self.runner.invoke(app, [*args, *flags], env={"COLUMNS": "200"})
        assert result.exit_code == code, (f"darkroom {' '.join(args)} exited {result.exit_code}, expected {code}\n"
                                          f"stdout: {result.stdout}\nstderr: {result.stderr}\n{result.exception!r}")
        assert "Traceback" not in result.stdout + result.stderr
        return result

    def json(self, *args: str, code: int = 0):
        result = self(*args, "--json", code=code)
        return json.loads(result.stdout)  # exactly one JSON document, nothing else on stdout


@pytest.fixture
def cli(stack) -> Cli:
    return Cli(stack)
