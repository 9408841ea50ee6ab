"""Media links (functions/core/links.py): signed with a key of the stack's, valid until their stated expiry and
not a second after, whatever time it is when they are read. The clock is the test's; nothing here calls AWS."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from functions.core import clock, links
from functions.core.errors import Forbidden

KEY = "ws_1/generations/65a1b2c3d4e5f60718293a4b/0.png"
T0 = 1_800_000_000


@pytest.fixture(autouse=True)
def configured(monkeypatch):
    monkeypatch.setenv("DARKROOM_PUBLIC_BASE_URL", "https://media.example.com/")
    monkeypatch.setattr(links, "_signing_key", lambda: "k" * 64)
    from functions.core.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def now(monkeypatch):
    moment = [float(T0)]
    monkeypatch.setattr(clock, "now", lambda: moment[0])
    return moment


def parts(url: str) -> tuple[str, str, str]:
    split = urlsplit(url)
    query = parse_qs(split.query)
    return split.path.removeprefix(links.MEDIA_PATH), query["expires"][0], query["signature"][0]


def test_a_link_names_the_configured_origin_and_states_its_expiry(now):
    url = links.media_url(KEY)
    assert url.startswith(f"https://media.example.com/media/{KEY}?expires={T0 + 24 * 3600}&signature=")
    assert parts(links.media_url(KEY, ttl=60))[1] == str(T0 + 60)


def test_a_link_works_until_its_stated_expiry_and_not_after(now):
    key, expires, signature = parts(links.media_url(KEY))
    assert links.verify(key, expires, signature) == 24 * 3600
    now[0] = int(expires) - 1  # a second before: still good, and its redirect never outlives it
    assert links.verify(key, expires, signature) == 1
    now[0] = int(expires)
    with pytest.raises(Forbidden) as refused:
        links.verify(key, expires, signature)
    assert refused.value.errors[0].field == "expires" and refused.value.code == "link_expired"


@pytest.mark.parametrize("tamper", ["key", "expires", "signature", "no signature", "no expiry", "junk expiry"])
def test_an_altered_link_is_refused_naming_the_field(now, tamper):
    key, expires, signature = parts(links.media_url(KEY))
    field = {"key": "signature", "expires": "signature", "signature": "signature", "no signature": "signature",
             "no expiry": "expires", "junk expiry": "expires"}[tamper]
    args = {"key": (KEY.replace("0.png", "1.png"), expires, signature),
            "expires": (key, str(int(expires) + 3600), signature),  # a longer life is a new signature
            "signature": (key, expires, signature[:-2] + ("AA" if not signature.endswith("AA") else "BB")),
            "no signature": (key, expires, None),
            "no expiry": (key, None, signature),
            "junk expiry": (key, "1e12", signature)}[tamper]
    with pytest.raises(Forbidden) as refused:
        links.verify(*args)
    assert refused.value.errors[0].field == field


def test_a_link_signed_with_another_stacks_key_is_refused(now, monkeypatch):
    key, expires, signature = parts(links.media_url(KEY))
    monkeypatch.setattr(links, "_signing_key", lambda: "other" * 13)
    with pytest.raises(Forbidden):
        links.verify(key, expires, signature)


@pytest.mark.parametrize("key", ["ws/other/j/x.png", "../ws/generations/j/0.png", "ws/generations/j/0.png?x=1",
                                 "ws/generations/j/a/b.png", "ws/uploads/up_1", ""])
def test_only_darkroom_media_keys_get_links(key):
    with pytest.raises(ValueError):
        links.media_url(key)


def test_the_redirect_is_presigned_now_and_never_outlives_the_link(monkeypatch):
    asked = []
    monkeypatch.setattr(links.storage, "presigned_get", lambda key, *, ttl=None: asked.append((key, ttl)) or "s3")
    links.redirect_target(KEY, 24 * 3600)
    links.redirect_target(KEY, 5)
    assert asked == [(KEY, links.REDIRECT_TTL_SECONDS), (KEY, 5)]
