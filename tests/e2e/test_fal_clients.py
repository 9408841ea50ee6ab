"""fal's official clients, installed from their registries, against the real local stack with only their
host (proxy) changed.

- `@fal-ai/client` (npm, tests/clients/js) through `proxyUrl`: subscribe, queue.submit, status, the status stream,
  result, cancel and run; its ValidationError on invalid input.
- Python `fal-client` (PyPI, the dev extra). It reads FAL_QUEUE_RUN_HOST and FAL_RUN_HOST at import and always
  speaks https, so the test puts a TLS terminator on loopback in front of the stack: a test CA made here with
  `cryptography`, a certificate for 127.0.0.1 signed by it, and SSL_CERT_FILE pointing the client's httpx at the
  CA. That is what a deployment gives it for real: the function URL's (or API Gateway's) TLS, docs/dialects.md.
"""

from __future__ import annotations

import datetime
import io
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

CLIENTS = Path(__file__).resolve().parents[1] / "clients" / "js"


# ---------------------------------------------------------------- @fal-ai/client through proxyUrl


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    assert found, "node is not installed (Node 20 is part of the machine the tests run on)"
    assert (CLIENTS / "node_modules" / "@fal-ai" / "client").is_dir(), "run `make test` (it installs tests/clients/js)"
    return found


def test_the_fal_js_client_subscribes_queues_streams_cancels_and_runs_through_the_proxy(node, stack):
    env = {**os.environ, "DARKROOM_URL": stack.url, "DARKROOM_API_KEY": stack.api_key}
    done = subprocess.run([node, "fal-client.mjs"], cwd=CLIENTS, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])

    subscribed = out["subscribe"]
    assert subscribed["statuses"][-1] == "COMPLETED" and subscribed["logs"] >= 2
    assert [(i["width"], i["height"], i["type"]) for i in subscribed["images"]] == [(256, 256, "image/jpeg")] * 2
    assert subscribed["seed"] == 7 and subscribed["nsfw"] == [False, False] and subscribed["timings"]["inference"] > 0
    # The images are Darkroom's media links, served by the stack.
    image = httpx.get(subscribed["images"][0]["url"], follow_redirects=True, timeout=30)
    assert image.status_code == 200 and Image.open(io.BytesIO(image.content)).size == (256, 256)

    queue = out["queue"]
    request_id = queue["submitted"]["request_id"]
    assert queue["submitted"]["status"] == "IN_QUEUE"
    assert queue["submitted"]["status_url"] == f"https://queue.fal.run/fal-ai/flux/requests/{request_id}/status"
    assert queue["first"] in ("IN_QUEUE", "IN_PROGRESS", "COMPLETED") and queue["streamed"] == "COMPLETED"
    assert queue["resultId"] == request_id and queue["image"] == {"type": "image/png", "width": 256}

    assert out["cancel"]["status"] == "COMPLETED" and out["cancel"]["error_type"] == "request_canceled"
    assert out["run"]["url"] == "data:image/jpeg;base64," and out["run"]["width"] == 512 and out["run"]["requestId"]
    assert out["error"] == {"validation": True, "status": 422, "fields": [["body", "num_images"]]}
    assert out["missing"] == {"api": True, "status": 404}

    # One job: the request the JS client made is a generation every dialect reads.
    native = httpx.get(f"{stack.url}/api/generations/{request_id}", headers={"Authorization": stack.api_key},
                       timeout=30).json()
    assert native["status"] == "success" and native["model"] == "flux-schnell"
    canceled = httpx.get(f"{stack.url}/api/generations/{out['cancel']['requestId']}",
                         headers={"Authorization": stack.api_key}, timeout=30).json()
    assert canceled["model"] == "wan2.2-ti2v-5b" and canceled["error"] == "Generation was canceled"


# ---------------------------------------------------------------- Python fal-client over loopback TLS


def _test_ca(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 and localhost that it signs: (ca.pem, cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Darkroom test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@contextmanager
def tls_terminator(upstream: str, cert: Path, key: Path) -> Iterator[int]:
    """TLS on 127.0.0.1:<port>, each connection relayed byte for byte to `upstream` (http://host:port): the
    function URL's TLS in front of the api, in miniature. Yields the port."""
    target = urlsplit(upstream)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            raw.settimeout(None)

            def handle(raw: socket.socket = raw) -> None:
                try:
                    client = context.wrap_socket(raw, server_side=True)
                except (ssl.SSLError, OSError):
                    raw.close()
                    return
                backend = socket.create_connection((target.hostname, target.port))
                threading.Thread(target=_pump, args=(backend, client), daemon=True).start()
                _pump(client, backend)

            threading.Thread(target=handle, daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=5)


FAL_CLIENT = """
import json, sys
import fal_client

out = {}
endpoint = "fal-ai/flux/schnell"
args = {"prompt": "a lighthouse at dusk", "image_size": {"width": 256, "height": 256}, "seed": 3}
handle = fal_client.submit(endpoint, arguments=args)
out["submit"] = {"request_id": handle.request_id, "status_url": handle.status_url}
out["first"] = type(handle.status(with_logs=True)).__name__
result = handle.get()
out["get"] = {"width": result["images"][0]["width"], "seed": result["seed"], "type": result["images"][0]["content_type"]}
final = fal_client.status(endpoint, handle.request_id, with_logs=True)
out["status"] = {"kind": type(final).__name__, "logs": len(final.logs), "metrics": sorted(final.metrics)}
out["result"] = fal_client.result(endpoint, handle.request_id)["images"][0]["height"]

updates = []
subscribed = fal_client.subscribe(endpoint, arguments={**args, "num_images": 2}, with_logs=True, interval=0.2,
                                  on_queue_update=lambda s: updates.append(type(s).__name__))
out["subscribe"] = {"images": len(subscribed["images"]), "last": updates[-1]}

ran = fal_client.run("fal-ai/flux/schnell", arguments={**args, "sync_mode": True, "output_format": "png"})
out["run"] = ran["images"][0]["url"][:22]

doomed = fal_client.submit("fal-ai/wan/v2.2-5b/text-to-video", arguments={"prompt": "waves", "duration": 2})
fal_client.cancel("fal-ai/wan/v2.2-5b/text-to-video", doomed.request_id)
canceled = fal_client.status("fal-ai/wan/v2.2-5b/text-to-video", doomed.request_id)
out["cancel"] = {"kind": type(canceled).__name__, "error_type": canceled.error_type}

try:
    fal_client.run(endpoint, arguments={"prompt": "x", "image_size": "huge"})
    out["error"] = None
except fal_client.FalClientHTTPError as error:
    out["error"] = {"status": error.status_code, "loc": error.message[0]["loc"]}
print(json.dumps(out))
"""


def test_the_fal_python_client_over_loopback_tls(stack, tmp_path):
    ca, cert, key = _test_ca(tmp_path)
    with tls_terminator(stack.url, cert, key) as port:
        host = f"127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
        env.update(FAL_KEY=stack.api_key, FAL_QUEUE_RUN_HOST=f"{host}/fal/queue", FAL_RUN_HOST=f"{host}/fal/run",
                   SSL_CERT_FILE=str(ca), NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
        done = subprocess.run([sys.executable, "-c", FAL_CLIENT], env=env, capture_output=True, text=True,
                              timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    request_id = out["submit"]["request_id"]
    # The URLs a submit answers are on the host the client called, over https: the client polls them as given.
    assert out["submit"]["status_url"] == f"https://{host}/fal/queue/fal-ai/flux/requests/{request_id}/status"
    assert out["first"] in ("Queued", "InProgress", "Completed")
    assert out["get"] == {"width": 256, "seed": 3, "type": "image/jpeg"} and out["result"] == 256
    assert out["status"]["kind"] == "Completed" and out["status"]["logs"] >= 2
    assert out["status"]["metrics"] == ["inference_time"]
    assert out["subscribe"] == {"images": 2, "last": "Completed"}
    assert out["run"] == "data:image/png;base64,"
    assert out["cancel"] == {"kind": "Completed", "error_type": "request_canceled"}
    assert out["error"] == {"status": 422, "loc": ["body", "image_size"]}
    native = httpx.get(f"{stack.url}/api/generations/{request_id}", headers={"Authorization": stack.api_key},
                       timeout=30).json()
    assert native["status"] == "success"
