"""How each vendor API shows jobs and errors. The api routers and the webhooks function both use these."""

from __future__ import annotations

NATIVE, OPENAI, AIMS = "native", "openai", "aims"
REPLICATE = "replicate"
FAL = "fal"
# Replicate's routes under /v1/ (the rest of /v1/ is OpenAI's; /v1/models/{model} too, /v1/models/{owner}/{name}…
# is Replicate's).
_REPLICATE_PREFIXES = ("/v1/predictions", "/v1/deployments/", "/v1/files", "/v1/webhooks/")


def dialect_for_path(path: str) -> str:
    if path.startswith("/fal/"):  # fal's queue, run and proxy routes (functions/api/fal.py)
        return FAL
    if path.startswith(_REPLICATE_PREFIXES) or (path.startswith("/v1/models/") and path.count("/") >= 4):
        return REPLICATE
    if path.startswith("/v1/"):
        return OPENAI
    if path.startswith("/api/v1/"):
        return AIMS
    return NATIVE


def webhook_payload(job) -> dict:
    """The job as its own dialect shows it in a webhook body."""
    from functions.dialects import aims, fal, native, openai, replicate

    renderers = {NATIVE: native.webhook_payload, OPENAI: openai.webhook_payload, AIMS: aims.webhook_payload,
                 REPLICATE: replicate.webhook_payload, FAL: fal.webhook_payload}
    return renderers.get(job.dialect, native.webhook_payload)(job)
