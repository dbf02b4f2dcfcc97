"""The booth's own certificate authority, its LAN server certificate and the receipt-signing key.

Why a private CA per booth: guests' phones reach the booth by its LAN address or its ``.local``
name, which no public CA will certify. One CA per booth (its key never leaves the booth's
``/etc/ephemera/tls``) signs a short-lived server certificate whose subject alternative names
are exactly that address and name; an operator's laptop can trust the CA once. Development
machines use the same functions for their certificates.

Keys are ECDSA P-256 for TLS (what every phone accepts) and Ed25519 for signing receipts.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVER_DAYS = 397  # the longest lifetime Apple's and Google's clients accept for a leaf
RENEW_BEFORE_DAYS = 30

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Issued:
    """A private key and its certificate."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ephemera booth"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(common_name: str, *, days: int = CA_DAYS) -> Issued:
    """A self-signed CA that may sign server certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return Issued(key, cert)


def make_server_cert(ca: Issued, dns_names: Sequence[str], ips: Sequence[str], *,
                     days: int = SERVER_DAYS) -> Issued:
    """A TLS server certificate for exactly these names and addresses, signed by ``ca``."""
    if not dns_names and not ips:
        raise ValueError("a server certificate needs at least one DNS name or IP address")
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    san: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    san += [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
    cert = (x509.CertificateBuilder()
            .subject_name(_name(dns_names[0] if dns_names else ips[0]))
            .issuer_name(ca.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca.key.public_key()), critical=False)
            .sign(ca.key, hashes.SHA256()))
    return Issued(key, cert)


def make_signing_key() -> ed25519.Ed25519PrivateKey:
    """The key that signs receipts (what a guest was given, never what was in it)."""
    return ed25519.Ed25519PrivateKey.generate()


def private_key_pem(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_key_pem(key: ed25519.Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_issued(key_pem: bytes, cert_pem_bytes: bytes) -> Issued:
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("expected an ECDSA private key")
    return Issued(key, x509.load_pem_x509_certificate(cert_pem_bytes))


def same_public_key(a: object, b: object) -> bool:
    """Whether two public keys are the same key (compared as SubjectPublicKeyInfo DER)."""
    def der(key: object) -> bytes:
        return key.public_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    return der(a) == der(b)


def subject_alt_names(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    """(DNS names, IP addresses as text) the certificate is valid for."""
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (set(san.get_values_for_type(x509.DNSName)),
            {str(a) for a in san.get_values_for_type(x509.IPAddress)})


def server_cert_current(server: Issued, ca: Issued, dns_names: Sequence[str],
                        ips: Sequence[str], *, renew_before_days: int = RENEW_BEFORE_DAYS) -> bool:
    """True when ``server`` needs no re-issue: signed by ``ca``, the same names, not expiring.

    Provisioning re-issues only when this is False, so running it twice changes nothing.
    """
    cert = server.cert
    try:
        cert.verify_directly_issued_by(ca.cert)
        names = subject_alt_names(cert)
    except (ValueError, TypeError, x509.ExtensionNotFound):
        return False
    if names != (set(dns_names), {str(ipaddress.ip_address(a)) for a in ips}):
        return False
    if not same_public_key(cert.public_key(), server.key.public_key()):
        return False
    return cert.not_valid_after_utc - _now() > dt.timedelta(days=renew_before_days)
