"""The web console (/console) in real headless Chromium against `darkroom dev`: sign in, generate and see the
image, the gallery, keys (a revoked key is then refused by the API), webhooks, usage, LoRAs (list, upload, add by
URL, generate with one and see it reported, delete), a bad key's message, and a phone-width layout with no
horizontal scroll.

The same code takes the README's screenshots: `make screenshots` runs this module with
DARKROOM_SCREENSHOTS_DIR=docs/screenshots; otherwise they go to a temporary directory (and are still checked).
Chromium is Debian's (`make test` installs it); Playwright never downloads a browser.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from PIL import Image

from infra.local.receiver import WebhookReceiver
from tests.e2e.conftest import REPO_ROOT, RunningStack, _wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-console")]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
UI_TIMEOUT_MS = 60_000  # generous: the machine running the tests may be busy; nothing here is a timing claim
PAGES = ("playground", "gallery", "loras", "keys", "webhooks", "usage")
DEV_LORAS_TIMEOUT_S = 240  # the stack registers its tiny-<family> LoRAs once its tiny models are warm
# What the tests below photograph; the README links each one.
SCREENSHOTS = ("sign-in", "playground", "gallery", "gallery-detail", "keys", "webhooks", "usage", "loras",
               "phone-playground", "phone-gallery")


@pytest.fixture(scope="module")
def console_stack(launch, tmp_path_factory) -> Iterator[RunningStack]:
    # Key lookups uncached: each of the stack's API environments must see a revocation on its next request,
    # so "revoked means 401" is checked without waiting out the 30 s cache.
    running = launch(tmp_path_factory.mktemp("console"), extra_env={"DARKROOM_KEY_CACHE_TTL_SECONDS": "0"})
    yield running
    running.stop()


@pytest.fixture(scope="module")
def api(console_stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=console_stack.url, timeout=30,
                      headers={"Authorization": console_stack.api_key}) as client:
        yield client


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def history(api, receiver) -> dict[str, str]:
    """A few finished jobs made through the API, as curl would: the gallery and the delivery log show them."""
    jobs = {}
    for name, body in {
        "public": {"model": "sdxl-turbo", "input": {"prompt": "A lighthouse on a cliff at dusk", "size": "256x256",
                                                    "make_public": True}},
        "webhook": {"model": "flux-schnell", "input": {"prompt": "Neon koi pond, top view", "size": "256x256",
                                                       "style": "cyberpunk-style"}, "webhook": receiver.url},
        "plain": {"model": "flux-schnell", "input": {"prompt": "Paper boats on a rainy street", "size": "256x256"}},
    }.items():
        response = api.post("/api/generate", json=body)
        assert response.status_code == 200, response.text
        jobs[name] = response.json()["id"]
    for job_id in jobs.values():
        assert _wait_for(api, api.headers["Authorization"], job_id)["status"] == "success"
    return jobs


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM,
                                              args=["--headless", "--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    target = os.environ.get("DARKROOM_SCREENSHOTS_DIR")
    path = (REPO_ROOT / target) if target else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


class Console:
    """One browser tab on the console; every console error (a CSP violation, a script error) is kept."""

    def __init__(self, browser, stack: RunningStack, viewport: dict[str, int]) -> None:
        self.stack = stack
        self.context = browser.new_context(viewport=viewport, device_scale_factor=1)
        self.page = self.context.new_page()
        self.page.set_default_timeout(UI_TIMEOUT_MS)
        self.errors: list[str] = []
        self.allowed: list[str] = ["401"]  # 401s of the bad-key test are the API answering, not the page failing
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, route: str = "") -> None:
        self.page.goto(f"{self.stack.url}/console" + (f"#/{route}" if route else ""))

    def sign_in(self, key: str | None = None) -> None:
        self.open()
        self.page.fill("#api-key", key or self.stack.api_key)
        self.page.click("form.signin-card button[type=submit]")

    def go(self, route: str) -> None:
        self.page.evaluate("route => { location.hash = '#/' + route; }", route)
        self.page.wait_for_selector(f"nav a.active[href='#/{route.split('/')[0]}']")

    def shot(self, directory: Path, name: str) -> Path:
        self.page.wait_for_load_state("networkidle")
        assert name in SCREENSHOTS, name
        path = directory / f"{name}.png"
        self.page.screenshot(path=str(path))
        _shrink(path)
        return path

    def allow(self, fragment: str) -> None:
        """A test that makes the API refuse on purpose: Chromium logs each 4xx as a console error."""
        self.allowed.append(fragment)

    def close(self) -> list[str]:
        self.context.close()
        return [e for e in self.errors if not any(fragment in e for fragment in self.allowed)]


def _shrink(path: Path) -> None:
    """Screenshots are committed: a 128-colour palette keeps each one small."""
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


@pytest.fixture
def desktop(browser, console_stack):
    tab = Console(browser, console_stack, DESKTOP)
    yield tab
    assert tab.close() == [], "the console logged errors"


@pytest.fixture
def phone(browser, console_stack):
    tab = Console(browser, console_stack, PHONE)
    yield tab
    assert tab.close() == [], "the console logged errors"


# The elements sticking out past the right edge of the viewport, to say what to fix.
OVERFLOWING = """() => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
  .slice(0, 5).map(e => `${e.tagName.toLowerCase()}.${e.className}`)"""


def _dev_loras(api: httpx.Client) -> dict[str, dict]:
    """The dev workspace's LoRAs by name, once the stack has registered tiny-flux (its tiny-<family> LoRAs are
    registered one by one after its models are warm: infra/local/dev_loras.py)."""
    deadline = time.monotonic() + DEV_LORAS_TIMEOUT_S
    while True:
        response = api.get("/api/loras")
        assert response.status_code == 200, response.text
        by_name = {lora["name"]: lora for lora in response.json()["data"]}
        if "tiny-flux" in by_name or time.monotonic() > deadline:
            return by_name
        time.sleep(1)


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, *_args) -> None:
        pass


def _serve_files(directory: Path) -> tuple[ThreadingHTTPServer, str]:
    """A plain file server on 127.0.0.1 (the local stack takes loopback http URLs for LoRAs)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietFiles, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _natural_width(page, selector: str) -> int:
    page.wait_for_function(
        "s => { const img = document.querySelector(s); return img && img.complete && img.naturalWidth > 0; }",
        arg=selector)
    return page.eval_on_selector(selector, "img => img.naturalWidth")


# ---------------------------------------------------------------- the files themselves


def test_console_is_served_without_a_key_with_its_types_and_a_strict_policy(console_stack):
    with httpx.Client(base_url=console_stack.url, timeout=30) as client:
        page = client.get("/console")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert '<script type="module" src="/console/app.js">' in page.text
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy and "'unsafe-inline'" not in policy
        assert "frame-ancestors 'none'" in policy
        for name, kind in {"app.js": "text/javascript", "style.css": "text/css", "icon.svg": "image/svg+xml"}.items():
            response = client.get(f"/console/{name}")
            assert response.status_code == 200, name
            assert response.headers["content-type"].startswith(kind), name
            assert response.headers["x-content-type-options"] == "nosniff"
            again = client.get(f"/console/{name}", headers={"If-None-Match": response.headers["etag"]})
            assert again.status_code == 304 and again.content == b"", name
        # Only the console's own files: no source, no other folder, in the native error shape.
        for path in ("/console/console.py", "/console/nope.js", "/console/..%2Fconsole.py", "/console/a/b"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert response.json()["message"], path
        # The page is public; the API behind it is not.
        assert client.get("/api/account").status_code == 401


def test_the_lambda_artifact_ships_the_console_files(tmp_path):
    """infra/build/artifacts.py copies functions/ with CODE_IGNORED; what it copies is what the route reads."""
    from infra.build.artifacts import CODE_IGNORED, FUNCTIONS

    shutil.copytree(FUNCTIONS, tmp_path / "functions", ignore=CODE_IGNORED)
    shipped = {p.name for p in (tmp_path / "functions" / "api" / "console").iterdir()}
    source = {p.name for p in (FUNCTIONS / "api" / "console").iterdir()}
    assert {"index.html", "app.js", "style.css", "api.js"} <= shipped
    assert shipped == source


def test_the_readme_shows_every_screenshot_and_they_are_small():
    readme = (REPO_ROOT / "README.md").read_text()
    for name in SCREENSHOTS:
        path = REPO_ROOT / "docs" / "screenshots" / f"{name}.png"
        assert f"(docs/screenshots/{name}.png)" in readme, name
        assert path.is_file(), f"{path} is missing: run `make screenshots`"
        assert path.stat().st_size < 400_000, f"{path} is large"
        with Image.open(path) as image:
            assert image.width in (DESKTOP["width"], PHONE["width"]), name


# ---------------------------------------------------------------- in the browser


def test_a_bad_key_shows_the_apis_message_and_what_to_do(desktop, shots):
    desktop.sign_in("dr_not-a-real-key")
    alert = desktop.page.locator(".signin-status .alert-error")
    alert.wait_for()
    assert "Invalid API key" in alert.inner_text()  # the API's own message
    assert "dev.env" in alert.inner_text()  # and where a valid key is
    assert desktop.page.evaluate("sessionStorage.getItem('darkroom.apiKey')") is None
    desktop.page.fill("#api-key", "")
    desktop.page.reload()
    desktop.page.wait_for_selector("#api-key")
    desktop.shot(shots, "sign-in")


def test_sign_in_generate_and_see_the_image(desktop, console_stack, api, shots):
    desktop.sign_in()
    desktop.page.wait_for_selector("#generate-form")
    assert desktop.page.evaluate("sessionStorage.getItem('darkroom.apiKey')") == console_stack.api_key
    models = {m["id"] for m in api.get("/api/models").json()["data"]}
    options = desktop.page.eval_on_selector_all("#model option", "os => os.map(o => o.value)")
    assert options and set(options) <= models
    styles = desktop.page.eval_on_selector_all("#style option", "os => os.map(o => o.value)")
    assert {s["slug"] for s in api.get("/api/styles").json()["data"]} == set(styles) - {""}

    desktop.page.fill("#prompt", "A red fox in fresh snow, golden hour")
    desktop.page.select_option("#model", "flux-schnell")
    desktop.page.select_option("#size", "256x256")
    desktop.page.select_option("#style", "anime-style")
    desktop.page.click("#generate")
    desktop.page.wait_for_selector("#result .pill[data-status='success']")
    assert _natural_width(desktop.page, "#result img.result-image") == 256
    desktop.shot(shots, "playground")

    newest = api.get("/api/generations", params={"limit": 1}).json()["data"][0]
    assert newest["payload"]["prompt"].startswith("anime style illustration of A red fox")  # the style was applied
    assert newest["model"] == "flux-schnell" and newest["metadata"]["width"] == 256


def test_gallery_filters_and_shows_a_generation(desktop, history, shots):
    desktop.sign_in()
    desktop.go("gallery")
    card = desktop.page.locator(f".gen-card[data-id='{history['public']}']")
    card.wait_for()
    _natural_width(desktop.page, f".gen-card[data-id='{history['public']}'] img")
    desktop.shot(shots, "gallery")

    card.click()
    detail = desktop.page.locator("dialog.detail")
    assert _natural_width(desktop.page, "dialog.detail .detail-media img") == 256
    share = detail.locator(".share-box.public a.share-link")
    share_url = share.get_attribute("href")
    assert "/shared/media/" in share_url
    assert httpx.get(share_url, timeout=30).status_code == 200  # the public page, without a key
    desktop.shot(shots, "gallery-detail")
    detail.locator(".dialog-close").click()

    desktop.page.click(".tab:has-text('Failed')")
    desktop.page.wait_for_selector(".grid .empty")
    assert desktop.page.locator(".gen-card").count() == 0
    desktop.page.click(".tab:has-text('Done')")
    desktop.page.locator(f".gen-card[data-id='{history['plain']}']").wait_for()


def test_a_slow_listing_never_lands_on_a_newer_filter(desktop, history):
    """The unfiltered listing is held back while the Failed tab loads: when it does answer, after the newer
    listing, it is dropped instead of drawn over it."""
    page = desktop.page
    desktop.sign_in()
    desktop.go("gallery")
    page.locator(f".gen-card[data-id='{history['public']}']").wait_for()
    unfiltered = re.compile(r".*/api/generations\?(?!.*status=).*")
    held: list = []

    def hold(route) -> None:  # the first one only; any later one goes through
        if held:
            route.continue_()
        else:
            held.append(route)

    page.route(unfiltered, hold)
    page.click(".tab:has-text('All')")
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert held, "the unfiltered listing was never requested"

    page.click(".tab:has-text('Failed')")
    page.wait_for_selector(".grid .empty")
    with page.expect_response(unfiltered):
        held[0].continue_()
    page.wait_for_timeout(500)  # the stale answer's JSON is parsed and handled by now
    assert page.locator(".gen-card").count() == 0
    assert page.locator(".grid .empty").count() == 1


def test_the_share_toggle_makes_the_page_public_then_private(desktop, api, history):
    desktop.sign_in()
    desktop.go(f"gallery/{history['plain']}")
    detail = desktop.page.locator("dialog.detail")
    toggle = detail.locator("#share-toggle")
    toggle.wait_for()
    assert not toggle.is_checked() and detail.locator(".share-box.public").count() == 0

    toggle.click()
    link = detail.locator(".share-box.public a.share-link")
    link.wait_for()
    share_url = link.get_attribute("href")
    assert f"/shared/media/{history['plain']}-" in share_url and link.inner_text() == share_url
    assert detail.locator("#share-toggle").is_checked()
    with httpx.Client(timeout=30) as anonymous:  # no key: the page is public now
        page = anonymous.get(share_url)
        assert page.status_code == 200 and "Paper boats on a rainy street" in page.text
        assert api.get(f"/api/generations/{history['plain']}").json()["shareUrl"] == share_url

        detail.locator("#share-toggle").click()
        detail.locator(".share-box:not(.public) #share-toggle:not(:checked):not(:disabled)").wait_for()
        assert detail.locator("a.share-link").count() == 0
        assert anonymous.get(share_url).status_code == 404  # the old link is dead
        assert "shareUrl" not in api.get(f"/api/generations/{history['plain']}").json()


def test_create_a_key_then_revoke_it_and_the_api_refuses_it(desktop, console_stack, shots):
    desktop.sign_in()
    desktop.go("keys")
    desktop.page.fill("#key-name", "ci-robot")
    desktop.page.fill("#key-rate", "30")
    desktop.page.uncheck("input[name=scope][value='video:generate']")
    desktop.page.click("#create-key")
    secret = desktop.page.locator("#new-key-secret").inner_text()
    assert secret.startswith("dr_")
    with httpx.Client(base_url=console_stack.url, timeout=30) as client:
        me = client.get("/api/account", headers={"Authorization": secret})
        assert me.status_code == 200, me.text
        assert me.json()["key"]["rateLimit"] == 30
        assert "video:generate" not in me.json()["key"]["scopes"]
        key_id = me.json()["key"]["id"]
        row = desktop.page.locator(f"tr[data-key-id='{key_id}']")
        row.wait_for()
        desktop.shot(shots, "keys")

        row.locator("button:has-text('Revoke')").click()
        desktop.page.click("dialog button[value=ok]")
        row.locator(".pill:has-text('Revoked')").wait_for()
        refused = client.get("/api/account", headers={"Authorization": secret})
        assert refused.status_code == 401
        assert refused.json()["message"] == "Invalid API key"


def test_webhook_secret_rotation_and_the_delivery_log(desktop, api, history, receiver, shots):
    desktop.sign_in()
    desktop.go(f"webhooks/{history['webhook']}")
    before = api.get("/api/webhooks/secret").json()["secret"]
    value = desktop.page.locator("#secret-value")
    value.wait_for()
    assert before not in value.inner_text()  # masked until revealed
    desktop.page.click("#reveal-secret")
    assert value.inner_text() == before

    log = desktop.page.locator("#delivery-log")
    log.locator("td:has-text('delivered')").first.wait_for()
    assert receiver.url in log.inner_text()
    desktop.shot(shots, "webhooks")
    delivered = len(receiver.requests)
    desktop.page.click("#redeliver")
    desktop.page.wait_for_function("() => document.querySelectorAll('#delivery-log tbody tr').length >= 2")
    ids = receiver.ids()
    assert sum(ids.values()) > delivered and len(ids) == 1  # same webhook-id, sent again

    desktop.page.select_option("#grace", "3600")
    desktop.page.click("#rotate-secret")
    desktop.page.click("dialog button[value=ok]")
    desktop.page.wait_for_selector("#webhook-secret .previous")
    after = api.get("/api/webhooks/secret").json()
    assert after["secret"] != before and after["previous"][0]["secret"] == before


def test_usage_shows_the_accounts_credits_and_the_operator_view(desktop, api, history, shots):
    desktop.sign_in()
    desktop.go("usage")
    desktop.page.wait_for_selector("#operator-usage")
    account = api.get("/api/account").json()
    shown = desktop.page.locator("#credits-left .stat-value").inner_text()
    assert float(shown.replace(",", "")) == pytest.approx(account["credits"])
    desktop.shot(shots, "usage")


def test_loras_list_upload_add_by_url_and_delete(desktop, api, tmp_path, shots):
    from gpu.tiny import ensure_tiny_lora

    dev = _dev_loras(api)
    assert "tiny-flux" in dev, f"the stack registered no tiny-flux LoRA: {sorted(dev)}"
    page = desktop.page
    desktop.sign_in()
    desktop.go("loras")
    seeded = page.locator(f"tr[data-lora-id='{dev['tiny-flux']['id']}']")
    seeded.wait_for()
    assert "flux" in seeded.locator(".chip").all_inner_texts()
    assert seeded.locator("td[data-label='Rank']").inner_text() == str(dev["tiny-flux"]["rank"])
    limits = api.get("/api/loras").json()["usage"]
    assert re.fullmatch(rf"\d+ of {limits['max_count']} LoRAs · .+ of .+", page.locator("#lora-usage").inner_text())

    # Upload a real (tiny) flux LoRA through the form: multipart, like curl -F.
    path = ensure_tiny_lora("flux", tmp_path, "ink")
    page.set_input_files("#lora-file", str(path))
    page.fill("#lora-name", "ink <b>&amp;</b>")  # shown as text, never as markup
    page.click("#upload-lora")
    uploaded = _shown_and_listed(page, api, "ink <b>&amp;</b>")
    assert uploaded["source"] == "upload" and "flux" in uploaded["families"]
    assert uploaded["size"] == path.stat().st_size
    row = page.locator(f"tr[data-lora-id='{uploaded['id']}']")
    assert row.locator(".lora-name strong").inner_text() == "ink <b>&amp;</b>"
    assert row.locator("b").count() == 0
    page.evaluate("window.scrollTo(0, 0)")  # the list and its usage line, not the forms
    desktop.shot(shots, "loras")

    # Add one by URL (a loopback server: the local stack allows http there); the form's 400s show the API's message.
    desktop.allow("status of 400")
    page.fill("#lora-source", "not a repo")
    page.click("#add-lora-link")
    page.locator("#lora-link-form .alert-error").wait_for()
    assert page.locator("#lora-link-form .alert-error .alert-message").inner_text()
    server, base = _serve_files(tmp_path)
    try:
        page.fill("#lora-source", f"{base}/{path.name}")
        assert page.locator("#lora-weight-name").is_hidden()  # Hub-only fields
        page.fill("#lora-link-name", "ink-by-url")
        page.click("#add-lora-link")
        by_url = _shown_and_listed(page, api, "ink-by-url")
    finally:
        server.shutdown()
        server.server_close()
    assert by_url["source"] == "url" and by_url["url"] == f"{base}/{path.name}"
    assert page.locator("#lora-link-form .alert-error").count() == 0

    for lora in (by_url, uploaded):
        row = page.locator(f"tr[data-lora-id='{lora['id']}']")
        row.locator("button:has-text('Delete')").click()
        page.click("dialog button[value=ok]")
        row.wait_for(state="detached")
        assert api.get(f"/api/loras/{lora['id']}").status_code == 404
    assert seeded.is_visible()


def _shown_and_listed(page, api: httpx.Client, name: str) -> dict:
    """Wait for the LoRAs page to list `name`, then return the API's record of it."""
    page.locator("#lora-list tr .lora-name strong", has_text=name).first.wait_for()
    return next(lora for lora in api.get("/api/loras").json()["data"] if lora["name"] == name)


def test_generate_with_a_lora_at_half_scale_and_see_it_reported(desktop, api, tmp_path):
    from gpu.tiny import ensure_tiny_lora

    dev = _dev_loras(api)
    assert "tiny-flux" in dev, f"the stack registered no tiny-flux LoRA: {sorted(dev)}"
    path = ensure_tiny_lora("flux", tmp_path, "ink")
    with path.open("rb") as handle:
        created = api.post("/api/loras", files={"file": (path.name, handle)}, data={"name": "ink-playground"})
    assert created.status_code == 201, created.text
    lora = created.json()
    page = desktop.page
    try:
        desktop.sign_in()
        page.wait_for_selector("#generate-form")
        page.fill("#prompt", "An ink drawing of a heron")
        page.select_option("#model", "flux-schnell")
        page.select_option("#size", "256x256")

        # A typed path the API cannot take: its 400 names the field, in the result.
        page.click("#add-lora")
        row = page.locator(".lora-row").first
        made_for = row.locator("optgroup[label^='Made for'] option").evaluate_all("os => os.map(o => o.value)")
        assert lora["id"] in made_for and dev["tiny-flux"]["id"] in made_for
        assert dev.get("tiny-sdxl", {}).get("id") not in made_for
        row.locator("select.lora-pick").select_option("custom")
        row.locator("input.lora-path").fill("not a lora")
        desktop.allow("status of 400")
        page.click("#generate")
        refused = page.locator("#result .alert-error")
        refused.wait_for()
        assert "loras.0.path" in refused.inner_text()

        # The uploaded one at 0.5, the seeded one at the default 1.
        row.locator("select.lora-pick").select_option(lora["id"])
        assert row.locator("input.lora-path").is_hidden()
        row.locator("input.lora-scale").fill("0.5")
        page.click("#add-lora")
        second = page.locator(".lora-row").nth(1)
        second.locator("select.lora-pick").select_option(dev["tiny-flux"]["id"])
        assert second.locator("input.lora-scale").input_value() == "1"
        with page.expect_response(lambda r: r.url.endswith("/api/generate") and r.request.method == "POST") as sent:
            page.click("#generate")
        assert sent.value.ok, sent.value.text()
        assert sent.value.request.post_data_json["input"]["loras"] == [
            {"path": lora["id"], "scale": 0.5}, {"path": dev["tiny-flux"]["id"], "scale": 1}]
        page.wait_for_selector("#result .pill[data-status='success']")
        job = api.get(f"/api/generations/{sent.value.json()['id']}").json()
        ran = {entry["id"]: entry for entry in job["loras"]}
        assert ran[lora["id"]]["scale"] == 0.5 and ran[lora["id"]]["name"] == "ink-playground"
        shown = page.locator(f"#result-loras .adapter[data-lora-id='{lora['id']}']")
        assert shown.locator(".adapter-name").inner_text() == "ink-playground"
        assert shown.locator(".adapter-scale").inner_text() == "× 0.5"
        assert shown.locator(".adapter-sha").inner_text() == ran[lora["id"]]["sha256"][:12]
        assert page.locator("#result-loras .adapter").count() == 2

        # The gallery's detail says the same.
        page.click("#result button:has-text('Open in Gallery')")
        detail = page.locator(f"dialog.detail .adapter[data-lora-id='{lora['id']}']")
        detail.wait_for()
        assert detail.locator(".adapter-sha").inner_text() == ran[lora["id"]]["sha256"][:12]
    finally:
        assert api.delete(f"/api/loras/{lora['id']}").status_code == 200


def test_phone_width_has_no_horizontal_scroll_on_any_page(phone, history, shots):
    phone.sign_in()
    phone.page.wait_for_selector("#generate-form")
    for route in PAGES:
        phone.go(route)
        phone.page.wait_for_load_state("networkidle")
        phone.page.wait_for_function("() => !document.querySelector('.loading, .skeleton')")
        width = phone.page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], (route, width, phone.page.evaluate(OVERFLOWING))
        assert phone.page.locator("nav.nav").is_visible()
        if route == "playground":
            phone.shot(shots, "phone-playground")
    phone.go("gallery")
    phone.page.locator(".gen-card").first.wait_for()
    phone.shot(shots, "phone-gallery")
