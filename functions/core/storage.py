"""S3 helpers. Every key starts with the workspace id, so one workspace's media never mixes with another's."""

from __future__ import annotations

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


def presigned_get(key: str, *, ttl: int | None = None, bucket: str | None = None) -> str:
    """A GET URL valid for `ttl` seconds (24 h by default, as the vendor APIs promise)."""
    settings = get_settings()
    return aws.client("s3").generate_presigned_url(
        "get_object",
        Params={"Bucket": bucket or settings.outputs_bucket, "Key": key},
        ExpiresIn=ttl or settings.url_ttl_seconds,
    )
