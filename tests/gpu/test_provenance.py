"""Provenance (gpu/provenance.py): the C2PA manifests the worker signs onto the files the real encode path makes,
read back with c2pa's own Reader; the invisible watermark, which survives a re-encode that strips the manifest;
the signing certificate's sources and refusals; `darkroom dev`'s test chain; `darkroom provenance check`."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import c2pa
import numpy as np
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from PIL import Image
from typer.testing import CliRunner

from gpu import encode, provenance
from infra.cli import app
from infra.local.signing_cert import ensure_dev_certificate, make_chain

MODEL = SimpleNamespace(id="flux-schnell", task="text-to-image")
EDIT_MODEL = SimpleNamespace(id="flux-kontext-dev", task="image-to-image")
VIDEO_MODEL = SimpleNamespace(id="ltx-video", task="image-to-video")


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return ensure_dev_certificate(tmp_path_factory.mktemp("darkroom-data"))


def request(cert, watermark=False):
    return SimpleNamespace(provenance_secret_arn=None, provenance_cert_file=str(cert.chain),
                           provenance_key_file=str(cert.key), provenance_watermark=watermark)


def picture(size=(320, 256), seed=0) -> Image.Image:
    """A photo-like image (smooth shapes, not noise): what the watermark is for."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).resize(size, Image.Resampling.BICUBIC)


def read(data: bytes, content_type: str) -> dict:
    """The manifest store as c2pa's own Reader validates it."""
    with c2pa.Reader(content_type, io.BytesIO(data)) as reader:
        return json.loads(reader.json())


def active(store: dict) -> dict:
    return store["manifests"][store["active_manifest"]]


def actions(manifest: dict) -> list[dict]:
    return [a for s in manifest["assertions"] if s["label"].startswith("c2pa.actions") for a in s["data"]["actions"]]


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_every_image_format_carries_a_valid_manifest_naming_the_model(cert, fmt):
    stamp = provenance.stamp_for(request(cert), MODEL)
    plain = encode.encode_image(picture(), fmt)
    data = stamp.sign(plain, encode.CONTENT_TYPES[fmt], f"job-0.{fmt}")

    store = read(data, encode.CONTENT_TYPES[fmt])
    assert store["validation_state"] == "Valid"
    # The one issue: no trust list names the test root (a deployment's own CA is the operator's to publish).
    assert [s["code"] for s in store.get("validation_status", [])] == ["signingCredential.untrusted"]
    manifest = active(store)
    assert manifest["claim_generator_info"][0]["name"] == "Darkroom"
    (created,) = actions(manifest)
    assert created["action"] == "c2pa.created"
    assert created["digitalSourceType"] == provenance.TRAINED_ALGORITHMIC_MEDIA
    assert created["parameters"]["model"] == "flux-schnell" and created["softwareAgent"]["name"] == "flux-schnell"
    assert created["when"].endswith("Z")
    assert manifest["signature_info"]["common_name"] == "Darkroom local signer"
    assert "thumbnail" not in manifest  # no copy of the output inside its own manifest
    # The pixels are the encoder's: the manifest rides in the container, nothing is re-encoded.
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), np.asarray(Image.open(io.BytesIO(plain))))
    # Trusted once the test root is a trust anchor.
    report = provenance.read_manifest(data, encode.CONTENT_TYPES[fmt], trust_anchors=cert.root.read_text())
    assert report["validation_state"] == "Trusted" and report["issues"] == []


def test_a_video_carries_a_valid_manifest_its_references_as_inputs(cert):
    frames = [picture((64, 64), seed=i) for i in range(9)]
    stamp = provenance.stamp_for(request(cert), VIDEO_MODEL, [frames[0]], edit=False)
    data = stamp.sign(encode.encode_video(frames, 8.0), "video/mp4", "job-0.mp4")

    store = read(data, "video/mp4")
    assert store["validation_state"] == "Valid"
    manifest = active(store)
    (created,) = actions(manifest)
    assert created["action"] == "c2pa.created" and created["parameters"]["model"] == "ltx-video"
    assert [(i["title"], i["relationship"]) for i in manifest["ingredients"]] == [("reference-0.png", "inputTo")]
    assert stamp.report(video=True)["watermark"].startswith("off")


def test_an_edit_is_opened_from_its_first_reference_then_edited(cert):
    references = [picture(seed=1), picture(seed=2)]
    stamp = provenance.stamp_for(request(cert), EDIT_MODEL, references, edit=True)
    data = stamp.sign(encode.encode_image(picture(), "png"), "image/png", "job-0.png")

    store = read(data, "image/png")
    assert store["validation_state"] == "Valid"
    manifest = active(store)
    opened, edited = actions(manifest)
    assert opened["action"] == "c2pa.opened" and edited["action"] == "c2pa.edited"
    assert edited["digitalSourceType"] == provenance.TRAINED_ALGORITHMIC_MEDIA
    assert edited["parameters"]["model"] == "flux-kontext-dev"
    assert [(i["title"], i["relationship"]) for i in manifest["ingredients"]] == [
        ("reference-0.png", "parentOf"), ("reference-1.png", "inputTo")]


def test_a_re_encode_strips_the_manifest_but_keeps_the_watermark(cert):
    stamp = provenance.stamp_for(request(cert, watermark=True), MODEL)
    data = stamp.sign(encode.encode_image(stamp.mark(picture()), "png"), "image/png", "job-0.png")
    assert provenance.check(data)["manifest"]["validation_state"] == "Valid"
    assert provenance.check(data)["watermark"]["bit_errors"] == 0

    resaved = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(resaved, format="JPEG", quality=80)
    assert c2pa.Reader.try_create("image/jpeg", io.BytesIO(resaved.getvalue())) is None  # the manifest is gone
    report = provenance.check(resaved.getvalue())
    assert report["manifest"] == {"present": False}
    assert report["watermark"]["found"], report["watermark"]
    # An unmarked image decodes to noise, far from the payload.
    assert not provenance.check(encode.encode_image(picture(), "png"))["watermark"]["found"]
    assert stamp.report()["watermark"].startswith("embedded in 1 image")


def test_the_watermark_keeps_alpha_and_skips_images_too_small_to_carry_it(cert):
    stamp = provenance.stamp_for(request(cert, watermark=True), MODEL)
    rgba = picture().convert("RGBA")
    rgba.putalpha(Image.new("L", rgba.size, 128))
    marked = stamp.mark(rgba)
    assert marked.mode == "RGBA" and np.all(np.asarray(marked)[:, :, 3] == 128)
    small = picture((128, 128))
    assert stamp.mark(small) is small
    assert "1 image(s) smaller than 256x256 carry none" in stamp.report()["watermark"]


def test_without_a_certificate_nothing_is_signed_and_the_record_says_so():
    stamp = provenance.stamp_for(SimpleNamespace(), MODEL)
    data = encode.encode_image(picture(), "png")
    assert stamp.sign(data, "image/png", "x.png") == data
    assert stamp.report()["c2pa"].startswith("not signed: no signing certificate is configured")


def test_a_configured_certificate_that_cannot_be_used_is_refused(tmp_path, cert, monkeypatch):
    other_chain, other_key, _ = make_chain()
    (tmp_path / "key.pem").write_bytes(other_key)
    with pytest.raises(provenance.ProvenanceUnavailable, match="not the first certificate's"):
        provenance.load_credentials(None, str(cert.chain), str(tmp_path / "key.pem"))
    with pytest.raises(provenance.ProvenanceUnavailable, match="set both"):
        provenance.load_credentials(None, str(cert.chain), None)
    with pytest.raises(provenance.ProvenanceUnavailable, match="No such file"):
        provenance.load_credentials(None, str(tmp_path / "missing.pem"), str(cert.key))

    # Deployed: the secret, read once per container (the first read is cached, a failure is not).
    reads = []

    class Secrets:
        def get_secret_value(self, SecretId):
            reads.append(SecretId)
            if SecretId.endswith("broken"):
                return {"SecretString": '{"certificate_chain": "nope"}'}
            return {"SecretString": json.dumps({"certificate_chain": other_chain.decode(),
                                                "private_key": other_key.decode()})}

    from functions.core import aws

    monkeypatch.setattr(aws, "client", lambda service: Secrets())
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:darkroom-c2pa-AbCdEf"
    first = provenance.load_credentials(arn, None, None)
    assert provenance.load_credentials(arn, None, None) is first and reads == [arn]
    assert first.alg == "es256" and "Darkroom local signer" in first.subject
    with pytest.raises(provenance.ProvenanceUnavailable, match="certificate_chain and private_key"):
        provenance.load_credentials(arn + "broken", None, None)
    # One PEM bundle (certificates and key) is accepted too.
    assert provenance._split_bundle((other_chain + other_key).decode(), "s") == (other_chain, other_key)


def test_darkroom_dev_makes_a_chain_that_fits_the_c2pa_certificate_profile(tmp_path):
    made = ensure_dev_certificate(tmp_path)
    assert made.created and made.chain.parent == tmp_path / "provenance"
    assert made.key.stat().st_mode & 0o077 == 0  # the key is the developer's only
    again = ensure_dev_certificate(tmp_path)
    assert not again.created and again.chain.read_bytes() == made.chain.read_bytes()

    leaf, root = x509.load_pem_x509_certificates(made.chain.read_bytes())
    assert root == x509.load_pem_x509_certificate(made.root.read_bytes())
    assert leaf.issuer == root.subject and leaf.issuer != leaf.subject  # c2pa refuses self-signed signers
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.EMAIL_PROTECTION]
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


# ---------------------------------------------------------------- darkroom provenance check FILE


def test_the_check_command_reports_a_signed_file(cert, tmp_path):
    stamp = provenance.stamp_for(request(cert, watermark=True), MODEL)
    path = tmp_path / "signed.png"
    path.write_bytes(stamp.sign(encode.encode_image(stamp.mark(picture()), "png"), "image/png", "x.png"))

    result = CliRunner().invoke(app, ["provenance", "check", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for line in ("C2PA manifest  Valid", "generator    Darkroom", "model        flux-schnell",
                 "action       c2pa.created (trainedAlgorithmicMedia)", "signer       Darkroom local signer",
                 "signingCredential.untrusted", "watermark      Darkroom (0 of 64 bits differ)"):
        assert line in result.output, result.output

    result = CliRunner().invoke(app, ["provenance", "check", str(path), "--json", "--trust-anchors", str(cert.root)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] and report["format"] == "image/png"
    assert report["manifest"]["validation_state"] == "Trusted" and report["manifest"]["model"] == "flux-schnell"
    assert report["manifest"]["actions"][0]["action"] == "c2pa.created"
    assert report["manifest"]["signer"]["common_name"] == "Darkroom local signer"
    assert report["watermark"]["found"] and report["watermark"]["payload"] == b"Darkroom".hex()


def test_the_check_command_on_a_plain_file_and_an_unreadable_one(tmp_path):
    path = tmp_path / "plain.jpg"
    picture().save(path, format="JPEG")
    result = CliRunner().invoke(app, ["provenance", "check", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    assert "C2PA manifest  none" in result.output and "watermark      none" in result.output
    result = CliRunner().invoke(app, ["provenance", "check", str(path), "--json"])
    assert result.exit_code == 1 and json.loads(result.output)["manifest"] == {"present": False}
    result = CliRunner().invoke(app, ["provenance", "check", str(tmp_path / "missing.png")])
    assert result.exit_code == 2 and "cannot read" in result.output


def test_diffusers_own_sdxl_watermark_stays_off(tiny_root):
    """diffusers' SDXL pipelines watermark every output themselves whenever invisible-watermark is importable (it is
    now), and fail under 256x256: whether outputs are watermarked is the deployment's choice, not the library's."""
    from gpu.pipelines import GenerationRequest, generate, load_pipeline

    for family in ("sdxl", "sdxl-img2img"):  # loaded, and derived from the loaded base
        assert load_pipeline(family, tiny_root / "tiny-sdxl-v1").watermark is None
    result = generate(load_pipeline("sdxl", tiny_root / "tiny-sdxl-v1"), "sdxl",
                      GenerationRequest(prompt="x", width=64, height=64, steps=1, seed=1))
    assert result.images[0].size == (64, 64)
