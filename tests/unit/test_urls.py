"""The outbound URL guard (webhooks, reference images): schemes, hosts, private and metadata addresses.

Hosts are IP literals, or names whose resolution is faked: nothing here asks a DNS server.
"""

from __future__ import annotations

import base64
import ipaddress
import socket

import httpx
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


@pytest.mark.parametrize("url", ["http://[64:ff9b::7f00:1]:8000/hook", "http://[2002:7f00:1::]:8000/hook"])
def test_nat64_and_6to4_forms_of_loopback_are_not_loopback_even_locally(url):
    """They leave the machine for a NAT64 gateway or a 6to4 relay: the local loopback allowance is no cover."""
    with pytest.raises(UnsafeUrl, match="not a public address"):
        check_url(url, **LOCAL)
    check_url("http://[::ffff:127.0.0.1]:8000/hook", **LOCAL)  # the mapped form is this machine's loopback


@pytest.mark.parametrize("url", ["https://example.com:0/hook", "http://127.0.0.1:0/hook"])
def test_port_zero_is_refused_not_taken_as_the_default(url):
    with pytest.raises(UnsafeUrl, match="invalid port"):
        check_url(url, resolve=False, **LOCAL)


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


# ---------------------------------------------------------------- every way of spelling a private address

# Each spelling is refused from the URL alone: the resolver is never asked (the autouse fixture fails the
# test if it is), so a resolver that would answer a public address for the odd spelling cannot help it through.
LOOPBACK_FORMS = [
    "http://2130706433/",            # decimal
    "http://0177.0.0.1/",            # octal
    "http://0x7f.0.0.1/",            # hex, per label
    "http://0x7f000001/",            # hex, whole
    "http://127.1/",                 # shorthand
    "http://127.0.0.1./",            # trailing dot
    "http://[::ffff:127.0.0.1]/",    # IPv4-mapped IPv6
    "http://[::ffff:7f00:1]/",
    "http://[::ffff:0:7f00:1]/",     # IPv4-translated
    "http://[::127.0.0.1]/",         # IPv4-compatible (deprecated)
    "http://[64:ff9b::7f00:1]/",     # NAT64
    "http://[2002:7f00:1::]/",       # 6to4
    "http://localhost./",
    "http://api.localhost/",
    "http://127.0.0.1#@good.com/",   # the fragment hides nothing: the host is 127.0.0.1
]
METADATA_FORMS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.169.254./latest/meta-data/",
    "http://2852039166/latest/meta-data/",
    "http://0xa9fea9fe/latest/meta-data/",
    "http://0xa9.0xfe.0xa9.0xfe/latest/meta-data/",
    "http://0251.0376.0251.0376/latest/meta-data/",
    "http://169.254.43518/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/latest/meta-data/",
    "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
    "http://[2002:a9fe:a9fe::]/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://metadata.google.internal./computeMetadata/v1/",
    "http://METADATA.GOOGLE.INTERNAL/computeMetadata/v1/",
    "http://instance-data/latest/meta-data/",
]
NEVER_FORMS = [
    "http://0.0.0.0/", "http://0/", "http://[::]/", "http://[fe80::1]/", "http://[fe80::1%25eth0]/",
    "http://[fc00::1]/", "http://[fd12:3456::1]/", "http://[::ffff:10.0.0.1]/", "http://0x0a000001/",
    "http://[2001:db8::1]/", "http://[64:ff9b:1::a00:1]/",
]
TRICKS = [
    "http://good.com@127.0.0.1/",
    "http://good.com\\@127.0.0.1/",
    "http://127.0.0.1\\@good.com/",
    "http://good.com%40127.0.0.1@127.0.0.1/",
    "http://@127.0.0.1/",
    "http://good.com\t@127.0.0.1/",
    "http://good.com /",
]


@pytest.mark.parametrize("url", LOOPBACK_FORMS + METADATA_FORMS + NEVER_FORMS + TRICKS)
def test_every_spelling_of_a_private_address_is_refused_when_deployed(url):
    with pytest.raises(UnsafeUrl):
        check_url(url, schemes=("https", "http"), **DEPLOYED)
    with pytest.raises(UnsafeUrl):
        urls.pin(url, schemes=("https", "http"), **DEPLOYED)


@pytest.mark.parametrize("url", METADATA_FORMS + NEVER_FORMS + TRICKS)
def test_metadata_and_private_spellings_are_refused_even_locally(url):
    with pytest.raises(UnsafeUrl):
        check_url(url, **LOCAL)


@pytest.mark.parametrize("url", ["http://2130706433/", "http://0x7f000001/", "http://0177.0.0.1/"])
def test_odd_ipv4_spellings_are_refused_even_when_they_mean_a_public_address_locally(url):
    # Not canonical: refused rather than decoded, whatever they mean.
    with pytest.raises(UnsafeUrl, match="non-standard form"):
        check_url(url, **LOCAL)


@pytest.mark.parametrize("url", ["https://[::ffff:93.184.216.34]/x", "https://[2002:5db8:d822::]/x",
                                 "https://[64:ff9b::5db8:d822]/x", "https://93.184.216.34./x"])
def test_ipv6_forms_of_a_public_ipv4_address_are_allowed(url):
    check_url(url, **DEPLOYED)


def test_a_name_whose_labels_are_numbers_is_not_a_name():
    with pytest.raises(UnsafeUrl, match="non-standard form"):
        check_url("https://1.2.3/x", **DEPLOYED)


def test_names_with_digits_are_still_names(monkeypatch):
    fake_dns(monkeypatch, {"1e100.net": ["93.184.216.34"], "0x7f.example.com": ["93.184.216.34"]})
    check_url("https://1e100.net/x", **DEPLOYED)
    check_url("https://0x7f.example.com/x", **DEPLOYED)


# ---------------------------------------------------------------- pin: the address checked is the address used


def rebinding_dns(monkeypatch, name: str, answers: list[list[str]]) -> list[str]:
    """A resolver that answers `answers[0]` the first time, `answers[1]` the second time, …"""
    calls: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        calls.append(host)
        if host != name:
            raise AssertionError(f"resolved {host!r}: only {name!r} may be resolved (the pinned address is used)")
        ips = answers[min(len(calls) - 1, len(answers) - 1)]
        return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (ip, port, 0, 0) if ":" in ip else (ip, port)) for ip in ips]

    monkeypatch.setattr(urls.socket, "getaddrinfo", getaddrinfo)
    return calls


def test_pin_aims_the_url_at_the_checked_address_and_keeps_the_name_for_tls(monkeypatch):
    calls = rebinding_dns(monkeypatch, "hooks.example.com", [["93.184.216.34"], ["127.0.0.1"]])
    pinned = urls.pin("https://hooks.example.com:8443/in?x=1#frag", **DEPLOYED)
    assert calls == ["hooks.example.com"]
    assert pinned.url == "https://93.184.216.34:8443/in?x=1"
    assert pinned.host_header == "hooks.example.com:8443"
    assert pinned.extensions == {"sni_hostname": "hooks.example.com"}


def test_pin_refuses_when_any_answer_is_private(monkeypatch):
    rebinding_dns(monkeypatch, "rebind.example.com", [["93.184.216.34", "10.0.0.7"]])
    with pytest.raises(UnsafeUrl, match="10.0.0.7"):
        urls.pin("https://rebind.example.com/x", **DEPLOYED)


def test_pin_brackets_ipv6_and_prefers_ipv4(monkeypatch):
    rebinding_dns(monkeypatch, "v6.example.com", [["2606:2800:220:1:248:1893:25c8:1946"]])
    assert urls.pin("https://v6.example.com/x", **DEPLOYED).url == "https://[2606:2800:220:1:248:1893:25c8:1946]/x"
    rebinding_dns(monkeypatch, "both.example.com", [["2606:2800:220:1:248:1893:25c8:1946", "93.184.216.34"]])
    assert urls.pin("https://both.example.com/x", **DEPLOYED).address == ipaddress.ip_address("93.184.216.34")


def test_pin_of_a_literal_asks_no_resolver():
    pinned = urls.pin("https://93.184.216.34/x", **DEPLOYED)
    assert pinned.url == "https://93.184.216.34/x" and pinned.extensions == {}


# ---------------------------------------------------------------- webhook delivery: every attempt, pinned


def _job(webhook: str):
    from functions.core.jobs import Job

    return Job(id="65f0c0ffee00000000000001", workspace_id="ws-a", model="flux-schnell", task="text-to-image",
               created_at=1_700_000_000, webhook=webhook, status="succeeded")


@pytest.fixture
def sent(monkeypatch) -> list[httpx.Request]:
    """Webhook POSTs land in a list through httpx's MockTransport: nothing leaves the process."""
    from functions.webhooks import delivery

    requests: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.url.path == "/redirect":
            return httpx.Response(302, headers={"location": "http://169.254.169.254/latest/meta-data/"})
        return httpx.Response(200)

    clients: dict = {}
    monkeypatch.setattr(delivery, "http_client", lambda name=None: clients.setdefault(
        name, httpx.AsyncClient(transport=httpx.MockTransport(handle), follow_redirects=False)))
    monkeypatch.delenv("DARKROOM_LOCAL", raising=False)
    from functions.core.settings import get_settings
    get_settings.cache_clear()
    yield requests
    get_settings.cache_clear()


def _post(url: str):
    from functions.core.messages import WebhookMessage
    from functions.webhooks import delivery

    return delivery.post(_job(url), WebhookMessage(event_id="evt_1", job_id="65f0c0ffee00000000000001",
                                                   event="generation.succeeded"),
                         ["whsec_" + base64.b64encode(b"k" * 24).decode()])


def test_a_webhook_goes_to_the_address_that_was_checked(monkeypatch, sent):
    calls = rebinding_dns(monkeypatch, "hooks.example.com", [["93.184.216.34"], ["169.254.169.254"]])
    assert _post("https://hooks.example.com/in").outcome == "delivered"
    assert calls == ["hooks.example.com"]  # one lookup: the connection did not resolve again
    (request,) = sent
    assert request.url.host == "93.184.216.34" and request.headers["host"] == "hooks.example.com"
    assert request.extensions["sni_hostname"] == "hooks.example.com"


def test_each_attempt_checks_again_and_a_rebound_name_is_not_sent_to(monkeypatch, sent):
    rebinding_dns(monkeypatch, "hooks.example.com", [["93.184.216.34"], ["10.0.0.7"]])
    assert _post("https://hooks.example.com/in").outcome == "delivered"
    second = _post("https://hooks.example.com/in")
    assert second.outcome == "unsafe" and "10.0.0.7" in second.error
    assert len(sent) == 1


def test_a_webhook_redirect_to_metadata_is_not_followed(monkeypatch, sent):
    rebinding_dns(monkeypatch, "hooks.example.com", [["93.184.216.34"]])
    attempt = _post("https://hooks.example.com/redirect")
    assert attempt.outcome == "rejected" and attempt.status_code == 302
    assert [str(r.url) for r in sent] == ["https://93.184.216.34/redirect"]


@pytest.mark.parametrize("url", [u.replace("http://", "https://", 1) for u in
                                 LOOPBACK_FORMS + METADATA_FORMS + NEVER_FORMS + TRICKS])
def test_no_spelling_of_a_private_address_gets_a_webhook(url, sent):
    attempt = _post(url)
    assert attempt.outcome == "unsafe" and sent == []


@pytest.mark.parametrize("url", [u.replace("http://", "https://", 1) for u in
                                 LOOPBACK_FORMS + METADATA_FORMS + NEVER_FORMS + TRICKS])
def test_no_spelling_of_a_private_address_is_accepted_as_a_webhook_at_submit(url, monkeypatch):
    from functions.core.errors import ValidationFailed
    from functions.core.settings import get_settings
    from functions.core.submit import check_webhook

    monkeypatch.delenv("DARKROOM_LOCAL", raising=False)
    get_settings.cache_clear()
    try:
        with pytest.raises(ValidationFailed) as refused:
            check_webhook(url)
    finally:
        get_settings.cache_clear()
    assert refused.value.status == 400 and refused.value.errors[0].field == "webhook"


def test_webhook_clients_are_kept_for_the_most_recent_receivers_and_the_others_closed():
    """One client per receiver TLS name, each with an SSL context and idle sockets: a warm function delivering to
    many tenants keeps the CLIENTS_KEPT most recently used and closes the one used longest ago."""
    from functions.webhooks import delivery

    first = delivery.http_client("first.example")
    kept = [delivery.http_client(f"r{i}.example") for i in range(delivery.CLIENTS_KEPT - 1)]
    assert delivery.http_client("first.example") is first  # used again: now the most recent
    delivery.http_client("one-more.example")
    assert not first.is_closed and kept[0].is_closed
    assert all(not c.is_closed for c in kept[1:])
    assert delivery.http_client(f"r{delivery.CLIENTS_KEPT - 2}.example") is kept[-1]
