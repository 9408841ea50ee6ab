"""Finding and running the command-line tools the deploy drives: `sam` and `modal`."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# How to get each tool, printed by preflight when it is missing.
INSTALL = {
    "sam": "install the AWS SAM CLI: `pip install aws-sam-cli` (or `brew install aws-sam-cli`), see "
           "https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/install-sam-cli.html",
    "modal": "install the Modal client: `pip install modal`, then `modal setup` (`make install` puts it in "
             ".venv/bin: `source .venv/bin/activate`)",
}
# The oldest Modal client the deploy works with: `modal token info` came in 1.3.1, and the snake_case keys
# that infra/deploy/modal_account.py reads from `modal secret list --json` and `modal app list --json` in
# 1.5.0 (1.4 printed the column titles: "Name", "Description"); and a GPU memory snapshot whose restore fails boots
# the container without it from 1.5.1 (before, the container failed: gpu/modal_app.py turns GPU snapshots on).
# pyproject.toml's `modal` extra says the same (tests/artifacts check); the DispatchFunction ships the version
# functions/requirements.txt locks.
MODAL_MIN_VERSION = "1.5.1"
# The Modal token is for modal and for the stack's secret only: sam never sees it.
MODAL_CREDENTIALS = ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET")


class ToolError(RuntimeError):
    """A tool could not be run, or exited non-zero."""


@dataclass
class Result:
    argv: list[str]
    returncode: int
    stdout: str = ""
    stderr: str = ""


def find(name: str) -> str | None:
    """The tool on PATH: the same one the operator's own `sam` or `modal` command runs."""
    return shutil.which(name)


def script_interpreter(path: str) -> str | None:
    """The interpreter a script's #! line names (an `env` line resolved on PATH), or None if it has none."""
    try:
        with open(path, "rb") as script:
            first = script.readline(512).decode(errors="replace")
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    words = first[2:].split()
    if not words:
        return None
    if Path(words[0]).name == "env":
        names = [w for w in words[1:] if not w.startswith("-")]
        return shutil.which(names[0]) if names else None
    return words[0]


def run(argv: list[str], *, cwd: Path | None = None, capture: bool = False,
        drop_env: tuple[str, ...] = (), set_env: dict[str, str] | None = None) -> Result:
    """Run one command. Captured output comes back; otherwise it streams to the terminal (sam's progress)."""
    executable = find(argv[0])
    if executable is None:
        raise ToolError(f"`{argv[0]}` is not installed: {INSTALL.get(argv[0], 'install it and retry')}")
    env = {k: v for k, v in os.environ.items() if k not in drop_env} | (set_env or {})
    try:
        done = subprocess.run([executable, *argv[1:]], cwd=cwd, env=env, capture_output=capture, text=True,
                              check=False)
    except OSError as exc:
        raise ToolError(f"could not run `{argv[0]}`: {exc}") from exc
    return Result(argv, done.returncode, done.stdout or "", done.stderr or "")


def check(argv: list[str], **kwargs) -> Result:
    """Run, and raise ToolError (with the tool's last words) if it exits non-zero."""
    result = run(argv, **kwargs)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        detail = (": " + " / ".join(tail)) if tail else ""
        raise ToolError(f"`{' '.join(argv[:3])}` exited with {result.returncode}{detail}")
    return result
