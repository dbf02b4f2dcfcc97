"""Which TLS and signing files provisioning must (re)write, decided once from what is there.

Kept: a CA whose key matches its certificate and that is not about to expire; a server
certificate from that CA for exactly the booth's address and ``.local`` name; an existing
receipt-signing key. Anything else is made anew (a new CA re-issues the server certificate).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from appliance.provision.engine import Context
from appliance.provision.render import TLS_DIR
from appliance.provision.settings import ProvisionSettings
from appliance.secure import tls

CA_RENEW_BEFORE = dt.timedelta(days=365)


def _read(ctx: Context, name: str) -> bytes | None:
    try:
        return ctx.path(f"{TLS_DIR}/{name}").read_bytes()
    except FileNotFoundError:
        return None


def _current_ca(ctx: Context) -> tls.Issued | None:
    key, cert = _read(ctx, "ca.key"), _read(ctx, "ca.crt")
    if key is None or cert is None:
        return None
    try:
        ca = tls.load_issued(key, cert)
    except ValueError:
        return None
    if not tls.same_public_key(ca.cert.public_key(), ca.key.public_key()):
        return None
    if ca.cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc) < CA_RENEW_BEFORE:
        return None
    return ca


@dataclass(frozen=True)
class TlsMaterial:
    ca_key: bytes
    ca_cert: bytes
    server_key: bytes
    server_cert: bytes
    signing_key: bytes
    signing_pub: bytes

    @classmethod
    def plan(cls, ctx: Context, s: ProvisionSettings) -> TlsMaterial:
        names, ips = [s.local_name], [s.lan_address]
        ca = _current_ca(ctx)
        ca_new = ca is None
        if ca is None:
            ca = tls.make_ca(f"Ephemera {s.booth_name} CA")
        server: tls.Issued | None = None
        key, cert = _read(ctx, "server.key"), _read(ctx, "server.crt")
        if not ca_new and key is not None and cert is not None:
            try:
                server = tls.load_issued(key, cert)
            except ValueError:
                server = None
            if server is not None and not tls.server_cert_current(server, ca, names, ips):
                server = None
        kept_server = server is not None
        if server is None:
            server = tls.make_server_cert(ca, names, ips)
        signing = _read(ctx, "receipt-signing.key")
        signing_key: ed25519.Ed25519PrivateKey | None = None
        if signing is not None:
            try:
                loaded = serialization.load_pem_private_key(signing, password=None)
                signing_key = loaded if isinstance(loaded, ed25519.Ed25519PrivateKey) else None
            except ValueError:
                signing_key = None
        signing_key_kept = signing_key is not None
        if signing_key is None:
            signing_key = tls.make_signing_key()
        return cls(
            ca_key=tls.private_key_pem(ca.key) if ca_new else (_read(ctx, "ca.key") or b""),
            ca_cert=tls.cert_pem(ca.cert) if ca_new else (_read(ctx, "ca.crt") or b""),
            server_key=(key or b"") if kept_server else tls.private_key_pem(server.key),
            server_cert=(cert or b"") if kept_server else tls.cert_pem(server.cert),
            signing_key=signing if signing is not None and signing_key_kept
            else tls.private_key_pem(signing_key),
            signing_pub=tls.public_key_pem(signing_key))
