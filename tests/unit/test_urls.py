"""The outbound URL guard (webhooks, reference images): schemes, hosts, private and metadata addresses.

Hosts are IP literals, or names whose resolution is faked: nothing here asks a DNS server.
"""

from __future__ import annotations

import socket

import pytest

from functions.core import urls
from functions.core.urls import UnsafeUrl, check_url

DEPLOYED = {"allow_loopback": False}
LOCAL = {"allow_loopback": True}


@pytest.fixture(autouse=True)
def _no_dns(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"check_url resolved a name: {args}")
    monkeypatch.setattr(urls.socket, "getaddrinfo", refuse)


def fake_dns(monkeypatch, answers: dict[str, list[str]]) -> list[tuple]:
    calls: list[tuple] = []

    def getaddrinfo(host, port, *args, **kwargs):
        calls.append((host, port))
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (ip, port, 0, 0) if ":" in ip else (ip, port)) for ip in answers[host]]

    monkeypatch.setattr(urls.socket, "getaddrinfo", getaddrinfo)
    return calls


@pytest.mark.parametrize("mode", [DEPLOYED, LOCAL], ids=["deployed", "local"])
@pytest.mark.parametrize("url", [
    "https://93.184.216.34/x",
    "https://93.184.216.34:8443/hooks/darkroom?x=1",
    "https://[2606:2800:220:1:248:1893:25c8:1946]/x",
])
def test_public_https_is_allowed(url, mode):
    check_url(url, **mode)


def test_http_refused_when_deployed():
    with pytest.raises(UnsafeUrl):
        check_url("http://93.184.216.34/x", **DEPLOYED)


def test_http_allowed_locally():
    check_url("http://93.184.216.34/x", **LOCAL)


def test_http_allowed_when_the_caller_allows_it():
    check_url("http://93.184.216.34/ref.png", schemes=("https", "http"), **DEPLOYED)


@pytest.mark.parametrize("url", ["ftp://93.184.216.34/x", "file:///etc/passwd", "gopher://93.184.216.34/",
                                 "javascript:alert(1)", "93.184.216.34/x", "//93.184.216.34/x"])
@pytest.mark.parametrize("mode", [DEPLOYED, LOCAL], ids=["deployed", "local"])
def test_other_schemes_refused(url, mode):
    with pytest.raises(UnsafeUrl):
        check_url(url, **mode)


@pytest.mark.parametrize("url", ["https://127.0.0.1/x", "http://127.0.0.1:8000/hook", "https://[::1]/x",
                                 "https://127.1.2.3/x"])
def test_loopback_refused_when_deployed(url):
    with pytest.raises(UnsafeUrl):
        check_url(url, schemes=("https", "http"), **DEPLOYED)


@pytest.mark.parametrize("url", ["https://127.0.0.1/x", "http://127.0.0.1:8000/hook", "http://[::1]:9000/x",
                                 "http://localhost:8000/hook"])
def test_loopback_allowed_locally(url):
    check_url(url, **LOCAL)


@pytest.mark.parametrize("url", [
    "https://10.0.0.1/x",
    "https://10.255.255.255/x",
    "https://172.16.0.1/x",
    "https://192.168.1.1/x",
    "https://100.64.0.1/x",
    "https://0.0.0.0/x",
    "https://169.254.169.254/latest/meta-data/",
    "http://169.254.169.254/latest/meta-data/",
    "https://169.254.170.2/v2/credentials",
    "https://[fd00:ec2::254]/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "https://[fe80::1]/x",
    "https://[fc00::1]/x",
    "https://[::ffff:169.254.169.254]/x",
    "https://[::ffff:10.0.0.1]/x",
])
@pytest.mark.parametrize("mode", [DEPLOYED, LOCAL], ids=["deployed", "local"])
def test_private_and_metadata_addresses_refused_always(url, mode):
    with pytest.raises(UnsafeUrl):
        check_url(url, schemes=("https", "http"), **mode)


@pytest.mark.parametrize("url", ["https://user:pass@93.184.216.34/x", "https://user@93.184.216.34/x",
                                 "https://:secret@93.184.216.34/x", "https://user:pass@127.0.0.1:8000/x"])
@pytest.mark.parametrize("mode", [DEPLOYED, LOCAL], ids=["deployed", "local"])
def test_credentials_refused(url, mode):
    with pytest.raises(UnsafeUrl, match="credentials"):
        check_url(url, **mode)


@pytest.mark.parametrize("url", ["https:///x", "https://", "https://:443/x", "https:x", "http:///x"])
@pytest.mark.parametrize("mode", [DEPLOYED, LOCAL], ids=["deployed", "local"])
def test_no_host_refused(url, mode):
    with pytest.raises(UnsafeUrl):
        check_url(url, **mode)


def test_names_are_not_resolved_when_told_not_to():
    check_url("https://hooks.example.com/x", resolve=False, **DEPLOYED)


# ---------------------------------------------------------------- names, with faked resolution


def test_name_resolving_to_public_addresses_is_allowed(monkeypatch):
    calls = fake_dns(monkeypatch, {"hooks.example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]})
    check_url("https://hooks.example.com/x", **DEPLOYED)
    assert calls == [("hooks.example.com", 443)]


def test_resolution_uses_the_url_port(monkeypatch):
    calls = fake_dns(monkeypatch, {"hooks.example.com": ["93.184.216.34"]})
    check_url("https://hooks.example.com:8443/x", **DEPLOYED)
    assert calls == [("hooks.example.com", 8443)]


@pytest.mark.parametrize("answers", [["10.0.0.7"], ["93.184.216.34", "192.168.0.5"], ["169.254.169.254"],
                                     ["fd00:ec2::254"], ["127.0.0.1"]])
def test_name_resolving_to_any_private_address_is_refused(monkeypatch, answers):
    fake_dns(monkeypatch, {"rebind.example.com": answers})
    with pytest.raises(UnsafeUrl):
        check_url("https://rebind.example.com/x", **DEPLOYED)


def test_metadata_behind_a_name_is_refused_even_locally(monkeypatch):
    fake_dns(monkeypatch, {"metadata.example.com": ["169.254.169.254"]})
    with pytest.raises(UnsafeUrl, match="metadata"):
        check_url("http://metadata.example.com/x", **LOCAL)


def test_name_that_does_not_resolve_is_refused(monkeypatch):
    fake_dns(monkeypatch, {})
    with pytest.raises(UnsafeUrl, match="does not resolve"):
        check_url("https://nowhere.invalid/x", **DEPLOYED)


def test_unresolvable_name_may_pass_when_resolution_is_optional(monkeypatch):
    fake_dns(monkeypatch, {})
    check_url("https://not-yet.example.com/x", must_resolve=False, **DEPLOYED)


def test_optional_resolution_still_refuses_private_answers(monkeypatch):
    fake_dns(monkeypatch, {"rebind.example.com": ["10.0.0.7"]})
    with pytest.raises(UnsafeUrl):
        check_url("https://rebind.example.com/x", must_resolve=False, **DEPLOYED)
