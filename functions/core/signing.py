"""Standard Webhooks signing (https://www.standardwebhooks.com), on the `standardwebhooks` package."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    # 32 random bytes, base64, with the whsec_ prefix that Standard Webhooks libraries expect.
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signature_header(event_id: str, timestamp: datetime, body: str, signing_secrets: list[str]) -> str:
    """`v1,<sig>` for every active secret, space-separated, so receivers can rotate without downtime."""
    return " ".join(Webhook(secret).sign(event_id, timestamp, body) for secret in signing_secrets)


def signed_headers(event_id: str, body: str, signing_secrets: list[str], *, now: datetime | None = None) -> dict[str, str]:
    now = now or datetime.now(UTC)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature_header(event_id, now, body, signing_secrets),
    }
