"""A self-signed certificate for 127.0.0.1, and a sandbox serving HTTPS with it (for TLS tests)."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

from airflow_provider_commpeak.sandbox import CommPeakSandbox


def self_signed(directory: Path) -> tuple[Path, Path]:
    """Write a certificate and key for 127.0.0.1; return their paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def https_sandbox(directory: Path) -> tuple[CommPeakSandbox, Path]:
    """A sandbox speaking HTTPS with a certificate no client trusts unless told to; and the cert's path."""
    cert, key = self_signed(directory)
    sandbox = CommPeakSandbox()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = sandbox._server
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    return sandbox, cert
