"""Where the LAN listener binds and the TLS it speaks there.

Why here and not in provisioning: a device gets its CA and server certificate from
``provisioning/provision`` (``appliance/provision/tls_files.py``); a development machine has none,
so the first ``ephemera serve`` with the LAN enabled makes a CA and a server certificate (with
the same functions, SAN = the LAN address and the box's ``.local`` name) at the configured
paths, with the CA beside them (``ca.pem``) for the test client or an operator's laptop to
trust. Strict mode never makes certificates: missing files are a configuration error.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import socket
import ssl
import struct
from dataclasses import dataclass
from pathlib import Path

from appliance.config import Config, ConfigError
from appliance.secure import tls

SIOCGIFADDR = 0x8915
DEV_TLS_DIR = Path.home() / ".local" / "share" / "ephemera" / "dev-tls"
# Modern clients only: every phone browser of the last years speaks TLS 1.2 with ECDHE+AEAD.
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


@dataclass(frozen=True)
class LanEndpoint:
    """The LAN listener: its address and port, and the files of its certificate."""

    address: str
    port: int
    cert_path: Path
    key_path: Path
    ca_path: Path | None

    @property
    def bind(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


def interface_ipv4(name: str) -> str:
    """The IPv4 address of a network interface (``wlan0``), asked of the kernel."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            packed = fcntl.ioctl(probe.fileno(), SIOCGIFADDR,
                                 struct.pack("256s", name.encode()[:15]))
        except OSError as exc:
            raise ConfigError(f"lan.interface = {name!r} has no IPv4 address ({exc.strerror}); "
                              "bring it up or set lan.address") from None
    return socket.inet_ntoa(packed[20:24])


def lan_address(cfg: Config) -> str:
    address = cfg.lan.address or interface_ipv4(cfg.lan.interface)
    if ipaddress.ip_address(address).is_loopback:
        raise ConfigError(f"lan.address = {address} is a loopback address: the LAN listener "
                          "must be on the guests' network (the kiosk already has loopback)")
    return address


def local_name() -> str:
    """The booth's mDNS name, as phones would type it."""
    return socket.gethostname().split(".", 1)[0].lower() + ".local"


def ensure_certificate(cert_path: Path, key_path: Path, address: str) -> Path:
    """Make a CA and a server certificate for ``address`` unless current ones are there.

    Returns the CA's path. Re-issued (same CA) when the address or name changed."""
    ca_path, ca_key_path = cert_path.parent / "ca.pem", cert_path.parent / "ca.key"
    names = [local_name()]
    if ca_path.is_file() and ca_key_path.is_file():
        ca = tls.load_issued(ca_key_path.read_bytes(), ca_path.read_bytes())
    else:
        ca = tls.make_ca(f"Ephemera development CA ({local_name()})")
        _write(ca_key_path, tls.private_key_pem(ca.key), private=True)
        _write(ca_path, tls.cert_pem(ca.cert))
    if cert_path.is_file() and key_path.is_file():
        server = tls.load_issued(key_path.read_bytes(), cert_path.read_bytes())
        if tls.server_cert_current(server, ca, names, [address]):
            return ca_path
    server = tls.make_server_cert(ca, names, [address])
    _write(key_path, tls.private_key_pem(server.key), private=True)
    _write(cert_path, tls.cert_pem(server.cert))
    return ca_path


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(path.name + ".new")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                         0o600 if private else 0o644)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


def lan_endpoint(cfg: Config) -> LanEndpoint:
    """Resolve the LAN listener; in development, make its certificate on first run."""
    address = lan_address(cfg)
    cert = Path(cfg.lan.tls_cert) if cfg.lan.tls_cert else DEV_TLS_DIR / "server.pem"
    key = Path(cfg.lan.tls_key) if cfg.lan.tls_key else DEV_TLS_DIR / "server.key"
    present = cert.is_file() and key.is_file()
    if cfg.strict:
        if not present:
            raise ConfigError(f"lan.tls_cert {cert} or lan.tls_key {key} is missing: run "
                              "provisioning/provision (strict mode makes no certificates)")
        return LanEndpoint(address, cfg.lan.port, cert, key, None)
    ca: Path | None = None
    if not present or (cert.parent / "ca.key").is_file():  # none yet, or our own: keep current
        ca = ensure_certificate(cert, key, address)
    return LanEndpoint(address, cfg.lan.port, cert, key, ca)


def server_context(endpoint: LanEndpoint) -> ssl.SSLContext:
    """TLS 1.2+ with forward-secret AEAD suites only; HTTP/1.1 (no ALPN for h2)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.options |= ssl.OP_NO_TICKET
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(str(endpoint.cert_path), str(endpoint.key_path))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the LAN certificate {endpoint.cert_path} and key "
                          f"{endpoint.key_path}: {exc}") from None
    return context
