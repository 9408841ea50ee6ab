"""Outbound URL safety (SSRF guard), shared by webhooks and reference-image fetching.

Deployed: https only (http also for references), public addresses only. The local stack allows loopback so
developers can point webhooks at their laptop. Cloud metadata addresses are refused everywhere.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}


class UnsafeUrl(ValueError):
    pass


def check_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, *, allow_loopback: bool) -> None:
    if ip in METADATA_ADDRESSES:
        raise UnsafeUrl(f"{ip} is a cloud metadata address")
    if ip.is_loopback and allow_loopback:
        return
    if not ip.is_global:
        raise UnsafeUrl(f"{ip} is not a public address")


def check_url(url: str, *, allow_loopback: bool, schemes: tuple[str, ...] = ("https",), resolve: bool = True,
              must_resolve: bool = True) -> None:
    """Raise UnsafeUrl unless `url` is well formed, uses an allowed scheme and resolves only to allowed addresses.

    With must_resolve=False a name that does not resolve (yet) passes: at submit time DNS may be briefly
    unavailable, and every delivery attempt checks the resolved address again anyway.
    """
    parts = urlsplit(url)
    allowed = schemes + (("http",) if allow_loopback and "http" not in schemes else ())
    if parts.scheme not in allowed:
        raise UnsafeUrl(f"must use {' or '.join(allowed)}")
    if not parts.hostname:
        raise UnsafeUrl("has no host")
    if parts.username or parts.password:
        raise UnsafeUrl("must not carry credentials")
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        literal = None
    if literal is not None:
        check_address(literal, allow_loopback=allow_loopback)
        return
    if parts.hostname == "localhost" and allow_loopback:
        return
    if not resolve:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        if not must_resolve:
            return
        raise UnsafeUrl(f"host {parts.hostname} does not resolve") from exc
    for info in infos:
        check_address(ipaddress.ip_address(info[4][0]), allow_loopback=allow_loopback)
