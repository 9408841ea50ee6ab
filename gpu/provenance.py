"""Provenance on every output: a C2PA manifest (c2pa-python) signed with the operator's certificate, and, as a
deployment option, an invisible watermark in the pixels of images (invisible-watermark).

The worker signs each image and video after encoding and before upload (gpu/worker.py). The manifest says:
made by Darkroom (its claim generator), with which model, when, and how: `c2pa.created` with the IPTC digital
source type trainedAlgorithmicMedia for text-to-image and text-to-video; `c2pa.opened` (the first reference as
its parentOf ingredient) then `c2pa.edited` (trainedAlgorithmicMedia) for an image edited from references; a
video made from reference images is `c2pa.created`, its references as inputTo ingredients (C2PA 2's relationship
for what a generative model was given). Ingredients are the references as the model received them (decoded,
resized, re-encoded as PNG), not the uploaded files byte for byte. The signer is the operator's certificate:
deployed, a Secrets Manager secret (template.yaml: ProvenanceSecretArn) read once per container; locally, PEM
files (DARKROOM_PROVENANCE_CERT_FILE and DARKROOM_PROVENANCE_KEY_FILE; `darkroom dev` makes a test chain).

No certificate configured: nothing is signed, and each job's record says so (`provenance.c2pa`). A certificate
configured but unusable (an unreadable secret, a key that is not the certificate's) fails the job before any GPU
time is spent: the operator asked for signed outputs, so none leaves unsigned.

Thumbnails and video posters are previews for Darkroom's own pages: neither signed nor watermarked.
"""

from __future__ import annotations

import datetime
import io
import json
import re
import threading
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

CLAIM_GENERATOR = "Darkroom"
# IPTC's digital source type for media a trained model made (what the C2PA's AI guidance asks for).
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"

# The watermark: 8 fixed bytes (64 bits) that say Darkroom made the image, embedded with invisible-watermark's
# DWT-DCT-SVD method (it survived JPEG re-encoding at quality 75 with no bit lost in our measurements, where the
# plain dwtDct method lost a third of them). A decode of an unmarked image differs from the payload in ~32 bits;
# up to WATERMARK_MAX_BIT_ERRORS differing bits still count as found (a chance match is below 1 in 10^7).
WATERMARK_PAYLOAD = b"Darkroom"
WATERMARK_METHOD = "dwtDctSvd"
WATERMARK_BITS = len(WATERMARK_PAYLOAD) * 8
WATERMARK_MAX_BIT_ERRORS = 8
# invisible-watermark refuses images of fewer pixels than this (256x256).
WATERMARK_MIN_PIXELS = 256 * 256

_ALGORITHMS = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
UNSIGNED = ("not signed: no signing certificate is configured (deployed: the stack's ProvenanceSecretArn "
            "parameter; locally: DARKROOM_PROVENANCE_CERT_FILE and DARKROOM_PROVENANCE_KEY_FILE)")


class ProvenanceUnavailable(Exception):
    """A signing certificate is configured but cannot be used: the job fails rather than ship unsigned outputs."""


@cache
def _version() -> str | None:
    try:
        return metadata.version("darkroom")
    except metadata.PackageNotFoundError:  # the Modal image carries the source, not the installed package
        return None


# ---------------------------------------------------------------- the signing certificate


@dataclass(frozen=True)
class Credentials:
    chain: bytes  # PEM certificates, the signing (leaf) certificate first
    key: bytes  # PEM private key of the leaf
    alg: str  # es256, es384, es512, ps256 or ed25519
    subject: str  # the leaf's subject, as the job's record names the signer

    @classmethod
    def from_pem(cls, chain: bytes, key: bytes, source: str) -> Credentials:
        """Checked here, once, so a bad pair fails with a message naming `source` rather than inside c2pa."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

        try:
            certs = x509.load_pem_x509_certificates(chain)
        except ValueError as exc:
            raise ProvenanceUnavailable(f"{source}: no PEM certificate could be read ({exc})") from None
        try:
            private = serialization.load_pem_private_key(key, password=None)
        except (ValueError, TypeError) as exc:
            raise ProvenanceUnavailable(f"{source}: the private key could not be read (an unencrypted PEM key "
                                        f"is needed): {exc}") from None
        leaf = certs[0]
        public = serialization.PublicFormat.SubjectPublicKeyInfo
        if (private.public_key().public_bytes(serialization.Encoding.DER, public)
                != leaf.public_key().public_bytes(serialization.Encoding.DER, public)):
            raise ProvenanceUnavailable(f"{source}: the private key is not the first certificate's (the chain "
                                        "must start with the signing certificate)")
        if isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name in _ALGORITHMS:
            alg = _ALGORITHMS[private.curve.name]
        elif isinstance(private, rsa.RSAPrivateKey):
            alg = "ps256"
        elif isinstance(private, ed25519.Ed25519PrivateKey):
            alg = "ed25519"
        else:
            raise ProvenanceUnavailable(f"{source}: C2PA signs with ECDSA (P-256, P-384, P-521), RSA-PSS or "
                                        f"Ed25519 keys, not {type(private).__name__}")
        return cls(chain=chain, key=key, alg=alg, subject=leaf.subject.rfc4514_string())


_PEM = re.compile(r"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----", re.DOTALL)


def _split_bundle(text: str, source: str) -> tuple[bytes, bytes]:
    """A secret's value: {"certificate_chain": PEM, "private_key": PEM}, or one PEM bundle holding both."""
    text = text.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
            return value["certificate_chain"].encode(), value["private_key"].encode()
        except (ValueError, KeyError, AttributeError, TypeError):
            raise ProvenanceUnavailable(f"{source}: expected JSON with certificate_chain and private_key (PEM "
                                        "strings)") from None
    blocks = [(m.group(1), m.group(0) + "\n") for m in _PEM.finditer(text)]
    certs = "".join(block for kind, block in blocks if kind == "CERTIFICATE")
    keys = [block for kind, block in blocks if kind.endswith("PRIVATE KEY")]
    if not certs or len(keys) != 1:
        raise ProvenanceUnavailable(f"{source}: expected PEM certificates and one PEM private key")
    return certs.encode(), keys[0].encode()


_cache: dict[tuple, Credentials] = {}
_cache_lock = threading.Lock()


def load_credentials(secret_arn: str | None, cert_file: str | None, key_file: str | None) -> Credentials | None:
    """The operator's certificate: the secret's (deployed) or the files' (locally); None when neither is set.

    Read once per container (per file version locally) and kept; a failure is not kept, so a fixed secret is
    picked up by the next job."""
    if secret_arn:
        cache_key: tuple = ("secret", secret_arn)
    elif cert_file or key_file:
        if not (cert_file and key_file):
            raise ProvenanceUnavailable("set both DARKROOM_PROVENANCE_CERT_FILE and DARKROOM_PROVENANCE_KEY_FILE")
        try:
            cache_key = ("files", cert_file, key_file, Path(cert_file).stat().st_mtime_ns,
                         Path(key_file).stat().st_mtime_ns)
        except OSError as exc:
            raise ProvenanceUnavailable(f"signing certificate files: {exc}") from None
    else:
        return None
    with _cache_lock:
        if cache_key in _cache:
            return _cache[cache_key]
        if secret_arn:
            from functions.core import aws

            source = f"secret {secret_arn}"
            try:
                text = aws.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"]
            except Exception as exc:  # noqa: BLE001 - whatever the cause, the job says it
                raise ProvenanceUnavailable(f"{source} could not be read: {exc}") from None
            chain, key = _split_bundle(text, source)
        else:
            assert cert_file and key_file
            chain, key = Path(cert_file).read_bytes(), Path(key_file).read_bytes()
            source = cert_file
        credentials = Credentials.from_pem(chain, key, source)
        _cache[cache_key] = credentials
        return credentials


# ---------------------------------------------------------------- what a job's outputs get


@dataclass
class Stamp:
    """What the worker does to one job's outputs: sign them (when a certificate is configured) and watermark
    its images (when the deployment says so). `report` goes to the job's record."""

    model: str
    task: str
    credentials: Credentials | None = None
    watermark: bool = False
    references: list[bytes] = field(default_factory=list)  # PNGs, as the model received them
    edit: bool = False  # an image edited from its first reference (parentOf)
    watermark_skipped: int = 0
    watermarked: int = 0

    def mark(self, image):
        """The image with the invisible watermark, when the deployment asks for one and the image is large
        enough to carry it (invisible-watermark needs 256x256 pixels); else the image unchanged."""
        if not self.watermark:
            return image
        if image.width * image.height < WATERMARK_MIN_PIXELS:
            self.watermark_skipped += 1
            return image
        self.watermarked += 1
        return embed_watermark(image)

    def sign(self, data: bytes, content_type: str, title: str) -> bytes:
        """The encoded file with its C2PA manifest embedded, signed; unchanged when no certificate is set."""
        if self.credentials is None:
            return data
        return sign(data, content_type, manifest(self, title), self.credentials, self.references)

    def report(self, video: bool = False) -> dict[str, str]:
        out = {"c2pa": f"signed by {self.credentials.subject} ({self.credentials.alg})" if self.credentials
               else UNSIGNED}
        if not self.watermark:
            out["watermark"] = "off (the stack's ProvenanceWatermark parameter; locally DARKROOM_PROVENANCE_WATERMARK)"
        elif video:
            out["watermark"] = "not applied: videos carry no watermark, only the C2PA manifest"
        else:
            out["watermark"] = f"embedded in {self.watermarked} image(s) ({WATERMARK_METHOD}, payload {WATERMARK_PAYLOAD!r})"
            if self.watermark_skipped:
                out["watermark"] += f"; {self.watermark_skipped} image(s) smaller than 256x256 carry none"
        return out


def stamp_for(request, model, references: list | None = None, *, edit: bool = False) -> Stamp:
    """The job's stamp: its certificate loaded (or refused) before any GPU time is spent."""
    credentials = load_credentials(getattr(request, "provenance_secret_arn", None),
                                   getattr(request, "provenance_cert_file", None),
                                   getattr(request, "provenance_key_file", None))
    if credentials is None:
        _warn_unsigned()
    pngs = []
    if credentials is not None:
        for image in references or []:
            buf = io.BytesIO()
            image.save(buf, format="PNG", compress_level=1)
            pngs.append(buf.getvalue())
    return Stamp(model=model.id, task=model.task, credentials=credentials,
                 watermark=bool(getattr(request, "provenance_watermark", False)), references=pngs,
                 edit=edit and bool(pngs))


@cache
def _warn_unsigned() -> None:
    """Once per container, in the worker's log: the job records say it too."""
    from functions.core.observability import logger

    logger.warning("C2PA signing is off: no signing certificate is configured; outputs carry no manifest")


def manifest(stamp: Stamp, title: str) -> dict[str, Any]:
    when = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    agent = {"name": stamp.model}
    parameters: dict[str, Any] = {"model": stamp.model, "task": stamp.task}
    labels = [f"reference-{i}" for i in range(len(stamp.references))]
    if stamp.edit:
        actions = [{"action": "c2pa.opened", "when": when, "parameters": {"ingredientIds": labels[:1]}},
                   {"action": "c2pa.edited", "when": when, "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                    "softwareAgent": agent,
                    "parameters": parameters | ({"ingredientIds": labels[1:]} if labels[1:] else {})}]
    else:
        actions = [{"action": "c2pa.created", "when": when, "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                    "softwareAgent": agent,
                    "parameters": parameters | ({"ingredientIds": labels} if labels else {})}]
    generator = {"name": CLAIM_GENERATOR} | ({"version": v} if (v := _version()) else {})
    return {"claim_generator_info": [generator], "title": title,
            "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": actions}}]}


def _context():
    import c2pa

    # No claim thumbnail: it would copy every output into its own manifest (~30 KB an image) for nothing.
    return c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}})


def sign(data: bytes, content_type: str, manifest_json: dict, credentials: Credentials,
         references: list[bytes] = ()) -> bytes:
    import c2pa

    edit = any(a["action"] == "c2pa.opened" for a in manifest_json["assertions"][0]["data"]["actions"])
    builder = c2pa.Builder.from_json(manifest_json, _context())
    for index, png in enumerate(references):
        relationship = "parentOf" if edit and index == 0 else "inputTo"
        builder.add_ingredient({"title": f"reference-{index}.png", "relationship": relationship,
                                "label": f"reference-{index}"}, "image/png", io.BytesIO(png))
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(credentials.alg, credentials.chain, credentials.key, None))
    out = io.BytesIO()
    builder.sign(signer, content_type, io.BytesIO(data), out)
    return out.getvalue()


# ---------------------------------------------------------------- the watermark


def _bgr(image):
    import numpy as np

    return np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])


def embed_watermark(image):
    """The image with WATERMARK_PAYLOAD in its pixels (alpha kept as it was)."""
    import numpy as np
    from imwatermark import WatermarkEncoder
    from PIL import Image

    encoder = WatermarkEncoder()
    encoder.set_watermark("bytes", WATERMARK_PAYLOAD)
    bgr = encoder.encode(_bgr(image), WATERMARK_METHOD)
    marked = Image.fromarray(np.clip(np.round(bgr[:, :, ::-1]), 0, 255).astype(np.uint8), "RGB")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        marked.putalpha(image.convert("RGBA").getchannel("A"))
    return marked


def read_watermark(image) -> dict[str, Any]:
    """{"found": bool, "bit_errors": n, "payload": hex} for an image; found means it decodes to the payload
    within WATERMARK_MAX_BIT_ERRORS bits."""
    import numpy as np
    from imwatermark import WatermarkDecoder

    if image.width * image.height < WATERMARK_MIN_PIXELS:
        return {"found": False, "checked": False, "reason": "smaller than 256x256: too small to carry one"}
    decoded = WatermarkDecoder("bytes", WATERMARK_BITS).decode(_bgr(image), WATERMARK_METHOD)
    errors = int(np.count_nonzero(np.unpackbits(np.frombuffer(decoded, np.uint8))
                                  != np.unpackbits(np.frombuffer(WATERMARK_PAYLOAD, np.uint8))))
    return {"found": errors <= WATERMARK_MAX_BIT_ERRORS, "checked": True, "bit_errors": errors,
            "payload": decoded.hex()}


# ---------------------------------------------------------------- reading a file back (`darkroom provenance check`)


def sniff(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp":
        return "video/mp4"
    return None


def read_manifest(data: bytes, content_type: str, trust_anchors: str | None = None) -> dict[str, Any]:
    """The active manifest as c2pa's Reader validates it: validation state, claim generator, model, actions,
    signer, ingredients and the validation codes that are not successes."""
    import c2pa

    settings: dict[str, Any] = {}
    if trust_anchors:
        settings = {"trust": {"trust_anchors": trust_anchors}, "verify": {"verify_trust": True}}
    context = c2pa.Context.from_dict(settings) if settings else None
    try:
        reader = c2pa.Reader.try_create(content_type, io.BytesIO(data), context=context)
    except c2pa.C2paError as exc:
        return {"present": False, "error": str(exc)}
    if reader is None:
        return {"present": False}
    with reader:
        store = json.loads(reader.json())
    active = store.get("manifests", {}).get(store.get("active_manifest") or "", {})
    actions = [a for assertion in active.get("assertions", []) if assertion.get("label", "").startswith("c2pa.actions")
               for a in assertion.get("data", {}).get("actions", [])]
    models = [a.get("parameters", {}).get("model") or a.get("softwareAgent", {}).get("name") for a in actions
              if a.get("digitalSourceType")]
    signature = active.get("signature_info", {})
    generator = (active.get("claim_generator_info") or [{}])[0]
    return {
        "present": True,
        "validation_state": store.get("validation_state"),
        "claim_generator": " ".join(str(v) for v in (generator.get("name"), generator.get("version")) if v),
        "model": next((m for m in models if m), None),
        "actions": [{k: a[k] for k in ("action", "when", "digitalSourceType") if k in a} for a in actions],
        "ingredients": [{"title": i.get("title"), "relationship": i.get("relationship")}
                        for i in active.get("ingredients", [])],
        "signer": {k: signature[k] for k in ("common_name", "issuer", "alg", "time", "cert_serial_number")
                   if k in signature},
        "issues": [s.get("code") for s in store.get("validation_status", [])],
    }


def check(data: bytes, trust_anchors: str | None = None) -> dict[str, Any]:
    """Both marks of one file: its C2PA manifest and (images) the invisible watermark."""
    content_type = sniff(data)
    if content_type is None:
        return {"format": None, "manifest": {"present": False}, "watermark": {"found": False, "checked": False,
                                                                              "reason": "not a png, jpeg, webp or mp4 file"}}
    report: dict[str, Any] = {"format": content_type, "manifest": read_manifest(data, content_type, trust_anchors)}
    if content_type == "video/mp4":
        report["watermark"] = {"found": False, "checked": False, "reason": "videos carry no watermark"}
    else:
        from PIL import Image, UnidentifiedImageError

        try:
            image = Image.open(io.BytesIO(data))
            image.load()
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            report["watermark"] = {"found": False, "checked": False, "reason": f"the image does not decode: {exc}"}
        else:
            report["watermark"] = read_watermark(image)
    return report
