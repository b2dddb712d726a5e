"""The certificate chain and key that sign content credentials: the configured ones
(c2pa_certificate_file and c2pa_private_key_file), or else a local certificate authority made
once in <storage_dir>/.c2pa.

C2PA's certificate profile asks for a signing certificate issued by a certificate authority,
and the C2PA library checks what it can of it before it signs: a critical key usage of
digitalSignature, an extended key usage for e-mail or documents (not TLS), an authority key
identifier (which the usual self-signed certificate lacks). So the local authority is two
certificates: a root made here, whose key signs one leaf and is then thrown away (nothing
else can ever be issued in its name), and that leaf, which signs. Validators trust neither
until their users add the root as a trust anchor; docs/provenance.md says how to configure a
certificate that they do trust.

Needs `cryptography` (a dependency of c2pa-python, so of the c2pa extra): import this module
only once c2pa has been found.
"""

from __future__ import annotations

import datetime
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

SigningAlgorithm = Literal["es256", "es384", "es512", "ps256", "ed25519"]

# The local authority's files, in <storage_dir>/.c2pa (0700), each 0600 like the URL key.
LOCAL_AUTHORITY_DIR = ".c2pa"
AUTHORITY_FILE = "authority.pem"  # the root: what a validator is given as a trust anchor
CERTIFICATE_FILE = "signing-certificate.pem"  # the leaf, then the root
KEY_FILE = "signing-key.pem"
LOCAL_VALIDITY = datetime.timedelta(days=10 * 365)
# C2PA's own extended key usage for claim signing, beside e-mail protection, which every
# C2PA validator accepts.
C2PA_CLAIM_SIGNING = ObjectIdentifier("1.3.6.1.4.1.62558.2.1")
# RSA keys below this size are refused by the C2PA specification.
MIN_RSA_BITS = 2048
EC_ALGORITHMS: dict[str, SigningAlgorithm] = {
    "secp256r1": "es256",
    "secp384r1": "es384",
    "secp521r1": "es512",
}


@dataclass(frozen=True)
class SigningCredentials:
    """What signs: a PEM chain (the signing certificate first), its PEM key, the algorithm the
    key's type implies, and where they came from, for messages."""

    certificate_chain: bytes
    private_key: bytes = field(repr=False)
    algorithm: SigningAlgorithm
    described: str  # "c2pa_certificate_file /etc/..." or "the local authority in ..."


def configured_credentials(certificate_file: Path, key_file: Path) -> SigningCredentials:
    """The chain and key of the settings. ValueError naming the setting when either cannot be
    read or used, or when they do not belong together."""
    described = f"c2pa_certificate_file {certificate_file}"
    return _credentials(
        _read(certificate_file, "c2pa_certificate_file"),
        _read(key_file, "c2pa_private_key_file"),
        certificate_name=described,
        key_name=f"c2pa_private_key_file {key_file}",
        described=described,
    )


def local_credentials(storage_dir: Path) -> SigningCredentials:
    """The local authority's signing certificate and key, made on first use in
    `storage_dir`/.c2pa and read back from there afterwards.

    Made in a private temporary directory and renamed into place, so that two processes that
    start together agree on one authority and never read half of one."""
    directory = storage_dir / LOCAL_AUTHORITY_DIR
    if not (directory / KEY_FILE).exists():
        storage_dir.mkdir(parents=True, exist_ok=True)
        _make_local_authority(storage_dir, directory)
    remedy = f"; delete {directory} to have a new local authority made"
    try:
        certificates = (directory / CERTIFICATE_FILE).read_bytes()
        key = (directory / KEY_FILE).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the C2PA local authority: {exc}{remedy}") from None
    described = f"the local C2PA authority in {directory}"
    return _credentials(
        certificates,
        key,
        certificate_name=str(directory / CERTIFICATE_FILE),
        key_name=str(directory / KEY_FILE),
        described=described,
        remedy=remedy,
    )


def _read(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{setting} {path} cannot be read: {exc.strerror}") from None


def _credentials(
    certificates: bytes,
    key: bytes,
    *,
    certificate_name: str,
    key_name: str,
    described: str,
    remedy: str = "",
) -> SigningCredentials:
    try:
        private_key = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as exc:  # TypeError: the key is encrypted
        raise ValueError(
            f"{key_name} is not an unencrypted PEM private key ({exc}){remedy}"
        ) from None
    algorithm = _algorithm(private_key, key_name)
    try:
        chain = x509.load_pem_x509_certificates(certificates)
    except ValueError:
        raise ValueError(f"{certificate_name} holds no PEM certificate{remedy}") from None
    signing = chain[0]
    if _public(signing.public_key()) != _public(private_key.public_key()):
        raise ValueError(
            f"{certificate_name}: its first certificate is not the one of the key in "
            f"{key_name} (the signing certificate comes first, then its issuers){remedy}"
        )
    if signing.not_valid_after_utc < datetime.datetime.now(datetime.timezone.utc):
        raise ValueError(
            f"{certificate_name}: the signing certificate expired on "
            f"{signing.not_valid_after_utc:%Y-%m-%d}{remedy}"
        )
    return SigningCredentials(
        # Normalised: PEM certificates only (no comments or stray keys), a PKCS#8 key.
        certificate_chain=b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain),
        private_key=private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        algorithm=algorithm,
        described=described,
    )


def _algorithm(key: object, key_name: str) -> SigningAlgorithm:
    """The C2PA signing algorithm of a key: ES256/384/512 for EC keys on the NIST curves,
    PS256 for RSA, Ed25519."""
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in EC_ALGORITHMS:
        return EC_ALGORITHMS[key.curve.name]
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(
                f"{key_name} is an RSA key of {key.key_size} bits; C2PA needs at least "
                f"{MIN_RSA_BITS}."
            )
        return "ps256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    raise ValueError(
        f"{key_name} must be an EC key on P-256, P-384 or P-521 (ES256/384/512), an RSA key "
        f"(PS256) or an Ed25519 key; got {type(key).__name__.lstrip('_')}."
    )


def _public(key: object) -> bytes:
    assert isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey)
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _make_local_authority(storage_dir: Path, directory: Path) -> None:
    """A root and a leaf signed by it, written into `directory` all at once, unless another
    process gets there first."""
    temporary = storage_dir / f"{LOCAL_AUTHORITY_DIR}.{secrets.token_hex(8)}"
    temporary.mkdir(mode=0o700)
    os.chmod(temporary, 0o700)  # the umask may have taken bits away
    try:
        authority, certificate, key = _issue_local_certificates()
        for name, data in (
            (AUTHORITY_FILE, authority),
            (CERTIFICATE_FILE, certificate + authority),
            (KEY_FILE, key),
        ):
            fd = os.open(temporary / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(temporary / name, 0o600)
        try:
            # Atomic, and refused when another process has put a complete one there.
            os.rename(temporary, directory)
        except OSError as exc:
            if not (directory / KEY_FILE).exists():
                raise ValueError(
                    f"cannot create the C2PA local authority in {directory}: {exc.strerror}"
                    f" (move away what is there)"
                ) from None
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _issue_local_certificates() -> tuple[bytes, bytes, bytes]:
    """PEM: the root certificate, the leaf certificate, the leaf's key. The root's key is
    dropped once it has signed the leaf."""
    now = datetime.datetime.now(datetime.timezone.utc)
    # A few minutes back, for validators whose clocks run a little behind this one.
    not_before, not_after = now - datetime.timedelta(minutes=5), now + LOCAL_VALIDITY
    # Each installation its own names, so that trusting one server's root trusts no other's.
    tag = secrets.token_hex(4)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"pixelsmith local C2PA authority {tag}"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pixelsmith (self-hosted, untrusted)"),
        ]
    )
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signs_certificates=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False)
        .sign(root_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"pixelsmith content credentials {tag}"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pixelsmith (self-hosted, untrusted)"),
        ]
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(leaf_name)
        .issuer_name(root_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signs_certificates=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, C2PA_CLAIM_SIGNING]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
        )
        .sign(root_key, hashes.SHA256())
    )
    key = leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pem = serialization.Encoding.PEM
    return root.public_bytes(pem), leaf.public_bytes(pem), key


def _key_usage(*, signs_certificates: bool) -> x509.KeyUsage:
    """digitalSignature for the leaf; keyCertSign (and cRLSign) for the root."""
    return x509.KeyUsage(
        digital_signature=not signs_certificates,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )
