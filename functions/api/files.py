"""Serving a stored file as an API response (media links, shared pages' files).

A file (or the Range asked for) that fits in a Lambda response is answered with its bytes: a client that does
not follow redirects (httpx, curl without -L) still gets the file, and the bucket's URL is never shown. A
larger one is a 302 to the object presigned on S3 at this moment for a few minutes: Lambda's response is
capped at 6 MB, base64 included.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response

from functions.core import links, storage
from functions.core.errors import DarkroomError, FieldError, NotFound

# The most bytes answered inline: base64 makes 4 MiB about 5.6 MB, under Lambda's 6 MB response with headers.
INLINE_MAX_BYTES = 4 * 1024 * 1024
# How long a browser may keep a file it was given: the object under a key never changes.
INLINE_MAX_AGE = 3600


class RangeNotSatisfiable(DarkroomError):
    status = 416


def serve(key: str, event, *, seconds_left: int, cache: str = "private") -> Response[bytes]:
    """The object's bytes (or the Range asked for) when they fit a Lambda response, else a 302 to it on S3,
    presigned now for at most REDIRECT_TTL_SECONDS and never past `seconds_left`. Share pages use it too."""
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
            "location": links.redirect_target(key, seconds_left),
            # The S3 URL behind it lives REDIRECT_TTL_SECONDS: a cached redirect must not outlive it.
            "cache-control": f"{cache}, max-age={min(seconds_left, links.REDIRECT_TTL_SECONDS // 3)}",
            "referrer-policy": "no-referrer"})
    headers = {"cache-control": f"{cache}, max-age={min(seconds_left, INLINE_MAX_AGE)}", "accept-ranges": "bytes",
               "x-content-type-options": "nosniff"}
    if stored.etag:
        headers["etag"] = stored.etag
    if stored.content_range:
        headers["content-range"] = stored.content_range
    return Response(status_code=206 if stored.content_range else 200, content_type=stored.content_type,
                    body=stored.body.read(), headers=headers)
