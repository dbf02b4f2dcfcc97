"""The booth's CA and server certificate, checked with cryptography's own verification."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID

from appliance.secure import tls


def test_server_certificate_chain_names_and_usage() -> None:
    ca = tls.make_ca("Ephemera test CA")
    server = tls.make_server_cert(ca, ["booth.local"], ["192.168.4.1"])
    server.cert.verify_directly_issued_by(ca.cert)
    assert tls.subject_alt_names(server.cert) == ({"booth.local"}, {"192.168.4.1"})
    usage = server.cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    eku = server.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    ca_usage = ca.cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ca_usage.key_cert_sign and not ca_usage.digital_signature
    constraints = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0
    now = dt.datetime.now(dt.timezone.utc)
    assert server.cert.not_valid_before_utc <= now < server.cert.not_valid_after_utc
    assert isinstance(server.key, ec.EllipticCurvePrivateKey)


def test_pem_round_trip_and_currency() -> None:
    ca = tls.make_ca("CA")
    server = tls.make_server_cert(ca, ["a.local"], ["10.0.0.2"])
    again = tls.load_issued(tls.private_key_pem(server.key), tls.cert_pem(server.cert))
    assert tls.server_cert_current(again, ca, ["a.local"], ["10.0.0.2"])
    assert not tls.server_cert_current(again, ca, ["a.local"], ["10.0.0.3"])
    assert not tls.server_cert_current(again, ca, ["b.local"], ["10.0.0.2"])
    assert not tls.server_cert_current(again, tls.make_ca("other"), ["a.local"], ["10.0.0.2"])
    other_key = tls.make_server_cert(ca, ["a.local"], ["10.0.0.2"])
    assert not tls.server_cert_current(tls.Issued(other_key.key, server.cert), ca,
                                       ["a.local"], ["10.0.0.2"])
    short = tls.make_server_cert(ca, ["a.local"], ["10.0.0.2"], days=10)
    assert not tls.server_cert_current(short, ca, ["a.local"], ["10.0.0.2"])


def test_signing_key_signs() -> None:
    key = tls.make_signing_key()
    signature = key.sign(b"receipt")
    key.public_key().verify(signature, b"receipt")
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    assert tls.public_key_pem(key).startswith(b"-----BEGIN PUBLIC KEY-----")


def test_a_certificate_needs_a_name() -> None:
    with pytest.raises(ValueError, match="at least one"):
        tls.make_server_cert(tls.make_ca("CA"), [], [])
