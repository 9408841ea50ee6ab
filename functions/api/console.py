"""The web console: static files under functions/api/console/, served at GET /console and /console/{file}.

The console is a front end over the public API (it signs in with an API key, kept in the browser tab), so
the pages themselves are served without a key (functions/api/auth.py). Cold start: nothing is read at import;
the files are read on the first console request and kept for the container's life.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from functions.core import storage
from functions.core.errors import NotFound
from functions.core.observability import logger

router = Router()

STATIC_DIR = Path(__file__).with_name("console")
INDEX = "index.html"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Flat names only: the route's {file} never holds a slash, and nothing outside STATIC_DIR can be named.
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\.[a-z]+$")


@dataclass(frozen=True)
class Asset:
    body: str
    content_type: str
    etag: str


@lru_cache(maxsize=1)
def assets() -> dict[str, Asset]:
    found = {}
    for path in sorted(STATIC_DIR.iterdir()):
        if path.is_file() and path.suffix in CONTENT_TYPES and _NAME.match(path.name):
            body = path.read_text(encoding="utf-8")
            found[path.name] = Asset(body, CONTENT_TYPES[path.suffix],
                                     '"' + hashlib.sha256(body.encode()).hexdigest()[:20] + '"')
    return found


@lru_cache(maxsize=1)
def storage_origin() -> str:
    """Where presigned output URLs point (S3, or the local moto server): the page shows and downloads them."""
    try:
        parts = urlsplit(storage.presigned_get("console/origin-probe"))  # signs locally; no request is sent
        return f"{parts.scheme}://{parts.netloc}"
    except Exception:  # noqa: BLE001 - no credentials to sign with: fall back to any https origin
        logger.warning("console: could not presign a probe URL; images allowed from any https origin")
        return "https:"


def content_security_policy() -> str:
    media = storage_origin()
    return "; ".join((
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        f"img-src 'self' data: blob: {media}",
        f"media-src 'self' blob: {media}",
        f"connect-src 'self' {media}",  # the API itself, and downloads of outputs (the bucket allows CORS)
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ))


def _serve(name: str) -> Response[str]:
    asset = assets().get(name)
    if asset is None:
        raise NotFound(f"No console file {name!r}; the console is at /console", code="console_file_not_found")
    headers = {
        "content-security-policy": content_security_policy(),
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        # Revalidated on every load, so a deploy shows at once; an unchanged file costs an empty 304.
        "cache-control": "no-cache",
        "etag": asset.etag,
    }
    if router.current_event.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, content_type=asset.content_type, body="", headers=headers)
    return Response(status_code=200, content_type=asset.content_type, body=asset.body, headers=headers,
                    compress=True)


@router.get("/console", include_in_schema=False)
def console_page() -> Response[str]:
    return _serve(INDEX)


@router.get("/console/<file>", include_in_schema=False)
def console_file(file: str) -> Response[str]:
    return _serve(file)
