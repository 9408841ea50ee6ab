"""S3 helpers. Every key starts with the workspace id, so one workspace's media never mixes with another's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import aws, faults
from .settings import get_settings


def output_key(workspace_id: str, job_id: str, index: int, ext: str) -> str:
    return f"{workspace_id}/generations/{job_id}/{index}.{ext}"


def thumbnail_key(workspace_id: str, job_id: str, index: int) -> str:
    return f"{workspace_id}/generations/{job_id}/{index}.thumb.jpg"


def put_bytes(key: str, data: bytes, content_type: str, *, bucket: str | None = None) -> None:
    faults.trip("upload")  # DARKROOM_LOCAL_FAULTS=upload:N, local stack only
    aws.client("s3").put_object(Bucket=bucket or get_settings().outputs_bucket, Key=key, Body=data,
                                ContentType=content_type)


def get_bytes(key: str, *, bucket: str | None = None) -> bytes:
    return aws.client("s3").get_object(Bucket=bucket or get_settings().outputs_bucket, Key=key)["Body"].read()


def delete(keys: list[str], *, bucket: str | None = None) -> None:
    """Delete objects (a missing one is no error). One DeleteObjects call per 1,000 keys."""
    for start in range(0, len(keys), 1000):
        aws.client("s3").delete_objects(Bucket=bucket or get_settings().outputs_bucket, Delete={
            "Objects": [{"Key": key} for key in keys[start:start + 1000]], "Quiet": True})


@dataclass
class StoredObject:
    """An object (or the part a Range asked for) whose body has not been read yet."""

    length: int
    content_type: str
    content_range: str | None
    etag: str | None
    body: Any  # botocore's StreamingBody: read() it, or close() it to abandon the transfer


class ObjectMissing(LookupError):
    pass


class RangeNotSatisfiable(ValueError):
    pass


def open_object(key: str, *, byte_range: str | None = None, bucket: str | None = None) -> StoredObject:
    """GetObject without reading the body, so a caller can choose by its length; a Range is passed to S3."""
    from botocore.exceptions import ClientError

    kwargs = {"Range": byte_range} if byte_range else {}
    try:
        response = aws.client("s3").get_object(Bucket=bucket or get_settings().outputs_bucket, Key=key, **kwargs)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in ("NoSuchKey", "404"):
            raise ObjectMissing(key) from None
        if code == "InvalidRange":
            raise RangeNotSatisfiable(byte_range) from None
        raise
    return StoredObject(length=int(response["ContentLength"]),
                        content_type=response.get("ContentType") or "application/octet-stream",
                        content_range=response.get("ContentRange"), etag=response.get("ETag"),
                        body=response["Body"])


def presigned_get(key: str, *, ttl: int | None = None, bucket: str | None = None) -> str:
    """A GET URL valid for `ttl` seconds (24 h by default, as the vendor APIs promise)."""
    settings = get_settings()
    return aws.client("s3").generate_presigned_url(
        "get_object",
        Params={"Bucket": bucket or settings.outputs_bucket, "Key": key},
        ExpiresIn=ttl or settings.url_ttl_seconds,
    )
