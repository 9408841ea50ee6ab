"""boto3 clients, created once per process.

boto3 honours AWS_ENDPOINT_URL, so the local stack points every client at its moto server with one
environment variable and the code here stays identical to what runs in AWS.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=20)
# SigV4 presigned URLs (X-Amz-Expires), the only kind S3 accepts in every region.
_S3_CONFIG = _CONFIG.merge(Config(signature_version="s3v4", s3={"addressing_style": "path"}))


@cache
def client(service: str) -> Any:
    return boto3.session.Session().client(service, config=_S3_CONFIG if service == "s3" else _CONFIG)


def reset_clients() -> None:
    """Forget cached clients (tests and the local stack change endpoints between runs)."""
    client.cache_clear()
