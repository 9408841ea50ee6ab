"""Outbound URL safety (SSRF guard), shared by webhooks and reference-image fetching.

Deployed: https only (http also for references), public addresses only. The local stack allows loopback so
developers can point webhooks at their laptop. Cloud metadata addresses are refused everywhere.

`pin` is what a sender uses: it checks the URL, resolves the name once, checks every address, and gives the
URL aimed at the checked address, so a second DNS answer (rebinding) can never pick the connection's target.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
                      ipaddress.ip_address("169.254.170.2")}
# Names that mean the cloud metadata service whatever DNS says (GCP, AWS, Azure's wireserver alias).
METADATA_NAMES = {"metadata.google.internal", "metadata.goog", "metadata", "instance-data",
                  "instance-data.ec2.internal"}
# IPv6 forms that carry an IPv4 address, which the connection may end up using: checked as that address.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"),)
# IPv6 forms with no public use that still reach IPv4 hosts on some stacks: refused outright.
_NEVER = (ipaddress.ip_network("::/96"), ipaddress.ip_network("::ffff:0:0:0/96"),
          ipaddress.ip_network("64:ff9b:1::/48"))
# A host whose labels are all numbers (decimal, octal 0177, hex 0x7f) is an IPv4 address to inet_aton, and so
# to getaddrinfo and every HTTP client: only the canonical dotted quad is accepted.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*\.?$")


class UnsafeUrl(ValueError):
    pass


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def check_address(ip: IPAddress, *, allow_loopback: bool) -> None:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            if ip in METADATA_ADDRESSES or embedded in METADATA_ADDRESSES:
                raise UnsafeUrl(f"{ip} is a cloud metadata address")
            # Only the IPv4-mapped form reaches this machine's loopback; a NAT64 or 6to4 address of 127.0.0.1
            # goes out to a gateway or relay, so the local stack's loopback allowance does not cover it.
            mapped = ip.ipv4_mapped is not None
            try:
                check_address(embedded, allow_loopback=allow_loopback and mapped)
            except UnsafeUrl:
                raise UnsafeUrl(f"{ip} is not a public address ({embedded})") from None
            return
        if any(ip in net for net in _NEVER) and not ip.is_loopback and not ip.is_unspecified:
            raise UnsafeUrl(f"{ip} is not a public address")
    if ip in METADATA_ADDRESSES:
        raise UnsafeUrl(f"{ip} is a cloud metadata address")
    if ip.is_loopback and allow_loopback:
        return
    if not ip.is_global:
        raise UnsafeUrl(f"{ip} is not a public address")


def _host(url: str, *, allow_loopback: bool, schemes: tuple[str, ...]) -> tuple[str, IPAddress | None, int]:
    """The URL's host (lowercase, no trailing dot), its address if it is a literal, and the port to use."""
    if any(ord(c) < 0x21 or c in "\\\x7f" for c in url):
        # Parsers disagree on backslashes and whitespace (WHATWG treats "\" as "/"): refuse, don't guess.
        raise UnsafeUrl("must not contain spaces, control characters or backslashes")
    try:
        parts = urlsplit(url)
    except ValueError:  # unbalanced brackets ("http://[", "http://a]b"): a 400, not a 500
        raise UnsafeUrl("is not a valid URL") from None
    allowed = schemes + (("http",) if allow_loopback and "http" not in schemes else ())
    if parts.scheme not in allowed:
        raise UnsafeUrl(f"must use {' or '.join(allowed)}")
    if not parts.hostname:
        raise UnsafeUrl("has no host")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeUrl("must not carry credentials")
    try:
        port = parts.port if parts.port is not None else (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeUrl("has an invalid port") from None
    if port == 0:  # was taken as "no port" and sent to 80 or 443
        raise UnsafeUrl("has an invalid port (0)")
    host = parts.hostname
    # "localhost." and "metadata.google.internal." are the same names as without the dot.
    name = host[:-1] if host.endswith(".") and not host.endswith("..") else host
    if not name or name.startswith(".") or ".." in name:
        raise UnsafeUrl(f"host {host!r} is not a valid name")
    try:
        return name, ipaddress.ip_address(name), port
    except ValueError:
        pass
    if _NUMERIC_HOST.match(name):
        raise UnsafeUrl(f"host {host!r} is an IPv4 address in a non-standard form; write it as a dotted quad")
    if name in METADATA_NAMES:
        raise UnsafeUrl(f"{host} is a cloud metadata name")
    if _is_localhost(name) and not allow_loopback:
        raise UnsafeUrl(f"{host} is a loopback name, not a public address")
    return name, None, port


def _is_localhost(name: str) -> bool:
    # RFC 6761: localhost and every name under it are loopback, whatever a resolver says.
    return name == "localhost" or name.endswith(".localhost")


def _resolve(name: str, port: int) -> list[IPAddress]:
    infos = socket.getaddrinfo(name, port, proto=socket.IPPROTO_TCP)
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def check_url(url: str, *, allow_loopback: bool, schemes: tuple[str, ...] = ("https",), resolve: bool = True,
              must_resolve: bool = True) -> None:
    """Raise UnsafeUrl unless `url` is well formed, uses an allowed scheme and resolves only to allowed addresses.

    With must_resolve=False a name that does not resolve (yet) passes: at submit time DNS may be briefly
    unavailable, and every delivery attempt checks the resolved address again anyway.
    """
    name, literal, port = _host(url, allow_loopback=allow_loopback, schemes=schemes)
    if literal is not None:
        check_address(literal, allow_loopback=allow_loopback)
        return
    if not resolve or (allow_loopback and _is_localhost(name)):
        return
    try:
        addresses = _resolve(name, port)
    except (socket.gaierror, UnicodeError) as exc:
        if not must_resolve:
            return
        raise UnsafeUrl(f"host {name} does not resolve") from exc
    for address in addresses:
        check_address(address, allow_loopback=allow_loopback)


@dataclass(frozen=True)
class Pinned:
    """A checked URL aimed at the address that was checked. Send `url` with `headers` and `extensions`."""

    url: str
    address: IPAddress
    host_header: str
    sni_hostname: str | None

    @property
    def extensions(self) -> dict[str, str]:
        # httpx/httpcore: TLS SNI, and so the certificate check, keep the original name.
        return {"sni_hostname": self.sni_hostname} if self.sni_hostname else {}


def pin(url: str, *, allow_loopback: bool, schemes: tuple[str, ...] = ("https",)) -> Pinned:
    """Check `url`, resolve its host once, check every address, and aim the URL at the first one."""
    name, literal, port = _host(url, allow_loopback=allow_loopback, schemes=schemes)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            addresses = _resolve(name, port)
        except (socket.gaierror, UnicodeError):
            raise UnsafeUrl(f"host {name} does not resolve") from None
        if not addresses:
            raise UnsafeUrl(f"host {name} does not resolve")
    for address in addresses:
        check_address(address, allow_loopback=allow_loopback)
    parts = urlsplit(url)
    # IPv4 first: one address is used, and "localhost" servers often listen on 127.0.0.1 only.
    address = min(addresses, key=lambda a: a.version)  # stable: the first IPv4 answer
    shown = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{shown}:{parts.port}" if parts.port else shown
    target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    sni = name if parts.scheme == "https" and literal is None else None
    return Pinned(url=target, address=address, host_header=parts.netloc, sni_hostname=sni)
