"""How each vendor API shows jobs and errors. The api routers and the webhooks function both use these."""

from __future__ import annotations

NATIVE, OPENAI, AIMS = "native", "openai", "aims"


def dialect_for_path(path: str) -> str:
    if path.startswith("/v1/"):
        return OPENAI
    if path.startswith("/api/v1/"):
        return AIMS
    return NATIVE


def webhook_payload(job) -> dict:
    """The job as its own dialect shows it in a webhook body."""
    from functions.dialects import aims, native, openai

    renderers = {NATIVE: native.webhook_payload, OPENAI: openai.webhook_payload, AIMS: aims.webhook_payload}
    return renderers.get(job.dialect, native.webhook_payload)(job)
