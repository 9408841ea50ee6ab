"""Media links: `GET /media/<S3 key>?expires=…&signature=…`, served without a key. The signature is the access
check (functions/core/links.py), so a link works until its own expiry whatever credentials the API holds.

A file (or the Range asked for) that fits in a Lambda response is answered with its bytes: a client that does
not follow redirects (httpx, curl without -L) still gets the file, and the bucket's URL is never shown. A
larger one is a 302 to the object presigned on S3 at this moment for a few minutes: Lambda's response is
capped at 6 MB, base64 included.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from functions.api.openapi import doc, query
from functions.core import links, storage
from functions.core.errors import DarkroomError, FieldError, NotFound

router = Router()

# The most bytes answered inline: base64 makes 4 MiB about 5.6 MB, under Lambda's 6 MB response with headers.
INLINE_MAX_BYTES = 4 * 1024 * 1024
# How long a browser may keep a file it was given: the object under a key never changes.
INLINE_MAX_AGE = 3600

_PARAMS = (
    query("expires", {"type": "string", "pattern": "^[0-9]{1,12}$"}, "When the link stops working (Unix seconds)."),
    query("signature", {"type": "string"}, "The link's signature, as handed out."),
)


class RangeNotSatisfiable(DarkroomError):
    status = 416


@router.get("/media/<workspace_id>/<kind>/<item_id>/<name>", **doc(
    "A generation's or an upload's file", ok_media="application/octet-stream", errors=(403, 404, 416),
    public=True, params=_PARAMS, redirect="Found: a file over 4 MiB, on S3 (presigned for 15 minutes)",
    description="A link from a generation or an upload, as the API hands them out, valid until its `expires` "
                "(24 h by default); `Range` is honoured. Files up to 4 MiB are answered with their bytes, larger "
                "ones with a 302 to the file on S3, presigned for 15 minutes. A forged, altered or expired link is "
                "a 403."))
def media_file(workspace_id: str, kind: str, item_id: str, name: str) -> Response[bytes]:
    key = f"{workspace_id}/{kind}/{item_id}/{name}"
    event = router.current_event
    params = event.query_string_parameters or {}
    left = links.verify(key, params.get("expires"), params.get("signature"))
    byte_range = (event.headers or {}).get("range")
    try:
        stored = storage.open_object(key, byte_range=byte_range)
    except storage.ObjectMissing:
        raise NotFound("This file no longer exists (outputs are kept for the stack's OutputRetentionDays)",
                       code="media_not_found") from None
    except storage.RangeNotSatisfiable:
        raise RangeNotSatisfiable("The requested range is not satisfiable",
                                  errors=[FieldError("Range", "is outside the file", "invalid_range")]) from None
    if stored.length > INLINE_MAX_BYTES:
        stored.body.close()
        return Response(status_code=302, body="", headers={
            "location": links.redirect_target(key, left),
            # The S3 URL behind it lives REDIRECT_TTL_SECONDS: a cached redirect must not outlive it.
            "cache-control": f"private, max-age={min(left, links.REDIRECT_TTL_SECONDS // 3)}",
            "referrer-policy": "no-referrer"})
    headers = {"cache-control": f"private, max-age={min(left, INLINE_MAX_AGE)}", "accept-ranges": "bytes",
               "x-content-type-options": "nosniff"}
    if stored.etag:
        headers["etag"] = stored.etag
    if stored.content_range:
        headers["content-range"] = stored.content_range
    return Response(status_code=206 if stored.content_range else 200, content_type=stored.content_type,
                    body=stored.body.read(), headers=headers)
