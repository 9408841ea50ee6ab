"""HTML and static pages served without a key (the console, /docs, share pages): one way to harden and cache them.

Each gets a Content-Security-Policy (inline scripts and styles allowed by their hashes only, never framed),
`nosniff`, no referrer, and an ETag: a browser revalidates and an unchanged page costs an empty 304.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache
from urllib.parse import urlsplit

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from functions.core import storage
from functions.core.observability import logger

_INLINE = {tag: re.compile(rf"<{tag}(?:\s[^>]*)?>(.*?)</{tag}>", re.DOTALL | re.IGNORECASE)
           for tag in ("script", "style")}


@lru_cache(maxsize=1)
def storage_origin() -> str:
    """Where large media redirect to (S3, or the local moto server): pages that show media must allow it."""
    try:
        parts = urlsplit(storage.presigned_get("console/origin-probe"))  # signs locally; no request is sent
        return f"{parts.scheme}://{parts.netloc}"
    except Exception:  # noqa: BLE001 - no credentials to sign with: fall back to any https origin
        logger.warning("could not presign a probe URL; media allowed from any https origin")
        return "https:"


def inline_hashes(html: str, tag: str) -> str:
    """CSP sources for each inline <script> or <style> of `html`, by its SHA-256 (and nothing else inline)."""
    digests = {base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
               for body in _INLINE[tag].findall(html) if body.strip()}
    return " ".join(f"'sha256-{d}'" for d in sorted(digests))


def content_security_policy(*, script: str = "'self'", style: str = "'self'", connect: str = "'self'",
                            media: bool = True) -> str:
    origin = storage_origin() if media else ""
    return "; ".join(part for part in (
        "default-src 'none'",
        f"script-src {script}" if script else "",
        f"style-src {style}" if style else "",
        f"img-src 'self' data: blob: {origin}".rstrip(),
        f"media-src 'self' blob: {origin}".rstrip(),
        f"connect-src {connect} {origin}".rstrip(),
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ) if part)


def etag_of(body: str | bytes) -> str:
    data = body.encode() if isinstance(body, str) else body
    return '"' + hashlib.sha256(data).hexdigest()[:20] + '"'


def page(event: APIGatewayProxyEventV2, body: str, *, content_type: str, csp: str, cache: str = "no-cache",
         etag: str | None = None, status: int = 200) -> Response[str]:
    """The page with its security headers; a 304 when the client's copy is current."""
    etag = etag or etag_of(body)
    headers = {"content-security-policy": csp, "x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
               "cache-control": cache, "etag": etag}
    if (event.headers or {}).get("if-none-match") == etag:
        return Response(status_code=304, content_type=content_type, body="", headers=headers)
    return Response(status_code=status, content_type=content_type, body=body, headers=headers, compress=True)
