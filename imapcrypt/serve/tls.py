"""STARTTLS for `imapcrypt serve --starttls`: a certificate for 127.0.0.1, made once, signed by itself.

Some mail clients refuse a password over a connection without TLS, even to this computer. The key and
certificate live in the data dir (`serve-tls.key`, readable only by the user, and `serve-tls.pem`);
the client is told to trust that certificate (docs/serve.md). The key protects only the loopback hop
of the local password and decrypted mail, never the provider's connection or any OpenPGP key.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from imapcrypt.private import private_dir

CERT_FILE = "serve-tls.pem"
KEY_FILE = "serve-tls.key"
VALID_DAYS = 3650  # a self-signed loopback certificate: the client pins it, expiry adds nothing


def local_certificate(data_dir: Path) -> tuple[Path, Path]:
    """The certificate and key files for 127.0.0.1 in `data_dir`, made on first use."""
    cert, key = data_dir / CERT_FILE, data_dir / KEY_FILE
    if cert.exists() and key.exists():
        return cert, key
    private_dir(data_dir)
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imapcrypt serve (127.0.0.1)")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(private, hashes.SHA256())
    )
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return cert, key


def server_context(data_dir: Path) -> ssl.SSLContext:
    """A TLS server context with the local certificate (TLS 1.2 at least)."""
    cert, key = local_certificate(data_dir)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context
