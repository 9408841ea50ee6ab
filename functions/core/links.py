"""The links Darkroom hands out: its public origin, and media URLs that live exactly as long as they say.

**Why not presigned S3 URLs.** A presigned URL dies with the credentials that signed it ("If you created a
presigned URL using a temporary token, then the URL expires when the token expires, even if the URL was created
with a later expiration time": S3 User Guide, "Sharing objects with presigned URLs"). A Lambda's role
credentials are temporary, so links promised for 24 h died hours earlier. Darkroom's media URLs are its own:

    <public base>/media/<S3 key>?expires=<unix seconds>&signature=<HMAC-SHA256 of key and expiry>

signed with a key kept in Secrets Manager (template.yaml: MediaSigningSecret). `GET /media/…` checks the
signature and the expiry, then redirects to an S3 URL presigned at that moment for a few minutes
(`REDIRECT_TTL_SECONDS`), with whatever credentials the function holds then.

**The public base** comes from configuration, never from a request header: DARKROOM_PUBLIC_BASE_URL if set,
else the SSM parameter the stack writes (template.yaml: PublicBaseUrlParameter; its `PublicBaseUrl` parameter,
or `ApiUrl`). The function cannot be told its own URL in its environment: the URL resource depends on the
function, so that would be a cycle. The local stack writes the same parameter with its own URL.

Both are read on first need and cached per container (`CACHE_SECONDS`), so a warm request makes no call.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
from urllib.parse import urlencode

from . import aws, clock, storage
from .errors import FieldError, Forbidden
from .settings import get_settings

MEDIA_PATH = "/media/"
# The presigned S3 URL a media link redirects to: long enough to follow the redirect and download a video.
REDIRECT_TTL_SECONDS = 900
# How long a container keeps the public base and the signing key before reading them again.
CACHE_SECONDS = 300
# The S3 keys Darkroom hands links to: <workspace>/generations/<job>/<file> and <workspace>/uploads/<id>/<file>.
_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}/(generations|uploads)/[A-Za-z0-9_-]{1,64}/[A-Za-z0-9_.-]{1,128}$")


class ConfigurationError(RuntimeError):
    """The stack's configuration is missing a value links need (a deploy problem, not a client's)."""


_lock = threading.Lock()
_providers: dict[str, object] = {}


def reset() -> None:
    """Forget the cached base and key (tests, and the local stack after it rewrites them)."""
    with _lock:
        _providers.clear()


def _provider(kind: str):
    """Powertools' parameter providers on the process's shared clients; each caches what it read."""
    with _lock:
        if kind not in _providers:
            from aws_lambda_powertools.utilities import parameters

            cls = {"ssm": parameters.SSMProvider, "secretsmanager": parameters.SecretsProvider}[kind]
            _providers[kind] = cls(boto3_client=aws.client(kind))
        return _providers[kind]


def public_base_url() -> str:
    """The API's public origin, without a trailing slash (share pages, media links)."""
    settings = get_settings()
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")
    if not settings.public_base_url_parameter:
        raise ConfigurationError("neither DARKROOM_PUBLIC_BASE_URL nor DARKROOM_PUBLIC_BASE_URL_PARAMETER is set")
    return str(_provider("ssm").get(settings.public_base_url_parameter, max_age=CACHE_SECONDS)).rstrip("/")


def _signing_key() -> str:
    arn = get_settings().media_signing_secret_arn
    if not arn:
        raise ConfigurationError("DARKROOM_MEDIA_SIGNING_SECRET_ARN is not set")
    return str(_provider("secretsmanager").get(arn, max_age=CACHE_SECONDS))


def _signature(key: str, expires: int, signing_key: str) -> str:
    digest = hmac.new(signing_key.encode(), f"{key}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def media_url(key: str, *, ttl: int | None = None) -> str:
    """A link to the object `key` that works for `ttl` seconds (url_ttl_seconds, 24 h, by default)."""
    if not _KEY.match(key):
        raise ValueError(f"not a media key: {key!r}")
    expires = int(clock.now()) + (ttl or get_settings().url_ttl_seconds)
    query = urlencode({"expires": expires, "signature": _signature(key, expires, _signing_key())})
    return f"{public_base_url()}{MEDIA_PATH}{key}?{query}"


def _refused(field: str, reason: str, code: str) -> Forbidden:
    return Forbidden(f"This media link {reason}", errors=[FieldError(field, reason, code)], code=code)


def verify(key: str, expires: str | None, signature: str | None) -> int:
    """Seconds the link for `key` has left; Forbidden naming the query field when it is forged or expired."""
    if not expires or not expires.isdigit() or len(expires) > 12:
        raise _refused("expires", "has no valid expiry", "invalid_link")
    if not signature or not _KEY.match(key):
        raise _refused("signature", "is not signed", "invalid_link")
    expected = _signature(key, int(expires), _signing_key())
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise _refused("signature", "has an invalid signature", "invalid_link")
    left = int(expires) - int(clock.now())
    if left <= 0:
        raise _refused("expires", "has expired", "link_expired")
    return left


def redirect_target(key: str, seconds_left: int) -> str:
    """An S3 URL for `key` signed now, never valid past the link's own expiry."""
    return storage.presigned_get(key, ttl=max(1, min(REDIRECT_TTL_SECONDS, seconds_left)))
