"""The local stack's C2PA signing certificate: a test root CA and a signing certificate it issued, made once into
the data directory (`<data dir>/provenance/`) with `cryptography`, so that `darkroom dev` signs its outputs as a
deployment does (gpu/provenance.py). Not trusted by anyone: C2PA readers report such a manifest as valid but
from an untrusted signer, unless given root.pem as a trust anchor (`darkroom provenance check --trust-anchors`).

The signing certificate follows the C2PA certificate profile that c2pa's validator enforces (c2pa-rs,
crypto/cose/certificate_profile.rs): X.509 v3, an ECDSA P-256 key signed with SHA-256, KeyUsage critical with
digitalSignature only, an ExtendedKeyUsage that is not anyExtendedKeyUsage (emailProtection, as S/MIME
certificates CAs sell for C2PA have), BasicConstraints CA:false, and Subject and Authority Key Identifiers. The root
is a CA (keyCertSign, cRLSign, pathLen 0). Neither is self-signed as a signer: c2pa refuses self-signed leaves.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

ORGANIZATION = "Darkroom local development (untrusted test certificate)"
LEAF_DAYS = 365
ROOT_DAYS = 3650
RENEW_BEFORE = datetime.timedelta(days=30)


@dataclass(frozen=True)
class DevCertificate:
    chain: Path  # the signing certificate then the root: DARKROOM_PROVENANCE_CERT_FILE
    key: Path  # the signing key: DARKROOM_PROVENANCE_KEY_FILE
    root: Path  # the test root CA, a trust anchor for checks
    created: bool  # made by this call (else found valid on disk)


def ensure_dev_certificate(data_dir: Path) -> DevCertificate:
    """The data directory's test chain, made if missing or within RENEW_BEFORE of expiring."""
    from cryptography import x509

    folder = data_dir / "provenance"
    chain, key, root = folder / "chain.pem", folder / "signing-key.pem", folder / "root.pem"
    if chain.exists() and key.exists() and root.exists():
        try:
            leaf = x509.load_pem_x509_certificates(chain.read_bytes())[0]
            if leaf.not_valid_after_utc - RENEW_BEFORE > datetime.datetime.now(datetime.UTC):
                return DevCertificate(chain, key, root, created=False)
        except ValueError:
            pass  # unreadable: made again
    folder.mkdir(parents=True, exist_ok=True)
    chain_pem, key_pem, root_pem = make_chain()
    root.write_bytes(root_pem)
    chain.write_bytes(chain_pem)
    key.touch(mode=0o600)
    key.write_bytes(key_pem)
    return DevCertificate(chain, key, root, created=True)


def make_chain(common_name: str = "Darkroom local signer") -> tuple[bytes, bytes, bytes]:
    """(chain PEM: leaf then root, leaf key PEM, root PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def usage(**on: bool) -> x509.KeyUsage:
        flags = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                               "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"), False)
        return x509.KeyUsage(**(flags | on))

    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (x509.CertificateBuilder().subject_name(name("Darkroom local test root CA"))
            .issuer_name(name("Darkroom local test root CA")).public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=ROOT_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(name(common_name)).issuer_name(root.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=LEAF_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    root_pem = root.public_bytes(pem)
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return leaf.public_bytes(pem) + root_pem, key_pem, root_pem
