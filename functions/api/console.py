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

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from functions.api import pages
from functions.core.errors import NotFound

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


def _serve(name: str) -> Response[str]:
    asset = assets().get(name)
    if asset is None:
        raise NotFound(f"No console file {name!r}; the console is at /console", code="console_file_not_found")
    # Revalidated on every load, so a deploy shows at once; an unchanged file costs an empty 304.
    return pages.page(router.current_event, asset.body, content_type=asset.content_type,
                      csp=pages.content_security_policy(), etag=asset.etag)


@router.get("/console", include_in_schema=False)
def console_page() -> Response[str]:
    return _serve(INDEX)


@router.get("/console/<file>", include_in_schema=False)
def console_file(file: str) -> Response[str]:
    return _serve(file)
