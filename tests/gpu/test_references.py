"""Reference images: fetched over real HTTP from a server on 127.0.0.1, with the SSRF guard on every hop."""

from __future__ import annotations

import io
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import numpy as np
import pytest
from gpu_helpers import gradient
from PIL import Image
from raw_endpoint import raw_endpoint, trickled

from gpu.references import (
    DEFAULT_LIMITS,
    ORIGINAL_SIZE,
    InvalidReference,
    Limits,
    decode_image,
    fetch_url,
    load_clip,
    load_reference,
    load_references,
)


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height: a decompression bomb needs no more to be dangerous."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + \
        chunk(b"IEND", b"")


PNG = _encoded(gradient((64, 48)), "PNG")


def _clip(frames: int = 9) -> bytes:
    from gpu.encode import encode_video

    return encode_video([gradient((64, 48)).rotate(10 * i) for i in range(frames)], 12.0)
BIG = 21 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, Callable[[_Handler], None]]] = {}
    hosts: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.hosts.append(self.headers.get("Host", ""))
        route = self.routes.get(self.path)
        try:
            if route is None:
                self.send_error(404)
            else:
                route(self)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on purpose (oversize, timeout)

    def log_message(self, *_args) -> None:
        pass

    # helpers for routes
    def body(self, data: bytes, content_type: str = "image/png", length: bool = True) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        if length:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def redirect(self, location: str, status: int = 302) -> None:
        self.send_response(status)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


def _drip(handler: _Handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "image/png")
    handler.end_headers()
    for byte in PNG[:40]:
        handler.wfile.write(bytes([byte]))
        handler.wfile.flush()
        time.sleep(0.1)


def _stream_big(handler: _Handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "image/png")
    handler.end_headers()  # no Content-Length: the size is only known by reading
    chunk = b"\0" * 65536
    for _ in range(BIG // len(chunk)):
        handler.wfile.write(chunk)


_Handler.routes = {
    "/fox.png": lambda h: h.body(PNG),
    "/fox-stream.png": lambda h: h.body(PNG, length=False),
    "/fox.jpg": lambda h: h.body(_encoded(gradient((64, 48)), "JPEG"), "image/jpeg"),
    "/fox.webp": lambda h: h.body(_encoded(gradient((64, 48)), "WEBP"), "image/webp"),
    "/rgba.png": lambda h: h.body(_encoded(gradient((64, 48), "RGBA"), "PNG")),
    "/no-type.png": lambda h: h.body(PNG, "application/octet-stream"),
    "/to-fox": lambda h: h.redirect("/fox.png"),
    "/to-fox-301": lambda h: h.redirect("fox.png", 301),
    "/chain1": lambda h: h.redirect("/fox.png"),
    "/chain2": lambda h: h.redirect("/chain1", 307),
    "/chain3": lambda h: h.redirect("/chain2", 308),
    "/chain4": lambda h: h.redirect("/chain3"),
    "/loop": lambda h: h.redirect("/loop"),
    "/to-private": lambda h: h.redirect("http://10.0.0.7/fox.png"),
    "/to-metadata": lambda h: h.redirect("http://169.254.169.254/latest/meta-data/"),
    "/to-ftp": lambda h: h.redirect("ftp://example.com/fox.png"),
    "/no-location": lambda h: (h.send_response(302), h.send_header("Content-Length", "0"), h.end_headers()),
    "/big": lambda h: h.body(b"\0" * BIG),
    "/big-stream": _stream_big,
    "/text": lambda h: h.body(b"hello, I am not an image", "text/plain"),
    "/truncated.png": lambda h: h.body(PNG[: len(PNG) // 2]),
    "/bomb.png": lambda h: h.body(_png_claiming(8000, 8000)),
    "/huge-bomb.png": lambda h: h.body(_png_claiming(20000, 20000)),  # past Pillow's own hard limit
    "/slow.png": _drip,
    "/clip.mp4": lambda h: h.body(_clip(), "video/mp4"),
}


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def fetch(url: str, *, allow_loopback: bool = True, limits: Limits = DEFAULT_LIMITS) -> Image.Image:
    return load_reference({"url": url}, "references[0]", workspace_id="ws-a", bucket="unused",
                          allow_loopback=allow_loopback, limits=limits)


# --- what is accepted ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/fox.png", "/fox.jpg", "/fox.webp", "/no-type.png"])
def test_images_are_fetched_and_decoded_to_rgb(server, path):
    image = fetch(server + path)
    assert image.size == (64, 48) and image.mode == "RGB"


def test_transparency_is_flattened_onto_white(server):
    image = fetch(server + "/rgba.png")
    assert image.mode == "RGB"
    assert np.asarray(image)[:, :20].min() == 255  # the transparent left side


@pytest.mark.parametrize("path", ["/to-fox", "/to-fox-301", "/chain3"])
def test_redirects_are_followed_up_to_three(server, path):
    assert fetch(server + path).size == (64, 48)


def test_localhost_by_name_when_loopback_is_allowed(server):
    port = server.rsplit(":", 1)[1]
    assert fetch(f"http://localhost:{port}/fox.png").size == (64, 48)


def test_the_connection_goes_to_the_checked_address_with_the_original_host(server, monkeypatch):
    port = int(server.rsplit(":", 1)[1])
    real = socket.getaddrinfo
    lookups: list[str] = []

    def fake(host, *args, **kwargs):
        lookups.append(host)
        if host == "images.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    _Handler.hosts.clear()
    assert fetch(f"http://images.example:{port}/fox.png").size == (64, 48)
    # The name is resolved once (httpcore only "resolves" the literal address it was given): the address
    # checked is the one connected to.
    assert lookups.count("images.example") == 1 and set(lookups) <= {"images.example", "127.0.0.1"}
    assert _Handler.hosts == [f"images.example:{port}"]
    # The same name resolving to loopback is refused outside the local stack (DNS rebinding).
    with pytest.raises(InvalidReference, match="not a public address"):
        fetch(f"http://images.example:{port}/fox.png", allow_loopback=False)


# --- what is refused -------------------------------------------------------------------------------


def test_loopback_is_refused_unless_allowed(server):
    with pytest.raises(InvalidReference, match=r"references\[0\] \(http://127\.0\.0\.1.*not allowed.*public"):
        fetch(server + "/fox.png", allow_loopback=False)
    port = server.rsplit(":", 1)[1]
    with pytest.raises(InvalidReference, match="not allowed"):
        fetch(f"http://localhost:{port}/fox.png", allow_loopback=False)


@pytest.mark.parametrize("path, match", [
    ("/to-private", "10.0.0.7 is not a public address"),
    ("/to-metadata", "metadata"),
    ("/to-ftp", "must use http"),
])
def test_redirects_are_checked_again(server, path, match):
    with pytest.raises(InvalidReference, match=match):
        fetch(server + path)  # even with loopback allowed


@pytest.mark.parametrize("path", ["/chain4", "/loop"])
def test_too_many_redirects(server, path):
    with pytest.raises(InvalidReference, match="more than 3 redirects"):
        fetch(server + path)


def test_redirect_without_location(server):
    with pytest.raises(InvalidReference, match="without a Location"):
        fetch(server + "/no-location")


@pytest.mark.parametrize("url, match", [
    ("ftp://example.com/fox.png", "must use http"),
    ("file:///etc/passwd", "must use http"),
    ("http://user:pw@example.com/fox.png", "credentials"),
    ("http://10.1.2.3/fox.png", "not a public address"),
    ("http://[::1]:9/fox.png", "not a public address"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://does-not-exist.invalid/fox.png", "does not resolve"),
])
def test_unsafe_urls_are_refused_before_connecting(url, match, monkeypatch):
    def no_such_name(host, *args, **kwargs):  # no real DNS query, even for a name that cannot exist
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    with pytest.raises(InvalidReference, match=match):
        fetch(url, allow_loopback=False)


@pytest.mark.parametrize("path", ["/big", "/big-stream"])
def test_more_than_20_mib_is_refused(server, path):
    with pytest.raises(InvalidReference, match="larger than 20 MiB"):
        fetch(server + path)


@pytest.mark.parametrize("path", ["/fox.png", "/fox-stream.png"])
def test_the_limit_applies_with_or_without_a_content_length(server, path):
    with pytest.raises(InvalidReference, match="larger than 100 bytes"):
        fetch(server + path, limits=Limits(max_bytes=100))


def test_a_slow_server_times_out(server):
    started = time.monotonic()
    with pytest.raises(InvalidReference, match="timed out after 1 s"):
        fetch(server + "/slow.png", limits=Limits(timeout=1.0))
    assert time.monotonic() - started < 2.5


def test_a_server_trickling_its_headers_times_out_at_the_deadline():
    """A byte every 0.2 s, headers included: each read is well within httpx's read timeout, so only a deadline on
    the whole fetch ends it (a hostile reference URL would otherwise hold the GPU container for hours)."""
    started = time.monotonic()
    headers = trickled(b"HTTP/1.1 200 OK\r\nx-slow: " + b"y" * 10_000)
    with raw_endpoint(b"", headers, 0.2) as url, pytest.raises(InvalidReference, match="timed out after 1 s"):
        fetch(url, limits=Limits(timeout=1.0))
    assert time.monotonic() - started < 2.5


@pytest.mark.parametrize("path, match", [
    ("/text", "not a valid PNG, JPEG"),
    ("/truncated.png", "not a valid PNG, JPEG"),
    ("/bomb.png", "8000x8000 has more than 50000000 pixels"),
    ("/huge-bomb.png", "too many pixels"),
    ("/missing.png", "HTTP 404"),
])
def test_non_images_and_bombs_are_refused(server, path, match):
    with pytest.raises(InvalidReference, match=match) as info:
        fetch(server + path)
    assert info.value.code == "invalid_reference"


def test_formats_outside_the_allow_list_are_refused():
    with pytest.raises(InvalidReference, match="not a valid"):
        decode_image(_encoded(gradient((16, 16)), "TIFF"), "references[0]")


# --- uploads and shapes ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", [
    "ws-b/uploads/u1/fox.png",  # another workspace
    "ws-a/generations/j1/0.png",  # not an upload
    "ws-a/uploads/../../ws-b/uploads/u1/fox.png",
    "ws-a/uploads//fox.png",
    "/ws-a/uploads/u1/fox.png",
    "ws-ab/uploads/u1/fox.png",
])
def test_uploads_outside_the_jobs_workspace_are_refused_without_reading(key, monkeypatch):
    from functions.core import aws

    monkeypatch.setattr(aws, "client", lambda service: pytest.fail("S3 must not be read"))
    with pytest.raises(InvalidReference, match="is not an upload of this workspace"):
        load_reference({"upload_key": key}, "references[0]", workspace_id="ws-a", bucket="b")


@pytest.mark.parametrize("ref", [
    "https://example.com/fox.png", {"url": 3}, {"path": "x"}, {"url": "https://a", "upload_key": "ws-a/uploads/x"},
])
def test_malformed_references_are_refused(ref):
    with pytest.raises(InvalidReference, match=r"references\[0\]: must be"):
        load_reference(ref, "references[0]", workspace_id="ws-a", bucket="b")


def test_the_error_names_the_bad_reference(server):
    with pytest.raises(InvalidReference, match=r"^references\[1\] \(.*/text\)"):
        load_references([{"url": server + "/fox.png"}, {"url": server + "/text"}], workspace_id="ws-a",
                        bucket="unused", allow_loopback=True)


def test_several_references_keep_their_order(server):
    images = load_references([{"url": server + "/fox.png"}, {"url": server + "/rgba.png"},
                              {"url": server + "/fox.jpg"}], workspace_id="ws-a", bucket="unused",
                             allow_loopback=True)
    assert len(images) == 3
    assert np.asarray(images[1])[:, :20].min() == 255  # the flattened RGBA one is second


def test_too_many_references():
    with pytest.raises(InvalidReference, match="at most 10"):
        load_references([{"url": "https://example.com/x.png"}] * 11, workspace_id="ws-a", bucket="b")


def test_references_are_shrunk_on_decode_to_what_covers_the_job():
    photo = _encoded(gradient((4000, 3000)), "JPEG")
    image = decode_image(photo, "references[0]", cover=(512, 256))
    assert image.size == (512, 384)  # covers 512x256 at the photo's aspect, so fit() crops as before
    assert image.info[ORIGINAL_SIZE] == (4000, 3000)
    small = decode_image(_encoded(gradient((64, 48)), "PNG"), "references[0]", cover=(512, 512))
    assert small.size == (64, 48)  # never enlarged


def test_a_jobs_references_together_are_bounded(server):
    limits = Limits(max_job_pixels=64 * 48 * 2)
    with pytest.raises(InvalidReference, match="pixels together"):
        load_references([{"url": server + "/fox.png"}] * 3, workspace_id="ws-a", bucket="unused",
                        allow_loopback=True, limits=limits)
    assert len(load_references([{"url": server + "/fox.png"}] * 2, workspace_id="ws-a", bucket="unused",
                               allow_loopback=True, limits=limits)) == 2
    assert DEFAULT_LIMITS.max_job_pixels == 100_000_000  # two 48 MP photos


def test_two_7000_pixel_references_hold_one_full_decode_at_a_time(server, tmp_path):
    """Five references to one 190 KB 7000x7000 PNG added 2.5 GB to the worker. Measured in a process of its
    own (Pillow's buffers are not Python allocations): peak memory over the baseline stays near one decode."""
    big = tmp_path / "big.png"
    Image.new("RGB", (7000, 7000), (30, 90, 200)).save(big, optimize=True)
    script = f"""
import resource, sys
from PIL import Image
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from gpu import references
data = open({str(big)!r}, "rb").read()
references._read_upload = lambda *a, **k: data
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
images = references.load_references([{{"upload_key": "ws/uploads/u/big.png"}}] * 2, workspace_id="ws",
                                    bucket="b", cover=(1024, 1024))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) // 1024, [i.size for i in images])
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    grown_mb = int(out[0])
    assert "(1024," in out[1]
    # One 7000x7000 RGB decode is 147 MB (Pillow may hold a second buffer while converting); two held at full
    # size, as before, would be over 300 MB.
    assert grown_mb < 300, f"peak grew by {grown_mb} MB"


def test_fetch_url_returns_the_bytes(server):
    assert fetch_url(server + "/fox.png", "ref", allow_loopback=True) == PNG


# --- rebinding and odd spellings, with the resolver and the transport mocked (no packet is sent) ---------


class _Net:
    """A fake resolver (one answer list per lookup, in turn) and an httpx MockTransport that records every
    request the fetcher sends: what was checked can be compared with where the connection would go."""

    def __init__(self, monkeypatch, answers: dict[str, list[list[str]]], routes: dict[str, httpx.Response]):
        self.answers, self.routes = answers, routes
        self.lookups: list[str] = []
        self.requests: list[httpx.Request] = []
        real_client = httpx.AsyncClient

        def getaddrinfo(host, port, *args, **kwargs):
            self.lookups.append(host)
            turns = self.answers.get(host)
            if not turns:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            ips = turns[min(self.lookups.count(host) - 1, len(turns) - 1)]
            return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                     (ip, port, 0, 0) if ":" in ip else (ip, port)) for ip in ips]

        def client(**kwargs):
            return real_client(**kwargs, transport=httpx.MockTransport(self._handle))

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(httpx, "AsyncClient", client)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.routes.get(request.url.path, httpx.Response(404))


def test_a_rebinding_name_is_fetched_from_the_address_that_was_checked(monkeypatch):
    net = _Net(monkeypatch, {"images.example": [["93.184.216.34"], ["127.0.0.1"]]},
               {"/fox.png": httpx.Response(200, content=PNG)})
    assert fetch("https://images.example/fox.png", allow_loopback=False).size == (64, 48)
    assert net.lookups == ["images.example"]
    (request,) = net.requests
    assert request.url.host == "93.184.216.34" and request.headers["host"] == "images.example"
    assert request.extensions["sni_hostname"] == "images.example"


def test_every_redirect_hop_is_resolved_and_checked_before_it_is_sent(monkeypatch):
    net = _Net(monkeypatch, {"images.example": [["93.184.216.34"]], "cdn.example": [["93.184.216.35"]],
                             "rebind.example": [["10.0.0.7"]]},
               {"/a": httpx.Response(302, headers={"location": "https://cdn.example/b"}),
                "/b": httpx.Response(302, headers={"location": "https://rebind.example/c"}),
                "/c": httpx.Response(200, content=PNG)})
    with pytest.raises(InvalidReference, match="10.0.0.7 is not a public address"):
        fetch("https://images.example/a", allow_loopback=False)
    assert [(r.url.host, r.url.path) for r in net.requests] == [("93.184.216.34", "/a"), ("93.184.216.35", "/b")]


@pytest.mark.parametrize("location", [
    "http://2130706433/fox.png", "http://0x7f000001/fox.png", "http://0177.0.0.1/fox.png",
    "http://[::ffff:127.0.0.1]/fox.png", "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
    "http://0xa9fea9fe/latest/meta-data/", "http://metadata.google.internal./computeMetadata/v1/",
    "http://localhost./fox.png", "http://[fd00:ec2::254]/latest/meta-data/", "http://good.com@127.0.0.1/fox.png",
    "http://[fe80::1]/fox.png", "http://[fc00::1]/fox.png", "http://0.0.0.0/fox.png", "http://[::]/fox.png",
])
def test_a_redirect_to_any_spelling_of_a_private_address_is_not_followed(monkeypatch, location):
    net = _Net(monkeypatch, {"images.example": [["93.184.216.34"]]},
               {"/go": httpx.Response(302, headers={"location": location})})
    # Refused by the guard ("not allowed"), or by httpx itself for a Location it cannot parse.
    with pytest.raises(InvalidReference, match="not allowed|Invalid URL"):
        fetch("https://images.example/go", allow_loopback=False)
    assert [r.url.path for r in net.requests] == ["/go"] and net.lookups == ["images.example"]


@pytest.mark.parametrize("url", [
    "http://2130706433/fox.png", "http://0x7f.0.0.1/fox.png", "http://[::ffff:7f00:1]/fox.png",
    "http://2852039166/latest/meta-data/", "http://0251.0376.0251.0376/latest/meta-data/",
    "http://127.0.0.1#@good.com/fox.png", "http://good.com\\@127.0.0.1/fox.png", "http://169.254.169.254./x",
])
def test_odd_spellings_are_refused_before_any_lookup_or_connection(monkeypatch, url):
    net = _Net(monkeypatch, {}, {})
    with pytest.raises(InvalidReference, match="not allowed"):
        fetch(url, allow_loopback=False)
    assert net.lookups == [] and net.requests == []


# --- clips to extend -------------------------------------------------------------------------------


def clip(url: str, **kwargs):
    return load_clip({"url": url}, "extend_video", workspace_id="ws-a", bucket="unused", allow_loopback=True,
                     **{"cover": (32, 24), "max_frames": 100, **kwargs})


def test_a_clip_is_read_frame_by_frame_at_its_rate_shrunk_to_cover_the_job(server):
    frames, fps = clip(server + "/clip.mp4")
    assert len(frames) == 9 and fps == 12.0
    assert {f.size for f in frames} == {(32, 24)} and frames[0].mode == "RGB"  # 64x48 shrunk to cover 32x24


def test_a_clip_longer_than_the_model_takes_is_refused(server):
    with pytest.raises(InvalidReference, match="longer than the 5 frames"):
        clip(server + "/clip.mp4", max_frames=5)


@pytest.mark.parametrize("path", ["/fox.png", "/text"])
def test_what_is_not_a_video_is_refused_as_one(server, path):
    with pytest.raises(InvalidReference, match="not a video"):
        clip(server + path)


def test_a_clip_url_gets_the_same_ssrf_guard(server):
    with pytest.raises(InvalidReference):
        clip(server + "/to-private")
