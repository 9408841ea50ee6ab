"""The environment for tests that must not reach AWS: dummy credentials, and an endpoint nothing listens on."""

from __future__ import annotations

import pytest


def set_offline_aws_env(mp: pytest.MonkeyPatch) -> None:
    mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
    mp.setenv("AWS_ACCESS_KEY_ID", "testing")
    mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    mp.delenv("AWS_SESSION_TOKEN", raising=False)
    mp.delenv("AWS_PROFILE", raising=False)
    # A call that slips through to AWS fails at once (nothing listens on port 9) instead of leaving the machine.
    mp.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
