"""Fixtures for `darkroom deploy`, `status` and `destroy`: the real CLI in a subprocess, recording fakes of
`sam` and `modal` first on PATH, and AWS as a moto server over HTTP holding template.yaml as a stack."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from moto_stack import REGION, MotoStack, clients, create

from infra.build import artifacts
from infra.local.moto_server import MotoServer

ROOT = Path(__file__).resolve().parents[2]
BUILD_PYTHON = artifacts.interpreter(artifacts.runtime_version())
WORKSPACE_ID = "ac-fakeworkspace1"
TOKEN_ID = "ak-faketokenid"
TOKEN_SECRET = "as-fake-token-secret-never-shown"

# A fake tool: logs its argv, working directory and environment as one JSON line, then answers as the test
# configured (the longest configured argv prefix wins), by default exit 0 and no output.
FAKE_TOOL = """#!{python}
import json, os, sys
argv = [os.path.basename(sys.argv[0]), *sys.argv[1:]]
with open({log!r}, "a") as log:
    log.write(json.dumps({{"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}}) + "\\n")
with open({config!r}) as f:
    answers = json.load(f)
best = max((p for p in answers if argv[:len(p.split())] == p.split()), key=lambda p: len(p.split()), default=None)
answer = answers.get(best, {{}}) if best else {{}}
sys.stdout.write(answer.get("stdout", ""))
sys.stderr.write(answer.get("stderr", ""))
sys.exit(answer.get("exit", 0))
"""


@dataclass
class FakeTools:
    bin: Path
    log: Path
    config: Path

    def answer(self, prefix: str, *, exit: int = 0, stdout: str = "", stderr: str = "") -> None:
        answers = json.loads(self.config.read_text())
        answers[prefix] = {"exit": exit, "stdout": stdout, "stderr": stderr}
        self.config.write_text(json.dumps(answers))

    def remove(self, name: str) -> None:
        (self.bin / name).unlink()

    def calls(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def argvs(self) -> list[list[str]]:
        return [call["argv"] for call in self.calls()]


def _installed_modal_version() -> str:
    modal = Path(sys.executable).with_name("modal")
    done = subprocess.run([str(modal), "--version"], capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


INSTALLED_MODAL_VERSION = _installed_modal_version()


@pytest.fixture
def fake_tools(tmp_path) -> FakeTools:
    fakes = FakeTools(tmp_path / "bin", tmp_path / "calls.jsonl", tmp_path / "answers.json")
    fakes.bin.mkdir()
    fakes.config.write_text("{}")
    for name in ("sam", "modal"):
        script = fakes.bin / name
        script.write_text(FAKE_TOOL.format(python=sys.executable, log=str(fakes.log), config=str(fakes.config)))
        script.chmod(0o755)
    # The installed client's own `modal --version` line (the CLI the deploy drives prints it so).
    fakes.answer("modal --version", stdout=INSTALLED_MODAL_VERSION)
    # A Modal account that is set up: the token's workspace (a service user's), and the Hugging Face secret.
    fakes.answer("modal token info", stdout=f"Token: {TOKEN_ID}\nWorkspace: acme ({WORKSPACE_ID})\n"
                                             "Service User: darkroom-deploy (su-123)\n")
    fakes.answer("modal secret list", stdout=json.dumps([{"name": "darkroom-hf", "created_at": "2026-01-01"}]))
    fakes.answer("modal app list", stdout=json.dumps([
        {"app_id": "ap-old", "description": "darkroom", "state": "stopped", "tasks": "0"},
        {"app_id": "ap-1", "description": "darkroom", "state": "deployed", "tasks": "0"},
    ]))
    return fakes


@pytest.fixture(scope="session")
def moto_endpoint():
    server = MotoServer()
    yield server.start()
    server.close()


@dataclass
class World:
    endpoint: str
    stack: MotoStack
    oidc_provider_arn: str

    def client(self, service: str):
        return clients(self.endpoint, service)

    def stack_parameter(self, name: str) -> str:
        (described,) = self.client("cloudformation").describe_stacks(StackName=self.stack.name)["Stacks"]
        return {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]}[name]


@pytest.fixture(scope="session")
def world(moto_endpoint) -> World:
    """template.yaml as stack `darkroom-moto`, in an account that already has Modal's OIDC provider (so the
    stack is given its ARN, as `darkroom deploy` does, and creates none)."""
    provider = clients(moto_endpoint, "iam").create_open_id_connect_provider(
        Url="https://oidc.modal.com", ClientIDList=["oidc.modal.com"], ThumbprintList=["0" * 40])
    arn = provider["OpenIDConnectProviderArn"]
    stack = create(moto_endpoint, "darkroom-moto", {"ModalWorkspaceId": WORKSPACE_ID, "ModalOidcProviderArn": arn})
    return World(moto_endpoint, stack, arn)


def base_env(tmp_path: Path, fakes: FakeTools | None) -> dict[str, str]:
    """A clean environment: no AWS or Modal configuration from this machine, no way off loopback."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {
        "PATH": (f"{fakes.bin}:" if fakes else "") + "/usr/bin:/bin",
        "HOME": str(home),
        "MODAL_CONFIG_PATH": str(home / ".modal.toml"),
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "COLUMNS": "250",
        "PYTHONPATH": str(ROOT),
        # `sam build` (faked here) would need the runtime's Python; deploy's preflight checks for it.
        **({artifacts.PYTHON_ENV: BUILD_PYTHON} if BUILD_PYTHON else {}),
    }


def aws_env(endpoint: str) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION}


def modal_env() -> dict[str, str]:
    return {"MODAL_TOKEN_ID": TOKEN_ID, "MODAL_TOKEN_SECRET": TOKEN_SECRET}


def darkroom(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """The real CLI, as the operator runs it."""
    return subprocess.run([sys.executable, "-m", "infra.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=180, check=False)


@pytest.fixture
def point_at(monkeypatch):
    """This test process's boto3 and stores pointed at the moto server, for checking what the CLI wrote."""
    from infra.local.stack import reset_process_caches

    def apply(endpoint: str) -> None:
        for key, value in aws_env(endpoint).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("DARKROOM_KEY_CACHE_TTL_SECONDS", "0")
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        reset_process_caches()

    yield apply
    reset_process_caches()

