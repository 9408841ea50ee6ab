"""Public share links. A share id is the job id plus an unguessable token that only the job record knows,
so a share page can be served without a key for exactly the jobs made public, and for nothing else."""

from __future__ import annotations

import hmac
import secrets

from . import links

SHARE_PATH = "/shared/media/"


def share_url(job_id: str) -> str:
    """A new share link, on the configured public origin (never the request's Host: functions/core/links.py)."""
    return f"{links.public_base_url()}{SHARE_PATH}{job_id}-{secrets.token_urlsafe(16)}"


def parse_share_id(share_id: str) -> tuple[str, str] | None:
    job_id, sep, token = share_id.partition("-")
    if not sep or not job_id.isalnum() or len(job_id) > 64 or not token:
        return None
    return job_id, token


def matches(stored_share_url: str | None, share_id: str) -> bool:
    """Whether `share_id` is the one this job was given (constant-time comparison)."""
    if not stored_share_url or SHARE_PATH not in stored_share_url:
        return False
    return hmac.compare_digest(stored_share_url.rsplit(SHARE_PATH, 1)[1], share_id)
