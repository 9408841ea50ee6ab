"""Media links: `GET /media/<S3 key>?expires=…&signature=…`, served without a key. The signature is the access
check (functions/core/links.py), so a link works until its own expiry whatever credentials the API holds.

Served by functions/api/files.py: the bytes when they fit a Lambda response, else a redirect to S3.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from functions.api import files
from functions.api.openapi import doc, query
from functions.core import links

router = Router()

_PARAMS = (
    query("expires", {"type": "string", "pattern": "^[0-9]{1,12}$"}, "When the link stops working (Unix seconds)."),
    query("signature", {"type": "string"}, "The link's signature, as handed out."),
)


@router.get("/media/<workspace_id>/<kind>/<item_id>/<name>", **doc(
    "A generation's or an upload's file", ok_media="application/octet-stream", errors=(403, 404, 416),
    public=True, params=_PARAMS, redirect="Found: a file over 4 MiB, on S3 (presigned for 15 minutes)",
    description="A link from a generation or an upload, as the API hands them out, valid until its `expires` "
                "(24 h by default); `Range` is honoured. Files up to 4 MiB are answered with their bytes, larger "
                "ones with a 302 to the file on S3, presigned for 15 minutes. A forged, altered or expired link is "
                "a 403."))
def media_file(workspace_id: str, kind: str, item_id: str, name: str) -> Response[bytes]:
    key = f"{workspace_id}/{kind}/{item_id}/{name}"
    params = router.current_event.query_string_parameters or {}
    left = links.verify(key, params.get("expires"), params.get("signature"))
    return files.serve(key, router.current_event, seconds_left=left)
