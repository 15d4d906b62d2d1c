"""TLS for ``bulkreg serve --tls``: a local CA and a server certificate, made once and reused.

The official SDKs speak https only, and verify the server. ``local_certificates(directory)``
makes (or reuses) ``ca.pem`` (a CA that signs one certificate, then forgets its key: nothing
else can ever be signed by it), ``server.pem`` and ``server.key`` for localhost, 127.0.0.1 and
::1. The user trusts ``ca.pem`` (``REQUESTS_CA_BUNDLE``, ``NODE_EXTRA_CA_CERTS``, a trust
store); ``--tls-cert``/``--tls-key`` take the user's own pair instead.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path
from typing import NamedTuple

__all__ = ["Certificates", "local_certificates", "server_context"]

NAMES = ("localhost",)
ADDRESSES = ("127.0.0.1", "::1")
_VALID = datetime.timedelta(days=825)  # the longest validity clients accept for a leaf
_RENEW = datetime.timedelta(days=30)  # reuse a directory's pair unless it expires sooner


class Certificates(NamedTuple):
    ca: Path
    cert: Path
    key: Path


def _still_good(found: Certificates) -> bool:
    from cryptography import x509  # noqa: PLC0415 - only --tls pays for loading it

    if not all(p.is_file() for p in found):
        return False
    try:
        leaf = x509.load_pem_x509_certificate(found.cert.read_bytes())
        x509.load_pem_x509_certificate(found.ca.read_bytes())
    except ValueError:
        return False
    now = datetime.datetime.now(datetime.UTC)
    return leaf.not_valid_after_utc - now > _RENEW


def local_certificates(directory: str | Path) -> Certificates:
    """The CA and server pair in ``directory``: reused while valid, else made afresh."""
    folder = Path(directory)
    found = Certificates(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    if _still_good(found):
        return found
    folder.mkdir(parents=True, exist_ok=True)
    ca_pem, cert_pem, key_pem = _issue()
    fd = os.open(found.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key_pem)
    found.cert.write_bytes(cert_pem)
    found.ca.write_bytes(ca_pem)
    return found


def _issue() -> tuple[bytes, bytes, bytes]:
    """(CA certificate, server certificate, server key), PEM."""
    from cryptography import x509  # noqa: PLC0415 - only --tls pays for loading it
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: PLC0415

    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                            f"bulkreg local CA {os.urandom(4).hex()}")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + _VALID)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in NAMES]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ADDRESSES]
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + _VALID)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return ca.public_bytes(pem), leaf.public_bytes(pem), key_pem


def server_context(cert: str | Path, key: str | Path) -> ssl.SSLContext:
    """A server-side context (TLS 1.2+) for this pair; ssl errors say what is wrong."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context
